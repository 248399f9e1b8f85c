import { execFileSync, spawnSync } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';

/**
 * A stand-in for ffmpeg (give its `path` as FFMPEG_PATH) that records every command line the service runs
 * and then runs the real ffmpeg; while tracing is on (and the machine has strace), under strace, recording
 * every file ffmpeg (or anything it starts) opens or tries to open.
 */
export interface FfmpegSpy {
  readonly path: string;
  /** Turns tracing on or off for the runs that start from now on (off at first: it costs ~70 ms a run). */
  trace(on: boolean): Promise<void>;
  /** The ids of every run so far, oldest first. */
  ids(): Promise<string[]>;
  /** The runs so far, oldest first, but for those in `except`. */
  runs(except?: Iterable<string>): Promise<FfmpegRun[]>;
  cleanup(): Promise<void>;
}

export interface FfmpegRun {
  readonly id: string;
  readonly args: readonly string[];
  /** Paths opened or tried, in order; undefined when the run was not traced. */
  readonly opened: readonly string[] | undefined;
}

/** Whether strace can trace here (it is installed, and ptrace is allowed), with the flags the spy uses. */
export const canTrace =
  spawnSync('strace', ['-f', '-qq', '--seccomp-bpf', '-e', 'trace=openat', '-o', '/dev/null', 'true']).status === 0;

export async function ffmpegSpy(ffmpeg = process.env.FFMPEG_PATH ?? 'ffmpeg'): Promise<FfmpegSpy> {
  const directory = await mkdtemp(join(tmpdir(), 'ffmpeg-spy-'));
  const real = execFileSync('sh', ['-c', 'command -v "$0"', ffmpeg]).toString().trim();
  const path = join(directory, 'ffmpeg');
  const flag = join(directory, 'trace');
  await writeFile(
    path,
    [
      '#!/bin/sh',
      '# Written by the tests (test/kit/ffmpeg-spy.ts): records how ffmpeg is run, then runs the real one.',
      `run="${directory}/run-$(date +%s%N)-$$"`,
      `for arg in "$@"; do printf '%s\\n' "$arg"; done > "$run.args"`,
      `if [ -e '${flag}' ]; then`,
      `  exec strace -f -qq --seccomp-bpf -e trace=open,openat,openat2,creat -o "$run.opened" '${real}' "$@"`,
      'fi',
      `exec '${real}' "$@"`,
      '',
    ].join('\n'),
  );
  await chmod(path, 0o755);
  const ids = async () =>
    (await readdir(directory))
      .filter((name) => name.endsWith('.args'))
      .map((name) => name.slice(0, -'.args'.length))
      .sort();
  return {
    path,
    trace: async (on) => {
      if (on && canTrace) await writeFile(flag, '');
      else await rm(flag, { force: true });
    },
    ids,
    runs: async (except = []) => {
      const known = new Set(except);
      return Promise.all(
        (await ids())
          .filter((id) => !known.has(id))
          .map(async (id): Promise<FfmpegRun> => {
            const args = (await readFile(join(directory, `${id}.args`), 'utf8')).split('\n').slice(0, -1);
            const trace = await readFile(join(directory, `${id}.opened`), 'utf8').catch(() => undefined);
            return { id, args, opened: trace === undefined ? undefined : openedPaths(trace) };
          }),
      );
    },
    cleanup: () => rm(directory, { recursive: true, force: true }),
  };
}

/**
 * The paths in strace lines such as `123 openat(AT_FDCWD, "/lib/x.so", O_RDONLY) = 3`; absolute ones
 * normalized (`file:///tmp/x` is opened as "///tmp/x", and `/usr/../tmp/x` is /tmp/x).
 */
function openedPaths(trace: string): string[] {
  return [...trace.matchAll(/\b(?:openat2?|open|creat)\((?:[^,"()]*, )?"((?:[^"\\]|\\.)*)"/g)].map((match) => {
    const path = match[1] ?? '';
    return path.startsWith('/') ? posix.normalize(path) : path;
  });
}
