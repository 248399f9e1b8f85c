import { Writable } from 'node:stream';
import { parseWavHeader, type WavFormat } from './wav.js';

/** Min/max pairs per second of audio, whatever its rate (rounded to whole samples per pair). */
export const PEAKS_PER_SECOND = 50;

const SIGN_BIT = 0x80;
const NO_WORDS = new Uint32Array(0);

/** A waveform overview: interleaved min/max pairs of 8-bit samples, one pair per `samplesPerPixel`. */
export interface Peaks {
  readonly sampleRate: number;
  readonly samplesPerPixel: number;
  /** min0, max0, min1, max1 … as signed bytes. */
  readonly data: Int8Array;
}

/** The BBC audiowaveform JSON format (version 2) that wavesurfer.js and peaks.js draw. */
export interface AudiowaveformJson {
  readonly version: 2;
  readonly channels: 1;
  readonly sample_rate: number;
  readonly samples_per_pixel: number;
  readonly bits: 8;
  readonly length: number;
  readonly data: number[];
}

export function toAudiowaveformJson(peaks: Peaks): AudiowaveformJson {
  return {
    version: 2,
    channels: 1,
    sample_rate: peaks.sampleRate,
    samples_per_pixel: peaks.samplesPerPixel,
    bits: 8,
    length: peaks.data.length / 2,
    data: Array.from(peaks.data),
  };
}

/**
 * Keeps the minimum and maximum of every pixel's worth of signed 8-bit samples, and counts the samples.
 * Written by hand because it is a dozen lines over bytes that are already in memory; no library does less.
 */
export class PeaksCollector extends Writable {
  private pairs = new Int8Array(1024);
  private pairCount = 0;
  private samplesInPixel = 0;
  private min = 127;
  private max = -128;
  private samples = 0;

  /** A pixel is `samplesPerPixel` sample frames, of `channels` interleaved samples each. */
  constructor(
    private readonly samplesPerPixel: number,
    private readonly sampleRate: number,
    private readonly channels = 1,
  ) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.add(new Int8Array(chunk.buffer, chunk.byteOffset, chunk.length));
    callback();
  }

  add(samples: Int8Array): void {
    // A signed byte with its top bit flipped is its value + 128, so signed samples scan as unsigned ones.
    this.scan(new Uint8Array(samples.buffer, samples.byteOffset, samples.length), SIGN_BIT);
  }

  /** Unsigned 8-bit samples (silence at 128), as ffmpeg's pcm_u8 writes them. */
  addUnsigned(samples: Uint8Array): void {
    this.scan(samples, 0);
  }

  /**
   * One pass over the samples as unsigned bytes (signed value + 128; `flip` makes them so), min and max kept
   * in that domain and shifted only per pixel. It sees every decoded sample (88,200 a second for CD audio)
   * and is the server's largest cost per upload, so the bulk of a pixel is read four bytes at a time through
   * a 32-bit view of the aligned part of the chunk: a third less time than byte by byte (bench/NOTES.md).
   */
  private scan(bytes: Uint8Array, flip: number): void {
    const perPixel = this.samplesPerPixel * this.channels;
    const flipWord = flip * 0x01010101;
    // Bytes [wordsFrom, wordsFrom + 4 × words.length) of the chunk are read through `words`.
    const wordsFrom = (4 - (bytes.byteOffset & 3)) & 3;
    const wordCount = Math.max(0, bytes.length - wordsFrom) >>> 2;
    const words = wordCount === 0 ? NO_WORDS : new Uint32Array(bytes.buffer, bytes.byteOffset + wordsFrom, wordCount);
    let min = this.min + 128;
    let max = this.max + 128;
    let inPixel = this.samplesInPixel;
    let index = 0;
    while (index < bytes.length) {
      const end = Math.min(bytes.length, index + perPixel - inPixel);
      inPixel += end - index;
      // Whole words inside [index, end), bytes before and after them one at a time.
      const firstWord = Math.max(0, Math.ceil((index - wordsFrom) / 4));
      const lastWord = Math.min(words.length, Math.floor((end - wordsFrom) / 4));
      const wordsStart = firstWord < lastWord ? wordsFrom + firstWord * 4 : end;
      for (; index < wordsStart; index++) {
        const sample = bytes[index]! ^ flip;
        if (sample < min) min = sample;
        if (sample > max) max = sample;
      }
      if (firstWord < lastWord) {
        for (let word = firstWord; word < lastWord; word++) {
          const four = words[word]! ^ flipWord;
          const a = four & 0xff;
          const b = (four >>> 8) & 0xff;
          const c = (four >>> 16) & 0xff;
          const d = four >>> 24;
          if (a < min) min = a;
          if (a > max) max = a;
          if (b < min) min = b;
          if (b > max) max = b;
          if (c < min) min = c;
          if (c > max) max = c;
          if (d < min) min = d;
          if (d > max) max = d;
        }
        index = wordsFrom + lastWord * 4;
      }
      for (; index < end; index++) {
        const sample = bytes[index]! ^ flip;
        if (sample < min) min = sample;
        if (sample > max) max = sample;
      }
      if (inPixel === perPixel) {
        this.closePixel(min - 128, max - 128);
        min = 255;
        max = 0;
        inPixel = 0;
      }
    }
    this.min = min - 128;
    this.max = max - 128;
    this.samplesInPixel = inPixel;
    this.samples += bytes.length;
  }

  /** Sample frames seen so far, at the collector's sample rate. */
  get sampleCount(): number {
    return Math.floor(this.samples / this.channels);
  }

  /** The peaks, with the last partial pixel. */
  result(): Peaks {
    if (this.samplesInPixel > 0) {
      this.closePixel(this.min, this.max);
      this.samplesInPixel = 0;
      this.min = 127;
      this.max = -128;
    }
    return {
      sampleRate: this.sampleRate,
      samplesPerPixel: this.samplesPerPixel,
      data: this.pairs.slice(0, this.pairCount * 2),
    };
  }

  private closePixel(min: number, max: number): void {
    if (this.pairCount * 2 === this.pairs.length) {
      const grown = new Int8Array(this.pairs.length * 2);
      grown.set(this.pairs);
      this.pairs = grown;
    }
    this.pairs[this.pairCount * 2] = min;
    this.pairs[this.pairCount * 2 + 1] = max;
    this.pairCount++;
  }
}

// The header of ffmpeg's own WAV output is judged by the WAV parser, which needs a limit; the peaks stream
// is never longer than what the conversion itself allows.
const NO_LIMIT = { maxDurationSeconds: Number.MAX_SAFE_INTEGER };

/**
 * Reads ffmpeg's peaks output: the decoded audio as unsigned 8-bit WAV, at its own rate and channels.
 * Neither is converted (resampling and downmixing would cost the encoder several percent more CPU than
 * this loop costs the server); a pixel's min and max are taken over all channels. The header tells the
 * decoded rate and channels, and the sample count the exact decoded duration.
 */
export class WavPeaksReader extends Writable {
  private head = Buffer.alloc(0);
  private collector: PeaksCollector | undefined;
  private shape: { sampleRate: number; channels: number } | undefined;

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    try {
      if (this.collector === undefined) {
        this.head = Buffer.concat([this.head, chunk]);
        const wav = parseWavHeader(this.head, NO_LIMIT);
        if (wav !== undefined) this.start(wav);
      } else {
        this.collector.addUnsigned(chunk);
      }
      callback();
    } catch (error) {
      callback(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** Seconds of audio decoded so far. */
  get decodedSeconds(): number {
    return this.collector === undefined || this.shape === undefined
      ? 0
      : this.collector.sampleCount / this.shape.sampleRate;
  }

  /** The decoded audio's rate and channels; undefined when ffmpeg wrote no audio at all. */
  get decodedShape(): { readonly sampleRate: number; readonly channels: number } | undefined {
    return this.shape;
  }

  /** The peaks; undefined when ffmpeg wrote no audio at all. */
  result(): Peaks | undefined {
    return this.collector?.result();
  }

  private start(wav: WavFormat): void {
    if (wav.sampleFormat !== 'u8') throw new Error('the peaks output is not unsigned 8-bit');
    this.shape = { sampleRate: wav.sampleRate, channels: wav.channels };
    const samplesPerPixel = Math.max(1, Math.round(wav.sampleRate / PEAKS_PER_SECOND));
    this.collector = new PeaksCollector(samplesPerPixel, wav.sampleRate, wav.channels);
    this.collector.addUnsigned(this.head.subarray(wav.dataOffset));
    this.head = Buffer.alloc(0);
  }
}
