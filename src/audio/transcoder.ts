import { spawn } from 'node:child_process';
import { setPriority } from 'node:os';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { EncodingConfig } from '../config.js';
import { Problem, undecodableAudio, unavailable } from '../errors.js';

export interface Mp3Target {
  readonly sampleRate: number;
  readonly channels: 1 | 2;
}

export interface TranscoderOptions {
  readonly ffmpegPath: string;
  readonly encoding: EncodingConfig;
  readonly timeoutMs: number;
}

// Encoders run below the server's own priority, so HTTP work still gets the CPU when every core encodes.
// Exported so that the benchmark's bare-ffmpeg baseline runs at the same priority.
export const ENCODER_NICENESS = 10;
const STDERR_TAIL_BYTES = 4096;

/** The ffmpeg arguments for WAV on stdin to an MP3 file; nothing in them comes from the user. */
export function ffmpegArguments(encoding: EncodingConfig, target: Mp3Target, outputPath: string): string[] {
  const quality =
    encoding.bitrateKbps === undefined ? ['-q:a', String(encoding.vbrQuality)] : ['-b:a', `${encoding.bitrateKbps}k`];
  const algorithm =
    encoding.compressionLevel === undefined ? [] : ['-compression_level', String(encoding.compressionLevel)];
  return [
    '-hide_banner',
    '-nostdin',
    '-nostats',
    '-loglevel',
    'error',
    // The format is forced and the header already checked: no probing, and no protocol but the pipe,
    // so a crafted file can never make ffmpeg open a playlist, a URL or a local file.
    '-probesize',
    '32',
    '-analyzeduration',
    '0',
    '-protocol_whitelist',
    'pipe',
    '-f',
    'wav',
    '-i',
    'pipe:0',
    '-map',
    '0:a:0',
    '-map_metadata',
    '-1',
    '-ac',
    String(target.channels),
    '-ar',
    String(target.sampleRate),
    '-c:a',
    'libmp3lame',
    ...quality,
    ...algorithm,
    '-threads',
    '1',
    // No ID3 tag: the MP3 starts with the Xing/LAME frame that carries duration and gapless padding.
    '-id3v2_version',
    '0',
    '-write_xing',
    '1',
    '-f',
    'mp3',
    '-y',
    // A seekable file output lets the muxer go back and fill in the Xing header at the end.
    `file:${outputPath}`,
  ];
}

/** Runs one ffmpeg per conversion: WAV bytes in through stdin, an MP3 file out. */
export class Transcoder {
  constructor(private readonly options: TranscoderOptions) {}

  /**
   * Resolves when `outputPath` holds the complete MP3. Rejects with the input's own error (an upload cut
   * short, a limit hit) when the input fails, else with 422 when ffmpeg cannot decode the audio.
   * The caller owns `outputPath` and removes it on failure.
   */
  async toMp3(input: Readable, target: Mp3Target, outputPath: string): Promise<void> {
    const child = spawn(this.options.ffmpegPath, ffmpegArguments(this.options.encoding, target, outputPath), {
      stdio: ['pipe', 'ignore', 'pipe'],
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

    // Measured (npm run bench, docs/benchmarks.md rows 1–2): with Node's 64 KiB pipe writes and busboy's
    // default buffers ffmpeg never waits for input — a loopback upload takes as long as bare ffmpeg reading
    // the file — so bigger buffers here would only cost memory per upload.
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
        throw undecodableAudio(`The conversion took longer than ${this.options.timeoutMs / 1000} seconds.`);
      }
      if (exit.code !== 0) {
        throw undecodableAudio('The audio in this WAV could not be decoded.', new Error(stderrTail.trim()));
      }
    } catch (error) {
      if (error instanceof Problem) throw error;
      if (isSpawnFailure(error)) {
        throw unavailable('The audio converter is not available.', 30, error);
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
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
