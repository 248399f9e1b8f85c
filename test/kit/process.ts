import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { untilAnswering } from './http.js';

/** The repository root: the service is started from there, as `npm start` would. */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ChildService {
  readonly child: ChildProcess;
  readonly pid: number;
  /** e.g. http://127.0.0.1:41234 */
  readonly url: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves when the output matches `pattern` (already or later). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** Resolves with the exit status once the process has ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface ChildServiceOptions {
  readonly dataDir: string;
  readonly databaseUrl?: string | undefined;
  readonly env?: Record<string, string>;
  /** A fixed port, e.g. to restart on the same address; 0 (any free port) by default. */
  readonly port?: number;
}

/**
 * Starts `src/main.ts` as a real process (through tsx), in its own process group so that a test can
 * kill it, and any ffmpeg it started, like an operator or the OOM killer would.
 */
export async function spawnService(options: ChildServiceOptions): Promise<ChildService> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LOG_LEVEL: 'info',
    CONVERT_CONCURRENCY: '2',
    ...options.env,
    DATA_DIR: options.dataDir,
    HOST: '127.0.0.1',
    PORT: String(options.port ?? 0),
  };
  if (options.databaseUrl !== undefined) env.DATABASE_URL = options.databaseUrl;
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let text = '';
  const waiters = new Set<() => void>();
  const onOutput = (chunk: Buffer) => {
    // The last 4 MiB are plenty for the start-up lines and recent events of a long run.
    text = (text + chunk.toString()).slice(-4 * 1024 * 1024);
    for (const waiter of waiters) waiter();
  };
  child.stdout.on('data', onOutput);
  child.stderr.on('data', onOutput);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      for (const waiter of waiters) waiter();
      resolve({ code, signal });
    });
  });

  const waitFor = (pattern: RegExp, timeoutMs = 30_000) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (pattern.test(text)) {
          done();
          resolve();
        } else if (child.exitCode !== null || child.signalCode !== null) {
          done();
          reject(new Error(`service exited before ${String(pattern)}:\n${text.slice(-3000)}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for ${String(pattern)}:\n${text.slice(-3000)}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });

  let port: string | undefined;
  if (options.port === undefined || options.port === 0) {
    await waitFor(/Server listening at http:\/\/127\.0\.0\.1:\d+/, 60_000);
    port = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(text)?.[1];
  } else {
    // A fixed port (and perhaps a log level that does not say "listening"): ask until it answers.
    port = String(options.port);
    const started = await untilAnswering(`http://127.0.0.1:${port}/health`, 60_000, () => child.exitCode !== null);
    if (started !== 'ok') throw new Error(`service did not start (${started}):\n${text}`);
  }
  if (child.pid === undefined || port === undefined) throw new Error('service did not start');
  return { child, pid: child.pid, url: `http://127.0.0.1:${port}`, output: () => text, waitFor, exited };
}

/** SIGKILLs the service's whole process group (node and any ffmpeg) and waits for node to be gone. */
export async function killHard(service: ChildService): Promise<void> {
  try {
    process.kill(-service.pid, 'SIGKILL');
  } catch {
    // already gone
  }
  await service.exited;
}

/**
 * Ids of the ffmpeg processes that `pid` started, through the launcher process it starts them from
 * (src/media/launcher.ts) or itself; with `conversionsOnly`, only those converting an upload (reading
 * stdin), not a version check.
 */
export async function ffmpegDescendants(pid: number, options: { conversionsOnly?: boolean } = {}): Promise<number[]> {
  const found: number[] = [];
  const parents = [pid];
  for (let depth = 0; depth < 2; depth++) {
    const next: number[] = [];
    for (const parent of parents.splice(0)) {
      for (const child of await childrenOf(parent)) {
        try {
          // pid (comm) state ppid …
          const match = /^\d+ \((.*)\) \S+ (\d+)/.exec(await readFile(`/proc/${child}/stat`, 'utf8'));
          if (Number(match?.[2]) !== parent) continue;
          if (match?.[1] !== 'ffmpeg') {
            next.push(child);
            continue;
          }
          const cmdline = (await readFile(`/proc/${child}/cmdline`, 'utf8')).split('\0');
          if (!options.conversionsOnly || cmdline.includes('pipe:0')) found.push(child);
        } catch {
          // the process ended meanwhile
        }
      }
    }
    parents.push(...next);
  }
  return found;
}

/** Candidate child processes: from /proc/<pid>/task/<tid>/children where the kernel has it, else every process. */
async function childrenOf(pid: number): Promise<number[]> {
  try {
    const children: number[] = [];
    for (const task of await readdir(`/proc/${pid}/task`)) {
      const listed = await readFile(`/proc/${pid}/task/${task}/children`, 'utf8');
      children.push(
        ...listed
          .split(' ')
          .filter((entry) => entry !== '')
          .map(Number),
      );
    }
    return children;
  } catch {
    return (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry)).map(Number);
  }
}

/** Resident set size of a process in bytes, from /proc. */
export async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  return kb === undefined ? 0 : Number(kb) * 1024;
}

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Runs `src/check-storage.ts` as the CLI would run (with `env`, e.g. the service's storage settings), and
 * returns its exit status and output.
 */
export async function runCheckStorage(
  options: { dataDir: string; databaseUrl?: string | undefined; env?: Record<string, string> },
  args: string[] = [],
): Promise<ToolResult> {
  return runTool('src/check-storage.ts', options, args);
}

/** Runs `src/migrate-storage.ts` as the CLI would run, with extra environment (the S3 settings). */
export async function runMigrateStorage(
  options: { dataDir: string; databaseUrl?: string | undefined; env?: Record<string, string> },
  args: string[],
): Promise<ToolResult> {
  return runTool('src/migrate-storage.ts', options, args);
}

interface ToolResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

async function runTool(
  script: string,
  options: { dataDir: string; databaseUrl?: string | undefined; env?: Record<string, string> },
  args: string[],
): Promise<ToolResult> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    ...options.env,
    DATA_DIR: options.dataDir,
  };
  if (options.databaseUrl !== undefined) env.DATABASE_URL = options.databaseUrl;
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (status) => resolve(status)));
  return { code, stdout, stderr };
}
