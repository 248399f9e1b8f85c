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
    private readonly transcoder: Transcoder,
    private readonly output: OutputFormat,
    private readonly limits: WavLimits,
  ) {}

  async convert(upload: AsyncIterable<Buffer>, outputPath: string): Promise<ConvertedAudio> {
    const source = upload[Symbol.asyncIterator]();
    const { wav, head } = await readHeader(source, this.limits);
    const shape = this.output.shapeFor(wav);
    const audio = new AudioByteCounter(wav, this.limits);
    await this.transcoder.run(
      Readable.from(audio.pass(head, source), { objectMode: false }),
      { input: { demuxer: 'wav' }, output: this.output, shape },
      outputPath,
    );
    const dataBytes = audio.dataBytes();
    if (dataBytes < wav.blockAlign) throw new AudioRejected('undecodable', 'The WAV holds no audio samples.');
    return {
      format: this.output,
      durationMs: Math.round((dataBytes / wav.bytesPerSecond) * 1000),
      sampleRate: shape.sampleRate,
      channels: shape.channels,
    };
  }
}

/** Reads just enough of the upload to judge its header; the bytes read are handed on with it. */
async function readHeader(source: AsyncIterator<Buffer>, limits: WavLimits): Promise<{ wav: WavFormat; head: Buffer }> {
  let head: Buffer = Buffer.alloc(0);
  for (;;) {
    const next = await source.next();
    if (next.done === true) {
      await source.return?.();
      if (head.length === 0) throw new AudioRejected('unsupported-format', 'The uploaded file is empty.');
      // Judges the unfinished header as a whole file: not a WAV unless a "fmt " chunk made it one, else undecodable.
      parseWavHeader(head, limits, true);
      throw new AudioRejected('undecodable', 'The WAV ends before its audio data.');
    }
    head = head.length === 0 ? next.value : Buffer.concat([head, next.value]);
    try {
      const wav = parseWavHeader(head, limits);
      if (wav !== undefined) return { wav, head };
    } catch (error) {
      await source.return?.();
      throw error;
    }
  }
}

/** Passes the upload through unchanged while counting its audio bytes and enforcing the duration limit. */
class AudioByteCounter {
  private totalBytes = 0;

  constructor(
    private readonly wav: WavFormat,
    private readonly limits: WavLimits,
  ) {}

  async *pass(head: Buffer, rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
    try {
      for (let chunk: Buffer | undefined = head; chunk !== undefined;) {
        this.totalBytes += chunk.length;
        // Without a declared size, the bytes received so far are all there is to judge the duration by.
        if (this.wav.declaredDataBytes === undefined) checkDuration(this.wav, this.dataBytes(), this.limits);
        yield chunk;
        const next = await rest.next();
        chunk = next.done === true ? undefined : next.value;
      }
    } finally {
      // Ends the upload stream too when the encoder stops early.
      await rest.return?.();
    }
  }

  /** Whole sample frames of audio received, within the declared data size when there is one. */
  dataBytes(): number {
    const received = Math.max(0, this.totalBytes - this.wav.dataOffset);
    const bytes = this.wav.declaredDataBytes === undefined ? received : Math.min(received, this.wav.declaredDataBytes);
    return bytes - (bytes % this.wav.blockAlign);
  }
}
