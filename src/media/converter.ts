import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AudioRejected } from '../domain/errors.js';
import { ACCEPTED_INPUTS, MAX_SNIFF_BYTES, sniffInput, type InputKind, type InputKindName } from './input-kinds.js';
import type { Peaks } from './peaks.js';
import {
  muxerArguments,
  planOutput,
  type OutputPlan,
  type OutputRequest,
  type OutputSettings,
  type StoredFormat,
} from './outputs.js';
import { copyableAs, firstMpegFrameOffset } from './source-codec.js';
import type { TranscodeInput, TranscodeResult, Transcoder } from './transcoder.js';
import { checkDuration, parseWavHeader, type WavFormat, type WavLimits } from './wav.js';

/** What one upload asks of its conversion. */
export interface ConvertRequest {
  readonly output: OutputRequest;
  /** Written into the file's tags when known before the audio arrives. */
  readonly title: string | null;
  /** A scratch path for an input that must be on disk before it can be read (an MP4 with its index last). */
  readonly spoolPath: string;
}

/** What a finished conversion knows about its output file. */
export interface ConvertedAudio {
  readonly format: StoredFormat;
  readonly sourceFormat: InputKindName;
  readonly durationMs: number;
  readonly sampleRate: number;
  readonly channels: number;
  readonly peaks: Peaks;
  readonly loudnessLufs: number | undefined;
}

// Compressed inputs are judged by what they decode to: ffmpeg stops a little past the limit, which then
// tells a file over the limit from one exactly at it.
const DURATION_OVERSHOOT_SECONDS = 1;

/**
 * Turns an upload's bytes into an output file: the kind of input is judged from its first bytes, then the
 * stream goes straight into the encoder (a WAV as raw samples after our own parse, anything else through
 * the one demuxer it was recognised as). Writes only `outputPath` and `request.spoolPath`; the caller owns
 * both, on success and on failure.
 */
export class Converter {
  constructor(
    private readonly transcoder: Pick<Transcoder, 'run'>,
    private readonly settings: OutputSettings,
    private readonly limits: WavLimits,
  ) {}

  /** Refuses, before any byte of the upload is read, options the format cannot do. */
  check(request: OutputRequest): void {
    planOutput(request, { sameCodecAs: undefined, shape: undefined }, this.settings);
  }

  /** Copies a stored file's audio into `outputPath` with a new title tag (or none): no re-encoding. */
  async retag(stored: Readable, format: StoredFormat, title: string | null, outputPath: string): Promise<void> {
    await this.transcoder.run(
      stored,
      {
        input: { kind: 'stream', demuxer: format.demuxer },
        output: ['-c:a', 'copy', ...muxerArguments(format, title)],
        peaks: false,
      },
      outputPath,
    );
  }

  /** Decodes a stored file once for its peaks (records stored before peaks were computed on upload). */
  async peaksOf(stored: Readable, format: StoredFormat): Promise<Peaks> {
    const result = await this.transcoder.run(stored, {
      input: { kind: 'stream', demuxer: format.demuxer },
      output: undefined,
      peaks: true,
    });
    return peaksOf(result);
  }

  async convert(upload: AsyncIterable<Buffer>, outputPath: string, request: ConvertRequest): Promise<ConvertedAudio> {
    const source = upload[Symbol.asyncIterator]();
    const head = await readHead(source, this.limits);
    if (head.wav !== undefined) return this.convertWav(head.wav, head.bytes, source, outputPath, request);

    const plan = planOutput(
      request.output,
      { sameCodecAs: copyableAs(head.kind.name, head.bytes), shape: undefined },
      this.settings,
    );
    const demuxer = head.kind.demuxer ?? '';
    let input: TranscodeInput = { kind: 'stream', demuxer };
    let stream: Readable | undefined = Readable.from(prepend(head.bytes, source), { objectMode: false });
    if (!head.streamable) {
      await pipeline(stream, createWriteStream(request.spoolPath, { flags: 'wx' }));
      input = { kind: 'file', demuxer, path: request.spoolPath };
      stream = undefined;
    }
    const result = await this.run(
      stream,
      input,
      plan,
      request,
      this.limits.maxDurationSeconds + DURATION_OVERSHOOT_SECONDS,
      outputPath,
    );
    if (result.decodedShape === undefined || result.decodedSeconds === 0) {
      throw new AudioRejected('undecodable', 'The file holds no decodable audio.');
    }
    if (result.decodedSeconds > this.limits.maxDurationSeconds) {
      throw new AudioRejected('too-long', `The recording is longer than ${this.limits.maxDurationSeconds} seconds.`);
    }
    const shape = plan.storedShape(result.decodedShape);
    return {
      format: plan.format,
      sourceFormat: head.kind.name,
      durationMs: Math.round(result.decodedSeconds * 1000),
      sampleRate: shape.sampleRate,
      channels: shape.channels,
      peaks: peaksOf(result),
      loudnessLufs: result.loudnessLufs,
    };
  }

  private async convertWav(
    wav: WavFormat,
    head: Buffer,
    source: AsyncIterator<Buffer>,
    outputPath: string,
    request: ConvertRequest,
  ): Promise<ConvertedAudio> {
    const plan = planOutput(request.output, { sameCodecAs: undefined, shape: wav }, this.settings);
    const audio = new AudioBytes(wav, this.limits);
    // The container is parsed once, here: ffmpeg gets only the samples counted, as raw PCM.
    const result = await this.run(
      Readable.from(audio.samples(head, source), { objectMode: false }),
      {
        kind: 'raw',
        sampleFormat: wav.sampleFormat,
        sampleRate: wav.sampleRate,
        channels: wav.channels,
        channelMask: wav.channelMask,
      },
      plan,
      request,
      this.limits.maxDurationSeconds,
      outputPath,
    );
    const dataBytes = audio.wholeFrameBytes();
    if (dataBytes < wav.blockAlign) throw new AudioRejected('undecodable', 'The WAV holds no audio samples.');
    const shape = plan.storedShape(wav);
    return {
      format: plan.format,
      sourceFormat: 'wav',
      durationMs: Math.round((dataBytes / wav.bytesPerSecond) * 1000),
      sampleRate: shape.sampleRate,
      channels: shape.channels,
      peaks: peaksOf(result),
      loudnessLufs: result.loudnessLufs,
    };
  }

  private run(
    stream: Readable | undefined,
    input: TranscodeInput,
    plan: OutputPlan,
    request: ConvertRequest,
    maxDurationSeconds: number,
    outputPath: string,
  ): Promise<TranscodeResult> {
    return this.transcoder.run(
      stream,
      {
        input,
        output: [...plan.arguments, ...muxerArguments(plan.format, request.title)],
        peaks: true,
        maxDurationSeconds,
        reportsLoudness: plan.normalizeToLufs !== undefined,
      },
      outputPath,
    );
  }
}

function peaksOf(result: TranscodeResult): Peaks {
  if (result.peaks === undefined) throw new Error('the conversion was run without peaks');
  return result.peaks;
}

async function* prepend(head: Buffer, rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  try {
    yield head;
    for (let next = await rest.next(); next.done !== true; next = await rest.next()) yield next.value;
  } finally {
    // Ends the upload stream too when the encoder stops early.
    await rest.return?.();
  }
}

type Head =
  | { readonly bytes: Buffer; readonly wav: WavFormat; readonly kind?: undefined }
  | { readonly bytes: Buffer; readonly wav?: undefined; readonly kind: InputKind; readonly streamable: boolean };

/**
 * Reads just enough of the upload to tell its kind (and, for a WAV, to parse its header); the bytes read
 * are handed on with it. The bytes gather in a buffer that doubles when full, so a header sent in many
 * small pieces costs linear time.
 */
async function readHead(source: AsyncIterator<Buffer>, limits: WavLimits): Promise<Head> {
  let buffer = Buffer.alloc(0);
  let length = 0;
  let done = false;
  try {
    for (;;) {
      const head = buffer.subarray(0, length);
      const sniffed = sniffInput(head, done);
      if (sniffed.verdict === 'unsupported') {
        throw new AudioRejected(
          'unsupported-format',
          length === 0
            ? 'The uploaded file is empty.'
            : `The file is not audio this service reads: ${ACCEPTED_INPUTS}.`,
        );
      }
      if (sniffed.verdict === 'recognised') {
        if (sniffed.kind.name === 'wav') {
          // Judges an unfinished header as a whole file: undecodable unless a "fmt " chunk made it a WAV.
          const wav = parseWavHeader(head, limits, done);
          if (wav !== undefined) return { bytes: head, wav };
          if (done) throw new AudioRejected('undecodable', 'The WAV ends before its audio data.');
        } else if (done || !needsMore(sniffed.kind.name, head)) {
          return { bytes: head, kind: sniffed.kind, streamable: sniffed.streamable };
        }
      }
      if (done) throw new Error('sniffInput asked for more bytes of a complete file');
      const next = await source.next();
      if (next.done === true) {
        done = true;
        continue;
      }
      const chunk = next.value;
      if (length + chunk.length > buffer.length) {
        const grown = Buffer.allocUnsafe(Math.max(length + chunk.length, buffer.length * 2, 4096));
        buffer.copy(grown, 0, 0, length);
        buffer = grown;
      }
      chunk.copy(buffer, length);
      length += chunk.length;
    }
  } catch (error) {
    await source.return?.();
    throw error;
  }
}

/** An MP3 behind an ID3 tag is read up to its first frame (within limits), to tell MP3 from MP1/MP2. */
function needsMore(kind: InputKindName, head: Buffer): boolean {
  if (kind !== 'mp3') return false;
  const frame = firstMpegFrameOffset(head);
  return typeof frame !== 'number' && frame.need <= MAX_SNIFF_BYTES && head.length < frame.need;
}

/**
 * Picks the audio samples out of the upload: the bytes of the first data chunk, up to its declared size
 * (everything to the end when the writer did not know the size). Whatever follows (metadata chunks, a
 * second data chunk) is read and dropped, never decoded. Enforces the duration limit on the bytes counted.
 */
class AudioBytes {
  private audioBytes = 0;

  constructor(
    private readonly wav: WavFormat,
    private readonly limits: WavLimits,
  ) {}

  async *samples(head: Buffer, rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
    try {
      const declared = this.wav.declaredDataBytes;
      let chunk: Buffer | undefined = head.subarray(this.wav.dataOffset);
      while (chunk !== undefined) {
        const wanted = declared === undefined ? chunk.length : Math.min(chunk.length, declared - this.audioBytes);
        if (wanted > 0) {
          this.audioBytes += wanted;
          // Without a declared size, the bytes received so far are all there is to judge the duration by.
          if (declared === undefined) checkDuration(this.wav, this.wholeFrameBytes(), this.limits);
          yield wanted === chunk.length ? chunk : chunk.subarray(0, wanted);
        }
        const next = await rest.next();
        chunk = next.done === true ? undefined : next.value;
      }
    } finally {
      // Ends the upload stream too when the encoder stops early.
      await rest.return?.();
    }
  }

  /** Whole sample frames of audio fed to the encoder. */
  wholeFrameBytes(): number {
    return this.audioBytes - (this.audioBytes % this.wav.blockAlign);
  }
}
