import { STATUS_CODES } from 'node:http';

export interface ProblemOptions {
  /** A URI reference naming the kind of problem; `about:blank` when the status says it all. */
  readonly type?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly cause?: unknown;
}

/**
 * An error that already knows how it should be answered (RFC 9457 problem details).
 * Anything else that reaches the error handler is a bug and becomes a logged 500.
 */
export class Problem extends Error {
  override name = 'Problem';
  readonly type: string;
  readonly title: string;
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    readonly status: number,
    readonly detail: string,
    options: ProblemOptions = {},
  ) {
    super(detail, { cause: options.cause });
    this.type = options.type ?? 'about:blank';
    this.title = STATUS_CODES[status] ?? 'Error';
    this.headers = options.headers ?? {};
  }
}

export const badRequest = (detail: string) => new Problem(400, detail);

// One answer for every authentication failure, so that nothing tells which part was wrong.
export const unauthorized = () =>
  new Problem(401, 'Missing or invalid access token for this user.', {
    headers: { 'www-authenticate': 'Bearer' },
  });

export const notFound = (detail: string) => new Problem(404, detail);

export const conflict = (detail: string) => new Problem(409, detail);

export const tooLarge = (detail: string, type = 'about:blank') => new Problem(413, detail, { type });

export const notAWav = (detail: string) => new Problem(415, detail, { type: '/problems/not-a-wav' });

export const undecodableAudio = (detail: string, cause?: unknown) =>
  new Problem(422, detail, { type: '/problems/undecodable-audio', cause });

export const unavailable = (detail: string, retryAfterSeconds: number, cause?: unknown) =>
  new Problem(503, detail, { headers: { 'retry-after': String(retryAfterSeconds) }, cause });

/** An upload refused because the user's storage quota (records or bytes) would be exceeded. */
export const quotaExceeded = (detail: string) => new Problem(413, detail, { type: '/problems/quota-exceeded' });
