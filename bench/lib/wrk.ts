import { spawn } from 'node:child_process';
import { chmod, copyFile, link, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { findNginx } from '../../test/kit/nginx.js';
import { freePort, untilAnswering } from '../../test/kit/http.js';

/**
 * Downloads measured with wrk, a C client (a Node client saturates a core before the server does), against
 * nginx serving the same file with sendfile in the same run: what the machine can do without the service.
 */

export interface StaticNginx {
  /** The file's URL on nginx. */
  readonly fileUrl: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/**
 * Starts nginx (one worker: the service is one process too) serving `file` alone, with sendfile, on a free
 * loopback port, in a folder of its own. The file is hard-linked there (copied across file systems): run as
 * root, nginx's workers run as nobody and could not enter the service's private data folder.
 */
export async function startStaticNginx(file: string): Promise<StaticNginx> {
  const binary = findNginx();
  if (binary === undefined)
    throw new Error('nginx is not installed (apt-get install nginx-light; .ci/run installs it)');
  const directory = await mkdtemp(join(tmpdir(), 'bench-nginx-'));
  await chmod(directory, 0o755);
  const served = join(directory, 'www');
  await mkdir(served, { mode: 0o755 });
  const name = basename(file);
  await link(file, join(served, name)).catch(() => copyFile(file, join(served, name)));
  await chmod(join(served, name), 0o644);
  const port = await freePort();
  const errorLog = join(directory, 'error.log');
  const config = join(directory, 'nginx.conf');
  await writeFile(
    config,
    [
      'worker_processes 1;',
      `error_log ${errorLog} warn;`,
      'events { worker_connections 1024; }',
      'http {',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(
        (kind) => `  ${kind}_temp_path ${join(directory, `${kind}_temp`)};`,
      ),
      '  access_log off;',
      '  sendfile on;',
      '  tcp_nopush on;',
      '  keepalive_requests 1000000;',
      '  types { audio/mpeg mp3; }',
      '  default_type application/octet-stream;',
      `  server { listen 127.0.0.1:${port}; root ${served}; }`,
      '}',
      '',
    ].join('\n'),
  );
  const child = spawn(
    binary,
    ['-p', directory, '-c', config, '-e', errorLog, '-g', `daemon off; pid ${join(directory, 'nginx.pid')};`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const fileUrl = `http://127.0.0.1:${port}/${name}`;
  const started = await untilAnswering(fileUrl, 30_000, () => child.exitCode !== null);
  if (started !== 'ok' || child.pid === undefined) {
    child.kill('SIGKILL');
    const log = await readFile(errorLog, 'utf8').catch(() => '');
    throw new Error(`nginx did not start (${started}):\n${output}\n${log}`);
  }
  return {
    fileUrl,
    pid: child.pid,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      await rm(directory, { recursive: true, force: true });
    },
  };
}

export interface WrkResult {
  readonly requests: number;
  readonly bytes: number;
  readonly seconds: number;
  readonly requestsPerSecond: number;
  readonly mbPerSecond: number;
  /** Socket errors and timeouts. */
  readonly errors: number;
  /** Answers outside 2xx/3xx. */
  readonly badStatuses: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/**
 * The script's `done` prints one line the bench parses, rather than wrk's rounded human summary. With
 * `rangeBytes`, every request asks for that many bytes at a random place of a `sizeBytes` file (a player
 * seeking); wrk's Lua runs per thread, so each thread seeds its own generator.
 */
function luaScript(range: { readonly sizeBytes: number; readonly rangeBytes: number } | undefined): string {
  const rangePart =
    range === undefined
      ? []
      : [
          'local thread_index = 0',
          'function setup(thread) thread_index = thread_index + 1; thread:set("seed", thread_index) end',
          `function init() math.randomseed(os.time() * 1000 + (seed or 0)) end`,
          'function request()',
          `  local first = math.random(0, ${Math.max(0, range.sizeBytes - range.rangeBytes)})`,
          `  local last = first + ${range.rangeBytes - 1}`,
          '  return wrk.format(nil, nil, { Range = "bytes=" .. first .. "-" .. last })',
          'end',
        ];
  return [
    ...rangePart,
    'function done(summary, latency, requests)',
    '  local e = summary.errors',
    '  io.write(string.format("WRK_RESULT %d %d %d %d %d\\n", summary.requests, summary.bytes, summary.duration,',
    '    e.connect + e.read + e.write + e.timeout, e.status))',
    '  io.write(string.format("WRK_LATENCY %d %d\\n", latency:percentile(50), latency:percentile(99)))',
    'end',
    '',
  ].join('\n');
}

/** Runs wrk (2 threads) against `url` and reads the script's summary line. */
export async function runWrk(options: {
  readonly url: string;
  readonly connections: number;
  readonly seconds: number;
  readonly range?: { readonly sizeBytes: number; readonly rangeBytes: number };
}): Promise<WrkResult> {
  const directory = await mkdtemp(join(tmpdir(), 'bench-wrk-'));
  try {
    const script = join(directory, 'script.lua');
    await writeFile(script, luaScript(options.range));
    const output = await runQuietly('wrk', [
      '-t2',
      `-c${options.connections}`,
      `-d${options.seconds}s`,
      '--timeout',
      '10s',
      '-s',
      script,
      options.url,
    ]);
    const result = /^WRK_RESULT (\d+) (\d+) (\d+) (\d+) (\d+)$/m.exec(output);
    const latency = /^WRK_LATENCY (\d+) (\d+)$/m.exec(output);
    if (result === null || latency === null) throw new Error(`unexpected wrk output:\n${output}`);
    const [requests, bytes, microseconds, errors, badStatuses] = result.slice(1).map(Number) as [
      number,
      number,
      number,
      number,
      number,
    ];
    const seconds = microseconds / 1e6;
    return {
      requests,
      bytes,
      seconds,
      requestsPerSecond: requests / seconds,
      mbPerSecond: bytes / 1e6 / seconds,
      errors,
      badStatuses,
      p50Ms: Number(latency[1]) / 1000,
      p99Ms: Number(latency[2]) / 1000,
    };
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

/** Runs a program to its end and resolves with its standard output; rejects on a non-zero exit. */
function runQuietly(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolve(stdout) : reject(new Error(`${command} exited with ${code}: ${stderr}${stdout}`)),
    );
  });
}
