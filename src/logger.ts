import { pino, type Logger } from 'pino';
import type { Config } from './config.js';

// Names of query parameters whose values never reach the logs.
const SECRET_PARAMETERS = ['access_token'];

/** The process's one logger; tokens are blanked out of every line, in headers and in URLs. */
export function createLogger(config: Config, stream?: NodeJS.WritableStream): Logger {
  const options = {
    level: config.logLevel,
    // `*.headers…` also covers @fastify/multipart's trace line, which logs the request headers it hands to busboy.
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', '*.headers.authorization'],
      censor: '[redacted]',
    },
    serializers: {
      req: (request: { method: string; url: string; hostname?: string; ip?: string }) => ({
        method: request.method,
        url: redactUrl(request.url),
        host: request.hostname,
        remoteAddress: request.ip,
      }),
    },
  };
  return stream === undefined ? pino(options) : pino(options, stream);
}

/** The URL with secret query parameters blanked out; everything else stays as the client wrote it. */
export function redactUrl(url: string): string {
  const queryStart = url.indexOf('?');
  if (queryStart === -1) return url;
  const pairs = url
    .slice(queryStart + 1)
    .split('&')
    .map((pair) => {
      const equals = pair.indexOf('=');
      const rawName = equals === -1 ? pair : pair.slice(0, equals);
      return SECRET_PARAMETERS.includes(decodeName(rawName)) ? `${rawName}=[redacted]` : pair;
    });
  return `${url.slice(0, queryStart)}?${pairs.join('&')}`;
}

/** A query parameter name as the query parser sees it (`access%5Ftoken` is `access_token`). */
function decodeName(rawName: string): string {
  try {
    return decodeURIComponent(rawName.replace(/\+/g, ' '));
  } catch {
    return rawName;
  }
}
