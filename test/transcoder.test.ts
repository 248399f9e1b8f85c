import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessLauncher } from '../src/media/launcher.js';
import { Unavailable } from '../src/domain/errors.js';
import { findExecutable } from '../src/media/ffmpeg-check.js';
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
    const prlimit = findExecutable('prlimit');
    expect(prlimit, 'prlimit (util-linux) is on this machine').toBeDefined();
    for (const prlimitPath of [undefined, prlimit]) {
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

  /** Raw 16-bit mono samples at 8 kHz: `seconds` of a quiet tone, in 4 KiB chunks `gapMs` apart. */
  async function* tone(seconds: number, gapMs: number, failAfterBytes?: number): AsyncGenerator<Buffer> {
    const samples = Buffer.alloc(seconds * RATE * 2);
    for (let i = 0; i < seconds * RATE; i++) samples.writeInt16LE(Math.round(3000 * Math.sin(i / 5)), i * 2);
    for (let offset = 0; offset < samples.length; offset += 4096) {
      if (failAfterBytes !== undefined && offset >= failAfterBytes) {
        // What a client's reset looks like to the service: the upload's own stream fails with ECONNRESET.
        throw Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
      }
      yield samples.subarray(offset, offset + 4096);
      await new Promise((resolve) => setTimeout(resolve, gapMs));
    }
  }
  const RATE = 8000;
  const rawJob = (maxDurationSeconds?: number) => ({
    input: { kind: 'raw' as const, sampleFormat: 's16le' as const, sampleRate: RATE, channels: 1 },
    output: ['-c:a', 'libmp3lame', '-f', 'mp3'],
    peaks: true,
    maxDurationSeconds,
  });
  const realTranscoder = () =>
    new Transcoder({ ffmpegPath: 'ffmpeg', timeoutMs: 60_000, maxMemoryBytes: 0, prlimitPath: undefined, launcher });

  it("fails with the input's own error when the upload is reset partway, never with half a file", async () => {
    await expect(
      realTranscoder().run(Readable.from(tone(4, 1, 24 * 1024)), rawJob(), join(directory, 'reset.mp3')),
    ).rejects.toThrow('aborted');
  });

  it('converts up to the time limit while the rest of a slow upload is still arriving', async () => {
    // ffmpeg stops reading at 1 s and exits; the writes after that fail on a pipe whose reader is gone.
    const result = await realTranscoder().run(Readable.from(tone(6, 10)), rawJob(1), join(directory, 'limit.mp3'));
    expect(result.decodedSeconds).toBeCloseTo(1, 1);
  });
});
