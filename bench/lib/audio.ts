import { spawn } from 'node:child_process';
import { open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { setPriority } from 'node:os';
import { Readable } from 'node:stream';
import type { EncodingConfig } from '../../src/config.js';
import { MAX_SNIFF_BYTES, sniffInput, type InputKindName } from '../../src/media/input-kinds.js';
import {
  muxerArguments,
  planOutput,
  type AudioShape,
  type OutputPlan,
  type OutputSettings,
} from '../../src/media/outputs.js';
import { copyableAs } from '../../src/media/source-codec.js';
import { ENCODER_NICENESS, ffmpegArguments, type TranscodeJob } from '../../src/media/transcoder.js';
import { now } from '../../test/kit/stats.js';
import { statTimes } from './cpu.js';

const SAMPLE_RATE = 44_100;
const CHANNELS = 2;
export const BYTES_PER_SECOND = SAMPLE_RATE * CHANNELS * 2;
export const WAV_HEADER_BYTES = 44;

/** Every benchmark WAV's shape, which the service reads from its header. */
const WAV_SHAPE: AudioShape = { sampleRate: SAMPLE_RATE, channels: CHANNELS };

export function wavBytesFor(seconds: number): number {
  return WAV_HEADER_BYTES + Math.round(seconds * SAMPLE_RATE) * CHANNELS * 2;
}

/** Stereo pink noise under a 220 Hz tone, as a filter graph whose output is `[out]`. */
function noiseAndTone(sampleRate: number, seconds: number, seed: number): string {
  return (
    `anoisesrc=c=pink:a=0.12:r=${sampleRate}:seed=${seed}:d=${seconds}[n1];` +
    `anoisesrc=c=pink:a=0.12:r=${sampleRate}:seed=${seed + 1}:d=${seconds}[n2];` +
    `[n1][n2]amerge=inputs=2[n];` +
    `sine=f=220:r=${sampleRate}:d=${seconds},volume=0.3,pan=stereo|c0=c0|c1=c0[t];` +
    `[n][t]amix=inputs=2:normalize=0[out]`
  );
}

/**
 * Writes a 16-bit 44.1 kHz stereo WAV of pink noise under a tone: noise keeps LAME busy the way music
 * does (a pure sine encodes unrealistically fast). Reuses the file when one of the right size exists.
 */
export async function generateWav(ffmpegPath: string, path: string, seconds: number, seed = 1): Promise<void> {
  const expected = wavBytesFor(seconds);
  const existing = await stat(path).catch(() => undefined);
  if (existing?.size === expected) return;
  await runProcess(ffmpegPath, [
    '-y',
    '-hide_banner',
    '-loglevel',
    'error',
    '-filter_complex',
    noiseAndTone(SAMPLE_RATE, seconds, seed),
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
  const header = Buffer.alloc(WAV_HEADER_BYTES);
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
  const dataBytes = totalBytes - WAV_HEADER_BYTES;
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

// ---------------------------------------------------------------------------------------------------------
// The service's command lines, for bare ffmpeg

/** What the service's ffmpeg command line depends on besides its input (a `Config` has all three). */
export interface ServiceSettings {
  readonly encoding: EncodingConfig;
  readonly loudnessTargetLufs: number;
  readonly maxDurationSeconds: number;
}

const outputSettings = (settings: ServiceSettings): OutputSettings => ({
  mp3: settings.encoding,
  loudnessTargetLufs: settings.loudnessTargetLufs,
});

// The converter lets a compressed input decode one second past the limit (converter.ts's
// DURATION_OVERSHOOT_SECONDS, not exported), so that a file over the limit can be told from one at it.
const DURATION_OVERSHOOT_SECONDS = 1;

/** The stored output of an upload with no options and no title, as the converter builds it. */
function outputArguments(plan: OutputPlan): string[] {
  return [...plan.arguments, ...muxerArguments(plan.format, null)];
}

/**
 * The service's own ffmpeg command line for a WAV upload with no options (from `planOutput` and
 * `ffmpegArguments`, as converter.ts calls them, so that it cannot drift) with only the input changed: the
 * WAV file on disk instead of raw samples on stdin. Everything else — encoder, quality, threads, probing,
 * output muxer and flags, the peaks output on fd 3 — is the same. `peaks: false` drops the peaks output
 * only (it is the last output), for measuring what it costs.
 */
export function bareFfmpegArguments(
  settings: ServiceSettings,
  wavPath: string,
  outputPath: string,
  options: { readonly peaks?: boolean } = {},
): string[] {
  const args = serviceFfmpegArguments(settings, outputPath, options);
  const input = args.indexOf('pipe:0');
  const whitelist = args.indexOf('-protocol_whitelist');
  if (input === -1 || args[input - 1] !== '-i' || whitelist === -1 || args[whitelist + 1] !== 'pipe') {
    throw new Error('ffmpegArguments changed shape: no pipe:0 input to replace');
  }
  // The service feeds raw samples; the file's 44-byte header is skipped the same way.
  args.splice(input - 1, 2, '-skip_initial_bytes', String(WAV_HEADER_BYTES), '-i', `file:${wavPath}`);
  args[whitelist + 1] = 'file';
  return args;
}

/** The service's own ffmpeg command line for a WAV upload with no options: raw samples on stdin (pipe:0). */
export function serviceFfmpegArguments(
  settings: ServiceSettings,
  outputPath: string,
  options: { readonly peaks?: boolean } = {},
): string[] {
  const plan = planOutput({}, { sameCodecAs: undefined, shape: WAV_SHAPE }, outputSettings(settings));
  const job: TranscodeJob = {
    input: { kind: 'raw', sampleFormat: 's16le', sampleRate: SAMPLE_RATE, channels: CHANNELS },
    output: outputArguments(plan),
    peaks: options.peaks ?? true,
    maxDurationSeconds: settings.maxDurationSeconds,
  };
  return ffmpegArguments(job, outputPath);
}

/** What the service makes of a file's first bytes: its kind, demuxer, whether it streams, and its codec. */
export interface MediaFile {
  readonly path: string;
  readonly bytes: number;
  readonly kind: InputKindName;
  readonly demuxer: string;
  /** False for an MP4 whose index comes last: the service spools it to a file before ffmpeg reads it. */
  readonly streamable: boolean;
  /** The plan for an upload with no options (a copy when the source is already MP3). */
  readonly plan: OutputPlan;
}

/** Sniffs a file as the converter sniffs an upload (`sniffInput`, `copyableAs`, `planOutput`). */
async function describeMedia(path: string, settings: ServiceSettings): Promise<MediaFile> {
  const handle = await open(path, 'r');
  let head: Buffer;
  let bytes: number;
  try {
    bytes = (await handle.stat()).size;
    const buffer = Buffer.alloc(Math.min(bytes, MAX_SNIFF_BYTES));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    head = buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
  const sniffed = sniffInput(head, head.length === bytes);
  if (sniffed.verdict !== 'recognised' || sniffed.kind.demuxer === undefined) {
    throw new Error(`${path}: the service would not take this as a compressed input (${sniffed.verdict})`);
  }
  const plan = planOutput(
    {},
    { sameCodecAs: copyableAs(sniffed.kind.name, head), shape: undefined },
    outputSettings(settings),
  );
  return {
    path,
    bytes,
    kind: sniffed.kind.name,
    demuxer: sniffed.kind.demuxer,
    streamable: sniffed.streamable,
    plan,
  };
}

/**
 * The service's command line for a compressed upload with no options, reading the file through the same
 * forced demuxer: built as the `file` input the service uses for a spooled MP4 (`-protocol_whitelist file
 * -f <demuxer> -i file:<path>`), which for a streamed kind differs from the service's only in reading a
 * file instead of `pipe:0`. For a spooled MP4 it is exactly the service's command line.
 */
export function bareMediaArguments(
  settings: ServiceSettings,
  media: MediaFile,
  outputPath: string,
  options: { readonly peaks?: boolean } = {},
): string[] {
  return ffmpegArguments(
    {
      input: { kind: 'file', demuxer: media.demuxer, path: media.path },
      output: outputArguments(media.plan),
      peaks: options.peaks ?? true,
      maxDurationSeconds: settings.maxDurationSeconds + DURATION_OVERSHOOT_SECONDS,
    },
    outputPath,
  );
}

// ---------------------------------------------------------------------------------------------------------
// Compressed inputs, made from the benchmark's WAV

export interface MediaRecipe {
  /** Short name, used in file names and row labels. */
  readonly id: string;
  readonly label: string;
  readonly extension: string;
  /** ffmpeg's output options after `-i <wav>`. */
  readonly encode: readonly string[];
  /** Written to a pipe, so that the muxer cannot seek back (unknown sizes, as a live recorder writes). */
  readonly viaPipe?: boolean;
  /** What the service must recognise it as, checked before the file is kept. */
  readonly kind: InputKindName;
  readonly streamable: boolean;
}

/** The streamed input kinds of issue 10, each as a typical writer makes it. */
export const STREAMED_KINDS: readonly MediaRecipe[] = [
  {
    id: 'flac',
    label: 'FLAC',
    extension: 'flac',
    encode: ['-c:a', 'flac', '-f', 'flac'],
    kind: 'flac',
    streamable: true,
  },
  {
    id: 'ogg-opus',
    label: 'Ogg/Opus 96 kbit/s',
    extension: 'opus',
    encode: ['-c:a', 'libopus', '-b:a', '96k', '-f', 'ogg'],
    kind: 'ogg',
    streamable: true,
  },
  {
    // As Chrome's and Firefox's MediaRecorder write it: live, with clusters of unknown size.
    id: 'webm-opus',
    label: 'WebM/Opus 96 kbit/s (MediaRecorder layout)',
    extension: 'webm',
    encode: ['-c:a', 'libopus', '-b:a', '96k', '-f', 'webm', '-live', '1', '-cluster_time_limit', '1000'],
    viaPipe: true,
    kind: 'webm',
    streamable: true,
  },
  {
    id: 'm4a-faststart',
    label: 'M4A/AAC 128 kbit/s, moov first (+faststart)',
    extension: 'm4a',
    encode: ['-c:a', 'aac', '-b:a', '128k', '-movflags', '+faststart', '-f', 'ipod'],
    kind: 'mp4',
    streamable: true,
  },
  {
    id: 'mp3',
    label: 'MP3 VBR -q:a 2',
    extension: 'mp3',
    encode: ['-c:a', 'libmp3lame', '-q:a', '2', '-f', 'mp3'],
    kind: 'mp3',
    streamable: true,
  },
  {
    id: 'aiff',
    label: 'AIFF 16-bit',
    extension: 'aiff',
    encode: ['-c:a', 'pcm_s16be', '-f', 'aiff'],
    kind: 'aiff',
    streamable: true,
  },
];

/** An M4A as ffmpeg (and many encoders) write it by default: the index after the audio, so it is spooled. */
export const SPOOLED_MP4: MediaRecipe = {
  id: 'm4a-moov-last',
  label: 'M4A/AAC 128 kbit/s, moov last (spooled)',
  extension: 'm4a',
  encode: ['-c:a', 'aac', '-b:a', '128k', '-f', 'ipod'],
  kind: 'mp4',
  streamable: false,
};

/**
 * Encodes `wavPath` by `recipe` into `path`, unless a finished file is already there (it is written under
 * another name and renamed once checked, so a file at `path` is always complete).
 */
export async function generateMedia(
  ffmpegPath: string,
  wavPath: string,
  path: string,
  recipe: MediaRecipe,
  settings: ServiceSettings,
): Promise<MediaFile> {
  if ((await stat(path).catch(() => undefined)) === undefined) {
    const partial = `${path}.partial`;
    const common = ['-y', '-hide_banner', '-loglevel', 'error', '-i', wavPath, '-map_metadata', '-1', ...recipe.encode];
    if (recipe.viaPipe === true) {
      const handle = await open(partial, 'w');
      try {
        await runProcess(ffmpegPath, [...common, 'pipe:1'], undefined, handle.fd);
      } finally {
        await handle.close();
      }
    } else {
      await runProcess(ffmpegPath, [...common, partial]);
    }
    const made = await describeMedia(partial, settings);
    if (made.kind !== recipe.kind || made.streamable !== recipe.streamable) {
      await rm(partial, { force: true });
      throw new Error(
        `${recipe.id}: the service sees ${made.kind} (streamable: ${made.streamable}), ` +
          `not ${recipe.kind} (streamable: ${recipe.streamable})`,
      );
    }
    await rename(partial, path);
  }
  return describeMedia(path, settings);
}

const BIG_FLAC_RATE = 96_000;
const BIG_FLAC_ENCODE = ['-c:a', 'flac', '-sample_fmt', 's32', '-bits_per_raw_sample', '24', '-f', 'flac'];

/**
 * A 24-bit 96 kHz stereo FLAC of noise and tone of about `targetBytes` (a short sample first tells how much
 * FLAC makes of a second of it), kept under `path` once made.
 */
export async function generateBigFlac(
  ffmpegPath: string,
  path: string,
  targetBytes: number,
): Promise<{ bytes: number; seconds: number }> {
  const secondsFile = `${path}.seconds`;
  const existing = await stat(path).catch(() => undefined);
  if (existing !== undefined) {
    const seconds = Number(await readFile(secondsFile, 'utf8').catch(() => 'NaN'));
    if (Number.isFinite(seconds)) return { bytes: existing.size, seconds };
  }
  const encode = async (seconds: number, out: string) => {
    await runProcess(ffmpegPath, [
      '-y',
      '-hide_banner',
      '-loglevel',
      'error',
      '-filter_complex',
      noiseAndTone(BIG_FLAC_RATE, seconds, 3),
      '-map',
      '[out]',
      '-ar',
      String(BIG_FLAC_RATE),
      '-ac',
      '2',
      ...BIG_FLAC_ENCODE,
      out,
    ]);
    return (await stat(out)).size;
  };
  const sampleSeconds = 4;
  const sample = `${path}.sample`;
  const bytesPerSecond = (await encode(sampleSeconds, sample)) / sampleSeconds;
  await rm(sample, { force: true });
  const seconds = Math.max(1, Math.ceil(targetBytes / bytesPerSecond));
  const partial = `${path}.partial`;
  const bytes = await encode(seconds, partial);
  await rename(partial, path);
  await writeFile(secondsFile, String(seconds));
  return { bytes, seconds };
}

// ---------------------------------------------------------------------------------------------------------
// Running bare ffmpeg

export interface BareRun {
  /** Wall time, ms. */
  readonly wallMs: number;
  /**
   * User + system CPU time of the child, ms (10 ms resolution): the growth of this process's `cutime +
   * cstime`, which counts children once they are reaped. Only meaningful when nothing else of this process's
   * children ends meanwhile, i.e. when runs are sequential (not in `runPool`).
   */
  readonly cpuMs: number;
}

/**
 * Bare ffmpeg with `args`, at the niceness and in the environment the service gives its encoders (so that
 * other load on the machine treats both alike). The peaks output on fd 3 gets a pipe that is read to its
 * end and dropped, as the service reads it (into peaks).
 */
export async function runBare(ffmpegPath: string, args: readonly string[]): Promise<BareRun> {
  const cpuBefore = await childrenCpuMs();
  const started = now();
  await runProcess(ffmpegPath, args, ENCODER_NICENESS);
  const wallMs = now() - started;
  return { wallMs, cpuMs: (await childrenCpuMs()) - cpuBefore };
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

/** cutime + cstime of this process (its reaped children's CPU time), ms. */
async function childrenCpuMs(): Promise<number> {
  return statTimes(await readFile('/proc/self/stat', 'utf8')).reapedChildrenSeconds * 1000;
}

const PEAKS_OUTPUT = 'pipe:3';

function runProcess(command: string, args: readonly string[], niceness?: number, stdoutFd?: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const peaks = args.includes(PEAKS_OUTPUT);
    const child = spawn(command, args, {
      stdio: ['ignore', stdoutFd ?? 'ignore', 'pipe', peaks ? 'pipe' : 'ignore'],
      // What the service gives its encoders: nothing but PATH and the C locale.
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' },
    });
    if (niceness !== undefined && child.pid !== undefined) {
      try {
        setPriority(child.pid, niceness);
      } catch {
        // Same fallback as the service: normal priority where renicing is not permitted.
      }
    }
    // Drained, or ffmpeg blocks once the pipe is full.
    const peaksPipe = child.stdio[3];
    if (peaksPipe instanceof Readable) peaksPipe.resume();
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (text: string) => {
      stderr = (stderr + text).slice(-4000);
    });
    child.once('error', reject);
    // 'close' comes after the process has exited and every pipe (fd 3 too) has ended.
    child.once('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${command} exited with ${code}: ${stderr.trim()}`));
    });
  });
}
