import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isDatabaseUnavailable } from '../db/errors.js';
import { Problem, notFound, unavailable } from '../errors.js';

// How long a client should wait before retrying while the database is unreachable.
const DATABASE_RETRY_SECONDS = 5;

/** Turns anything thrown into the Problem it should be answered with. */
export function toProblem(error: unknown): Problem {
  if (error instanceof Problem) return error;
  if (isDatabaseUnavailable(error)) {
    return unavailable('The database is not reachable right now.', DATABASE_RETRY_SECONDS, error);
  }
  if (isFastifyError(error)) {
    if (error.validation !== undefined) return new Problem(400, error.message, { cause: error });
    const status = error.statusCode;
    // Fastify's and its plugins' own client errors (body too large, bad multipart, bad JSON) keep their status.
    if (status !== undefined && status >= 400 && status < 500)
      return new Problem(status, error.message, { cause: error });
  }
  return new Problem(500, 'The server failed to handle this request. It has been logged.', { cause: error });
}

function isFastifyError(error: unknown): error is FastifyError {
  return error instanceof Error && 'code' in error;
}

export function sendProblem(reply: FastifyReply, problem: Problem): FastifyReply {
  return reply
    .code(problem.status)
    .headers(problem.headers)
    .type('application/problem+json')
    .send({ type: problem.type, title: problem.title, status: problem.status, detail: problem.detail });
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
    sendProblem(reply, notFound(`No route for ${request.method} ${request.url.split('?')[0] ?? ''}.`)),
  );
}
