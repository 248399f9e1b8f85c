import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { sendRequest, type HttpAnswer } from '../../test/kit/http.js';
import { multipartAround } from '../../test/kit/multipart.js';
import { now, percentile, sleep } from '../../test/kit/stats.js';

export const PREFIX = '/api/v1';

export interface User {
  readonly user_id: string;
  readonly access_token: string;
}

const keepAlive = new Agent({ keepAlive: true, maxSockets: 8 });

/** A small request over a kept-alive connection; the body is read in full. */
export function simpleRequest(baseUrl: string, method: string, path: string): Promise<HttpAnswer> {
  return sendRequest(new URL(path, baseUrl), { method, agent: keepAlive });
}

export function closeKeepAlive(): void {
  keepAlive.destroy();
}

let userCounter = 0;

function uniqueUsername(tag: string): string {
  return `bench_${tag}_${userCounter++}`;
}

export async function createUser(baseUrl: string, tag: string): Promise<User> {
  const response = await simpleRequest(
    baseUrl,
    'POST',
    `${PREFIX}/users/?username=${encodeURIComponent(uniqueUsername(tag))}`,
  );
  if (response.status !== 200) throw new Error(`create user: ${response.status} ${response.text}`);
  return JSON.parse(response.text) as User;
}

/** Spends tokens at `bytesPerSecond`; a short burst at most, so a stalled sender cannot catch up in a rush. */
class TokenBucket {
  private tokens: number;
  private last = now();

  constructor(
    private readonly bytesPerSecond: number,
    private readonly burstBytes = 64 * 1024,
  ) {
    this.tokens = burstBytes;
  }

  async take(bytes: number): Promise<void> {
    const time = now();
    this.tokens = Math.min(this.burstBytes, this.tokens + ((time - this.last) / 1000) * this.bytesPerSecond);
    this.last = time;
    this.tokens -= bytes;
    // Debt is paid by waiting, so the average rate is exact even with a coarse timer.
    if (this.tokens < 0) await sleep((-this.tokens / this.bytesPerSecond) * 1000);
  }
}

export interface UploadOptions {
  readonly baseUrl: string;
  readonly user: User;
  /** The file's bytes and their exact length. */
  readonly audio: { readonly bytes: number; open(): Readable };
  /** The file part's name; the service judges the bytes, never the name. */
  readonly filename?: string;
  /** Throttle the sender to this rate; unset sends as fast as the connection takes it. */
  readonly bytesPerSecond?: number;
}

export interface UploadResult {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** Multipart body length. */
  readonly totalBytes: number;
  /** Body bytes handed to the socket when the response headers arrived. */
  readonly sentAtResponse: number;
  /** ms, from request start (performance.now origin). */
  readonly startedAt: number;
  /** When the last body byte was flushed to the socket; undefined when the body was not sent in full. */
  readonly lastByteAt: number | undefined;
  readonly responseAt: number;
  readonly endedAt: number;
  /** Set when the exchange failed at the transport level (reset, refused…). */
  readonly error?: string;
}

const SLICE_BYTES = 16 * 1024;

/**
 * POSTs an audio file as multipart/form-data over node:http, written by hand so that the sender can be
 * throttled and its progress known. Stops sending as soon as the response comes back early (as a
 * well-behaved client does with a 503), and never rejects: transport failures are reported in `error`.
 */
export function uploadAudio(options: UploadOptions): Promise<UploadResult> {
  const { head, tail, contentType } = multipartAround({}, { filename: options.filename ?? 'bench.wav' });
  const totalBytes = head.length + options.audio.bytes + tail.length;
  const bucket = options.bytesPerSecond === undefined ? undefined : new TokenBucket(options.bytesPerSecond);
  const url = new URL(`${PREFIX}/record/?user_id=${options.user.user_id}`, options.baseUrl);

  return new Promise((resolve) => {
    const startedAt = now();
    let sent = 0;
    let sentAtResponse = -1;
    let lastByteAt: number | undefined;
    let responseAt = 0;
    let stopped = false;
    let settled = false;
    let status = 0;
    let headers: IncomingHttpHeaders = {};
    let body = '';

    const finish = (error?: string) => {
      if (settled) return;
      settled = true;
      stopped = true;
      source.destroy();
      resolve({
        status,
        headers,
        body,
        totalBytes,
        sentAtResponse: sentAtResponse === -1 ? sent : sentAtResponse,
        startedAt,
        lastByteAt,
        responseAt,
        endedAt: now(),
        ...(error === undefined ? {} : { error }),
      });
    };

    const request = httpRequest(url, {
      method: 'POST',
      agent: false,
      headers: {
        // As curl and browsers do (HTTP/1.1's default); with `agent: false` Node would send `close` instead.
        connection: 'keep-alive',
        authorization: `Bearer ${options.user.access_token}`,
        'content-type': contentType,
        'content-length': String(totalBytes),
      },
    });
    const source = options.audio.open();

    request.once('response', (response) => {
      responseAt = now();
      sentAtResponse = sent;
      status = response.statusCode ?? 0;
      headers = response.headers;
      const early = lastByteAt === undefined;
      stopped = true;
      response.setEncoding('utf8');
      response.on('data', (text: string) => (body += text));
      response.once('end', () => {
        // The server answered before taking the whole body: stop sending and drop the connection.
        if (early) request.destroy();
        finish();
      });
      response.once('error', (error) => finish(`response: ${error.message}`));
    });
    request.once('error', (error) => finish(`request: ${error.message}`));

    const send = async () => {
      const write = async (chunk: Buffer) => {
        for (let offset = 0; offset < chunk.length && !stopped; offset += SLICE_BYTES) {
          const slice = chunk.subarray(offset, offset + SLICE_BYTES);
          if (bucket !== undefined) await bucket.take(slice.length);
          if (stopped) return;
          sent += slice.length;
          if (!request.write(slice)) {
            await new Promise<void>((resolve) => {
              const done = () => {
                request.off('drain', done);
                request.off('close', done);
                resolve();
              };
              request.on('drain', done);
              request.on('close', done);
            });
          }
        }
      };
      await write(head);
      for await (const chunk of source as AsyncIterable<Buffer>) {
        if (stopped) break;
        await write(chunk);
      }
      if (stopped) return;
      await write(tail);
      if (stopped) return;
      request.end(() => {
        lastByteAt = now();
      });
    };
    send().catch((error: unknown) => finish(`send: ${error instanceof Error ? error.message : String(error)}`));
  });
}

/**
 * Open-loop sampler of `POST /users` latency: POSTs a new user every `intervalMs` until stopped, whatever
 * the answers, timing each from request to response, so a stalled server shows up as latency rather than
 * as fewer samples. The requests
 * go out from a worker thread of their own: on this process's event loop they would also wait behind the
 * upload bodies it is pumping at the same time, and the client's delays would count as the service's. The
 * worker's code is plain JavaScript passed as a string, so that it runs without the TypeScript loader.
 * Its usernames extend one of this process's unique names, so they never meet another sampler's.
 */
export function startLatencySampler(baseUrl: string, tag: string, intervalMs: number) {
  const worker = new Worker(LATENCY_SAMPLER, {
    eval: true,
    workerData: {
      url: new URL(`${PREFIX}/users/?username=`, baseUrl).href,
      prefix: `${uniqueUsername(tag)}_`,
      intervalMs,
    },
  });
  const done = new Promise<{ latencies: number[]; failures: number }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  let stopped: Promise<{ latencies: number[]; failures: number }> | undefined;
  return {
    /** Stops the worker; every call answers the same samples. */
    stop(): Promise<{ latencies: number[]; failures: number }> {
      stopped ??= (async () => {
        worker.postMessage('stop');
        const result = await done;
        await worker.terminate();
        return result;
      })();
      return stopped;
    },
  };
}

const LATENCY_SAMPLER = `
  const { parentPort, workerData } = require('node:worker_threads');
  const http = require('node:http');
  const { performance } = require('node:perf_hooks');
  const agent = new http.Agent({ keepAlive: true });
  const latencies = [];
  let failures = 0;
  let count = 0;
  const inFlight = new Set();
  const fire = () => {
    const started = performance.now();
    const done = new Promise((resolve) => {
      const request = http.request(workerData.url + workerData.prefix + count++, { method: 'POST', agent }, (response) => {
        response.resume();
        response.once('end', () => {
          if (response.statusCode === 200) latencies.push(performance.now() - started);
          else failures += 1;
          resolve();
        });
        response.once('error', () => { failures += 1; resolve(); });
      });
      request.once('error', () => { failures += 1; resolve(); });
      request.end();
    });
    inFlight.add(done);
    done.finally(() => inFlight.delete(done));
  };
  fire();
  const timer = setInterval(fire, workerData.intervalMs);
  parentPort.once('message', async () => {
    clearInterval(timer);
    await Promise.all(inFlight);
    agent.destroy();
    parentPort.postMessage({ latencies, failures });
  });
`;

export function summarizeLatencies(latencies: readonly number[]) {
  return { count: latencies.length, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

export interface DownloadLoad {
  readonly requestsPerSecond: number;
  readonly mbPerSecond: number;
  readonly p99: number;
  /** e.g. "200×120" */
  readonly statuses: string;
  readonly errors: number;
}

/**
 * Downloads `path` over `connections` kept-alive connections for `seconds`, discarding the bodies.
 * Node's own HTTP client (llhttp) rather than autocannon, whose JavaScript parser, not the server,
 * was the limit for multi-megabyte bodies.
 */
export async function downloadLoad(
  baseUrl: string,
  path: string,
  connections: number,
  seconds: number,
  headersFor: () => Record<string, string> = () => ({}),
): Promise<DownloadLoad> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const url = new URL(path, baseUrl);
  const latencies: number[] = [];
  const statuses = new Map<number, number>();
  let bytes = 0;
  let errors = 0;
  const startedAt = now();
  const deadline = startedAt + seconds * 1000;
  const once = () =>
    new Promise<void>((resolve) => {
      const sentAt = now();
      const request = httpRequest(url, { agent, headers: headersFor() }, (response) => {
        response.on('data', (chunk: Buffer) => (bytes += chunk.length));
        response.once('end', () => {
          latencies.push(now() - sentAt);
          statuses.set(response.statusCode ?? 0, (statuses.get(response.statusCode ?? 0) ?? 0) + 1);
          resolve();
        });
        response.once('error', () => {
          errors += 1;
          resolve();
        });
      });
      request.once('error', () => {
        errors += 1;
        resolve();
      });
      request.end();
    });
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (now() < deadline) await once();
    }),
  );
  agent.destroy();
  const elapsed = (now() - startedAt) / 1000;
  return {
    requestsPerSecond: latencies.length / elapsed,
    mbPerSecond: bytes / 1e6 / elapsed,
    p99: Math.round(percentile(latencies, 99)),
    statuses: [...statuses].map(([code, count]) => `${code}×${count}`).join(' '),
    errors,
  };
}
