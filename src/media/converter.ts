import { Readable } from 'node:stream';
import { AudioRejected } from '../domain/errors.js';
import type { OutputFormat } from './outputs.js';
import type { Transcoder } from './transcoder.js';
import { checkDuration, parseWavHeader, type WavFormat, type WavLimits } from './wav.js';

/** What a finished conversion knows about its output file. */
export interface ConvertedAudio {
  readonly format: OutputFormat;
  readonly durationMs: number;
  readonly sampleRate: number;
  readonly channels: number;
}

/**
 * Turns an upload's bytes into an output file: the header is judged as the first bytes arrive, then the
 * stream goes straight into the encoder. Writes only `outputPath`; the caller owns it, on success and
 * on failure.
 */
export class Converter {
  constructor(
    private readonly transcoder: Pick<Transcoder, 'run'>,
    private readonly output: OutputFormat,
    private readonly limits: WavLimits,
  ) {}

  async convert(upload: AsyncIterable<Buffer>, outputPath: string): Promise<ConvertedAudio> {
    const source = upload[Symbol.asyncIterator]();
    const { wav, head } = await readHeader(source, this.limits);
    const shape = this.output.shapeFor(wav);
    const audio = new AudioBytes(wav, this.limits);
    // The container is parsed once, here: ffmpeg gets only the samples counted, as raw PCM.
    await this.transcoder.run(
      Readable.from(audio.samples(head, source), { objectMode: false }),
      {
        input: {
          sampleFormat: wav.sampleFormat,
          sampleRate: wav.sampleRate,
          channels: wav.channels,
          channelMask: wav.channelMask,
        },
        output: this.output,
        shape,
        maxDurationSeconds: this.limits.maxDurationSeconds,
      },
      outputPath,
    );
    const dataBytes = audio.wholeFrameBytes();
    if (dataBytes < wav.blockAlign) throw new AudioRejected('undecodable', 'The WAV holds no audio samples.');
    return {
      format: this.output,
      durationMs: Math.round((dataBytes / wav.bytesPerSecond) * 1000),
      sampleRate: shape.sampleRate,
      channels: shape.channels,
    };
  }
}

/**
 * Reads just enough of the upload to judge its header; the bytes read are handed on with it. The bytes
 * gather in a buffer that doubles when full, so a header sent in many small pieces costs linear time.
 */
async function readHeader(source: AsyncIterator<Buffer>, limits: WavLimits): Promise<{ wav: WavFormat; head: Buffer }> {
  let buffer = Buffer.alloc(0);
  let length = 0;
  for (;;) {
    const next = await source.next();
    if (next.done === true) {
      await source.return?.();
      if (length === 0) throw new AudioRejected('unsupported-format', 'The uploaded file is empty.');
      // Judges the unfinished header as a whole file: not a WAV unless a "fmt " chunk made it one, else undecodable.
      parseWavHeader(buffer.subarray(0, length), limits, true);
      throw new AudioRejected('undecodable', 'The WAV ends before its audio data.');
    }
    const chunk = next.value;
    if (length + chunk.length > buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(length + chunk.length, buffer.length * 2, 4096));
      buffer.copy(grown, 0, 0, length);
      buffer = grown;
    }
    chunk.copy(buffer, length);
    length += chunk.length;
    try {
      const head = buffer.subarray(0, length);
      const wav = parseWavHeader(head, limits);
      if (wav !== undefined) return { wav, head };
    } catch (error) {
      await source.return?.();
      throw error;
    }
  }
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
