import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import rateLimit, { normalizeIP } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { RateLimited, Unavailable } from '../domain/errors.js';
import { problemDocument, sendProblem, toProblem } from './problems.js';

// Probes must keep working for a client that is being throttled, and while the service drains.
const UNTHROTTLED = new Set(['/health', '/ready']);
// How many clients the failure counter remembers at most; the oldest are forgotten first.
const MAX_TRACKED_CLIENTS = 100_000;

/**
 * Everything that protects the service from its clients rather than serving them: security headers, CORS
 * (off unless CORS_ORIGINS is set), the rate-limit plugin that routes configure for themselves, a limit
 * on failed authentication, and a problem+json 503 for requests that arrive while the server drains.
 * Call it before the routes are registered.
 */
export async function registerProtection(app: FastifyInstance, config: Config): Promise<void> {
  await app.register(helmet, {
    contentSecurityPolicy: {
      useDefaults: true,
      directives: {
        // Swagger UI at /docs loads only its own scripts, styles and data: images, which the defaults allow.
        // The service is often run on plain HTTP inside a network; upgrading its subresources would break it.
        'upgrade-insecure-requests': null,
      },
    },
    // Record links are meant to be shared and played from other sites (<audio src=…>).
    crossOriginResourcePolicy: { policy: 'cross-origin' },
  });

  if (config.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: config.corsOrigins.includes('*') ? '*' : [...config.corsOrigins],
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
      allowedHeaders: ['authorization', 'content-type', 'range', 'if-range', 'if-none-match', 'x-request-id'],
      exposedHeaders: ['content-range', 'content-length', 'accept-ranges', 'etag', 'retry-after', 'x-request-id'],
      maxAge: 600,
    });
  }

  registerDrainingResponse(app);
  // Node answers an `Expect` other than 100-continue with a bare 417 unless someone listens; say it as a problem.
  app.server.on('checkExpectation', (_request: IncomingMessage, response: ServerResponse) => {
    const body = JSON.stringify(problemDocument(417, 'Only "Expect: 100-continue" is supported.'));
    response.writeHead(417, { 'content-type': 'application/problem+json', connection: 'close' }).end(body);
  });
  registerAuthFailureLimit(app, config);

  // Only routes that set `config.rateLimit` are limited.
  await app.register(rateLimit, { global: false });
}

/** The client's address; IPv6 clients by their /64, which one subscriber usually holds whole. */
function clientKey(request: FastifyRequest): string {
  return normalizeIP(request.ip, 64);
}

/**
 * While the server drains: requests that still arrive (on connections opened before) get a problem+json
 * 503 and `Connection: close`; answers to requests in flight close their connection too, and connections
 * that go idle are closed at once instead of lingering for the keep-alive timeout and holding up the exit.
 */
function registerDrainingResponse(app: FastifyInstance): void {
  let draining = false;
  let reaper: NodeJS.Timeout | undefined;
  app.addHook('preClose', async () => {
    draining = true;
    reaper = setInterval(() => app.server.closeIdleConnections(), 250).unref();
  });
  app.addHook('onClose', async () => clearInterval(reaper));
  app.addHook('onRequest', async () => {
    if (draining) throw new Unavailable('The service is restarting; try again shortly.', 5);
  });
  app.addHook('onSend', async (_request, reply) => {
    if (draining) reply.header('connection', 'close');
  });
}

/**
 * Counts the 401s each client (by IP, as Fastify resolves it under TRUST_PROXY) receives in a fixed
 * window; past the limit every request from it gets 429 with Retry-After until the window ends, so
 * guessing tokens or user ids is slowed to a crawl. @fastify/rate-limit counts requests, not outcomes,
 * so this small counter does the job.
 */
function registerAuthFailureLimit(app: FastifyInstance, config: Config): void {
  const { authFailures, windowMs } = config.rateLimit;
  if (authFailures === 0) return;
  const failures = new Map<string, { count: number; resetAt: number }>();

  const current = (key: string, now: number) => {
    const entry = failures.get(key);
    if (entry === undefined) return undefined;
    if (entry.resetAt > now) return entry;
    failures.delete(key);
    return undefined;
  };

  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (UNTHROTTLED.has(request.url.split('?')[0] ?? '')) return;
    const now = Date.now();
    const entry = current(clientKey(request), now);
    if (entry === undefined || entry.count < authFailures) return;
    const retryAfter = Math.max(1, Math.ceil((entry.resetAt - now) / 1000));
    return sendProblem(
      reply,
      toProblem(
        new RateLimited(
          `Too many failed authentications from this client; try again in ${retryAfter} seconds.`,
          retryAfter,
        ),
      ),
    );
  });

  app.addHook('onResponse', async (request, reply) => {
    if (reply.statusCode !== 401) return;
    const now = Date.now();
    const entry = current(clientKey(request), now);
    if (entry !== undefined) {
      entry.count += 1;
      return;
    }
    // Entries are added in the order they expire, so the expired ones are always at the front.
    for (const [key, value] of failures) {
      if (value.resetAt > now && failures.size < MAX_TRACKED_CLIENTS) break;
      failures.delete(key);
    }
    failures.set(clientKey(request), { count: 1, resetAt: now + windowMs });
  });
}

/**
 * Requests so broken that Node's HTTP parser rejects them (bad request line, header too large, header
 * timeout) never reach Fastify's error handler; they are answered here, in the same problem+json form.
 */
export function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const status = error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : error.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
  const detail =
    status === 408
      ? 'The request headers did not arrive in time.'
      : status === 431
        ? 'The request line and headers are larger than the server accepts.'
        : 'The request is not valid HTTP/1.1.';
  const body = JSON.stringify(problemDocument(status, detail));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\n` +
        `Content-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}
