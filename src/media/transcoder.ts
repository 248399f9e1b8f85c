import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AudioRejected, DomainError, InsufficientStorage, Unavailable } from '../domain/errors.js';
import { LauncherLost, type LaunchedProcess, type ProcessLauncher } from './launcher.js';
import { WavPeaksReader, type Peaks } from './peaks.js';
import type { PcmSampleFormat } from './wav.js';

/** Raw samples on stdin, described in full: ffmpeg probes nothing and parses no container. */
export interface RawAudioInput {
  readonly kind: 'raw';
  readonly sampleFormat: PcmSampleFormat;
  readonly sampleRate: number;
  readonly channels: number;
  /** The speaker layout as a WAVE channel mask; unset lets ffmpeg assume the usual one for the count. */
  readonly channelMask?: number | undefined;
}

/** A container on stdin, read by the one demuxer its bytes were recognised as. */
interface StreamedInput {
  readonly kind: 'stream';
  readonly demuxer: string;
}

/** A container spooled to a local file first, because its demuxer must seek (an MP4 with its index last). */
interface SpooledInput {
  readonly kind: 'file';
  readonly demuxer: string;
  readonly path: string;
}

export type TranscodeInput = RawAudioInput | StreamedInput | SpooledInput;

/** What one ffmpeg run reads and produces. */
export interface TranscodeJob {
  readonly input: TranscodeInput;
  /** Filters, encoder, tags and muxer of the stored output (see outputs.ts); none when only peaks are wanted. */
  readonly output: readonly string[] | undefined;
  /** Decode a second copy of the audio into peaks, from the same decoded frames. */
  readonly peaks: boolean;
  /** ffmpeg writes no more than this much audio whatever it is fed. */
  readonly maxDurationSeconds?: number | undefined;
  /** loudnorm reports what it measured; it prints that at the info log level. */
  readonly reportsLoudness?: boolean | undefined;
}

export interface TranscodeResult {
  /** Present when the job asked for peaks. */
  readonly peaks: Peaks | undefined;
  /** Seconds of audio decoded, counted on the peaks output (0 without it). */
  readonly decodedSeconds: number;
  /** The decoded audio's rate and channels, from the peaks output. */
  readonly decodedShape: { readonly sampleRate: number; readonly channels: number } | undefined;
  /** The output's integrated loudness as loudnorm measured it. */
  readonly loudnessLufs: number | undefined;
}

export interface TranscoderOptions {
  readonly ffmpegPath: string;
  readonly timeoutMs: number;
  /** The address-space limit for ffmpeg, applied through `prlimit` when `prlimitPath` is set. */
  readonly maxMemoryBytes: number;
  readonly prlimitPath: string | undefined;
  /** Starts ffmpeg from a small process of its own (see launcher.ts). */
  readonly launcher: ProcessLauncher;
}

// The largest single allocation ffmpeg may make; decoding audio never needs more than a few MiB at once.
const MAX_ALLOCATION_BYTES = 64 * 1024 * 1024;

// Encoders run below the server's own priority, so HTTP work still gets the CPU when every core encodes.
// Exported so that the benchmark's bare-ffmpeg baseline runs at the same priority.
export const ENCODER_NICENESS = 10;
const STDERR_TAIL_BYTES = 4096;
const PEAKS_FD = 3;

function inputArguments(input: TranscodeInput): string[] {
  switch (input.kind) {
    case 'raw':
      return [
        // Raw samples in a forced format: no probing and no container to parse.
        '-probesize',
        '32',
        '-analyzeduration',
        '0',
        '-protocol_whitelist',
        'pipe',
        '-f',
        input.sampleFormat,
        '-ar',
        String(input.sampleRate),
        '-ac',
        String(input.channels),
        // Downmixing 5.1 or quad to stereo needs to know which channel is which.
        ...(input.channelMask === undefined ? [] : ['-ch_layout', `0x${input.channelMask.toString(16)}`]),
        '-i',
        'pipe:0',
      ];
    case 'stream':
      return ['-protocol_whitelist', 'pipe', '-f', input.demuxer, ...demuxerOptions(input.demuxer), '-i', 'pipe:0'];
    case 'file':
      // `file` is needed for the one spooled file; MP4 data references, the only way such a file could
      // name another, stay off.
      return [
        '-protocol_whitelist',
        'file',
        '-f',
        input.demuxer,
        ...demuxerOptions(input.demuxer),
        '-i',
        `file:${input.path}`,
      ];
  }
}

/** MP4's external data references stay disabled (ffmpeg's default, stated so that it cannot change). */
const demuxerOptions = (demuxer: string) => (demuxer === 'mov' ? ['-enable_drefs', '0'] : []);

/**
 * The ffmpeg arguments for one job; nothing in them comes from the user except the title, which is one
 * argument of its own after `-metadata`. Only the first audio stream is mapped: video, cover art,
 * subtitles and attachments are never decoded.
 */
export function ffmpegArguments(job: TranscodeJob, outputPath: string | undefined): string[] {
  const limit = job.maxDurationSeconds === undefined ? [] : ['-t', String(job.maxDurationSeconds)];
  const firstAudio = ['-map', '0:a:0', '-map_metadata', '-1', '-map_chapters', '-1', ...limit];
  return [
    '-hide_banner',
    '-nostdin',
    '-nostats',
    '-loglevel',
    job.reportsLoudness === true ? 'info' : 'error',
    '-max_alloc',
    String(MAX_ALLOCATION_BYTES),
    ...inputArguments(job.input),
    ...(job.output === undefined || outputPath === undefined
      ? []
      : // A seekable file output lets the muxer go back and fill in its header at the end.
        [...firstAudio, ...job.output, '-y', `file:${outputPath}`]),
    ...(job.peaks
      ? // 8-bit at the decoded rate and channels, converted no further; the WAV header tells both. Packets
        // go out as the muxer's buffer fills, not one small write each.
        [
          ...firstAudio,
          '-c:a',
          'pcm_u8',
          '-fflags',
          '+bitexact',
          '-flush_packets',
          '0',
          '-f',
          'wav',
          `pipe:${PEAKS_FD}`,
        ]
      : []),
  ];
}

/** Runs ffmpeg under the service's limits: minimal environment, lower priority, time and memory caps. */
export class Transcoder {
  constructor(private readonly options: TranscoderOptions) {}

  /**
   * Resolves when `outputPath` holds the complete output. Rejects with the input's own error (an upload
   * cut short, a limit hit) when the input fails, else with AudioRejected when ffmpeg cannot decode it.
   * The caller owns `outputPath` and removes it on failure.
   */
  async run(input: Readable | undefined, job: TranscodeJob, outputPath?: string): Promise<TranscodeResult> {
    const { command, args } = this.commandLine(this.options.ffmpegPath, ffmpegArguments(job, outputPath));
    // The time limit runs from the request to start ffmpeg: a start that never completes is stopped too.
    let timedOut = false;
    let started: LaunchedProcess | undefined;
    const stopStarting = new AbortController();
    const timer = setTimeout(() => {
      timedOut = true;
      stopStarting.abort();
      started?.kill();
    }, this.options.timeoutMs);
    try {
      started = await this.options.launcher.launch(
        {
          command,
          args,
          // Nothing of the service's environment (database URL, secrets) reaches the decoder.
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' },
          stdin: input !== undefined,
          fd3: job.peaks,
          niceness: ENCODER_NICENESS,
        },
        stopStarting.signal,
      );
    } catch (error) {
      clearTimeout(timer);
      input?.destroy();
      throw converterUnavailable(error);
    }
    const child = started;

    // The tail also holds loudnorm's closing report, when the job asked for it.
    let stderrTail = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      stderrTail = (stderrTail + text).slice(-STDERR_TAIL_BYTES);
    });

    // Which side failed first decides. The input's error is the upload's (cut short, a limit hit), whatever
    // its code: a client's reset is ECONNRESET too, and ignoring it would store half a file. A failure of
    // stdin alone means ffmpeg stopped reading (at its time limit, or failing): its exit status judges that.
    let inputFailed = false;
    input?.once('error', () => {
      inputFailed = true;
    });
    // Node's default 64 KiB pipe writes keep ffmpeg fed (docs/benchmarks.md); bigger buffers would only
    // cost memory per upload.
    const stdin = child.stdin;
    const feeding =
      input === undefined || stdin === undefined
        ? Promise.resolve(undefined)
        : pipeline(input, stdin).catch((error: unknown) => {
            // After our own kill at the time limit, whatever the pipe reports is expected.
            if (timedOut || (!inputFailed && isBrokenPipe(error))) return undefined;
            child.kill();
            return error instanceof Error ? error : new Error(String(error));
          });
    const collector = job.peaks ? new WavPeaksReader() : undefined;
    const peaksOutput = child.fd3;
    // A failed peaks output stops ffmpeg, and the run still ends only once ffmpeg has exited: the caller
    // gives the conversion's core back when this returns.
    const collecting =
      collector === undefined || peaksOutput === undefined
        ? Promise.resolve(undefined)
        : pipeline(peaksOutput, collector).then(
            () => undefined,
            (error: unknown) => {
              child.kill();
              return error instanceof Error ? error : new Error(String(error));
            },
          );

    try {
      const [inputError, exit, peaksError] = await Promise.all([feeding, child.closed, collecting]);
      if (inputError !== undefined) throw inputError;
      if (peaksError !== undefined) throw peaksError;
      if (timedOut) {
        throw new AudioRejected(
          'undecodable',
          `The conversion took longer than ${this.options.timeoutMs / 1000} seconds.`,
        );
      }
      if (exit.code !== 0) throw this.failure(exit.code, stderrTail);
      // A chained Ogg whose next link is not the same audio (a video, another codec): ffmpeg converts the
      // first link, reports that it cannot go on, and still exits 0. Half a file is not a success.
      if (/failed to create or replace stream/.test(stderrTail)) {
        throw new AudioRejected('undecodable', 'The file changes to a stream that is not its audio partway through.');
      }
      return {
        peaks: collector?.result(),
        decodedSeconds: collector?.decodedSeconds ?? 0,
        decodedShape: collector?.decodedShape,
        loudnessLufs: job.reportsLoudness === true ? measuredLoudness(stderrTail) : undefined,
      };
    } catch (error) {
      if (error instanceof DomainError) throw error;
      if (error instanceof LauncherLost) {
        throw converterUnavailable(error);
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  private failure(code: number | null, stderrTail: string): Error {
    // The launcher or prlimit could not start ffmpeg (127: not found or not executable): it is missing.
    if ((code === 126 || code === 127) && /failed to execute|cannot execute/.test(stderrTail)) {
      return converterUnavailable(new Error(stderrTail.trim()));
    }
    if (/No space left on device/i.test(stderrTail)) {
      return new InsufficientStorage('The server ran out of disk space while converting; try again later.');
    }
    return new AudioRejected('undecodable', 'The audio in this file could not be decoded.', {
      cause: new Error(stderrTail.trim()),
    });
  }

  /** The program itself, or under `prlimit` (which execs it in the same process) with an address-space limit. */
  private commandLine(program: string, programArgs: string[]): { command: string; args: string[] } {
    const { prlimitPath, maxMemoryBytes } = this.options;
    if (prlimitPath === undefined) return { command: program, args: programArgs };
    return { command: prlimitPath, args: [`--as=${maxMemoryBytes}`, '--', program, ...programArgs] };
  }
}

const converterUnavailable = (cause: unknown) =>
  new Unavailable('The audio converter is not available.', 30, { cause });

/** loudnorm's closing JSON report (print_format=json) holds the output's integrated loudness. */
function measuredLoudness(stderr: string): number | undefined {
  const report = /\{[^{}]*"output_i"[^{}]*\}/.exec(stderr)?.[0];
  if (report === undefined) return undefined;
  try {
    const value = Number((JSON.parse(report) as { output_i?: string }).output_i);
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** ffmpeg stopped reading its input: gone (EPIPE), or gone with bytes unread (ECONNRESET: its stdin is a socket pair). */
function isBrokenPipe(error: unknown): boolean {
  return (
    error instanceof Error &&
    'code' in error &&
    (error.code === 'EPIPE' || error.code === 'ECONNRESET' || error.code === 'ERR_STREAM_DESTROYED')
  );
}
