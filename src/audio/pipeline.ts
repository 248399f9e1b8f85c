import { Readable } from 'node:stream';
import { notAWav, undecodableAudio } from '../errors.js';
import type { LocalStorage } from '../storage/local.js';
import type { Mp3Target, Transcoder } from './transcoder.js';
import { checkDuration, mp3SampleRate, parseWavHeader, type WavFormat, type WavLimits } from './wav.js';

export interface ConvertedRecording {
  readonly sizeBytes: number;
  readonly durationMs: number;
  readonly sampleRate: number;
  readonly channels: number;
  /** Average bits per second of the MP3. */
  readonly bitrate: number;
}

/**
 * The path of one upload: WAV bytes are checked as they arrive, streamed into the encoder, and the MP3
 * lands in storage under the record id. Nothing of a failed conversion stays behind.
 */
export class AudioPipeline {
  constructor(
    private readonly transcoder: Transcoder,
    private readonly storage: LocalStorage,
    private readonly limits: WavLimits,
  ) {}

  async convert(upload: AsyncIterable<Buffer>, recordId: string): Promise<ConvertedRecording> {
    const source = upload[Symbol.asyncIterator]();
    const { wav, head } = await readHeader(source, this.limits);
    const target: Mp3Target = { sampleRate: mp3SampleRate(wav.sampleRate), channels: wav.channels === 1 ? 1 : 2 };

    const audio = new AudioByteCounter(wav, this.limits);
    const tempPath = this.storage.tempPath();
    try {
      await this.transcoder.toMp3(Readable.from(audio.pass(head, source), { objectMode: false }), target, tempPath);
      const dataBytes = audio.dataBytes();
      if (dataBytes < wav.blockAlign) throw undecodableAudio('The WAV holds no audio samples.');
      const stored = await this.storage.commit(tempPath, recordId);
      const durationMs = Math.round((dataBytes / wav.bytesPerSecond) * 1000);
      return {
        sizeBytes: stored.sizeBytes,
        durationMs,
        sampleRate: target.sampleRate,
        channels: target.channels,
        bitrate: Math.round((stored.sizeBytes * 8 * 1000) / Math.max(durationMs, 1)),
      };
    } catch (error) {
      await this.storage.discard(tempPath);
      throw error;
    }
  }
}

/** Reads just enough of the upload to judge its header; the bytes read are handed on with it. */
async function readHeader(source: AsyncIterator<Buffer>, limits: WavLimits): Promise<{ wav: WavFormat; head: Buffer }> {
  let head: Buffer = Buffer.alloc(0);
  for (;;) {
    const next = await source.next();
    if (next.done === true) {
      await source.return?.();
      if (head.length === 0) throw notAWav('The uploaded file is empty.');
      // Judges the unfinished header as a whole file: 415 unless a "fmt " chunk made it a WAV, else 422.
      parseWavHeader(head, limits, true);
      throw undecodableAudio('The WAV ends before its audio data.');
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
