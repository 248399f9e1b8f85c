import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterAll, describe, expect, it } from 'vitest';
import { LauncherLost, ProcessLauncher, type LaunchRequest } from '../src/media/launcher.js';

const ENV = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

/** `script` run by sh with `args` as $1…, with pipes as asked. */
const shell = (script: string, options: Partial<LaunchRequest> & { args?: string[] } = {}): LaunchRequest => ({
  command: '/bin/sh',
  env: ENV,
  stdin: false,
  fd3: false,
  niceness: 0,
  ...options,
  args: ['-c', script, 'sh', ...(options.args ?? [])],
});

/** The `stat` fields of a process after its command name: state, ppid, …, or undefined once it is gone. */
async function statOf(pid: number): Promise<string[] | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ');
}

async function isRunning(pid: number): Promise<boolean> {
  const state = (await statOf(pid))?.[0];
  return state !== undefined && state !== 'Z';
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function bytesOf(stream: Readable | undefined): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream ?? []) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('ProcessLauncher', () => {
  const launcher = new ProcessLauncher();
  afterAll(() => launcher.close());

  it('passes stdin through the program to fd 3 byte for byte, and reports its exit code and stderr', async () => {
    const input = randomBytes(3 * 1024 * 1024 + 17);
    const program = await launcher.launch(shell('cat >&3; echo finished >&2; exit 7', { stdin: true, fd3: true }));
    const [output, stderr, end] = await Promise.all([
      bytesOf(program.fd3),
      text(program.stderr),
      program.closed,
      new Promise<void>((resolve, reject) => program.stdin?.end(input, () => resolve()).once('error', reject)),
    ]);
    expect(sha256(output)).toBe(sha256(input));
    expect(stderr).toBe('finished\n');
    expect(end).toEqual({ code: 7, signal: null });
  });

  it('loses no byte a program writes the moment it starts, on any of many launched at once', async () => {
    // Without input, a program can write before the server holds its pipes; the launcher must not have
    // read any of it on its side of the pipe.
    const expected = Array.from({ length: 20_000 }, (_, i) => `${i + 1}\n`).join('');
    const runs = await Promise.all(
      Array.from({ length: 12 }, async () => {
        const program = await launcher.launch(shell('seq 1 20000 >&3; seq 1 20000 >&2', { fd3: true }));
        const [output, stderr] = await Promise.all([bytesOf(program.fd3), text(program.stderr), program.closed]);
        return { output: output.toString(), stderr };
      }),
    );
    for (const { output, stderr } of runs) {
      expect(output).toBe(expected);
      expect(stderr).toBe(expected);
    }
  });

  it('survives a program that exits with its input unread after the server has finished writing it', async () => {
    // The bytes fit in the pipe's buffer, so the write completes; the program never reads them and exits.
    const program = await launcher.launch(shell('sleep 0.3', { stdin: true }));
    let failed: ((error: Error) => void) | undefined;
    await new Promise<void>((resolve, reject) => {
      failed = reject;
      program.stdin?.once('error', failed);
      program.stdin?.end(randomBytes(32 * 1024), () => resolve());
    });
    if (failed !== undefined) program.stdin?.off('error', failed);
    expect(await program.closed).toEqual({ code: 0, signal: null });
    // Its end of the pipe is reset now, with no writer left to be told: that must not be thrown.
    await new Promise((resolve) => setTimeout(resolve, 300));
  });

  it('gives the program nothing but its arguments as given: no word of them reaches a shell as code', async () => {
    const marker = join(await mkdtemp(join(tmpdir(), 'launcher-')), 'pwned');
    const hostile = [`$(touch ${marker})`, `\`touch ${marker}\``, `; touch ${marker}`, '\' " \\', '*', '-c'];
    const program = await launcher.launch(shell('printf "%s\\n" "$@" >&2', { args: hostile }));
    const [stderr, end] = await Promise.all([text(program.stderr), program.closed]);
    expect(stderr).toBe(hostile.map((word) => `${word}\n`).join(''));
    expect(end).toEqual({ code: 0, signal: null });
    await expect(readFile(marker)).rejects.toThrow();
  });

  it('gives the program only the environment it was given, and its niceness, with its own pid', async () => {
    const program = await launcher.launch(
      shell('env >&2; echo "pid $$" >&2; cat', { env: { ...ENV, ONLY_THIS: 'yes' }, niceness: 7, stdin: true }),
    );
    // The pid is the program's from the start: the held sh execs it. It runs until its input ends.
    const nice = (await statOf(program.pid))?.[16];
    program.stdin?.end();
    const [stderr] = await Promise.all([text(program.stderr), program.closed]);
    const lines = stderr.trim().split('\n');
    expect(lines).toContain(`pid ${program.pid}`);
    expect(lines.filter((line) => line.includes('=')).sort()).toEqual(
      [`ONLY_THIS=yes`, `PATH=${ENV.PATH}`, expect.stringMatching(/^PWD=/)].sort(),
    );
    // Raising one's own niceness is always permitted.
    expect(nice).toBe('7');
  });

  it('reports a program that cannot be run, missing or not executable, with exit 127 and a message of its own', async () => {
    const notExecutable = join(await mkdtemp(join(tmpdir(), 'launcher-')), 'ffmpeg');
    await writeFile(notExecutable, '#!/bin/sh\n', { mode: 0o644 });
    for (const command of ['/nonexistent/ffmpeg', notExecutable, 'no-such-program-anywhere']) {
      const program = await launcher.launch({ ...shell(''), command, args: ['-version'] });
      const [stderr, end] = await Promise.all([text(program.stderr), program.closed]);
      expect(end.code).toBe(127);
      expect(stderr).toBe(`launcher: cannot execute ${command}\n`);
    }
  });

  it('stops a start when asked before it completes, and keeps working', async () => {
    await expect(launcher.launch(shell('exec sleep 30', { stdin: true }), AbortSignal.abort())).rejects.toThrow(
      /stopped before it completed/,
    );
    // Asked while the launcher is starting it: the held program is killed, not left waiting for its go.
    const stopping = new AbortController();
    const held = launcher.launch(shell('exec sleep 30', { stdin: true, fd3: true }), stopping.signal);
    stopping.abort();
    await expect(held).rejects.toThrow(/stopped before it completed/);
    const next = await launcher.launch(shell('echo still here >&2'));
    expect(await text(next.stderr)).toBe('still here\n');
  });

  it('kills a program on request, and its end says so', async () => {
    const program = await launcher.launch(shell('exec sleep 30', { stdin: true }));
    expect(await isRunning(program.pid)).toBe(true);
    program.kill();
    expect(await program.closed).toEqual({ code: null, signal: 'SIGKILL' });
    expect(await isRunning(program.pid)).toBe(false);
    // Killing again, once ended, does nothing.
    program.kill();
  });

  it('when the launcher dies, fails its running programs, cuts their pipes, and starts a new one next time', async () => {
    const program = await launcher.launch(shell('cat >&3', { stdin: true, fd3: true }));
    program.fd3?.resume();
    const launcherPid = Number((await statOf(program.pid))?.[1]);
    expect(launcherPid).not.toBe(process.pid);
    process.kill(launcherPid, 'SIGKILL');
    await expect(program.closed).rejects.toBeInstanceOf(LauncherLost);
    // cat read the end of its input when the server's end of the pipe closed.
    await expect.poll(() => isRunning(program.pid), { timeout: 10_000 }).toBe(false);

    const next = await launcher.launch(shell('echo again >&2'));
    expect(Number((await statOf(next.pid))?.[1])).not.toBe(launcherPid);
    expect(await text(next.stderr)).toBe('again\n');
  });

  it('on close, stops what it started and exits', async () => {
    const own = new ProcessLauncher();
    const program = await own.launch(shell('exec sleep 30', { stdin: true }));
    const launcherPid = Number((await statOf(program.pid))?.[1]);
    own.close();
    await expect.poll(() => isRunning(program.pid), { timeout: 10_000 }).toBe(false);
    await expect.poll(() => isRunning(launcherPid), { timeout: 10_000 }).toBe(false);
  });
});
