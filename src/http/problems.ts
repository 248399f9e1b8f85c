import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isDatabaseUnavailable } from '../db/postgres-errors.js';
import {
  AudioRejected,
  Busy,
  DomainError,
  InsufficientStorage,
  InvalidInput,
  NotFound,
  QuotaExceeded,
  RateLimited,
  Unauthorized,
  Unavailable,
  BodyTooSlow,
  UploadTooLarge,
  UsernameTaken,
  type AudioRejection,
} from '../domain/errors.js';

/** An RFC 9457 problem answer: the only shape in which this service reports an error. */
export interface Problem {
  readonly status: number;
  /** A URI reference naming the kind of problem; `about:blank` when the status says it all. */
  readonly type: string;
  readonly detail: string;
  readonly headers: Readonly<Record<string, string>>;
}

type ProblemKind = Omit<Problem, 'detail' | 'headers'> & { readonly headers?: Readonly<Record<string, string>> };

const AUDIO_REJECTIONS: Readonly<Record<AudioRejection, ProblemKind>> = {
  'unsupported-format': { status: 415, type: '/problems/not-a-wav' },
  undecodable: { status: 422, type: '/problems/undecodable-audio' },
  'too-long': { status: 413, type: '/problems/too-long' },
};

const retryAfter = (seconds: number) => ({ 'retry-after': String(seconds) });

/** The one table from domain errors to HTTP answers. */
function kindOf(error: DomainError): ProblemKind {
  if (error instanceof InvalidInput) return { status: 400, type: 'about:blank' };
  if (error instanceof Unauthorized)
    return { status: 401, type: 'about:blank', headers: { 'www-authenticate': 'Bearer' } };
  if (error instanceof NotFound) return { status: 404, type: 'about:blank' };
  // The client may still be sending: closing the connection is the only way to stop it.
  if (error instanceof BodyTooSlow) return { status: 408, type: 'about:blank', headers: { connection: 'close' } };
  if (error instanceof UsernameTaken) return { status: 409, type: 'about:blank' };
  if (error instanceof UploadTooLarge) return { status: 413, type: 'about:blank' };
  if (error instanceof QuotaExceeded) return { status: 413, type: '/problems/quota-exceeded' };
  if (error instanceof AudioRejected) return AUDIO_REJECTIONS[error.reason];
  if (error instanceof RateLimited)
    return { status: 429, type: 'about:blank', headers: retryAfter(error.retryAfterSeconds) };
  if (error instanceof InsufficientStorage) return { status: 507, type: '/problems/insufficient-storage' };
  if (error instanceof Busy || error instanceof Unavailable) {
    return { status: 503, type: 'about:blank', headers: retryAfter(error.retryAfterSeconds) };
  }
  return { status: 500, type: 'about:blank' };
}

// How long a client should wait before retrying while the database is unreachable.
const DATABASE_RETRY_SECONDS = 5;
const INTERNAL_ERROR = 'The server failed to handle this request. It has been logged.';

/** The answer for anything thrown: domain errors by the table, the framework's own client errors as they are. */
export function toProblem(error: unknown): Problem {
  if (error instanceof DomainError) return { headers: {}, ...kindOf(error), detail: error.detail };
  if (isDatabaseUnavailable(error)) {
    return {
      status: 503,
      type: 'about:blank',
      detail: 'The database is not reachable right now.',
      headers: retryAfter(DATABASE_RETRY_SECONDS),
    };
  }
  if (isFastifyError(error)) {
    if (error.validation !== undefined) return { status: 400, type: 'about:blank', detail: error.message, headers: {} };
    const status = error.statusCode;
    // Fastify's and its plugins' own client errors (body too large, bad multipart, bad JSON) keep their status.
    if (status !== undefined && status >= 400 && status < 500) {
      return { status, type: 'about:blank', detail: error.message, headers: {} };
    }
  }
  return { status: 500, type: 'about:blank', detail: INTERNAL_ERROR, headers: {} };
}

function isFastifyError(error: unknown): error is FastifyError {
  return error instanceof Error && 'code' in error;
}

/** The problem+json document; `detail` keeps clients written for FastAPI's `{"detail": …}` working. */
export function problemDocument(status: number, detail: string, type = 'about:blank') {
  return { type, title: STATUS_CODES[status] ?? 'Error', status, detail };
}

export function sendProblem(reply: FastifyReply, problem: Problem): FastifyReply {
  return reply
    .code(problem.status)
    .headers(problem.headers)
    .type('application/problem+json')
    .send(problemDocument(problem.status, problem.detail, problem.type));
}

/** The single place where errors become responses; 5xx details go to the log, never to the client. */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const problem = toProblem(error);
    if (problem.status >= 500) {
      request.log.error({ err: error }, problem.detail);
    } else {
      request.log.info({ status: problem.status, detail: problem.detail }, 'request refused');
    }
    return sendProblem(reply, problem);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, toProblem(new NotFound(`No route for ${request.method} ${request.url.split('?')[0] ?? ''}.`))),
  );
}
