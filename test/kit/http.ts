import { request as httpRequest, type Agent, type IncomingHttpHeaders } from 'node:http';
import { connect, createServer } from 'node:net';

/**
 * HTTP clients for what fetch cannot do: a body written piece by piece (a slow client, one that goes
 * away), headers chosen exactly (Host, no Accept), and bytes no HTTP client would send at all.
 */

export interface HttpAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  /** The body as UTF-8 text. */
  readonly text: string;
}

export interface RequestOptions {
  readonly method?: string;
  /** Sent as given; node:http adds only Host, Connection and the body's framing. */
  readonly headers?: Record<string, string>;
  /** A keep-alive agent, say; by default node:http's global agent. */
  readonly agent?: Agent | false;
}

/** A request whose body the test writes piece by piece, e.g. to play a slow client or one that goes away. */
export interface StreamingRequest {
  /** Resolves once the bytes are handed to the kernel; rejects when the connection failed. */
  write(chunk: Buffer): Promise<void>;
  /** Ends the body; resolves once all of it is handed to the kernel. */
  end(chunk?: Buffer): Promise<void>;
  /** Drops the connection, mid-request or not. */
  abort(): void;
  /** Settles as soon as the server answers, whether or not the body was finished; rejects if it never does. */
  readonly response: Promise<HttpAnswer>;
  /** The answer, once it has come. */
  readonly answer: HttpAnswer | undefined;
}

/** Opens a request (POST unless told) and sends its headers at once; the body is up to the caller. */
export function streamRequest(url: string | URL, options: RequestOptions = {}): StreamingRequest {
  return open(url, { method: 'POST', ...options }, true);
}

/** One whole request over node:http; the answer's body is read in full. */
export async function sendRequest(
  url: string | URL,
  options: RequestOptions & { readonly body?: Buffer | string } = {},
): Promise<HttpAnswer> {
  // Headers go out with the body here, so that node:http frames it with Content-Length, as a client would.
  const request = open(url, { method: 'GET', ...options }, false);
  await request.end(options.body === undefined ? undefined : Buffer.from(options.body));
  return request.response;
}

function open(url: string | URL, options: RequestOptions, flushHeaders: boolean): StreamingRequest {
  const request = httpRequest(url, {
    method: options.method,
    headers: options.headers ?? {},
    ...(options.agent === undefined ? {} : { agent: options.agent }),
  });
  let answer: HttpAnswer | undefined;
  const response = new Promise<HttpAnswer>((resolve, reject) => {
    request.once('error', reject);
    request.once('response', (incoming) => {
      const chunks: Buffer[] = [];
      incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
      incoming.once('error', reject);
      incoming.once('end', () => {
        const body = Buffer.concat(chunks);
        answer = { status: incoming.statusCode ?? 0, headers: incoming.headers, body, text: body.toString() };
        resolve(answer);
      });
    });
  });
  // An aborted request rejects; a test that aborts on purpose, or whose server was killed, need not await it.
  response.catch(() => {});
  if (flushHeaders) request.flushHeaders();
  return {
    write: (chunk) =>
      settledQuietly(
        new Promise<void>((resolve, reject) => {
          request.write(chunk, (error) => (error ? reject(error) : resolve()));
        }),
      ),
    end: (chunk) =>
      settledQuietly(
        new Promise<void>((resolve, reject) => {
          request.once('error', reject);
          request.end(chunk, () => resolve());
        }),
      ),
    abort: () => {
      request.destroy();
    },
    response,
    get answer() {
      return answer;
    },
  };
}

/** The promise itself, marked as handled: a caller that does not await it (the server was killed) is fine. */
function settledQuietly<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

/**
 * Writes `bytes` a slice at a time with a pause after each, as a slow client does, until all are sent or
 * the server has answered (a write failing after the answer is expected). Answers how many bytes were sent.
 */
export async function sendSlowly(
  request: StreamingRequest,
  bytes: Buffer,
  slice: { readonly bytes: number; readonly pauseMs: number },
): Promise<number> {
  let sent = 0;
  while (sent < bytes.length && request.answer === undefined) {
    await request.write(bytes.subarray(sent, sent + slice.bytes)).catch(() => {});
    sent += slice.bytes;
    await new Promise((resolve) => setTimeout(resolve, slice.pauseMs));
  }
  return Math.min(sent, bytes.length);
}

export interface RawAnswer {
  /** 0 when the server closed the connection without answering. */
  readonly status: number;
  /** Header names in lower case. */
  readonly headers: Record<string, string>;
  /** The body (de-chunked), as latin1 text. */
  readonly text: string;
  /** Everything the server sent, as latin1 text. */
  readonly raw: string;
}

/**
 * Sends bytes exactly as given over one TCP connection to `target` (a port or a service's base URL) and
 * reads until the server closes it (the request should say `Connection: close`, or be HTTP/1.0); the
 * connection is not half-closed. For requests no HTTP client would send.
 */
export function rawHttp(target: number | string, request: Buffer | string, timeoutMs = 15_000): Promise<RawAnswer> {
  const port = typeof target === 'number' ? target : Number(new URL(target).port);
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms to ${String(request).slice(0, 200)}`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {}); // a reset after the answer is fine; no answer shows as status 0
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(parseRaw(Buffer.concat(chunks).toString('latin1')));
    });
    // Not end(): a client that half-closes is treated by Node as gone, and its request is aborted.
    socket.write(request);
  });
}

function parseRaw(raw: string): RawAnswer {
  // Interim answers (100 Continue) come before the real one.
  let answer = raw;
  while (/^HTTP\/1\.[01] 1\d\d /.test(answer) && answer.includes('\r\n\r\n')) {
    answer = answer.slice(answer.indexOf('\r\n\r\n') + 4);
  }
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1];
  const split = answer.indexOf('\r\n\r\n');
  const headers: Record<string, string> = {};
  for (const line of answer
    .slice(0, split === -1 ? answer.length : split)
    .split('\r\n')
    .slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  let text = split === -1 ? '' : answer.slice(split + 4);
  if (headers['transfer-encoding'] === 'chunked') text = unchunk(text);
  return { status: status === undefined ? 0 : Number(status), headers, text, raw };
}

function unchunk(body: string): string {
  let out = '';
  let rest = body;
  for (;;) {
    const lineEnd = rest.indexOf('\r\n');
    if (lineEnd === -1) return out;
    const size = parseInt(rest.slice(0, lineEnd), 16);
    if (!(size > 0)) return out;
    out += rest.slice(lineEnd + 2, lineEnd + 2 + size);
    rest = rest.slice(lineEnd + 2 + size + 2);
  }
}

/**
 * Asks `url` every 200 ms until it answers 200 ('ok'), `gone()` says the server has exited ('gone'), or
 * `timeoutMs` have passed ('timeout'). Plain code, not vi.waitFor: the load test and the benchmark, which
 * run outside vitest, start services with it too.
 */
export async function untilAnswering(
  url: string,
  timeoutMs: number,
  gone: () => boolean = () => false,
): Promise<'ok' | 'gone' | 'timeout'> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (gone()) return 'gone';
    const ok = await fetch(url).then(
      async (response) => {
        await response.arrayBuffer();
        return response.status === 200;
      },
      () => false,
    );
    if (ok) return 'ok';
    if (Date.now() > deadline) return 'timeout';
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** A TCP port nothing listens on right now, for a server that must be started on a known port. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}
