/**
 * `npm run loadtest`: mixed traffic against a real server process, then a check that nothing acknowledged
 * was lost. Environment:
 *   LOADTEST_SECONDS (60)       how long to drive traffic
 *   LOADTEST_CLIENTS (200)      concurrent clients, each running one request after another
 *   LOADTEST_URL                target an already running service instead (server RSS is then not measured)
 *   LOADTEST_DATABASE_URL       PostgreSQL for the spawned server; PGlite when unset
 *   LOADTEST_CONVERT_CONCURRENCY, LOADTEST_QUEUE_SIZE   the spawned server's conversion slots and queue
 * Exit status 1 when a 5xx other than 503 was seen, or an acknowledged upload was lost or wrong.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { freePort } from '../test/kit/http.js';
import { ffmpegDescendants, rssBytes, spawnService, type ChildService } from '../test/kit/process.js';
import { percentile } from '../test/kit/stats.js';
import { decodeMp3, makeWav, type WavSpec } from '../test/kit/wav.js';

const SECONDS = Number(process.env.LOADTEST_SECONDS ?? '60');
const CLIENTS = Number(process.env.LOADTEST_CLIENTS ?? '200');
const PREFIX = '/api/v1';

const FORMATS: Array<{ name: string; spec: WavSpec }> = [
  { name: 'pcm16 44.1k stereo 1s', spec: { durationSeconds: 1 } },
  { name: 'pcm8 8k mono 2s', spec: { durationSeconds: 2, sampleRate: 8000, channels: 1, bitsPerSample: 8 } },
  { name: 'pcm24 96k stereo 0.5s', spec: { durationSeconds: 0.5, sampleRate: 96000, bitsPerSample: 24 } },
  { name: 'float32 48k stereo 0.7s', spec: { durationSeconds: 0.7, sampleRate: 48000, encoding: 'float' } },
  { name: 'alaw 8k mono 1.5s', spec: { durationSeconds: 1.5, sampleRate: 8000, channels: 1, encoding: 'alaw' } },
  { name: 'mulaw 16k mono 1s', spec: { durationSeconds: 1, sampleRate: 16000, channels: 1, encoding: 'mulaw' } },
  { name: 'extensible 5.1 48k 0.4s', spec: { durationSeconds: 0.4, sampleRate: 48000, channels: 6, extensible: true } },
  { name: 'RF64 22.05k mono 1s', spec: { durationSeconds: 1, sampleRate: 22050, channels: 1, container: 'RF64' } },
];
const WAVS = FORMATS.map((format) => ({
  ...format,
  bytes: makeWav(format.spec),
  seconds: format.spec.durationSeconds ?? 1,
}));

interface User {
  user_id: string;
  access_token: string;
}
interface Uploaded {
  url: string;
  seconds: number;
  format: string;
}

const stats = new Map<string, { count: number; statuses: Map<number | string, number>; ms: number[] }>();
const unexpected: string[] = [];
const uploaded: Uploaded[] = [];
const users: User[] = [];

function note(operation: string, status: number | string, ms: number, allowed: (status: number) => boolean): void {
  let entry = stats.get(operation);
  if (entry === undefined) {
    entry = { count: 0, statuses: new Map(), ms: [] };
    stats.set(operation, entry);
  }
  entry.count += 1;
  entry.statuses.set(status, (entry.statuses.get(status) ?? 0) + 1);
  entry.ms.push(ms);
  if (typeof status === 'string' || !allowed(status)) {
    if (unexpected.length < 50) unexpected.push(`${operation}: ${status}`);
  }
}

async function timed(
  operation: string,
  allowed: (status: number) => boolean,
  call: () => Promise<Response>,
): Promise<Response | undefined> {
  const started = performance.now();
  try {
    const response = await call();
    const body = await response.arrayBuffer();
    note(operation, response.status, performance.now() - started, allowed);
    return new Response(response.status === 204 || response.status === 304 ? null : body, response);
  } catch (error) {
    note(operation, `error ${describeError(error)}`, performance.now() - started, () => false);
    return undefined;
  }
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${error.message}${cause}`;
}

async function createUser(base: string): Promise<void> {
  const name = `load_${process.pid}_${users.length}_${Math.random().toString(36).slice(2, 8)}`;
  const response = await timed(
    'create user',
    (s) => s === 200 || s === 503,
    () => fetch(`${base}${PREFIX}/users/?username=${name}`, { method: 'POST' }),
  );
  if (response?.status === 200) users.push((await response.json()) as User);
}

async function uploadOne(base: string): Promise<void> {
  const user = users[Math.floor(Math.random() * users.length)];
  if (user === undefined) return createUser(base);
  const wav = WAVS[Math.floor(Math.random() * WAVS.length)]!;
  const form = new FormData();
  form.append('file', new Blob([wav.bytes], { type: 'audio/wav' }), `${wav.name}.wav`);
  const response = await timed(
    'upload',
    (s) => s === 200 || s === 503,
    () =>
      fetch(`${base}${PREFIX}/record/?user_id=${user.user_id}`, {
        method: 'POST',
        body: form,
        headers: { authorization: `Bearer ${user.access_token}` },
      }),
  );
  if (response?.status === 200) {
    const { record_url: url } = (await response.json()) as { record_url: string };
    uploaded.push({ url, seconds: wav.seconds, format: wav.name });
  }
}

async function download(base: string): Promise<void> {
  const record = uploaded[Math.floor(Math.random() * uploaded.length)];
  if (record === undefined) return uploadOne(base);
  const url = record.url.replace(/^https?:\/\/[^/]+/, base);
  if (Math.random() < 0.5) {
    await timed(
      'download',
      (s) => s === 200 || s === 503,
      () => fetch(url),
    );
  } else {
    await timed(
      'download range',
      (s) => s === 206 || s === 503,
      () => fetch(url, { headers: { range: 'bytes=100-4999' } }),
    );
  }
}

async function badRequest(base: string): Promise<void> {
  const user = users[0];
  const cases: Array<() => Promise<Response>> = [
    () => fetch(`${base}${PREFIX}/users/?username=`, { method: 'POST' }),
    () => fetch(`${base}${PREFIX}/record?record_id=nope&user_id=nope`),
    () => fetch(`${base}${PREFIX}/record?record_id=${crypto.randomUUID()}&user_id=${crypto.randomUUID()}`),
    () =>
      fetch(`${base}${PREFIX}/record/?user_id=${user?.user_id ?? crypto.randomUUID()}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${crypto.randomUUID()}` },
        body: new Blob(['x']),
      }),
    () => {
      const form = new FormData();
      form.append('file', new Blob([Buffer.from('not a wav at all')]), 'x.wav');
      return fetch(`${base}${PREFIX}/record/?user_id=${user?.user_id ?? ''}`, {
        method: 'POST',
        body: form,
        headers: { authorization: `Bearer ${user?.access_token ?? ''}` },
      });
    },
  ];
  const pick = cases[Math.floor(Math.random() * cases.length)]!;
  // A bad upload still takes a conversion slot to be judged, so under overload it may get the 503.
  await timed('bad request', (s) => (s >= 400 && s < 500) || s === 503, pick);
}

async function client(base: string, until: number): Promise<void> {
  while (performance.now() < until) {
    const roll = Math.random();
    if (roll < 0.05 || users.length < 5) await createUser(base);
    else if (roll < 0.4) await uploadOne(base);
    else if (roll < 0.8) await download(base);
    else await badRequest(base);
  }
}

async function main(): Promise<void> {
  let server: ChildService | undefined;
  let dataDir: string | undefined;
  let base = process.env.LOADTEST_URL;
  if (base === undefined) {
    dataDir = mkdtempSync(join(tmpdir(), 'loadtest-'));
    server = await spawnService({
      dataDir,
      port: await freePort(),
      databaseUrl: process.env.LOADTEST_DATABASE_URL,
      env: {
        LOG_LEVEL: 'warn',
        CONVERT_CONCURRENCY: process.env.LOADTEST_CONVERT_CONCURRENCY ?? '4',
        CONVERT_QUEUE_SIZE: process.env.LOADTEST_QUEUE_SIZE ?? '64',
        // One address drives all the traffic, including deliberate bad tokens: per-client limits off.
        RATE_LIMIT_AUTH_FAILURES: '0',
        RATE_LIMIT_USER_CREATIONS: '0',
      },
    });
    base = server.url;
  }
  const rss: number[] = [];
  const sampler =
    server === undefined
      ? undefined
      : setInterval(() => {
          void rssBytes(server.pid).then((bytes) => rss.push(bytes));
        }, 1000);
  const rssAtStart = server === undefined ? 0 : await rssBytes(server.pid);

  console.log(`loadtest: ${CLIENTS} clients for ${SECONDS} s against ${base}`);
  const started = performance.now();
  const until = started + SECONDS * 1000;
  await Promise.all(Array.from({ length: CLIENTS }, () => client(base, until)));
  const elapsed = (performance.now() - started) / 1000;
  if (sampler !== undefined) clearInterval(sampler);

  // Afterwards: every acknowledged upload still there, with the right length.
  let verified = 0;
  let decoded = 0;
  const lost: string[] = [];
  for (const [index, record] of uploaded.entries()) {
    const url = record.url.replace(/^https?:\/\/[^/]+/, base);
    const metadata = await fetch(url, { headers: { accept: 'application/json' } });
    if (metadata.status !== 200) {
      lost.push(`${record.url}: metadata ${metadata.status}`);
      continue;
    }
    const { duration_seconds: seconds, size_bytes: size } = (await metadata.json()) as {
      duration_seconds: number;
      size_bytes: number;
    };
    const mp3 = Buffer.from(await (await fetch(url)).arrayBuffer());
    if (Math.abs(seconds - record.seconds) > 0.01 || mp3.length !== size) {
      lost.push(`${record.url}: ${seconds}s/${mp3.length}B, expected ${record.seconds}s/${size}B`);
      continue;
    }
    // Decoding every file would take long; every 25th is decoded in full.
    if (index % 25 === 0) {
      const length = decodeMp3(mp3).seconds;
      decoded += 1;
      if (Math.abs(length - record.seconds) > 0.06)
        lost.push(`${record.url}: decodes to ${length}s (${record.format})`);
    }
    verified += 1;
  }

  const total = [...stats.values()].reduce((sum, entry) => sum + entry.count, 0);
  console.log(`\n${total} requests in ${elapsed.toFixed(1)} s (${(total / elapsed).toFixed(0)}/s)`);
  console.log('operation        count   p50 ms   p99 ms   max ms   statuses');
  for (const [operation, entry] of stats) {
    const statuses = [...entry.statuses].map(([status, count]) => `${status}×${count}`).join(' ');
    console.log(
      `${operation.padEnd(16)} ${String(entry.count).padStart(5)} ${percentile(entry.ms, 50).toFixed(0).padStart(8)} ` +
        `${percentile(entry.ms, 99).toFixed(0).padStart(8)} ${Math.max(...entry.ms)
          .toFixed(0)
          .padStart(8)}   ${statuses}`,
    );
  }
  console.log(`acknowledged uploads: ${uploaded.length}; verified afterwards: ${verified} (${decoded} fully decoded)`);
  console.log(`lost or wrong: ${lost.length}`);
  for (const line of lost.slice(0, 20)) console.log(`  ${line}`);
  console.log(`unexpected answers: ${unexpected.length}`);
  for (const line of unexpected.slice(0, 20)) console.log(`  ${line}`);
  if (server !== undefined) {
    const mib = (bytes: number) => (bytes / 1024 ** 2).toFixed(0);
    console.log(
      `server RSS: start ${mib(rssAtStart)} MiB, max ${mib(Math.max(...rss))} MiB, end ${mib(rss.at(-1) ?? 0)} MiB; ` +
        `ffmpeg still running: ${(await ffmpegDescendants(server.pid)).length}`,
    );
    process.kill(server.pid, 'SIGTERM');
    const exit = await server.exited;
    console.log(`server exit after SIGTERM: ${JSON.stringify(exit)}`);
  }
  if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
  process.exitCode = lost.length > 0 || unexpected.length > 0 ? 1 : 0;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 2;
});
