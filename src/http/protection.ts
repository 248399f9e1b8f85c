import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Readable, type Duplex } from 'node:stream';
import cors from '@fastify/cors';
import rateLimit, {
  normalizeIP,
  type FastifyRateLimitStore,
  type FastifyRateLimitStoreCtor,
} from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import helmet, { type HelmetOptions } from 'helmet';
import type { Config } from '../config.js';
import { BodyTooSlow, RateLimited, Unavailable } from '../domain/errors.js';
import type { HitCounters } from '../services/hit-counters.js';
import { stringParameter } from './auth.js';
import { problemDocument, sendProblem, toProblem } from './problems.js';
import { cutBody } from './upload-guard.js';

/** Where a browser is sent for audio when downloads redirect to the object store's presigned URLs. */
function audioOrigins({ storage }: Config): string[] {
  if (storage.driver !== 's3' || storage.download !== 'redirect') return [];
  const { endpoint, bucket, region, forcePathStyle } = storage;
  const { protocol, host } = new URL(endpoint ?? `https://s3.${region}.amazonaws.com`);
  return forcePathStyle ? [`${protocol}//${host}`] : [`${protocol}//${host}`, `${protocol}//${bucket}.${host}`];
}

/**
 * Everything that protects the service from its clients rather than serving them: security headers, CORS
 * (off unless CORS_ORIGINS is set), the rate-limit plugin that routes configure for themselves, a limit
 * on failed authentication, and a problem+json 503 for requests that arrive while the server drains.
 * Rate limits and failed authentications are counted in `counters`, which replicas share.
 * Call it before the routes are registered.
 */
export async function registerProtection(app: FastifyInstance, config: Config, counters: HitCounters): Promise<void> {
  registerSecurityHeaders(app, {
    contentSecurityPolicy: {
      useDefaults: true,
      directives: {
        // Swagger UI at /docs loads only its own scripts, styles and data: images, which the defaults allow.
        // The service is often run on plain HTTP inside a network; upgrading its subresources would break it.
        'upgrade-insecure-requests': null,
        // The web app plays records from here, or from the object store they redirect to, and plays a
        // microphone recording back from a blob: URL before it is uploaded.
        'media-src': ["'self'", 'blob:', ...audioOrigins(config)],
        // wavesurfer.js styles its shadow root with a <style> element; no stylesheet comes from elsewhere.
        'style-src': ["'self'", "'unsafe-inline'"],
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
  registerConnectionLimits(app, config);
  registerBodyDeadline(app, config.requestBodyTimeoutMs);
  registerResponseIdleTimeout(app, config.responseIdleTimeoutMs);
  // Answers that carry a token or a user's private data must never be kept by a cache.
  app.addHook('onSend', async (request, reply) => {
    const { auth, privateResponse } = request.routeOptions.config;
    if (auth !== undefined || privateResponse === true) reply.header('cache-control', 'no-store');
  });
  // Node answers an `Expect` other than 100-continue with a bare 417 unless someone listens; say it as a problem.
  app.server.on('checkExpectation', (_request: IncomingMessage, response: ServerResponse) => {
    const body = JSON.stringify(problemDocument(417, 'Only "Expect: 100-continue" is supported.'));
    response.writeHead(417, { 'content-type': 'application/problem+json', connection: 'close' }).end(body);
  });
  registerAuthFailureLimit(app, config, counters);

  // Nothing is limited by default: a route takes a handler from `app.rateLimit(…)` as its own onRequest.
  await app.register(rateLimit, { global: false, store: rateLimitStore(counters) });
}

/**
 * helmet's headers, worked out once and set on every answer as helmet sets them (same names, order and
 * values): with these options they depend on nothing in the request, and @fastify/helmet would build a
 * new helmet, and parse the CSP again, for every request, downloads included.
 */
function registerSecurityHeaders(app: FastifyInstance, options: HelmetOptions): void {
  const headers: Array<readonly [string, string]> = [];
  const recorder = {
    setHeader: (name: string, value: string) => headers.push([name, value]),
    // X-Powered-By, which Node never sets.
    removeHeader: () => {},
  };
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, (error?: unknown) => {
    if (error !== undefined) throw new Error('helmet refused its options', { cause: error });
  });
  app.addHook('onRequest', (_request, reply, done) => {
    for (const [name, value] of headers) reply.raw.setHeader(name, value);
    done();
  });
}

/**
 * The rate-limit plugin's counters, kept in `counters` (the plugin itself keeps them in process memory or
 * Redis). Limits tell their counts apart by the key they generate, so every child shares one store.
 */
function rateLimitStore(counters: HitCounters): FastifyRateLimitStoreCtor {
  return class CountersStore implements FastifyRateLimitStore {
    incr(
      key: string,
      callback: (error: Error | null, result?: { current: number; ttl: number }) => void,
      timeWindow: number,
    ): void {
      counters.hit(key, timeWindow).then(
        ({ hits, resetInMs }) => callback(null, { current: hits, ttl: resetInMs }),
        (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
      );
    }

    child(): FastifyRateLimitStore {
      return this;
    }
  };
}

/** The client's address; IPv6 clients by their /64, which one subscriber usually holds whole. */
export function clientKey(request: FastifyRequest): string {
  return normalizeIP(request.ip, 64);
}

/**
 * Caps connections in all and per client address, before any byte is parsed: a client holding a thousand
 * idle sockets must not use up the file descriptors others need. The per-address cap counts the TCP peer,
 * so behind a reverse proxy it counts the proxy (turn it off there with 0).
 */
function registerConnectionLimits(app: FastifyInstance, config: Config): void {
  app.server.maxConnections = config.maxConnections;
  const perAddress = config.maxConnectionsPerAddress;
  if (perAddress === 0) return;
  const open = new Map<string, number>();
  app.server.on('connection', (socket: Socket) => {
    // IPv6 clients by their /64, as the rate limits count them: one subscriber usually holds all of it.
    const address = normalizeIP(socket.remoteAddress ?? '', 64);
    const count = (open.get(address) ?? 0) + 1;
    if (count > perAddress) {
      socket.destroy();
      return;
    }
    open.set(address, count);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left <= 0) open.delete(address);
      else open.set(address, left);
    });
  });
}

/**
 * Every request body except an upload's (which has its own limits) must arrive within `timeoutMs`, or
 * its connection is cut: a client announcing a body and never sending it must not hold a socket forever.
 */
function registerBodyDeadline(app: FastifyInstance, timeoutMs: number): void {
  // An upload answered before its body was read (401, 503, 413, 429, 507…): Node reads and drops the rest so
  // the connection can serve again, but only for as long as any other body may take.
  app.addHook('onResponse', async (request) => {
    const raw = request.raw;
    if (request.routeOptions.config.streamedBody !== true || raw.complete) return;
    // Node drops the rest by itself only for a body nobody started reading; the multipart parser did, so the
    // rest is drained here, or the next request on this keep-alive connection would wait behind it.
    raw.unpipe();
    raw.resume();
    const timer = setTimeout(() => raw.socket?.destroy(), timeoutMs).unref();
    raw.once('end', () => clearTimeout(timer));
    raw.once('close', () => clearTimeout(timer));
  });
  app.addHook('onRequest', async (request) => {
    const raw = request.raw;
    if (request.routeOptions.config.streamedBody === true || raw.complete) return;
    const length = raw.headers['content-length'];
    if ((length === undefined || length === '0') && raw.headers['transfer-encoding'] === undefined) return;
    const timer = setTimeout(() => {
      if (raw.complete || raw.destroyed) return;
      request.log.info({ timeoutMs }, 'request body too slow: cutting it');
      // A body parser waiting for the body answers 408; a route that never reads it just loses the socket.
      cutBody(raw, new BodyTooSlow(`The request body did not arrive within ${timeoutMs / 1000} seconds.`), 1000);
    }, timeoutMs);
    raw.once('end', () => clearTimeout(timer));
    raw.once('close', () => clearTimeout(timer));
  });
}

/**
 * A response (a download) whose client stops reading for `timeoutMs` is cut, freeing its socket and file, or
 * the buffer a short range is answered from.
 */
function registerResponseIdleTimeout(app: FastifyInstance, timeoutMs: number): void {
  // One listener per socket, however many responses a keep-alive connection carries.
  const watched = new WeakSet<Socket>();
  app.addHook('onSend', async (request, _reply, payload) => {
    if (!(payload instanceof Readable) && !Buffer.isBuffer(payload)) return payload;
    const socket = request.raw.socket;
    if (!watched.has(socket)) {
      watched.add(socket);
      socket.on('timeout', () => socket.destroy());
    }
    // Node replaces this with its keep-alive timeout once the response is finished.
    socket.setTimeout(timeoutMs);
    return payload;
  });
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
 * Counts the 401s each client (by IP, as Fastify resolves it under TRUST_PROXY) receives for one account
 * in a fixed window; past the limit its authenticated requests for that account get 429 with
 * Retry-After until the window ends, so guessing tokens is slowed to a crawl. @fastify/rate-limit counts
 * requests, not outcomes, so the hook counts the 401s itself, in the same shared counters.
 */
function registerAuthFailureLimit(app: FastifyInstance, config: Config, counters: HitCounters): void {
  const { authFailures, windowMs } = config.rateLimit;
  if (authFailures === 0) return;

  // By address and account, so that one guesser behind a shared address (or a misconfigured proxy) locks
  // out only the account it guesses at; `token` routes name no account, so they share one key per address.
  const keyOf = (request: FastifyRequest) => {
    const params: unknown = request.params;
    const query: unknown = request.query;
    const userId = stringParameter(params, 'user_id') ?? stringParameter(query, 'user_id') ?? '(token)';
    return `auth-failures ${clientKey(request)} ${userId.toLowerCase()}`;
  };

  // preValidation: the path and query are parsed by then, and nothing of the request has been acted on.
  app.addHook('preValidation', async (request: FastifyRequest, reply: FastifyReply) => {
    if (request.routeOptions.config.auth === undefined) return;
    const window = await counters.peek(keyOf(request));
    if (window === undefined || window.hits < authFailures) return;
    const retryAfter = Math.max(1, Math.ceil(window.resetInMs / 1000));
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

  // Counted before the 401 leaves: a client's next request must find this failure already counted, on
  // whichever replica it lands.
  app.addHook('onSend', async (request, reply) => {
    if (reply.statusCode !== 401 || request.routeOptions.config.auth === undefined) return;
    try {
      await counters.hit(keyOf(request), windowMs);
    } catch (error) {
      // An uncounted failure (the database is down) only makes the limit a little late; the 401 still goes.
      request.log.warn({ err: error }, 'could not count a failed authentication');
    }
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
