import { ApiError } from './api';
import type { Messages } from './i18n/en';

/**
 * What an API error means for the person in front of the page, in plain words. The service's own
 * `detail` is English and technical; it is shown only where no plainer message fits.
 */
export function describeError(t: Messages, error: unknown): string {
  if (!(error instanceof ApiError)) return t.errors.generic(0);
  const e = t.errors;
  switch (error.status) {
    case 0:
      return error.type === 'aborted' ? e.cancelled : e.network;
    case 400:
      return error.detail === '' ? e.badRequest : e.badRequestDetail(error.detail);
    case 401:
      return e.unauthorized;
    case 404:
      return e.notFound;
    case 408:
      return e.timeout;
    case 409:
      return e.usernameTaken;
    case 413:
      if (error.type.endsWith('/quota-exceeded')) return e.quota;
      if (error.type.endsWith('/too-long')) return e.tooLong;
      return e.tooLarge;
    case 415:
      return e.notAudio;
    case 422:
      return e.undecodable;
    case 429:
      return e.tooMany(error.retryAfterSeconds);
    case 503:
      return e.busy(error.retryAfterSeconds);
    case 507:
      return e.storageFull;
    default:
      return e.generic(error.status);
  }
}
