import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessLauncher } from '../src/media/launcher.js';
import { Unavailable } from '../src/domain/errors.js';
import { Transcoder } from '../src/media/transcoder.js';

/** Whether a process is still running (a zombie not yet reaped counts as gone: it uses no core). */
async function isRunning(pid: number): Promise<boolean> {
  const status = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return status !== '' && !/^\d+ \(.*\) Z /.test(status);
}

describe('Transcoder', () => {
  let directory: string;
  const launcher = new ProcessLauncher();
  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'transcoder-'));
  });
  afterAll(async () => {
    launcher.close();
    await rm(directory, { recursive: true, force: true });
  });

  it('stops and awaits ffmpeg when its peaks output is not a WAV, so that its core is not given back early', async () => {
    // Stands in for an ffmpeg gone wrong: garbage on the peaks pipe, then it keeps working.
    const ffmpeg = join(directory, 'ffmpeg');
    const pidFile = join(directory, 'pid');
    await writeFile(
      ffmpeg,
      [
        '#!/bin/sh',
        `echo $$ > '${pidFile}'`,
        "printf 'not a WAV header at all, not even close' >&3",
        'exec sleep 30',
        '',
      ].join('\n'),
    );
    await chmod(ffmpeg, 0o755);
    const transcoder = new Transcoder({
      ffmpegPath: ffmpeg,
      timeoutMs: 60_000,
      maxMemoryBytes: 0,
      prlimitPath: undefined,
      launcher,
    });
    const started = Date.now();
    await expect(
      transcoder.run(undefined, {
        input: { kind: 'file', demuxer: 'mov', path: '/dev/null' },
        output: undefined,
        peaks: true,
      }),
    ).rejects.toThrow();
    const pid = Number(await readFile(pidFile, 'utf8'));
    expect(await isRunning(pid)).toBe(false);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('answers Unavailable when ffmpeg is missing, with or without prlimit in front of it', async () => {
    for (const prlimitPath of [undefined, '/usr/bin/prlimit']) {
      const transcoder = new Transcoder({
        ffmpegPath: join(directory, 'no-such-ffmpeg'),
        timeoutMs: 60_000,
        maxMemoryBytes: 1024 ** 3,
        prlimitPath,
        launcher,
      });
      await expect(
        transcoder.run(undefined, {
          input: { kind: 'file', demuxer: 'mov', path: '/dev/null' },
          output: undefined,
          peaks: true,
        }),
      ).rejects.toBeInstanceOf(Unavailable);
    }
  });
});
