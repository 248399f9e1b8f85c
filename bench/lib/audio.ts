import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { setPriority } from 'node:os';
import { Readable } from 'node:stream';
import type { EncodingConfig } from '../../src/config.js';
import { mp3Output, type AudioShape } from '../../src/media/outputs.js';
import { ENCODER_NICENESS, ffmpegArguments } from '../../src/media/transcoder.js';
import { now } from '../../test/kit/stats.js';

const SAMPLE_RATE = 44_100;
const CHANNELS = 2;
export const BYTES_PER_SECOND = SAMPLE_RATE * CHANNELS * 2;
const HEADER_BYTES = 44;

/** What every benchmark WAV converts to: 44.1 kHz stereo in, 44.1 kHz stereo MP3 out. */
const TARGET: AudioShape = { sampleRate: SAMPLE_RATE, channels: CHANNELS };

export function wavBytesFor(seconds: number): number {
  return HEADER_BYTES + Math.round(seconds * SAMPLE_RATE) * CHANNELS * 2;
}

/**
 * Writes a 16-bit 44.1 kHz stereo WAV of pink noise under a tone: noise keeps LAME busy the way music
 * does (a pure sine encodes unrealistically fast). Reuses the file when one of the right size exists.
 */
export async function generateWav(ffmpegPath: string, path: string, seconds: number, seed = 1): Promise<void> {
  const expected = wavBytesFor(seconds);
  const existing = await stat(path).catch(() => undefined);
  if (existing?.size === expected) return;
  const graph =
    `anoisesrc=c=pink:a=0.12:r=${SAMPLE_RATE}:seed=${seed}:d=${seconds}[n1];` +
    `anoisesrc=c=pink:a=0.12:r=${SAMPLE_RATE}:seed=${seed + 1}:d=${seconds}[n2];` +
    `[n1][n2]amerge=inputs=2[n];` +
    `sine=f=220:r=${SAMPLE_RATE}:d=${seconds},volume=0.3,pan=stereo|c0=c0|c1=c0[t];` +
    `[n][t]amix=inputs=2:normalize=0[out]`;
  await runProcess(ffmpegPath, [
    '-y',
    '-hide_banner',
    '-loglevel',
    'error',
    '-filter_complex',
    graph,
    '-map',
    '[out]',
    '-c:a',
    'pcm_s16le',
    '-ar',
    String(SAMPLE_RATE),
    '-ac',
    String(CHANNELS),
    // Exact length, and a plain 44-byte header so that the size is predictable.
    '-bitexact',
    '-map_metadata',
    '-1',
    '-f',
    'wav',
    path,
  ]);
  const made = await stat(path);
  if (made.size !== expected) throw new Error(`${path}: expected ${expected} bytes, ffmpeg wrote ${made.size}`);
}

function wavHeader(dataBytes: number): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.write('RIFF', 0, 'latin1');
  header.writeUInt32LE(36 + dataBytes, 4);
  header.write('WAVE', 8, 'latin1');
  header.write('fmt ', 12, 'latin1');
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(CHANNELS, 22);
  header.writeUInt32LE(SAMPLE_RATE, 24);
  header.writeUInt32LE(BYTES_PER_SECOND, 28);
  header.writeUInt16LE(CHANNELS * 2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36, 'latin1');
  header.writeUInt32LE(dataBytes, 40);
  return header;
}

/**
 * A WAV of `totalBytes` made on the fly: a few seconds of noisy two-tone audio computed once and repeated,
 * so that a 1 GiB upload costs the client a constant ~1 MB of memory.
 */
export function syntheticWav(totalBytes: number): Readable {
  const dataBytes = totalBytes - HEADER_BYTES;
  if (dataBytes <= 0 || dataBytes % (CHANNELS * 2) !== 0) throw new Error(`bad synthetic WAV size ${totalBytes}`);
  if (36 + dataBytes > 0xffffffff) throw new Error('a RIFF WAV holds at most 4 GiB');
  const pattern = noisyPattern(3 * SAMPLE_RATE);
  const chunkBytes = 256 * 1024;
  let sent = -1;
  return new Readable({
    read() {
      if (sent === -1) {
        sent = 0;
        this.push(wavHeader(dataBytes));
        return;
      }
      if (sent >= dataBytes) {
        this.push(null);
        return;
      }
      const offset = sent % pattern.length;
      const length = Math.min(chunkBytes, pattern.length - offset, dataBytes - sent);
      sent += length;
      this.push(pattern.subarray(offset, offset + length));
    },
  });
}

function noisyPattern(frames: number): Buffer {
  const buffer = Buffer.alloc(frames * CHANNELS * 2);
  let seed = 12345;
  const noise = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff - 0.5;
  };
  for (let frame = 0; frame < frames; frame++) {
    const t = frame / SAMPLE_RATE;
    const left = 0.3 * Math.sin(2 * Math.PI * 220 * t) + 0.25 * noise();
    const right = 0.3 * Math.sin(2 * Math.PI * 331 * t) + 0.25 * noise();
    buffer.writeInt16LE(Math.round(left * 32767), frame * 4);
    buffer.writeInt16LE(Math.round(right * 32767), frame * 4 + 2);
  }
  return buffer;
}

/**
 * The service's own ffmpeg command line (from `ffmpegArguments`, so it cannot drift) with only the input
 * changed: the WAV file on disk instead of stdin. Everything else — encoder, quality, threads, probing,
 * output muxer and flags — is the same.
 */
export function bareFfmpegArguments(encoding: EncodingConfig, wavPath: string, outputPath: string): string[] {
  const args = ffmpegArguments(
    {
      input: { sampleFormat: 's16le', sampleRate: SAMPLE_RATE, channels: CHANNELS },
      output: mp3Output(encoding),
      shape: TARGET,
      maxDurationSeconds: 6 * 3600,
    },
    outputPath,
  );
  const input = args.indexOf('pipe:0');
  const whitelist = args.indexOf('-protocol_whitelist');
  if (input === -1 || whitelist === -1) throw new Error('ffmpegArguments changed shape: no pipe:0 input to replace');
  // The service feeds raw samples; the file's 44-byte header is skipped the same way.
  args.splice(input - 1, 2, '-skip_initial_bytes', String(HEADER_BYTES), '-i', `file:${wavPath}`);
  args[whitelist + 1] = 'file';
  return args;
}

/**
 * Bare ffmpeg on one file, at the niceness the service gives its encoders (so that other load on the
 * machine treats both alike). Resolves with the wall time in ms.
 */
export async function runBareFfmpeg(
  ffmpegPath: string,
  encoding: EncodingConfig,
  wavPath: string,
  outputPath: string,
): Promise<number> {
  const started = now();
  await runProcess(ffmpegPath, bareFfmpegArguments(encoding, wavPath, outputPath), ENCODER_NICENESS);
  return now() - started;
}

/** Runs `jobs` with at most `concurrency` at once; resolves with the total wall time in ms. */
export async function runPool(jobs: ReadonlyArray<() => Promise<unknown>>, concurrency: number): Promise<number> {
  const started = now();
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++];
      if (job !== undefined) await job();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker));
  return now() - started;
}

function runProcess(command: string, args: readonly string[], niceness?: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    if (niceness !== undefined && child.pid !== undefined) {
      try {
        setPriority(child.pid, niceness);
      } catch {
        // Same fallback as the service: normal priority where renicing is not permitted.
      }
    }
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      stderr = (stderr + text).slice(-4000);
    });
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${command} exited with ${code}: ${stderr.trim()}`));
    });
  });
}
