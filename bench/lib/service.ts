import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../src/config.js';
import { freePort, untilAnswering } from '../../test/kit/http.js';
import { max, sleep } from '../../test/kit/stats.js';

export const REPO_ROOT = join(import.meta.dirname, '..', '..');

/** `npm run build`, as a user would before `npm start`. */
export function buildService(): void {
  const result = spawnSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.status !== 0) throw new Error(`npm run build failed with ${result.status}`);
}

// Passed through from the bench's environment so that a preset can be measured with e.g.
// `MP3_COMPRESSION_LEVEL=7 npm run bench`.
const PASSED_THROUGH = [
  'DATABASE_URL',
  'FFMPEG_PATH',
  'MP3_VBR_QUALITY',
  'MP3_BITRATE_KBPS',
  'MP3_COMPRESSION_LEVEL',
  'CONVERT_CONCURRENCY',
];

/** The service's environment: the bench's pass-through variables, then `overrides`. */
function serviceEnvironment(overrides: Record<string, string>): Record<string, string> {
  const environment: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/tmp',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    ...Object.fromEntries(PASSED_THROUGH.flatMap((name) => (process.env[name] ? [[name, process.env[name]]] : []))),
    ...overrides,
  };
  // An empty override unsets a passed-through variable (DATABASE_URL: '' runs the service on PGlite).
  return Object.fromEntries(Object.entries(environment).filter(([, value]) => value !== ''));
}

/** The configuration the service will derive from that environment (the same validation, from src/config.ts). */
export function serviceConfig(overrides: Record<string, string>): Config {
  return loadConfig(serviceEnvironment(overrides));
}

export interface Service {
  readonly url: string;
  readonly pid: number;
  readonly config: Config;
  readonly env: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * Node's flags in `npm start` (`node <flags> dist/main.js`), so that the bench measures the service as it
 * is started: the young generation's size there is part of its memory footprint.
 */
function startScriptNodeArgs(): string[] {
  const scripts = (
    JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  ).scripts;
  const match = /^node((?: --[\w-]+(?:=\S+)?)*) dist\/main\.js$/.exec(scripts['start'] ?? '');
  if (match === null) throw new Error(`npm start is not "node [flags] dist/main.js": ${scripts['start']}`);
  return (match[1] ?? '').split(' ').filter((word) => word !== '');
}

/** Starts `node dist/main.js` (with npm start's flags), with its own data directory, and waits until /ready answers. */
export async function startService(options: {
  dataDir: string;
  logPath: string;
  env?: Record<string, string>;
  /** Node flags before the script, e.g. --cpu-prof (not allowed in NODE_OPTIONS). */
  nodeArgs?: string[];
}): Promise<Service> {
  const env = serviceEnvironment({ ...options.env, PORT: String(await freePort()), DATA_DIR: options.dataDir });
  const config = loadConfig(env);
  const port = config.port;
  const log = createWriteStream(options.logPath, { flags: 'a' });
  const child: ChildProcess = spawn(
    process.execPath,
    [...startScriptNodeArgs(), ...(options.nodeArgs ?? []), 'dist/main.js'],
    {
      cwd: REPO_ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  if (child.pid === undefined) throw new Error('could not start node dist/main.js');
  const url = `http://127.0.0.1:${port}`;

  const ready = await untilAnswering(`${url}/ready`, 120_000, () => hasExited);
  if (ready === 'gone') throw new Error(`the service exited during start-up; see ${options.logPath}`);
  if (ready === 'timeout') {
    child.kill('SIGKILL');
    throw new Error(`the service was not ready within 120 s; see ${options.logPath}`);
  }

  return {
    url,
    pid: child.pid,
    config,
    env,
    stop: async () => {
      if (!hasExited) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 40_000);
        await exited;
        clearTimeout(timer);
      }
      log.end();
    },
  };
}

export interface MemoryStatus {
  /** Resident set size now, KiB. */
  readonly rssKiB: number;
  /** Peak resident set size since start or the last reset, KiB. */
  readonly hwmKiB: number;
  /** The anonymous part of the resident set (not file pages such as the node binary's, which are shared), KiB. */
  readonly anonKiB: number;
}

/** VmRSS and VmHWM of one process: children (the encoders) are separate processes and not counted. */
export async function memoryOf(pid: number): Promise<MemoryStatus> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rssKiB: field('VmRSS'), hwmKiB: field('VmHWM'), anonKiB: field('RssAnon') };
}

/** Resets VmHWM to the current RSS (Linux `clear_refs` 5); false where not permitted. */
export async function resetPeak(pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/**
 * Samples VmRSS every `intervalMs` until stopped. The peak is the larger of the samples and VmHWM when
 * `peakWasReset` (VmHWM then covers exactly this window, between samples too).
 */
export function startMemorySampler(pid: number, peakWasReset: boolean, intervalMs = 50) {
  const samples: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const status = await memoryOf(pid).catch(() => undefined);
      if (status !== undefined) samples.push(status.rssKiB);
      await sleep(intervalMs);
    }
  })();
  return {
    async stop(): Promise<{ peakKiB: number; samples: number }> {
      running = false;
      await loop;
      const final = await memoryOf(pid);
      const peakKiB = Math.max(max(samples), final.rssKiB, peakWasReset ? final.hwmKiB : 0);
      return { peakKiB, samples: samples.length };
    },
  };
}
