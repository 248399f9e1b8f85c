/**
 * `npm run bench`: the measurements of issues 3 and 10 and of object storage (rows 24–26: the S3 driver
 * against s3rver, which the bench starts), each beside its baseline, on this machine.
 *
 *   npm run bench                  full sizes, 3 alternating runs, writes docs/benchmarks.md
 *   npm run bench -- --runs 5      more runs per median
 *   npm run bench -- --only 1,4    a subset (the file is still written, with only those rows)
 *   npm run bench -- --only 24,25,26 --out bench/.work/s3-rows.md   the object-storage rows alone
 *   npm run bench:smoke            tiny sizes, 1 run, writes bench/.work/benchmarks-smoke.md (CI)
 *
 * Other flags: --out <file>, --skip-build, --no-profile, --no-presets, --note "<text>".
 * The service runs as `npm start` runs it (`node <its flags> dist/main.js`) on PostgreSQL when DATABASE_URL is set, else on PGlite.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, release, totalmem, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createReadStream, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import autocannon from 'autocannon';
import type { EncodingConfig } from '../src/config.js';
import { recordKey } from '../src/storage/keys.js';
import {
  BYTES_PER_SECOND,
  bareFfmpegArguments,
  bareMediaArguments,
  generateBigFlac,
  generateMedia,
  generateWav,
  runBare,
  runPool,
  serviceFfmpegArguments,
  SPOOLED_MP4,
  STREAMED_KINDS,
  syntheticWav,
  WAV_HEADER_BYTES,
  wavBytesFor,
  type MediaFile,
  type MediaRecipe,
  type ServiceSettings,
} from './lib/audio.js';
import {
  closeKeepAlive,
  createUser,
  downloadLoad,
  PREFIX,
  simpleRequest,
  startLatencySampler,
  summarizeLatencies,
  uploadAudio,
  type DownloadLoad,
  type UploadResult,
  type User,
} from './lib/http.js';
import {
  buildService,
  memoryOf,
  REPO_ROOT,
  resetPeak,
  serviceConfig,
  startMemorySampler,
  startService,
  type Service,
} from './lib/service.js';
import { cpuSplitCells, launcherOf, startCpuSplit, type CpuSplit } from './lib/cpu.js';
import { runRelayed } from './lib/relay.js';
import { runWrk, startStaticNginx } from './lib/wrk.js';
import { sendRequest } from '../test/kit/http.js';
import { startS3rver, type RunningS3rver } from '../test/kit/s3rver.js';
import { max, median, now, sleep } from '../test/kit/stats.js';

// ---------------------------------------------------------------------------------------------------------
// Settings

const { values: flags } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    runs: { type: 'string' },
    out: { type: 'string' },
    only: { type: 'string' },
    'skip-build': { type: 'boolean', default: false },
    'no-profile': { type: 'boolean', default: false },
    'no-presets': { type: 'boolean', default: false },
    note: { type: 'string' },
  },
});

const smoke = flags.smoke === true;
const sizes = smoke
  ? { longSeconds: 4, shortSeconds: 1, bigBytes: 8 * 1024 ** 2, bigFlacBytes: 2 * 1024 ** 2, loadSeconds: 1, runs: 1 }
  : { longSeconds: 600, shortSeconds: 60, bigBytes: 1024 ** 3, bigFlacBytes: 1024 ** 3, loadSeconds: 10, runs: 3 };
const runs = flags.runs === undefined ? sizes.runs : Math.max(1, Number.parseInt(flags.runs, 10));
const only = flags.only === undefined ? undefined : new Set(flags.only.split(',').map((n) => Number(n.trim())));
const selected = (id: number) => only === undefined || only.has(id);
const profile = !smoke && !flags['no-profile'];
const presets = !flags['no-presets'];

const WORK = join(REPO_ROOT, 'bench', '.work');
const outPath = flags.out ?? (smoke ? join(WORK, 'benchmarks-smoke.md') : join(REPO_ROOT, 'docs', 'benchmarks.md'));
const FFMPEG = process.env.FFMPEG_PATH ?? 'ffmpeg';
const THROTTLE_BYTES_PER_SECOND = 10_000_000; // measurements 2 and 15–21: 10 MB/s
// Issue 10's rows: each streamed kind at full speed (9–14) and at 10 MB/s (15–20), in STREAMED_KINDS' order;
// the spooled MP4 at 10 MB/s (21); the cost of peaks (22); memory during a 1 GiB FLAC upload (23).
const KIND_FULL_SPEED_ROW = 9;
const KIND_THROTTLED_ROW = KIND_FULL_SPEED_ROW + STREAMED_KINDS.length;
const SPOOLED_ROW = KIND_THROTTLED_ROW + STREAMED_KINDS.length;
const PEAKS_ROW = SPOOLED_ROW + 1;
// A difference of a few percent: more runs than the others (they are cheap, ~10 s a pair at full size).
const peaksRuns = smoke ? runs : Math.max(runs, 5);
const BIG_FLAC_ROW = PEAKS_ROW + 1;
// Object storage: the long WAV uploaded with STORAGE_DRIVER=s3 (24), sent at 10 MB/s with a multipart put
// (25), and its MP3 downloaded through the service's proxy (26), each beside the local driver.
const S3_UPLOAD_ROW = BIG_FLAC_ROW + 1;
const S3_LAG_ROW = S3_UPLOAD_ROW + 1;
const S3_DOWNLOAD_ROW = S3_LAG_ROW + 1;
const S3_ROWS = [S3_UPLOAD_ROW, S3_LAG_ROW, S3_DOWNLOAD_ROW];
// The web app's weight: everything the page can load, as the service sends it compressed (27).
const WEB_ROW = S3_DOWNLOAD_ROW + 1;
// Cores busy and the CPU split of row 4's runs (28), measured with 4.
const CPU_SPLIT_ROW = WEB_ROW + 1;
const WEB_BUDGET_BYTES = 120 * 1024;
// Both databases side by side (29): the service's resident memory idle and under row 4's load, and row 5's
// latency, on the embedded PGlite and (when DATABASE_URL is set) on PostgreSQL, whichever the run uses.
const DATABASES_ROW = WEB_ROW + 2;
const EMBEDDED_IDLE_GOAL_KIB = 160 * 1024;
const EMBEDDED_LOADED_GOAL_KIB = 200 * 1024;
// Row 25's service: every object as a multipart upload (0 is the setting's minimum). The service's parts are
// max(8 MiB, size / 10,000) (src/storage/s3-blob-store.ts), 4 in flight: the 10-minute MP3 is 2 parts.
const MULTIPART_THRESHOLD_BYTES = 0;
const PART_BYTES = 8 * 1024 ** 2;
const PARTS_IN_FLIGHT = 4;
const KIND_ROWS = Array.from({ length: SPOOLED_ROW - KIND_FULL_SPEED_ROW + 1 }, (_, i) => KIND_FULL_SPEED_ROW + i);
const CONCURRENT_UPLOADS = 8; // measurement 4
const OVERLOAD_UPLOADS = 50; // measurement 8
// Measurement 8 is about the service's capacity (slots and queue), not the per-client caps (429), which
// one client sending 50 uploads would reach first: those are lifted for it.
const OVERLOAD_ENV = {
  CONVERT_CONCURRENCY: '2',
  CONVERT_QUEUE_SIZE: '4',
  MAX_UPLOADS_PER_USER: '1000',
  MAX_UPLOADS_PER_ADDRESS: '1000',
};
const SAMPLER_INTERVAL_MS = 25; // measurement 5: 40 POST /users per second
const BASE_ENV = {
  // Far above the 1 GiB of measurement 3, so only the duration and the disk can stop an upload.
  MAX_UPLOAD_BYTES: String(4 * 1024 ** 3),
  // One client creating thousands of users is the point of 5 and 6; the per-client limits would answer 429.
  RATE_LIMIT_USER_CREATIONS: '0',
  RATE_LIMIT_AUTH_FAILURES: '0',
};

const tag = Date.now().toString(36);

// ---------------------------------------------------------------------------------------------------------
// Results

interface Row {
  readonly id: number;
  readonly measurement: string;
  readonly service: string;
  readonly baseline: string;
  readonly result: string;
  readonly target: string;
  /** undefined: recorded only, no pass/fail target. */
  readonly met: boolean | undefined;
}

const rows: Row[] = [];
const details: string[] = [];
const warnings: string[] = [];

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const ms = (value: number) => `${value.toFixed(1)} ms`;
const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;
const list = (values: readonly number[], format: (v: number) => string) => values.map(format).join(', ');

const startedAt = performance.now();

function log(message: string): void {
  process.stdout.write(`[bench ${((performance.now() - startedAt) / 1000).toFixed(1).padStart(6)} s] ${message}\n`);
}

/** "10-min" or "60 s", for labels. */
const duration = (seconds: number) => (seconds >= 120 ? `${seconds / 60}-min` : `${seconds} s`);

function record(row: Row): void {
  rows.push(row);
  const verdict = row.met === undefined ? '' : row.met ? ' ✔' : ' ✘';
  log(`#${row.id} ${row.measurement}: ${row.result}${verdict}`);
}

// ---------------------------------------------------------------------------------------------------------
// Helpers

const fileAudio = (path: string, bytes: number) => ({
  bytes,
  open: () => createReadStream(path, { highWaterMark: 256 * 1024 }),
});

const fileWav = (path: string, seconds: number) => fileAudio(path, wavBytesFor(seconds));

function expectOk(result: UploadResult, what: string): UploadResult {
  if (result.status !== 200 || result.error !== undefined) {
    throw new Error(`${what}: status ${result.status} ${result.error ?? ''} ${result.body}`);
  }
  return result;
}

/** Runs every step `count` times, each run starting one step further along, so that drift hits all alike. */
async function rotate(steps: ReadonlyArray<(run: number) => Promise<void>>, count = runs): Promise<void> {
  for (let run = 0; run < count; run++) {
    for (let index = 0; index < steps.length; index++) await steps[(run + index) % steps.length]?.(run);
  }
}

async function withService<T>(
  name: string,
  env: Record<string, string>,
  body: (service: Service) => Promise<T>,
  nodeArgs?: string[],
): Promise<T> {
  const dataDir = await mkdtemp(join(tmpdir(), `audio-bench-${name}-`));
  const service = await startService({
    dataDir,
    logPath: join(WORK, `service-${name}.log`),
    env: { ...BASE_ENV, ...env },
    ...(nodeArgs === undefined ? {} : { nodeArgs }),
  });
  try {
    return await body(service);
  } finally {
    await service.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

function machine(): Record<string, string> {
  const cpuinfo = execFileSync('cat', ['/proc/cpuinfo']).toString();
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? 'unknown';
  const ffmpegVersion = execFileSync(FFMPEG, ['-hide_banner', '-version']).toString().split('\n')[0] ?? '';
  let lame = '';
  try {
    lame = execFileSync('sh', ['-c', `ldd "$(command -v ${FFMPEG})" | grep -o 'libmp3lame[^ ]*' | head -1`])
      .toString()
      .trim();
  } catch {
    // Only informative.
  }
  return {
    CPU: model,
    cores: `${availableParallelism()} available (${cpus().length} online)`,
    memory: `${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    kernel: `Linux ${release()}`,
    Node: process.version,
    ffmpeg: `${ffmpegVersion}${lame === '' ? '' : ` (${lame})`}`,
    // What the service will really use: the same environment and validation as it gets (an empty
    // DATABASE_URL is not passed on, so it means PGlite too).
    database: serviceConfig(BASE_ENV).databaseUrl === undefined ? 'PGlite (embedded)' : 'PostgreSQL (DATABASE_URL)',
    date: new Date().toISOString(),
  };
}

/**
 * The machine's 1-minute load average every 10 s while the benchmark runs: this machine is shared, and the
 * benchmark's own client, server and encoders account for about 2 of it.
 */
function startLoadSampler() {
  const samples: number[] = [];
  const sample = () => {
    // Read, not run: a child process here would count in row 22's CPU time.
    const value = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
    if (Number.isFinite(value)) samples.push(value);
  };
  sample();
  const timer = setInterval(sample, 10_000);
  timer.unref();
  return {
    stop(): string {
      clearInterval(timer);
      sample();
      return (
        `1-min load average during the run (the benchmark itself included): median ${median(samples).toFixed(2)}, ` +
        `max ${max(samples).toFixed(2)} (${samples.length} samples, every 10 s)`
      );
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Measurements

let recordPathForDownload: string | undefined;

/** 1 and 2: one long upload at full speed and throttled, against bare ffmpeg on the same file. */
async function uploadsVersusBareFfmpeg(service: Service, user: User, longWav: string): Promise<void> {
  const serviceTimes: number[] = [];
  const bareTimes: number[] = [];
  const lags: number[] = [];
  const throttledTotals: number[] = [];
  const wav = fileWav(longWav, sizes.longSeconds);
  await rotate([
    async () => {
      if (selected(1) || selected(7)) {
        const result = expectOk(await uploadAudio({ baseUrl: service.url, user, audio: wav }), 'upload (1)');
        serviceTimes.push(result.endedAt - result.startedAt);
        const url = new URL((JSON.parse(result.body) as { record_url: string }).record_url);
        recordPathForDownload = `${url.pathname}${url.search}`;
      }
      if (selected(2)) {
        const result = expectOk(
          await uploadAudio({ baseUrl: service.url, user, audio: wav, bytesPerSecond: THROTTLE_BYTES_PER_SECOND }),
          'throttled upload (2)',
        );
        if (result.lastByteAt === undefined) throw new Error('throttled upload: the body was not sent in full');
        lags.push(result.endedAt - result.lastByteAt);
        throttledTotals.push(result.endedAt - result.startedAt);
      }
    },
    async () => {
      bareTimes.push(
        (await runBare(FFMPEG, bareFfmpegArguments(service.config, longWav, join(WORK, 'bare-long.mp3')))).wallMs,
      );
    },
  ]);
  const bare = median(bareTimes);
  const mb = (wav.bytes / 1e6).toFixed(0);
  if (selected(1)) {
    const ratio = median(serviceTimes) / bare;
    record({
      id: 1,
      measurement: `one upload, ${duration(sizes.longSeconds)} 44.1 kHz stereo WAV (${mb} MB), loopback, full speed`,
      service: s(median(serviceTimes)),
      baseline: `${s(bare)} bare ffmpeg`,
      result: `×${ratio.toFixed(3)}`,
      target: '≤ 1.05',
      met: ratio <= 1.05,
    });
    details.push(
      `- **1** service (request start → response): ${list(serviceTimes, s)}; bare ffmpeg: ${list(bareTimes, s)}.`,
    );
  }
  if (selected(2)) {
    const lag = median(lags);
    record({
      id: 2,
      measurement: `the same upload sent at ${THROTTLE_BYTES_PER_SECOND / 1e6} MB/s: last byte sent → response`,
      service: s(lag),
      baseline: `${s(bare)} store-then-convert (bare ffmpeg after the upload)`,
      result: `${s(lag)} (whole request ${s(median(throttledTotals))})`,
      target: '≤ 1 s',
      met: lag <= 1000,
    });
    details.push(
      `- **2** last byte → response: ${list(lags, s)}; whole throttled request: ${list(throttledTotals, s)} ` +
        `(sending alone takes ${s((wav.bytes / THROTTLE_BYTES_PER_SECOND) * 1000)}).`,
    );
  }
}

/** 4 and 5: eight concurrent short uploads against bare ffmpeg N at a time; POST /users latency meanwhile. */
async function concurrentUploads(service: Service, user: User, shortWav: string): Promise<void> {
  const concurrency = service.config.convertConcurrency;
  const idle = startLatencySampler(service.url, `${tag}i`, SAMPLER_INTERVAL_MS);
  await sleep(smoke ? 500 : 3000);
  const idleLatency = summarizeLatencies((await idle.stop()).latencies);

  const serviceTimes: number[] = [];
  const sampledTimes: number[] = [];
  const bareTimes: number[] = [];
  const latencies: number[] = [];
  const serviceSplits: CpuSplit[] = [];
  const bareSplits: CpuSplit[] = [];
  const relaySplits: CpuSplit[] = [];
  let samplerFailures = 0;
  const wav = fileWav(shortWav, sizes.shortSeconds);
  const uploadAll = async () => {
    const results = await Promise.all(
      Array.from({ length: CONCURRENT_UPLOADS }, () => uploadAudio({ baseUrl: service.url, user, audio: wav })),
    );
    results.forEach((result) => expectOk(result, 'concurrent upload (4)'));
    return max(results.map((r) => r.endedAt)) - Math.min(...results.map((r) => r.startedAt));
  };
  // The uploads alone give 4 and 28, so that the server's CPU is the uploads' own; the same uploads with
  // the latency sampler beside them give 5 (its requests would otherwise count as the uploads' CPU).
  await rotate([
    async () => {
      const cpu = await startCpuSplit(service.pid, service.config.databaseUrl);
      serviceTimes.push(await uploadAll());
      serviceSplits.push(await cpu.stop());
    },
    async () => {
      const sampler = startLatencySampler(service.url, `${tag}l`, SAMPLER_INTERVAL_MS);
      // The sampler's worker would keep the run alive after a failed upload: it is stopped either way.
      sampledTimes.push(await uploadAll().finally(() => sampler.stop()));
      const sampled = await sampler.stop();
      latencies.push(...sampled.latencies);
      samplerFailures += sampled.failures;
    },
    async () => {
      const jobs = Array.from(
        { length: CONCURRENT_UPLOADS },
        (_, index) => () =>
          runBare(FFMPEG, bareFfmpegArguments(service.config, shortWav, join(WORK, `bare-${index}.mp3`))),
      );
      const cpu = await startCpuSplit(undefined, undefined);
      bareTimes.push(await runPool(jobs, concurrency));
      bareSplits.push(await cpu.stop());
    },
    // 28's floor: socat relaying the same samples over loopback TCP into the service's own command line.
    async () => {
      let relaySeconds = 0;
      const jobs = Array.from({ length: CONCURRENT_UPLOADS }, (_, index) => async () => {
        const args = serviceFfmpegArguments(service.config, join(WORK, `relayed-${index}.mp3`));
        relaySeconds += (await runRelayed(FFMPEG, args, shortWav, WAV_HEADER_BYTES)).relaySeconds;
      });
      const cpu = await startCpuSplit(undefined, undefined);
      await runPool(jobs, concurrency);
      const split = await cpu.stop();
      // This process's reaped children are socat (under its shell) and ffmpeg: the encoders are the rest.
      relaySplits.push({ ...split, serverSeconds: relaySeconds, encoderSeconds: split.encoderSeconds - relaySeconds });
    },
  ]);
  if (selected(4)) {
    const ratio = median(serviceTimes) / median(bareTimes);
    record({
      id: 4,
      measurement: `${CONCURRENT_UPLOADS} concurrent uploads of a ${sizes.shortSeconds} s WAV, total wall time (CONVERT_CONCURRENCY=${concurrency})`,
      service: s(median(serviceTimes)),
      baseline: `${s(median(bareTimes))} bare ffmpeg, ${concurrency} at a time`,
      result: `×${ratio.toFixed(3)}`,
      target: '≤ 1.10',
      met: ratio <= 1.1,
    });
    details.push(
      `- **4** service: ${list(serviceTimes, s)}; bare ffmpeg: ${list(bareTimes, s)}; ` +
        `with 5's sampler beside the uploads: ${list(sampledTimes, s)}.`,
    );
  }
  if (selected(CPU_SPLIT_ROW)) {
    const { detail, ...cells } = cpuSplitCells(serviceSplits, bareSplits, relaySplits);
    record({
      id: CPU_SPLIT_ROW,
      measurement: 'during 4: cores busy (/proc/stat) and CPU-seconds by process (/proc/PID/stat)',
      ...cells,
    });
    details.push(`- **${CPU_SPLIT_ROW}** ${detail}`);
  }
  if (selected(5)) {
    const loaded = summarizeLatencies(latencies);
    record({
      id: 5,
      measurement: `POST /users latency while 4 runs (one request every ${SAMPLER_INTERVAL_MS} ms)`,
      service: `p99 ${ms(loaded.p99)}, p50 ${ms(loaded.p50)} (n=${loaded.count})`,
      baseline: `idle: p99 ${ms(idleLatency.p99)}, p50 ${ms(idleLatency.p50)} (n=${idleLatency.count})`,
      result: `p99 ${ms(loaded.p99)}${samplerFailures > 0 ? `, ${samplerFailures} failed` : ''}`,
      target: '≤ 50 ms',
      met: loaded.p99 <= 50 && samplerFailures === 0,
    });
    details.push(
      `- **5** latencies are client-side (request start → last response byte, kept-alive connections), ` +
        `max ${ms(max(latencies))}.`,
    );
  }
}

interface CannonSummary {
  requestsPerSecond: number;
  p50: number;
  p99: number;
  mbPerSecond: number;
  statuses: string;
  errors: number;
}

async function cannon(options: autocannon.Options): Promise<CannonSummary> {
  const result = await autocannon(options);
  const statuses = Object.entries(result.statusCodeStats ?? {})
    .map(([code, stat]) => `${code}×${stat.count ?? 0}`)
    .join(' ');
  return {
    requestsPerSecond: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    mbPerSecond: result.throughput.average / 1e6,
    statuses,
    errors: result.errors + result.timeouts,
  };
}

/** 6: POST /users under autocannon, with GET /health (no database, no crypto) as the reference. */
async function createUsersUnderLoad(service: Service): Promise<void> {
  let counter = 0;
  const users = await cannon({
    url: service.url,
    connections: 32,
    duration: sizes.loadSeconds,
    requests: [
      {
        method: 'POST',
        setupRequest: (request) => ({ ...request, path: `${PREFIX}/users/?username=ac_${tag}_${counter++}` }),
      },
    ],
  });
  const health = await cannon({ url: `${service.url}/health`, connections: 32, duration: sizes.loadSeconds });
  const ok = users.statuses.split(' ').every((entry) => entry.startsWith('200×')) && users.errors === 0;
  record({
    id: 6,
    measurement: `POST /users, 32 connections, ${sizes.loadSeconds} s (autocannon)`,
    service: `${users.requestsPerSecond.toFixed(0)} req/s, p99 ${users.p99} ms`,
    baseline: `GET /health: ${health.requestsPerSecond.toFixed(0)} req/s, p99 ${health.p99} ms`,
    result: `${users.requestsPerSecond.toFixed(0)} req/s, p50 ${users.p50} ms, p99 ${users.p99} ms (${users.statuses}${users.errors > 0 ? `, ${users.errors} errors` : ''})`,
    target: 'record it',
    met: ok ? undefined : false,
  });
}

const DOWNLOAD_CONNECTIONS = 16; // measurements 7 and 26
const RANGE_BYTES = 256 * 1024;

/** Request headers for a player seeking: one 256 KiB range at a random place of a `size`-byte file. */
const randomRange = (size: number) => (): Record<string, string> => {
  const start = Math.floor(Math.random() * Math.max(1, size - RANGE_BYTES));
  return { range: `bytes=${start}-${start + RANGE_BYTES - 1}` };
};

/** `body`'s result, with the peak RSS growth of process `pid` while it ran (KiB). */
async function withMemory<T>(pid: number, body: () => Promise<T>): Promise<{ summary: T; growthKiB: number }> {
  const idle = await memoryOf(pid);
  const wasReset = await resetPeak(pid);
  const memory = startMemorySampler(pid, wasReset);
  const summary = await body();
  const peak = await memory.stop();
  return { summary, growthKiB: peak.peakKiB - idle.rssKiB };
}

/**
 * 7: GET of the MP3 stored by 1, whole and by Range, with wrk (a C client, so that the client is not the
 * limit), against nginx serving the same file with sendfile in the same run; the server's RSS growth meanwhile.
 */
async function downloadsUnderLoad(service: Service): Promise<void> {
  if (recordPathForDownload === undefined) throw new Error('7 needs the MP3 of 1');
  const url = `${service.url}${recordPathForDownload}`;
  const recordId = new URL(url).searchParams.get('record_id') ?? '';
  const file = join(service.config.dataDir, 'records', recordKey(recordId, 'mp3'));
  const size = (await stat(file)).size;
  const range = { sizeBytes: size, rangeBytes: RANGE_BYTES };
  await expectDownloadAnswers(url, size);
  const nginx = await startStaticNginx(file);
  try {
    const load = (target: string, ranged: boolean) =>
      runWrk({
        url: target,
        connections: DOWNLOAD_CONNECTIONS,
        seconds: sizes.loadSeconds,
        ...(ranged ? { range } : {}),
      });
    const whole = await withMemory(service.pid, () => load(url, false));
    const nginxWhole = await load(nginx.fileUrl, false);
    const ranged = await withMemory(service.pid, () => load(url, true));
    const nginxRanged = await load(nginx.fileUrl, true);
    const wholeRatio = whole.summary.mbPerSecond / nginxWhole.mbPerSecond;
    const rangeRatio = ranged.summary.requestsPerSecond / nginxRanged.requestsPerSecond;
    const failures = [whole.summary, ranged.summary, nginxWhole, nginxRanged].reduce(
      (sum, run) => sum + run.errors + run.badStatuses,
      0,
    );
    record({
      id: 7,
      measurement: `GET of a ${(size / 1e6).toFixed(1)} MB MP3, ${DOWNLOAD_CONNECTIONS} connections, ${sizes.loadSeconds} s (wrk); then 256 KiB Range requests at random places`,
      service: `${whole.summary.mbPerSecond.toFixed(0)} MB/s (${whole.summary.requestsPerSecond.toFixed(1)} req/s); ranges: ${ranged.summary.mbPerSecond.toFixed(0)} MB/s (${ranged.summary.requestsPerSecond.toFixed(0)} req/s)`,
      baseline: `nginx, same file, sendfile, 1 worker: ${nginxWhole.mbPerSecond.toFixed(0)} MB/s (${nginxWhole.requestsPerSecond.toFixed(1)} req/s); ranges: ${nginxRanged.mbPerSecond.toFixed(0)} MB/s (${nginxRanged.requestsPerSecond.toFixed(0)} req/s)`,
      result: `whole ×${wholeRatio.toFixed(2)} of nginx; ranges ${ranged.summary.requestsPerSecond.toFixed(0)} req/s (×${rangeRatio.toFixed(2)}); server RSS growth ${mib(whole.growthKiB)} whole, ${mib(ranged.growthKiB)} ranges; ${failures} errors`,
      target: '≥ 0.60 of nginx whole; ≥ 4,000 req/s ranges; no whole file in memory',
      // 16 connections holding whole files would add 16 × the file size.
      met:
        failures === 0 &&
        wholeRatio >= 0.6 &&
        ranged.summary.requestsPerSecond >= 4000 &&
        Math.max(whole.growthKiB, ranged.growthKiB) * 1024 < Math.max(16 * size, 32 * 1024 ** 2),
    });
    details.push(
      `- **7** p50/p99 latency (wrk): whole ${whole.summary.p50Ms.toFixed(1)}/${whole.summary.p99Ms.toFixed(1)} ms ` +
        `(nginx ${nginxWhole.p50Ms.toFixed(1)}/${nginxWhole.p99Ms.toFixed(1)} ms), ranges ` +
        `${ranged.summary.p50Ms.toFixed(1)}/${ranged.summary.p99Ms.toFixed(1)} ms ` +
        `(nginx ${nginxRanged.p50Ms.toFixed(1)}/${nginxRanged.p99Ms.toFixed(1)} ms). wrk, the service and nginx ` +
        `share this machine's cores. RSS growth is the server's peak VmRSS during the load minus its RSS just before.`,
    );
  } finally {
    await nginx.stop();
  }
}

/** wrk counts only statuses outside 2xx/3xx: the answers it will get are checked once beforehand. */
async function expectDownloadAnswers(url: string, size: number): Promise<void> {
  const whole = await sendRequest(url);
  const ranged = await sendRequest(url, { headers: { range: `bytes=0-${RANGE_BYTES - 1}` } });
  const expectedRange = `bytes 0-${Math.min(RANGE_BYTES, size) - 1}/${size}`;
  if (whole.status !== 200 || whole.body.length !== size || ranged.status !== 206) {
    throw new Error(`7: expected 200 and 206, got ${whole.status} (${whole.body.length} bytes) and ${ranged.status}`);
  }
  if (ranged.headers['content-range'] !== expectedRange) {
    throw new Error(`7: Content-Range ${ranged.headers['content-range']}, expected ${expectedRange}`);
  }
}

/** 3: RSS growth of the server process while a big WAV, made on the fly, is uploaded and converted. */
async function bigUpload(service: Service, user: User, shortWav: string): Promise<void> {
  // Warm up: the first upload loads code and grows the heap to its working size.
  expectOk(await uploadAudio({ baseUrl: service.url, user, audio: fileWav(shortWav, sizes.shortSeconds) }), 'warm-up');
  await sleep(1000);
  const idle = await memoryOf(service.pid);
  const wasReset = await resetPeak(service.pid);
  if (!wasReset) warnings.push('VmHWM could not be reset: measurement 3 relies on 50 ms RSS samples only.');
  const memory = startMemorySampler(service.pid, wasReset);
  const result = await uploadAudio({
    baseUrl: service.url,
    user,
    audio: { bytes: sizes.bigBytes, open: () => syntheticWav(sizes.bigBytes) },
  });
  const peak = await memory.stop();
  expectOk(result, 'big upload (3)');
  const growth = peak.peakKiB - idle.rssKiB;
  const minutes = (sizes.bigBytes - 44) / BYTES_PER_SECOND / 60;
  record({
    id: 3,
    measurement: `server RSS growth (children excluded) during a ${mib(sizes.bigBytes / 1024)} WAV upload (${minutes.toFixed(0)} min of audio)`,
    service: `${mib(growth)} over ${mib(idle.rssKiB)} idle`,
    baseline: `${mib(sizes.bigBytes / 1024)} held by store-then-convert in memory`,
    result: `+${mib(growth)} (peak ${mib(peak.peakKiB)}, ${peak.samples} samples, upload took ${s(result.endedAt - result.startedAt)})`,
    target: '≤ 64 MiB',
    met: growth <= 64 * 1024,
  });
}

/** 8: many uploads at once against 2 slots and a queue of 4. */
async function overload(service: Service, user: User, shortWav: string): Promise<void> {
  const wav = fileWav(shortWav, sizes.shortSeconds);
  // A service that has been running: the database pool's connections are open (a cold pool adds ~100 ms
  // of connection set-up to the first requests, which is not what this row measures).
  await Promise.all(Array.from({ length: 16 }, () => createUser(service.url, `${tag}w`)));
  // Each client sends at a rate that takes ≥ 1 s for the whole body, as over a real network, so that
  // "answered before the body was read" shows as a small fraction sent, whatever the kernel buffers.
  const rate = Math.min(THROTTLE_BYTES_PER_SECOND, wav.bytes);
  const results = await Promise.all(
    Array.from({ length: OVERLOAD_UPLOADS }, () =>
      uploadAudio({ baseUrl: service.url, user, audio: wav, bytesPerSecond: rate }),
    ),
  );
  const ok = results.filter((r) => r.status === 200 && r.error === undefined);
  const refused = results.filter((r) => r.status === 503 && r.error === undefined);
  const other = results.filter((r) => !ok.includes(r) && !refused.includes(r));
  const withRetryAfter = refused.filter((r) => /^\d+$/.test(String(r.headers['retry-after'] ?? '')));
  const fractions = refused.map((r) => r.sentAtResponse / r.totalBytes);
  const early = fractions.filter((fraction) => fraction < 0.1);
  const retryAfters = withRetryAfter.map((r) => Number(r.headers['retry-after']));
  const refusedTimes = refused.map((r) => r.responseAt - r.startedAt);
  const capacity = Number(OVERLOAD_ENV.CONVERT_CONCURRENCY) + Number(OVERLOAD_ENV.CONVERT_QUEUE_SIZE);
  record({
    id: 8,
    measurement: `${OVERLOAD_UPLOADS} uploads at once (${sizes.shortSeconds} s WAV) with CONVERT_CONCURRENCY=${OVERLOAD_ENV.CONVERT_CONCURRENCY}, CONVERT_QUEUE_SIZE=${OVERLOAD_ENV.CONVERT_QUEUE_SIZE}`,
    service: `200×${ok.length}, 503×${refused.length}, other×${other.length}`,
    baseline: `capacity ${capacity} (2 converting + 4 queued)`,
    result:
      `Retry-After on ${withRetryAfter.length}/${refused.length} (${retryAfters.length > 0 ? `${Math.min(...retryAfters)}–${max(retryAfters)} s` : '–'}); ` +
      `503 with < 10 % of the body sent: ${early.length}/${refused.length} (max ${(max(fractions) * 100).toFixed(1)} %, ` +
      `p50 ${ms(median(refusedTimes))} after request start)`,
    target: '503 + Retry-After before the body is read; nothing else fails',
    met:
      other.length === 0 &&
      ok.length >= capacity &&
      withRetryAfter.length === refused.length &&
      early.length === refused.length,
  });
  if (other.length > 0) {
    details.push(
      `- **8** other outcomes: ${other.map((r) => `${r.status} ${r.error ?? ''} ${r.body.slice(0, 120)}`).join('; ')}`,
    );
  }
}

/** A compressed file of the benchmark's, as the service sees it, with the recipe it was made by. */
interface Media {
  readonly recipe: MediaRecipe;
  readonly file: MediaFile;
}

const mbOf = (bytes: number) =>
  bytes < 1e6 ? `${(bytes / 1e3).toFixed(0)} kB` : `${(bytes / 1e6).toFixed(bytes < 1e7 ? 1 : 0)} MB`;

/**
 * 9–14 and 15–20: one streamed kind's long file uploaded at full speed and at 10 MB/s, against bare ffmpeg
 * with the service's arguments reading the same file from disk.
 */
async function streamedKindVersusBareFfmpeg(service: Service, user: User, index: number, media: Media): Promise<void> {
  const fullId = KIND_FULL_SPEED_ROW + index;
  const lagId = KIND_THROTTLED_ROW + index;
  const { recipe, file } = media;
  const audio = fileAudio(file.path, file.bytes);
  const filename = `bench.${recipe.extension}`;
  const serviceTimes: number[] = [];
  const bareTimes: number[] = [];
  const lags: number[] = [];
  const throttledTotals: number[] = [];
  await rotate([
    async () => {
      if (selected(fullId)) {
        const result = expectOk(
          await uploadAudio({ baseUrl: service.url, user, audio, filename }),
          `upload (${fullId})`,
        );
        serviceTimes.push(result.endedAt - result.startedAt);
      }
      if (selected(lagId)) {
        const result = expectOk(
          await uploadAudio({ baseUrl: service.url, user, audio, filename, bytesPerSecond: THROTTLE_BYTES_PER_SECOND }),
          `throttled upload (${lagId})`,
        );
        if (result.lastByteAt === undefined)
          throw new Error(`throttled upload (${lagId}): the body was not sent in full`);
        lags.push(result.endedAt - result.lastByteAt);
        throttledTotals.push(result.endedAt - result.startedAt);
      }
    },
    async () => {
      const out = join(WORK, `bare-${recipe.id}.${file.plan.format.name}`);
      bareTimes.push((await runBare(FFMPEG, bareMediaArguments(service.config, file, out))).wallMs);
    },
  ]);
  const bare = median(bareTimes);
  const copy = file.plan.copy ? `; stream-copied (\`${file.plan.arguments.join(' ')}\`), not re-encoded` : '';
  const what = `${duration(sizes.longSeconds)} ${recipe.label} (${mbOf(file.bytes)})`;
  if (selected(fullId)) {
    const ratio = median(serviceTimes) / bare;
    record({
      id: fullId,
      measurement: `one upload, ${what}, loopback, full speed${copy}`,
      service: s(median(serviceTimes)),
      baseline: `${s(bare)} bare ffmpeg${file.plan.copy ? ' (the same copy)' : ''}`,
      result: `×${ratio.toFixed(3)}`,
      target: '≤ 1.05',
      met: ratio <= 1.05,
    });
    details.push(`- **${fullId}** service: ${list(serviceTimes, s)}; bare ffmpeg: ${list(bareTimes, s)}.`);
  }
  if (selected(lagId)) {
    const lag = median(lags);
    const sending = (file.bytes / THROTTLE_BYTES_PER_SECOND) * 1000;
    record({
      id: lagId,
      measurement: `the ${what} sent at ${THROTTLE_BYTES_PER_SECOND / 1e6} MB/s: last byte sent → response`,
      service: s(lag),
      baseline: `${s(bare)} store-then-convert (bare ffmpeg after the upload)`,
      result: `${s(lag)} (whole request ${s(median(throttledTotals))})`,
      target: '≤ 1 s',
      met: lag <= 1000,
    });
    // The encoder takes this file in at `rate`; what it still had to read when the client's last byte left
    // (socket buffers of both ends, busboy, the pipe) is what the answer waits for.
    const rate = file.bytes / 1e6 / (bare / 1000);
    details.push(
      `- **${lagId}** last byte → response: ${list(lags, s)}; whole throttled request: ${list(throttledTotals, s)} ` +
        `(sending alone takes ${s(sending)}). Bare ffmpeg reads this file at ${rate.toFixed(rate < 1 ? 2 : 1)} MB/s, so the ` +
        `${s(lag)} are ~${((rate * lag) / 1000).toFixed(1)} MB still buffered between client and encoder.`,
    );
  }
}

/**
 * 21: an MP4 with its index last, sent at 10 MB/s. The service spools it and converts it afterwards: bare
 * ffmpeg with the same arguments on the same file is what the answer waits for after the last byte.
 */
async function spooledMp4(service: Service, user: User, media: Media): Promise<void> {
  const { recipe, file } = media;
  const audio = fileAudio(file.path, file.bytes);
  const lags: number[] = [];
  const throttledTotals: number[] = [];
  const bareTimes: number[] = [];
  await rotate([
    async () => {
      const result = expectOk(
        await uploadAudio({
          baseUrl: service.url,
          user,
          audio,
          filename: `bench.${recipe.extension}`,
          bytesPerSecond: THROTTLE_BYTES_PER_SECOND,
        }),
        `throttled upload (${SPOOLED_ROW})`,
      );
      if (result.lastByteAt === undefined) throw new Error('spooled upload: the body was not sent in full');
      lags.push(result.endedAt - result.lastByteAt);
      throttledTotals.push(result.endedAt - result.startedAt);
    },
    async () => {
      const out = join(WORK, `bare-${recipe.id}.${file.plan.format.name}`);
      bareTimes.push((await runBare(FFMPEG, bareMediaArguments(service.config, file, out))).wallMs);
    },
  ]);
  const lag = median(lags);
  record({
    id: SPOOLED_ROW,
    measurement: `the ${duration(sizes.longSeconds)} ${recipe.label} (${mbOf(file.bytes)}) sent at ${THROTTLE_BYTES_PER_SECOND / 1e6} MB/s: last byte sent → response`,
    service: s(lag),
    baseline: `${s(median(bareTimes))} bare ffmpeg on the spooled file (the service's own command line)`,
    result: `${s(lag)} (whole request ${s(median(throttledTotals))})`,
    target: 'record it',
    met: undefined,
  });
  details.push(
    `- **${SPOOLED_ROW}** last byte → response: ${list(lags, s)}; whole throttled request: ${list(throttledTotals, s)}; ` +
      `bare ffmpeg: ${list(bareTimes, s)}.`,
  );
}

/**
 * 22: what the peaks output costs the encoder: bare ffmpeg on the long WAV with the service's arguments,
 * with and without the second output on fd 3, by the child's CPU time (user + system). Runs alone, with no
 * service: each run's CPU time is read from this process's reaped-children times.
 */
/**
 * The built page (dist/web, from `npm run build`): index.html and every script and style it can load, the
 * player included, in the encodings the service sends (brotli, else gzip), against the uncompressed files.
 */
async function webAppWeight(): Promise<void> {
  const webDir = join(REPO_ROOT, 'dist', 'web');
  const assets = (await readdir(join(webDir, 'assets'))).filter((name) => /\.(js|css)$/.test(name));
  const files = ['index.html', ...assets.map((name) => join('assets', name))];
  const sizes = await Promise.all(
    files.map(async (file) => {
      const size = async (suffix: string) => (await readFile(join(webDir, `${file}${suffix}`))).length;
      return { file, plain: await size(''), brotli: await size('.br'), gzip: await size('.gz') };
    }),
  );
  const total = (key: 'plain' | 'brotli' | 'gzip') => sizes.reduce((sum, size) => sum + size[key], 0);
  const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
  record({
    id: WEB_ROW,
    measurement: `web app: everything the page can load (${files.length} files), compressed`,
    service: `brotli ${kb(total('brotli'))}, gzip ${kb(total('gzip'))}`,
    baseline: `uncompressed ${kb(total('plain'))}`,
    result: `${kb(total('brotli'))} (×${(total('brotli') / total('plain')).toFixed(3)} of uncompressed)`,
    target: `≤ ${kb(WEB_BUDGET_BYTES)} compressed`,
    met: total('brotli') <= WEB_BUDGET_BYTES,
  });
  details.push(
    `Web app files (row ${WEB_ROW}): ${sizes.map((size) => `${size.file} ${kb(size.plain)} → br ${kb(size.brotli)} / gz ${kb(size.gzip)}`).join('; ')}.`,
  );
}

async function peaksCost(settings: ServiceSettings, longWav: string): Promise<void> {
  const withPeaks: Array<{ wallMs: number; cpuMs: number }> = [];
  const without: Array<{ wallMs: number; cpuMs: number }> = [];
  const out = join(WORK, 'bare-peaks.mp3');
  await rotate(
    [
      async () => {
        withPeaks.push(await runBare(FFMPEG, bareFfmpegArguments(settings, longWav, out)));
      },
      async () => {
        without.push(await runBare(FFMPEG, bareFfmpegArguments(settings, longWav, out, { peaks: false })));
      },
    ],
    peaksRuns,
  );
  const cpu = (runs: typeof withPeaks) => median(runs.map((run) => run.cpuMs));
  const wall = (runs: typeof withPeaks) => median(runs.map((run) => run.wallMs));
  const ratio = cpu(withPeaks) / cpu(without);
  record({
    id: PEAKS_ROW,
    measurement: `encoder CPU time (user + sys) with the peaks output on fd 3, bare ffmpeg on the ${duration(sizes.longSeconds)} WAV (median of ${peaksRuns})`,
    service: `${s(cpu(withPeaks))} CPU (${s(wall(withPeaks))} wall)`,
    baseline: `${s(cpu(without))} CPU (${s(wall(without))} wall) without the peaks output`,
    result: `${ratio >= 1 ? '+' : ''}${((ratio - 1) * 100).toFixed(1)} % (×${ratio.toFixed(3)})`,
    target: '≤ +3 %',
    met: ratio <= 1.03,
  });
  const cpuList = (runs: typeof withPeaks) =>
    list(
      runs.map((run) => run.cpuMs),
      s,
    );
  details.push(`- **${PEAKS_ROW}** CPU with peaks: ${cpuList(withPeaks)}; without: ${cpuList(without)}.`);
}

interface DatabaseFootprint {
  readonly name: string;
  /** VmRSS a few seconds after /ready, on a new data folder (as after a first `npm start`). */
  readonly idleKiB: number;
  /** VmHWM at that moment: the start-up's peak. */
  readonly startPeakKiB: number;
  /** Peak VmRSS while row 4's uploads and row 5's requests run. */
  readonly loadedKiB: number;
  /** The launcher process's VmRSS after the load, and the part of it that is its own (RssAnon). */
  readonly launcher: { readonly rssKiB: number; readonly anonKiB: number };
  readonly latency: ReturnType<typeof summarizeLatencies>;
  readonly failures: number;
}

/** 29: the service on each database, fresh: idle RSS, then row 4's load with row 5's sampler beside it. */
async function databaseFootprints(shortWav: string): Promise<void> {
  const databases: Array<[string, Record<string, string>]> = [['PGlite', { DATABASE_URL: '' }]];
  if (process.env.DATABASE_URL) databases.push(['PostgreSQL', {}]);
  const footprints: DatabaseFootprint[] = [];
  for (const [name, env] of databases) {
    footprints.push(
      await withService(`footprint-${name}`, env, async (service) => {
        await sleep(smoke ? 500 : 3000);
        const idle = await memoryOf(service.pid);
        const user = await createUser(service.url, tag);
        const wav = fileWav(shortWav, sizes.shortSeconds);
        expectOk(await uploadAudio({ baseUrl: service.url, user, audio: wav }), 'warm-up');
        let loadedKiB = 0;
        let failures = 0;
        const latencies: number[] = [];
        for (let run = 0; run < runs; run++) {
          const memory = startMemorySampler(service.pid, await resetPeak(service.pid));
          const sampler = startLatencySampler(service.url, `${tag}${name[0]}${run}`, SAMPLER_INTERVAL_MS);
          const results = await Promise.all(
            Array.from({ length: CONCURRENT_UPLOADS }, () => uploadAudio({ baseUrl: service.url, user, audio: wav })),
          ).finally(() => sampler.stop());
          const sampled = await sampler.stop();
          results.forEach((result) => expectOk(result, `concurrent upload (${DATABASES_ROW})`));
          latencies.push(...sampled.latencies);
          failures += sampled.failures;
          loadedKiB = Math.max(loadedKiB, (await memory.stop()).peakKiB);
        }
        const latency = summarizeLatencies(latencies);
        const launcherPid = await launcherOf(service.pid);
        if (launcherPid === undefined) throw new Error('the service has no launcher process after uploads');
        const launcher = await memoryOf(launcherPid);
        return { name, idleKiB: idle.rssKiB, startPeakKiB: idle.hwmKiB, loadedKiB, launcher, latency, failures };
      }),
    );
  }
  // The launcher's file pages are node's binary, which the server maps too: its own memory is its anonymous part.
  const loadedWithLauncher = (f: DatabaseFootprint) => f.loadedKiB + f.launcher.anonKiB;
  const describe = (f: DatabaseFootprint) =>
    `${f.name}: idle ${mib(f.idleKiB)} (start-up peak ${mib(f.startPeakKiB)}), loaded ${mib(f.loadedKiB)} ` +
    `+ launcher ${mib(f.launcher.anonKiB)} of its own (RSS ${mib(f.launcher.rssKiB)}), ` +
    `POST /users p99 ${ms(f.latency.p99)}${f.failures > 0 ? ` (${f.failures} failed)` : ''}`;
  const [embedded, postgres] = footprints as [DatabaseFootprint, DatabaseFootprint | undefined];
  record({
    id: DATABASES_ROW,
    measurement:
      `server RSS on a new data folder, idle 3 s after /ready and peak under 4's load (${CONCURRENT_UPLOADS} uploads), ` +
      `with 5's POST /users latency beside it, on each database`,
    service: describe(embedded),
    baseline: postgres === undefined ? 'PostgreSQL: not measured (DATABASE_URL unset)' : describe(postgres),
    result: `PGlite ${mib(embedded.idleKiB)} idle, ${mib(loadedWithLauncher(embedded))} loaded with the launcher; p99 ${footprints.map((f) => `${ms(f.latency.p99)} ${f.name}`).join(', ')}`,
    target: `PGlite ≤ ${mib(EMBEDDED_IDLE_GOAL_KIB)} idle, ≤ ${mib(EMBEDDED_LOADED_GOAL_KIB)} loaded; p99 ≤ 50 ms on each`,
    met:
      embedded.idleKiB <= EMBEDDED_IDLE_GOAL_KIB &&
      loadedWithLauncher(embedded) <= EMBEDDED_LOADED_GOAL_KIB &&
      footprints.every((f) => f.latency.p99 <= 50 && f.failures === 0),
  });
  details.push(
    `- **${DATABASES_ROW}** each database on a service of its own, started on an empty data folder; ` +
      `loaded = the larger of VmHWM (reset before the load) and VmRSS sampled every 50 ms, over ${runs} round(s) of ` +
      `${CONCURRENT_UPLOADS} uploads; latencies as 5 (n=${footprints.map((f) => `${f.latency.count} ${f.name}`).join(', ')}).`,
  );
}

/** 23: RSS growth of the server process while a big 24-bit 96 kHz FLAC is uploaded and converted. */
async function bigFlacUpload(
  service: Service,
  user: User,
  warmUp: Media,
  big: { path: string; bytes: number; seconds: number },
): Promise<void> {
  // Warm up the compressed-input path too: the first upload loads code and grows the heap to its working size.
  expectOk(
    await uploadAudio({
      baseUrl: service.url,
      user,
      audio: fileAudio(warmUp.file.path, warmUp.file.bytes),
      filename: 'warm-up.flac',
    }),
    'warm-up',
  );
  await sleep(1000);
  const idle = await memoryOf(service.pid);
  const wasReset = await resetPeak(service.pid);
  if (!wasReset)
    warnings.push(`VmHWM could not be reset: measurement ${BIG_FLAC_ROW} relies on 50 ms RSS samples only.`);
  const memory = startMemorySampler(service.pid, wasReset);
  const result = await uploadAudio({
    baseUrl: service.url,
    user,
    audio: fileAudio(big.path, big.bytes),
    filename: 'big.flac',
  });
  const peak = await memory.stop();
  expectOk(result, `big FLAC upload (${BIG_FLAC_ROW})`);
  const growth = peak.peakKiB - idle.rssKiB;
  record({
    id: BIG_FLAC_ROW,
    measurement: `server RSS growth (children excluded) during a ${mib(big.bytes / 1024)} FLAC upload (24-bit 96 kHz stereo, ${big.seconds >= 120 ? `${(big.seconds / 60).toFixed(0)} min` : `${big.seconds} s`} of audio)`,
    service: `${mib(growth)} over ${mib(idle.rssKiB)} idle`,
    baseline: `${mib(big.bytes / 1024)} held by store-then-convert in memory`,
    result: `+${mib(growth)} (peak ${mib(peak.peakKiB)}, ${peak.samples} samples, upload took ${s(result.endedAt - result.startedAt)})`,
    target: '≤ 64 MiB',
    met: growth <= 64 * 1024,
  });
}

/** A service with a user of its own, and the last record it stored from the long WAV at full speed (24). */
interface Target {
  readonly service: Service;
  readonly user: User;
  stored?: { readonly path: string; readonly recordId: string };
}

/** The record an upload's answer links to: its download path and id. */
function storedRecord(result: UploadResult): { path: string; recordId: string } {
  const url = new URL((JSON.parse(result.body) as { record_url: string }).record_url);
  return { path: `${url.pathname}${url.search}`, recordId: url.searchParams.get('record_id') ?? '' };
}

async function warmedTarget(service: Service, shortWav: string): Promise<Target> {
  const user = await createUser(service.url, tag);
  expectOk(await uploadAudio({ baseUrl: service.url, user, audio: fileWav(shortWav, sizes.shortSeconds) }), 'warm-up');
  return { service, user };
}

/**
 * 24–26: the S3 driver against s3rver (a real S3 endpoint in Node, started here on the same machine) beside
 * the local driver (`local`, already warm) and bare ffmpeg. One S3 service with the defaults (one PutObject
 * for an MP3 below S3_MULTIPART_THRESHOLD_BYTES' 64 MiB, S3_DOWNLOAD=proxy) serves 24 and 26; row 25 adds
 * one whose threshold makes every put a multipart upload.
 */
async function objectStorage(local: Target, longWav: string, shortWav: string): Promise<void> {
  const s3 = await startS3rver();
  const prefix = `bench-${tag}/`;
  try {
    await withService('s3', s3.env(`${prefix}put/`), async (service) => {
      const put = await warmedTarget(service, shortWav);
      if (selected(S3_UPLOAD_ROW) || selected(S3_DOWNLOAD_ROW)) await s3Uploads(put, local, longWav);
      if (selected(S3_LAG_ROW)) {
        await withService(
          's3-multipart',
          { ...s3.env(`${prefix}multipart/`), S3_MULTIPART_THRESHOLD_BYTES: String(MULTIPART_THRESHOLD_BYTES) },
          async (multipartService) => {
            const multipart = await warmedTarget(multipartService, shortWav);
            await s3Lags(s3, `${prefix}multipart/`, multipart, put, local, longWav);
          },
        );
      }
      if (selected(S3_DOWNLOAD_ROW)) await s3Downloads(s3, `${prefix}put/`, put, local);
    });
  } finally {
    await s3.stop();
  }
}

/** 24: one long upload at full speed with the S3 driver, the local driver and bare ffmpeg, in turn. */
async function s3Uploads(s3: Target, local: Target, longWav: string): Promise<void> {
  const wav = fileWav(longWav, sizes.longSeconds);
  const times = new Map<Target, number[]>([
    [s3, []],
    [local, []],
  ]);
  const upload = (target: Target) => async () => {
    const result = expectOk(
      await uploadAudio({ baseUrl: target.service.url, user: target.user, audio: wav }),
      `upload (${S3_UPLOAD_ROW}, ${target.service.config.storage.driver})`,
    );
    times.get(target)?.push(result.endedAt - result.startedAt);
    target.stored = storedRecord(result);
  };
  if (!selected(S3_UPLOAD_ROW)) {
    // Only 26: one MP3 in each store to download.
    await upload(s3)();
    await upload(local)();
    return;
  }
  const bareTimes: number[] = [];
  await rotate([
    upload(s3),
    upload(local),
    async () => {
      bareTimes.push(
        (await runBare(FFMPEG, bareFfmpegArguments(local.service.config, longWav, join(WORK, 'bare-s3.mp3')))).wallMs,
      );
    },
  ]);
  const s3Times = times.get(s3) ?? [];
  const localTimes = times.get(local) ?? [];
  const [s3Median, localMedian, bare] = [median(s3Times), median(localTimes), median(bareTimes)];
  record({
    id: S3_UPLOAD_ROW,
    measurement:
      `one upload, ${duration(sizes.longSeconds)} WAV (${(wav.bytes / 1e6).toFixed(0)} MB), full speed, with STORAGE_DRIVER=s3 ` +
      `(s3rver on the same machine; the MP3 in one PutObject, below the default S3_MULTIPART_THRESHOLD_BYTES)`,
    service: s(s3Median),
    baseline: `${s(localMedian)} local driver; ${s(bare)} bare ffmpeg`,
    result: `×${(s3Median / localMedian).toFixed(3)} of local, ×${(s3Median / bare).toFixed(3)} of bare ffmpeg`,
    target: 'record it',
    met: undefined,
  });
  // Within one run the three are a few seconds apart: their ratios are less exposed to the machine's drift.
  const perRun = (times: readonly number[]) =>
    s3Times.map((time, run) => `×${(time / (times[run] ?? Number.NaN)).toFixed(2)}`).join(', ');
  details.push(
    `- **${S3_UPLOAD_ROW}** S3 driver: ${list(s3Times, s)}; local driver: ${list(localTimes, s)}; ` +
      `bare ffmpeg: ${list(bareTimes, s)} (the three in turn, each run starting with the next). ` +
      `Run by run, S3 against local: ${perRun(localTimes)}; against bare ffmpeg: ${perRun(bareTimes)}.`,
  );
}

/**
 * 25: the long WAV sent at 10 MB/s: the answer after the last byte with the S3 driver (multipart put, and
 * one PutObject) against the local driver's. The service encodes into a temp file and puts it once the
 * encoder has finished, so the difference is what the put adds. The bench's own put of the same MP3 to
 * s3rver (the service's SDK settings, then a HeadObject as the service does) shows the store's share.
 */
async function s3Lags(
  s3: RunningS3rver,
  multipartPrefix: string,
  multipart: Target,
  put: Target,
  local: Target,
  longWav: string,
): Promise<void> {
  const wav = fileWav(longWav, sizes.longSeconds);
  const lags = new Map<Target, number[]>([
    [multipart, []],
    [put, []],
    [local, []],
  ]);
  const totals = new Map<Target, number[]>([
    [multipart, []],
    [put, []],
    [local, []],
  ]);
  const throttled = (target: Target) => async () => {
    const result = expectOk(
      await uploadAudio({
        baseUrl: target.service.url,
        user: target.user,
        audio: wav,
        bytesPerSecond: THROTTLE_BYTES_PER_SECOND,
      }),
      `throttled upload (${S3_LAG_ROW})`,
    );
    if (result.lastByteAt === undefined)
      throw new Error(`throttled upload (${S3_LAG_ROW}): the body was not sent in full`);
    lags.get(target)?.push(result.endedAt - result.lastByteAt);
    totals.get(target)?.push(result.endedAt - result.startedAt);
    if (target === multipart) multipartRecordId = storedRecord(result).recordId;
  };
  let multipartRecordId = '';
  await rotate([throttled(multipart), throttled(put), throttled(local)]);

  // The stored MP3, put again by the bench: multipart as the service does it, and as one PutObject.
  const key = `${multipartPrefix}${recordKey(multipartRecordId, 'mp3')}`;
  const mp3Path = join(WORK, 's3-put.mp3');
  const mp3 = await s3.body(key);
  await writeFile(mp3Path, mp3);
  const directTimes = { multipart: [] as number[], put: [] as number[] };
  const directPut = async (asMultipart: boolean) => {
    const params = {
      Bucket: s3.bucket,
      Key: `${multipartPrefix}direct-${asMultipart ? 'multipart' : 'put'}.mp3`,
      Body: createReadStream(mp3Path),
      ContentLength: mp3.length,
    };
    const started = now();
    if (asMultipart) {
      await new Upload({
        client: s3.client,
        params,
        partSize: Math.max(PART_BYTES, Math.ceil(mp3.length / 10_000)),
        queueSize: PARTS_IN_FLIGHT,
        leavePartsOnError: false,
      }).done();
    } else {
      await s3.client.send(new PutObjectCommand(params));
    }
    await s3.client.send(new HeadObjectCommand({ Bucket: params.Bucket, Key: params.Key }));
    (asMultipart ? directTimes.multipart : directTimes.put).push(now() - started);
  };
  await rotate([() => directPut(true), () => directPut(false)]);

  const lag = (target: Target) => median(lags.get(target) ?? []);
  const [multipartLag, putLag, localLag] = [lag(multipart), lag(put), lag(local)];
  const plus = (ms: number) => `${ms >= 0 ? '+' : '−'}${s(Math.abs(ms))}`;
  const parts = Math.max(1, Math.ceil(mp3.length / PART_BYTES));
  record({
    id: S3_LAG_ROW,
    measurement:
      `the same WAV sent at ${THROTTLE_BYTES_PER_SECOND / 1e6} MB/s with STORAGE_DRIVER=s3 and a multipart put ` +
      `(S3_MULTIPART_THRESHOLD_BYTES=${MULTIPART_THRESHOLD_BYTES}: the ${mbOf(mp3.length)} MP3 in ${parts} part(s)` +
      `${parts === 1 ? ', which lib-storage sends as one PutObject' : ''}): last byte sent → response`,
    service: s(multipartLag),
    baseline: `${s(localLag)} local driver; ${s(putLag)} S3 with one PutObject`,
    result:
      `${s(multipartLag)}: ${plus(multipartLag - localLag)} over local (one PutObject: ${plus(putLag - localLag)}) ` +
      `(whole request ${s(median(totals.get(multipart) ?? []))})`,
    target: '≤ 1 s',
    met: multipartLag <= 1000,
  });
  const runsOf = (target: Target) => list(lags.get(target) ?? [], s);
  details.push(
    `- **${S3_LAG_ROW}** last byte → response, multipart: ${runsOf(multipart)}; one PutObject: ${runsOf(put)}; ` +
      `local: ${runsOf(local)} (the three in turn, each run starting with the next). The bench's own put of the ` +
      `same MP3 to s3rver, then a HeadObject, as the service does after the encoder: multipart ` +
      `${list(directTimes.multipart, s)}, one PutObject ${list(directTimes.put, s)}.`,
  );
}

/**
 * 26: the MP3 of 24 downloaded through the S3 service (S3_DOWNLOAD=proxy: a HeadObject and a GetObject
 * from s3rver per request) and from the local driver, whole and by 256 KiB ranges, with the same client as
 * 7; and from s3rver itself by a presigned GET, which is what the proxy adds its own cost to.
 */
async function s3Downloads(s3: RunningS3rver, prefix: string, proxy: Target, local: Target): Promise<void> {
  if (proxy.stored === undefined || local.stored === undefined)
    throw new Error(`${S3_DOWNLOAD_ROW} needs the MP3s of ${S3_UPLOAD_ROW}`);
  const presigned = new URL(
    await getSignedUrl(
      s3.client,
      new GetObjectCommand({ Bucket: s3.bucket, Key: `${prefix}${recordKey(proxy.stored.recordId, 'mp3')}` }),
      { expiresIn: 3600 },
    ),
  );
  const source = async (name: string, baseUrl: string, path: string, pid: number | undefined) => {
    const head = await simpleRequest(baseUrl, 'HEAD', path);
    return { name, baseUrl, path, pid, size: Number(head.headers['content-length'] ?? 0) };
  };
  type Source = Awaited<ReturnType<typeof source>>;
  const sources: Source[] = [
    await source('proxy', proxy.service.url, proxy.stored.path, proxy.service.pid),
    await source('local', local.service.url, local.stored.path, local.service.pid),
    await source('s3rver', s3.endpoint, `${presigned.pathname}${presigned.search}`, undefined),
  ];
  type Mode = 'whole' | 'ranges';
  const results = new Map<string, Array<{ summary: DownloadLoad; growthKiB: number | undefined }>>();
  const load = (from: Source, mode: Mode) => () =>
    downloadLoad(
      from.baseUrl,
      from.path,
      DOWNLOAD_CONNECTIONS,
      sizes.loadSeconds,
      mode === 'ranges' ? randomRange(from.size) : undefined,
    );
  await rotate(
    sources.map((from) => async () => {
      for (const mode of ['whole', 'ranges'] as const) {
        const result =
          from.pid === undefined
            ? { summary: await load(from, mode)(), growthKiB: undefined }
            : await withMemory(from.pid, load(from, mode));
        const key = `${from.name} ${mode}`;
        results.set(key, [...(results.get(key) ?? []), result]);
      }
    }),
  );
  const of = (name: string, mode: Mode) => results.get(`${name} ${mode}`) ?? [];
  const mbps = (name: string, mode: Mode) => median(of(name, mode).map((r) => r.summary.mbPerSecond));
  const rps = (name: string, mode: Mode) => median(of(name, mode).map((r) => r.summary.requestsPerSecond));
  const growth = (name: string, mode: Mode) => max(of(name, mode).map((r) => r.growthKiB ?? 0));
  const rates = (name: string) =>
    `${mbps(name, 'whole').toFixed(0)} MB/s (${rps(name, 'whole').toFixed(1)} req/s); ` +
    `ranges: ${mbps(name, 'ranges').toFixed(0)} MB/s (${rps(name, 'ranges').toFixed(0)} req/s)`;
  const ratio = (name: string, mode: Mode) => `×${(mbps('proxy', mode) / mbps(name, mode)).toFixed(2)}`;
  const statuses = (name: string, mode: Mode) => {
    const counts = new Map<string, number>();
    let errors = 0;
    for (const { summary } of of(name, mode)) {
      errors += summary.errors;
      for (const entry of summary.statuses.split(' ').filter((e) => e !== '')) {
        const [code = '', count = '0'] = entry.split('×');
        counts.set(code, (counts.get(code) ?? 0) + Number(count));
      }
    }
    const text = [...counts].map(([code, count]) => `${code}×${count}`).join(' ');
    return { text: `${text}${errors > 0 ? `, ${errors} errors` : ''}`, counts, errors };
  };
  const allAnswered = sources.every((from) =>
    (['whole', 'ranges'] as const).every((mode) => {
      const { counts, errors } = statuses(from.name, mode);
      return errors === 0 && counts.size === 1 && counts.has(mode === 'whole' ? '200' : '206');
    }),
  );
  const size = sources[0]?.size ?? 0;
  const proxyGrowthKiB = Math.max(growth('proxy', 'whole'), growth('proxy', 'ranges'));
  record({
    id: S3_DOWNLOAD_ROW,
    measurement:
      `GET of the ${(size / 1e6).toFixed(1)} MB MP3 of ${S3_UPLOAD_ROW} with S3_DOWNLOAD=proxy, ${DOWNLOAD_CONNECTIONS} connections, ` +
      `${sizes.loadSeconds} s × ${runs} (node:http client, as 7); then 256 KiB Range requests`,
    service: rates('proxy'),
    baseline: `local driver: ${rates('local')}; s3rver itself (presigned GET): ${rates('s3rver')}`,
    result:
      `${ratio('local', 'whole')} of local (ranges ${ratio('local', 'ranges')}), ` +
      `${ratio('s3rver', 'whole')} of s3rver (ranges ${ratio('s3rver', 'ranges')}); ` +
      `server RSS growth ${mib(growth('proxy', 'whole'))} whole, ${mib(growth('proxy', 'ranges'))} ranges ` +
      `(local: ${mib(growth('local', 'whole'))}, ${mib(growth('local', 'ranges'))})`,
    target: 'record it; no whole file in memory',
    // 16 connections holding whole files would add 16 × the file size.
    met:
      allAnswered && proxyGrowthKiB * 1024 < Math.max(DOWNLOAD_CONNECTIONS * size, 32 * 1024 ** 2) ? undefined : false,
  });
  details.push(
    `- **${S3_DOWNLOAD_ROW}** medians of ${runs} run(s) of ${sizes.loadSeconds} s, the three sources in turn. Answers: ` +
      sources
        .map(
          (from) => `${from.name} ${statuses(from.name, 'whole').text}, ranges ${statuses(from.name, 'ranges').text}`,
        )
        .join('; ') +
      `. s3rver is Node too, on the same two cores as the service and the client: every proxied request is a ` +
      `HeadObject and a GetObject that it serves from its files, work a real store does not put on this machine. ` +
      `s3rver's own rate (the presigned GET, the same client) is what the proxy could reach here at best; what it ` +
      `loses below that is the service's own work (receiving every byte from s3rver and sending it again, two ` +
      `requests to the store per download) and the cores it shares with s3rver. RSS growth is the service's peak ` +
      `VmRSS during a load minus its RSS just before, the largest of the runs (s3rver's own is not measured).`,
  );
}

/** Encoder presets: bare ffmpeg on the long WAV with the default and faster settings. */
async function encoderPresets(settings: ServiceSettings, longWav: string): Promise<string[]> {
  const base = settings.encoding;
  const variants: Array<{ label: string; encoding: EncodingConfig }> = [
    { label: `service setting (${describe(base)})`, encoding: base },
    { label: 'VBR -q:a 2, -compression_level 5', encoding: { ...base, compressionLevel: 5 } },
    { label: 'VBR -q:a 2, -compression_level 7', encoding: { ...base, compressionLevel: 7 } },
  ];
  const times = variants.map(() => [] as number[]);
  const sizesBytes = variants.map(() => 0);
  for (let run = 0; run < runs; run++) {
    const order = run % 2 === 0 ? variants.keys() : [...variants.keys()].reverse();
    for (const index of order) {
      const variant = variants[index];
      if (variant === undefined) continue;
      const out = join(WORK, `preset-${index}.mp3`);
      const args = bareFfmpegArguments({ ...settings, encoding: variant.encoding }, longWav, out);
      times[index]?.push((await runBare(FFMPEG, args)).wallMs);
      sizesBytes[index] = Number(execFileSync('stat', ['-c', '%s', out]).toString());
    }
  }
  const reference = median(times[0] ?? []);
  const lines = [
    '| encoder setting | MP3_* environment | bare ffmpeg time | × service setting | realtime factor | MP3 size | average bitrate |',
    '|---|---|---|---|---|---|---|',
  ];
  variants.forEach((variant, index) => {
    const time = median(times[index] ?? []);
    const bytes = sizesBytes[index] ?? 0;
    lines.push(
      `| ${variant.label} | ${environmentOf(variant.encoding)} | ${s(time)} | ×${(time / reference).toFixed(2)} | ` +
        `${((sizes.longSeconds * 1000) / time).toFixed(0)}× | ${(bytes / 1e6).toFixed(1)} MB | ` +
        `${((bytes * 8) / sizes.longSeconds / 1000).toFixed(0)} kbit/s |`,
    );
  });
  return lines;
}

function describe(encoding: EncodingConfig): string {
  const quality =
    encoding.bitrateKbps === undefined ? `VBR -q:a ${encoding.vbrQuality}` : `CBR ${encoding.bitrateKbps}k`;
  return encoding.compressionLevel === undefined
    ? quality
    : `${quality}, -compression_level ${encoding.compressionLevel}`;
}

function environmentOf(encoding: EncodingConfig): string {
  const parts =
    encoding.bitrateKbps === undefined
      ? [`MP3_VBR_QUALITY=${encoding.vbrQuality}`]
      : [`MP3_BITRATE_KBPS=${encoding.bitrateKbps}`];
  if (encoding.compressionLevel !== undefined) parts.push(`MP3_COMPRESSION_LEVEL=${encoding.compressionLevel}`);
  return `\`${parts.join(' ')}\``;
}

/** 6 again, on a service started with --cpu-prof: the top self-time functions. */
async function profileCreateUsers(): Promise<string[]> {
  const directory = join(WORK, 'profiles');
  await rm(directory, { recursive: true, force: true });
  await mkdir(directory, { recursive: true });
  await withService(
    'profile',
    {},
    async (service) => {
      let counter = 0;
      await cannon({
        url: service.url,
        connections: 32,
        duration: sizes.loadSeconds,
        requests: [
          {
            method: 'POST',
            setupRequest: (request) => ({ ...request, path: `${PREFIX}/users/?username=pr_${tag}_${counter++}` }),
          },
        ],
      });
    },
    ['--cpu-prof', `--cpu-prof-dir=${directory}`],
  );
  const [file] = (await readdir(directory)).filter((name) => name.endsWith('.cpuprofile'));
  if (file === undefined) return ['(no profile was written)'];
  return summarizeProfile(JSON.parse(await readFile(join(directory, file), 'utf8')) as CpuProfile, file);
}

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
}

function summarizeProfile(profile: CpuProfile, file: string): string[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfCounts = new Map<string, number>();
  for (const id of profile.samples) {
    const frame = byId.get(id)?.callFrame;
    if (frame === undefined) continue;
    const where =
      frame.url === ''
        ? ''
        : ` ${frame.url.replace(/^file:\/\//, '').replace(`${REPO_ROOT}/`, '')}:${frame.lineNumber + 1}`;
    const key = `${frame.functionName || '(anonymous)'}${where}`;
    selfCounts.set(key, (selfCounts.get(key) ?? 0) + 1);
  }
  const total = profile.samples.length;
  const top = [...selfCounts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 15);
  return [
    `Self time of the top 15 frames, from \`bench/.work/profiles/${file}\` (${total} samples; open it in Chrome DevTools for the call tree):`,
    '',
    '| self time | frame |',
    '|---|---|',
    ...top.map(([key, count]) => `| ${((count / total) * 100).toFixed(1)} % | \`${key.replace(/\|/g, '\\|')}\` |`),
  ];
}

// ---------------------------------------------------------------------------------------------------------
// Report

/** The row a "- **N** …" detail line is about. */
const detailId = (line: string) => Number(/^- \*\*(\d+)\*\*/.exec(line)?.[1] ?? 0);

function table(): string[] {
  const lines = ['| # | measurement | service | baseline | result | target | met |', '|---|---|---|---|---|---|---|'];
  for (const row of [...rows].sort((a, b) => a.id - b.id)) {
    const met = row.met === undefined ? 'recorded' : row.met ? 'yes' : '**no**';
    lines.push(
      `| ${row.id} | ${row.measurement} | ${row.service} | ${row.baseline} | ${row.result} | ${row.target} | ${met} |`,
    );
  }
  return lines;
}

async function writeReport(
  info: Record<string, string>,
  settings: ServiceSettings,
  kinds: readonly Media[],
  presetLines: string[],
  profileLines: string[],
  elapsedMs: number,
): Promise<void> {
  const notesPath = join(REPO_ROOT, 'bench', 'NOTES.md');
  const notes = smoke ? '' : await readFile(notesPath, 'utf8').catch(() => '');
  const lines = [
    '# Benchmarks',
    '',
    `<!-- Generated by \`npm run bench\` (bench/run.ts); do not edit by hand. Analysis lives in bench/NOTES.md. -->`,
    '',
    smoke ? '**Smoke run at tiny sizes: these numbers mean nothing, the run only proves the benchmark works.**' : '',
    flags.note === undefined ? '' : `> ${flags.note}`,
    '',
    '## Machine',
    '',
    ...Object.entries(info).map(([key, value]) => `- ${key}: ${value}`),
    '',
    '## How to reproduce',
    '',
    '```sh',
    'npm ci',
    'npm run bench                      # PGlite; or: DATABASE_URL=postgres://… npm run bench',
    'npm run bench -- --runs 5          # more runs per median',
    'npm run bench -- --only 1,2        # a subset of the rows',
    'MP3_COMPRESSION_LEVEL=7 npm run bench   # the service and its baseline with another encoder setting',
    'npm run bench:smoke                # tiny sizes, 1 run (CI); writes bench/.work/benchmarks-smoke.md',
    '```',
    '',
    'The script builds the service (`npm run build`) and starts it as `npm start` does (`node`, its flags, `dist/main.js`) on a free port with a',
    'temporary `DATA_DIR`, generates its audio with ffmpeg into `bench/.work/` (git-ignored), and runs every',
    'measurement beside its baseline. "Bare ffmpeg" is the same binary with exactly the service’s arguments',
    '(`planOutput` and `muxerArguments` from `src/media/outputs.ts`, `ffmpegArguments` from',
    '`src/media/transcoder.ts`, called as the converter calls them), niceness and environment, reading the file',
    'from disk instead of stdin, with its peaks output on fd 3 read to the end and dropped. For a WAV (raw PCM',
    'after the service’s own parse):',
    '',
    '```sh',
    `${FFMPEG} ${bareFfmpegArguments(settings, 'long.wav', 'out.mp3').join(' ')}`,
    '```',
    '',
    ...(kinds.length === 0
      ? []
      : [
          "For a compressed kind, the service’s demuxer forced on the file (`{kind: 'file'}` input, as the service",
          'reads a spooled MP4), e.g. FLAC, and MP3, which an upload with no options stream-copies:',
          '',
          '```sh',
          ...kinds
            .filter((media) => media.recipe.id === 'flac' || media.file.plan.copy)
            .map(
              (media) =>
                `${FFMPEG} ${bareMediaArguments(settings, { ...media.file, path: `in.${media.recipe.extension}` }, 'out.mp3').join(' ')}`,
            ),
          '```',
          '',
          `Rows ${KIND_FULL_SPEED_ROW}–${BIG_FLAC_ROW} (issue 10): each streamed input kind, made from the same noise-and-tone`,
          `WAV, uploaded at full speed against bare ffmpeg on the file (${KIND_FULL_SPEED_ROW}–${KIND_THROTTLED_ROW - 1}) and sent at`,
          `10 MB/s, timing the answer after the last byte against store-then-convert (${KIND_THROTTLED_ROW}–${SPOOLED_ROW - 1});`,
          `the same for an MP4 with its index last, which the service spools before converting (${SPOOLED_ROW});`,
          `bare ffmpeg on the WAV with and without the peaks output, by the child’s user + system CPU time from`,
          `\`/proc/self/stat\` (${PEAKS_ROW}); the server’s RSS during a 1 GiB 24-bit 96 kHz FLAC upload, measured as`,
          `row 3 is (${BIG_FLAC_ROW}).`,
          '',
        ]),
    `Rows ${S3_UPLOAD_ROW}–${S3_DOWNLOAD_ROW} (object storage): the service with \`STORAGE_DRIVER=s3\` against s3rver, a real S3`,
    'endpoint written in Node that the script starts on this machine (`test/kit/s3rver.ts`: one bucket, path-style),',
    'beside a service with the local driver: the long WAV uploaded at full speed to each and encoded by bare ffmpeg,',
    `the three in turn (${S3_UPLOAD_ROW}); sent at 10 MB/s, timing the answer after the last byte with a multipart put (a`,
    `service with \`S3_MULTIPART_THRESHOLD_BYTES=${MULTIPART_THRESHOLD_BYTES}\`), with one PutObject (the default threshold) and with the`,
    'local driver: the service puts the encoded file once the encoder has finished, so the difference from the',
    `local driver is what the put adds; the bench also puts the same MP3 to s3rver itself both ways (${S3_LAG_ROW}); the`,
    `MP3 of ${S3_UPLOAD_ROW} downloaded as row 7 does, through the service with \`S3_DOWNLOAD=proxy\`, from the local driver,`,
    `and from s3rver itself by a presigned GET (${S3_DOWNLOAD_ROW}). s3rver shares the two cores with the service and the`,
    'client, so these rows overstate what a real store costs the service.',
    '',
    'Service and baseline alternate (the first to run swaps every run; with three, each run starts with the next)',
    `and each figure is the median of ${runs} run(s); ratios against the baseline are the headline numbers,`,
    'because this machine is shared and noisy.',
    'Uploads are multipart bodies written by hand over `node:http` (so that a sender can be throttled with a',
    'token bucket and its progress known); times are client-side, request start to the last response byte.',
    'RSS is read from `/proc/<pid>/status` of the node process only (encoders are separate processes), sampled',
    'every 50 ms, with `VmHWM` reset through `/proc/<pid>/clear_refs` so that peaks between samples count too.',
    '',
    '## Results',
    '',
    ...table(),
    '',
    ...(details.length > 0 ? ['Per-run values:', '', ...details.sort((a, b) => detailId(a) - detailId(b)), ''] : []),
    ...(warnings.length > 0 ? ['Warnings:', '', ...warnings.map((w) => `- ${w}`), ''] : []),
    ...(presetLines.length > 0
      ? [
          '## Encoder settings',
          '',
          `Bare ffmpeg on the ${duration(sizes.longSeconds)} WAV, medians of ${runs} run(s), same arguments as the service except the encoder setting.`,
          '',
          ...presetLines,
          '',
        ]
      : []),
    ...(profileLines.length > 0 ? ['## Profile of measurement 6', '', ...profileLines, ''] : []),
    ...(notes === '' ? [] : [notes.trim(), '']),
    `_Whole run: ${s(elapsedMs)}._`,
    '',
  ];
  await mkdir(join(outPath, '..'), { recursive: true });
  await writeFile(outPath, lines.filter((line, i, all) => !(line === '' && all[i - 1] === '')).join('\n'));
}

// ---------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = performance.now();
  await mkdir(WORK, { recursive: true });
  const info = machine();
  const load = startLoadSampler();
  log(`${smoke ? 'smoke' : 'full'} run, ${runs} run(s) per median, ${info.database}`);
  if (flags['skip-build'] !== true) buildService();

  const longWav = join(WORK, `long-${sizes.longSeconds}s.wav`);
  const shortWav = join(WORK, `short-${sizes.shortSeconds}s.wav`);
  await generateWav(FFMPEG, longWav, sizes.longSeconds, 1);
  await generateWav(FFMPEG, shortWav, sizes.shortSeconds, 7);
  // The same settings as the service will have (the bench's environment, validated by src/config.ts).
  const settings = serviceConfig(BASE_ENV);
  const encode = async (wav: string, recipe: MediaRecipe): Promise<Media> => {
    const path = `${wav.replace(/\.wav$/, '')}-${recipe.id}.${recipe.extension}`;
    return { recipe, file: await generateMedia(FFMPEG, wav, path, recipe, settings) };
  };
  const kinds: Media[] = [];
  let spooled: Media | undefined;
  if (KIND_ROWS.some(selected)) {
    for (const recipe of STREAMED_KINDS) kinds.push(await encode(longWav, recipe));
    spooled = await encode(longWav, SPOOLED_MP4);
  }
  const flacRecipe = STREAMED_KINDS.find((recipe) => recipe.id === 'flac');
  if (flacRecipe === undefined) throw new Error('STREAMED_KINDS has no FLAC');
  const shortFlac = await encode(shortWav, flacRecipe);
  const bigFlacPath = join(WORK, `big-${sizes.bigFlacBytes}.flac`);
  const bigFlac = selected(BIG_FLAC_ROW)
    ? { path: bigFlacPath, ...(await generateBigFlac(FFMPEG, bigFlacPath, sizes.bigFlacBytes)) }
    : undefined;
  log('audio ready');

  const kindRows = async (service: Service, user: User) => {
    for (const [index, media] of kinds.entries()) {
      if (selected(KIND_FULL_SPEED_ROW + index) || selected(KIND_THROTTLED_ROW + index)) {
        await streamedKindVersusBareFfmpeg(service, user, index, media);
      }
    }
    if (spooled !== undefined && selected(SPOOLED_ROW)) await spooledMp4(service, user, spooled);
  };
  if (
    [1, 2, 4, 5, 6, 7, CPU_SPLIT_ROW].some(selected) ||
    (smoke && [3, ...KIND_ROWS, BIG_FLAC_ROW, ...S3_ROWS].some(selected))
  ) {
    await withService('main', {}, async (service) => {
      const user = await createUser(service.url, tag);
      expectOk(
        await uploadAudio({ baseUrl: service.url, user, audio: fileWav(shortWav, sizes.shortSeconds) }),
        'warm-up',
      );
      if (selected(1) || selected(2) || selected(7)) await uploadsVersusBareFfmpeg(service, user, longWav);
      if ([4, 5, CPU_SPLIT_ROW].some(selected)) await concurrentUploads(service, user, shortWav);
      if (selected(6)) await createUsersUnderLoad(service);
      if (selected(7)) await downloadsUnderLoad(service);
      // The smoke run saves start-ups (seconds with PGlite); the full run measures 3, 9–21, 23 and 24–26 on
      // fresh processes (24–26 with this one as the local driver here).
      if (smoke) {
        if (selected(3)) await bigUpload(service, user, shortWav);
        await kindRows(service, user);
        if (bigFlac !== undefined) await bigFlacUpload(service, user, shortFlac, bigFlac);
        if (S3_ROWS.some(selected)) await objectStorage({ service, user }, longWav, shortWav);
      }
    });
  }
  if (selected(3) && !smoke) {
    await withService('memory', {}, async (service) => {
      await bigUpload(service, await createUser(service.url, tag), shortWav);
    });
  }
  if (KIND_ROWS.some(selected) && !smoke) {
    await withService('formats', {}, async (service) => {
      const user = await createUser(service.url, tag);
      expectOk(
        await uploadAudio({
          baseUrl: service.url,
          user,
          audio: fileAudio(shortFlac.file.path, shortFlac.file.bytes),
          filename: 'warm-up.flac',
        }),
        'warm-up',
      );
      await kindRows(service, user);
    });
  }
  if (bigFlac !== undefined && !smoke) {
    await withService('memory-flac', {}, async (service) => {
      const user = await createUser(service.url, tag);
      expectOk(
        await uploadAudio({ baseUrl: service.url, user, audio: fileWav(shortWav, sizes.shortSeconds) }),
        'warm-up',
      );
      await bigFlacUpload(service, user, shortFlac, bigFlac);
    });
  }
  if (S3_ROWS.some(selected) && !smoke) {
    await withService('local', {}, async (service) => {
      await objectStorage(await warmedTarget(service, shortWav), longWav, shortWav);
    });
  }
  if (selected(8)) {
    await withService('overload', OVERLOAD_ENV, async (service) => {
      await overload(service, await createUser(service.url, tag), shortWav);
    });
  }
  // With no service running: its CPU time is read from the children this process reaps.
  if (selected(PEAKS_ROW)) await peaksCost(settings, longWav);
  if (selected(WEB_ROW)) await webAppWeight();
  if (selected(DATABASES_ROW)) await databaseFootprints(shortWav);
  const presetLines = presets && only === undefined ? await encoderPresets(settings, longWav) : [];
  const profileLines =
    profile && only === undefined
      ? await profileCreateUsers().catch((error: unknown) => [`(the profile run failed: ${String(error)})`])
      : [];
  closeKeepAlive();
  info['load'] = load.stop();

  const lines = table();
  process.stdout.write(`\n${lines.join('\n')}\n\n`);
  if (presetLines.length > 0) process.stdout.write(`${presetLines.join('\n')}\n\n`);
  await writeReport(info, settings, kinds, presetLines, profileLines, performance.now() - started);
  log(`wrote ${relative(process.cwd(), outPath)} in ${s(performance.now() - started)}`);
}

main().catch((error: unknown) => {
  closeKeepAlive();
  console.error(error);
  process.exitCode = 1;
});
