import fc from 'fast-check';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import {
  PEAKS_SAMPLE_RATE,
  PEAKS_SAMPLES_PER_PIXEL,
  PeaksCollector,
  toAudiowaveformJson,
  type Peaks,
} from '../../src/media/peaks.js';

/** Feeds `samples` to a collector in pieces of the given sizes (cycling through them), as ffmpeg's pipe would. */
async function collect(samples: Int8Array, pieceSizes: readonly number[], samplesPerPixel?: number) {
  const bytes = Buffer.from(samples.buffer, samples.byteOffset, samples.length);
  const pieces: Buffer[] = [];
  for (let at = 0, index = 0; at < bytes.length; index++) {
    const size = pieceSizes[index % pieceSizes.length] ?? bytes.length;
    pieces.push(bytes.subarray(at, at + size));
    at += size;
  }
  const collector = new PeaksCollector(samplesPerPixel);
  await pipeline(Readable.from(pieces), collector);
  return { collector, peaks: collector.result() };
}

/** Min/max of every `perPixel` samples, the last pixel partial: computed on the whole signal at once. */
function expectedPairs(samples: Int8Array, perPixel = PEAKS_SAMPLES_PER_PIXEL): number[] {
  const pairs: number[] = [];
  for (let at = 0; at < samples.length; at += perPixel) {
    const pixel = Array.from(samples.subarray(at, at + perPixel));
    pairs.push(Math.min(...pixel), Math.max(...pixel));
  }
  return pairs;
}

/** A deterministic signal that visits the whole signed range, with a different min and max in every pixel. */
function signal(length: number): Int8Array {
  return Int8Array.from({ length }, (_, index) => Math.round(127 * Math.sin(index * 0.013) * Math.cos(index * 0.7)));
}

describe('PeaksCollector', () => {
  const length = PEAKS_SAMPLES_PER_PIXEL * 7 + 37; // seven whole pixels and a partial one
  const samples = signal(length);

  it.each([[[length]], [[1]], [[7]], [[159]], [[161]], [[160]], [[320, 1, 2, 3]], [[4096]], [[13, 160, 147, 1]]])(
    'keeps the min and max of every 160 samples, whatever the pieces (%j)',
    async (pieceSizes) => {
      const { collector, peaks } = await collect(samples, pieceSizes);
      expect(Array.from(peaks.data)).toEqual(expectedPairs(samples));
      expect(peaks.data).toHaveLength(2 * 8);
      expect(collector.sampleCount).toBe(length);
      expect(peaks.sampleRate).toBe(PEAKS_SAMPLE_RATE);
      expect(peaks.samplesPerPixel).toBe(PEAKS_SAMPLES_PER_PIXEL);
    },
  );

  it('is 50 pairs a second at 8 kHz', () => {
    expect(PEAKS_SAMPLE_RATE).toBe(8000);
    expect(PEAKS_SAMPLE_RATE / PEAKS_SAMPLES_PER_PIXEL).toBe(50);
  });

  it('closes the last, partial pixel with what it has', async () => {
    const partial = Int8Array.from([...Array<number>(160).fill(0), -3, 5, 2]);
    const { peaks } = await collect(partial, [1]);
    expect(Array.from(peaks.data)).toEqual([0, 0, -3, 5]);
  });

  it('a partial pixel of one sample has that sample as min and max', async () => {
    const { peaks } = await collect(Int8Array.from([...Array<number>(160).fill(1), -77]), [100]);
    expect(Array.from(peaks.data)).toEqual([1, 1, -77, -77]);
  });

  it('adds no empty pixel when the samples end on a pixel boundary', async () => {
    const whole = signal(160 * 3);
    const { collector, peaks } = await collect(whole, [33]);
    expect(peaks.data).toHaveLength(6);
    expect(Array.from(peaks.data)).toEqual(expectedPairs(whole));
    expect(collector.sampleCount).toBe(480);
  });

  it('no samples, no pixels', async () => {
    const { collector, peaks } = await collect(new Int8Array(0), [1]);
    expect(peaks.data).toHaveLength(0);
    expect(collector.sampleCount).toBe(0);
  });

  it('reads the bytes as signed: the extremes and constant pixels come out exact', async () => {
    const bytes = Buffer.concat([
      Buffer.alloc(160, 0x80), // all -128
      Buffer.alloc(160, 0x7f), // all 127
      Buffer.alloc(160, 0xff), // all -1
      Buffer.from([0x80, 0x7f, ...Array<number>(158).fill(0)]),
    ]);
    const samples8 = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length);
    const { peaks } = await collect(samples8, [59]);
    expect(Array.from(peaks.data)).toEqual([-128, -128, 127, 127, -1, -1, -128, 127]);
  });

  it('reads only its chunk of a shared buffer (a pooled Buffer with a byte offset)', async () => {
    const backing = Buffer.alloc(1000, 0x7f); // +127 around the chunk
    backing.fill(0x01, 300, 300 + 160);
    const collector = new PeaksCollector();
    await pipeline(Readable.from([backing.subarray(300, 300 + 160)]), collector);
    expect(Array.from(collector.result().data)).toEqual([1, 1]);
    expect(collector.sampleCount).toBe(160);
  });

  it('grows past its first 1024 pairs without losing any', async () => {
    const long = signal(160 * 3000 + 5); // 3001 pixels
    const { collector, peaks } = await collect(long, [8192, 1, 999]);
    expect(peaks.data).toHaveLength(2 * 3001);
    expect(Array.from(peaks.data)).toEqual(expectedPairs(long));
    expect(collector.sampleCount).toBe(160 * 3000 + 5);
  });

  it('grows through several doublings at one sample a pixel', async () => {
    const perSample = signal(5000);
    const { peaks } = await collect(perSample, [777], 1);
    expect(peaks.samplesPerPixel).toBe(1);
    expect(Array.from(peaks.data)).toEqual(Array.from(perSample).flatMap((value) => [value, value]));
  });

  it('agrees with the whole-signal computation for any signal, pixel size and split', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.int8Array({ maxLength: 2000 }),
        fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 300 }),
        async (values, pieceSizes, perPixel) => {
          const { collector, peaks } = await collect(values, pieceSizes, perPixel);
          expect(Array.from(peaks.data)).toEqual(expectedPairs(values, perPixel));
          expect(collector.sampleCount).toBe(values.length);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('toAudiowaveformJson', () => {
  const peaks: Peaks = { sampleRate: 8000, samplesPerPixel: 160, data: Int8Array.from([-128, 127, -3, 4, 0, 0]) };

  it('is audiowaveform version 2: one channel of 8-bit min/max pairs', () => {
    expect(toAudiowaveformJson(peaks)).toEqual({
      version: 2,
      channels: 1,
      sample_rate: 8000,
      samples_per_pixel: 160,
      bits: 8,
      length: 3,
      data: [-128, 127, -3, 4, 0, 0],
    });
  });

  it('data is a plain array of signed numbers, as JSON has them', () => {
    const json = toAudiowaveformJson(peaks);
    expect(Array.isArray(json.data)).toBe(true);
    expect(JSON.parse(JSON.stringify(json))).toEqual(json);
  });

  it('counts pairs, not samples, in length; none for no audio', () => {
    expect(toAudiowaveformJson({ ...peaks, data: new Int8Array(2 * 1500) }).length).toBe(1500);
    expect(toAudiowaveformJson({ ...peaks, data: new Int8Array(0) })).toMatchObject({ length: 0, data: [] });
  });

  it('carries the collector’s rate and pixel size', async () => {
    const { peaks: collected } = await collect(signal(1000), [100], 40);
    const json = toAudiowaveformJson(collected);
    expect(json).toMatchObject({ sample_rate: 8000, samples_per_pixel: 40, length: 25 });
    expect(json.data).toHaveLength(50);
  });
});
