import { spawn } from 'node:child_process';
import { setPriority } from 'node:os';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AudioRejected, DomainError, InsufficientStorage, Unavailable } from '../domain/errors.js';
import type { AudioShape, OutputFormat } from './outputs.js';
import type { PcmSampleFormat } from './wav.js';

/** Raw samples on stdin, described in full: ffmpeg probes nothing and parses no container. */
interface RawAudioInput {
  readonly sampleFormat: PcmSampleFormat;
  readonly sampleRate: number;
  readonly channels: number;
  /** The speaker layout as a WAVE channel mask; unset lets ffmpeg assume the usual one for the count. */
  readonly channelMask?: number | undefined;
}

/** What one conversion reads and produces. */
export interface TranscodeJob {
  readonly input: RawAudioInput;
  readonly output: OutputFormat;
  readonly shape: AudioShape;
  /** A backstop: ffmpeg writes no more than this much audio whatever it is fed. */
  readonly maxDurationSeconds: number;
}

export interface TranscoderOptions {
  readonly ffmpegPath: string;
  readonly timeoutMs: number;
  /** The address-space limit for ffmpeg, applied through `prlimit` when `prlimitPath` is set. */
  readonly maxMemoryBytes: number;
  readonly prlimitPath: string | undefined;
}

// The largest single allocation ffmpeg may make; decoding raw PCM into LAME never needs more than a few MiB.
const MAX_ALLOCATION_BYTES = 64 * 1024 * 1024;

// Encoders run below the server's own priority, so HTTP work still gets the CPU when every core encodes.
// Exported so that the benchmark's bare-ffmpeg baseline runs at the same priority.
export const ENCODER_NICENESS = 10;
const STDERR_TAIL_BYTES = 4096;

/** The ffmpeg arguments for one job reading stdin and writing `outputPath`; nothing in them comes from the user. */
export function ffmpegArguments(job: TranscodeJob, outputPath: string): string[] {
  return [
    '-hide_banner',
    '-nostdin',
    '-nostats',
    '-loglevel',
    'error',
    '-max_alloc',
    String(MAX_ALLOCATION_BYTES),
    // Raw samples in a forced format: no probing, no container, and no protocol but the pipe, so a
    // crafted file can never make ffmpeg open a playlist, a URL or a local file.
    '-probesize',
    '32',
    '-analyzeduration',
    '0',
    '-protocol_whitelist',
    'pipe',
    '-f',
    job.input.sampleFormat,
    '-ar',
    String(job.input.sampleRate),
    '-ac',
    String(job.input.channels),
    // Downmixing 5.1 or quad to stereo needs to know which channel is which.
    ...(job.input.channelMask === undefined ? [] : ['-ch_layout', `0x${job.input.channelMask.toString(16)}`]),
    '-i',
    'pipe:0',
    '-map',
    '0:a:0',
    '-map_metadata',
    '-1',
    '-t',
    String(job.maxDurationSeconds),
    ...job.output.encoderArguments(job.shape),
    '-y',
    // A seekable file output lets the muxer go back and fill in its header (MP3's Xing frame) at the end.
    `file:${outputPath}`,
  ];
}

/** Runs one ffmpeg per conversion: the input's bytes in through stdin, the output into a local file. */
export class Transcoder {
  constructor(private readonly options: TranscoderOptions) {}

  /**
   * Resolves when `outputPath` holds the complete output. Rejects with the input's own error (an upload
   * cut short, a limit hit) when the input fails, else with AudioRejected when ffmpeg cannot decode it.
   * The caller owns `outputPath` and removes it on failure.
   */
  async run(input: Readable, job: TranscodeJob, outputPath: string): Promise<void> {
    const { command, args } = this.commandLine(ffmpegArguments(job, outputPath));
    const child = spawn(command, args, {
      stdio: ['pipe', 'ignore', 'pipe'],
      // Nothing of the service's environment (database URL, secrets) reaches the decoder.
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' },
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code, signal) => resolve({ code, signal }));
    });
    if (child.pid !== undefined) {
      try {
        setPriority(child.pid, ENCODER_NICENESS);
      } catch {
        // Not permitted in some containers; the conversion is still correct at normal priority.
      }
    }

    let stderrTail = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      stderrTail = (stderrTail + text).slice(-STDERR_TAIL_BYTES);
    });

    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, this.options.timeoutMs);

    // Node's default 64 KiB pipe writes keep ffmpeg fed (docs/benchmarks.md); bigger buffers would only
    // cost memory per upload.
    const feeding = pipeline(input, child.stdin).catch((error: unknown) => {
      // ffmpeg closing its stdin (EPIPE) is judged by its exit status below; any other error is the input's.
      // So is the premature close that follows our own kill at the time limit.
      if (timedOut || isBrokenPipe(error)) return undefined;
      child.kill('SIGKILL');
      return error instanceof Error ? error : new Error(String(error));
    });

    try {
      const [inputError, exit] = await Promise.all([feeding, exited]);
      if (inputError !== undefined) throw inputError;
      if (timedOut) {
        throw new AudioRejected(
          'undecodable',
          `The conversion took longer than ${this.options.timeoutMs / 1000} seconds.`,
        );
      }
      // prlimit could not start ffmpeg (126: not executable, 127: not found): the converter is missing.
      if ((exit.code === 126 || exit.code === 127) && /failed to execute/.test(stderrTail)) {
        throw new Unavailable('The audio converter is not available.', 30, { cause: new Error(stderrTail.trim()) });
      }
      if (exit.code !== 0 && /No space left on device/i.test(stderrTail)) {
        throw new InsufficientStorage('The server ran out of disk space while converting; try again later.');
      }
      if (exit.code !== 0) {
        throw new AudioRejected('undecodable', 'The audio in this WAV could not be decoded.', {
          cause: new Error(stderrTail.trim()),
        });
      }
    } catch (error) {
      if (error instanceof DomainError) throw error;
      if (isSpawnFailure(error)) {
        throw new Unavailable('The audio converter is not available.', 30, { cause: error });
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** ffmpeg itself, or under `prlimit` (which execs it in the same process) with an address-space limit. */
  private commandLine(ffmpegArgs: string[]): { command: string; args: string[] } {
    const { ffmpegPath, prlimitPath, maxMemoryBytes } = this.options;
    if (prlimitPath === undefined) return { command: ffmpegPath, args: ffmpegArgs };
    return { command: prlimitPath, args: [`--as=${maxMemoryBytes}`, '--', ffmpegPath, ...ffmpegArgs] };
  }
}

function isBrokenPipe(error: unknown): boolean {
  return error instanceof Error && 'code' in error && (error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED');
}

function isSpawnFailure(error: unknown): boolean {
  return (
    error instanceof Error &&
    'syscall' in error &&
    typeof error.syscall === 'string' &&
    error.syscall.startsWith('spawn')
  );
}
