import { Writable } from 'node:stream';

/** ffmpeg decodes a second copy of the audio to mono signed 8-bit samples at this rate for the peaks … */
export const PEAKS_SAMPLE_RATE = 8000;
/** … and every this many samples become one min/max pair: 50 pairs per second of audio. */
export const PEAKS_SAMPLES_PER_PIXEL = 160;

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
 * Takes ffmpeg's signed 8-bit mono samples and keeps the minimum and maximum of every pixel's worth.
 * Also counts the samples: at a known rate that is the exact decoded duration. Written by hand because it
 * is a dozen lines over bytes that are already in memory; no library does less.
 */
export class PeaksCollector extends Writable {
  private pairs = new Int8Array(1024);
  private pairCount = 0;
  private samplesInPixel = 0;
  private min = 127;
  private max = -128;
  private samples = 0;

  constructor(private readonly samplesPerPixel = PEAKS_SAMPLES_PER_PIXEL) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const samples = new Int8Array(chunk.buffer, chunk.byteOffset, chunk.length);
    for (const sample of samples) {
      if (sample < this.min) this.min = sample;
      if (sample > this.max) this.max = sample;
      if (++this.samplesInPixel === this.samplesPerPixel) this.closePixel();
    }
    this.samples += samples.length;
    callback();
  }

  /** Decoded samples so far, at PEAKS_SAMPLE_RATE. */
  get sampleCount(): number {
    return this.samples;
  }

  /** The peaks, with the last partial pixel. */
  result(): Peaks {
    if (this.samplesInPixel > 0) this.closePixel();
    return {
      sampleRate: PEAKS_SAMPLE_RATE,
      samplesPerPixel: this.samplesPerPixel,
      data: this.pairs.slice(0, this.pairCount * 2),
    };
  }

  private closePixel(): void {
    if (this.pairCount * 2 === this.pairs.length) {
      const grown = new Int8Array(this.pairs.length * 2);
      grown.set(this.pairs);
      this.pairs = grown;
    }
    this.pairs[this.pairCount * 2] = this.min;
    this.pairs[this.pairCount * 2 + 1] = this.max;
    this.pairCount++;
    this.samplesInPixel = 0;
    this.min = 127;
    this.max = -128;
  }
}
