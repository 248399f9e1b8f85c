import fc from 'fast-check';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import {
  PEAKS_PER_SECOND,
  PeaksCollector,
  toAudiowaveformJson,
  WavPeaksReader,
  type Peaks,
} from '../../src/media/peaks.js';

/** The collector's tests run at 8 kHz, 160 samples a pixel: 50 pairs a second. */
const RATE = 8000;
const PER_PIXEL = 160;

/** Feeds `samples` to a collector in pieces of the given sizes (cycling through them), as ffmpeg's pipe would. */
async function collect(samples: Int8Array, pieceSizes: readonly number[], samplesPerPixel = PER_PIXEL, channels = 1) {
  const bytes = Buffer.from(samples.buffer, samples.byteOffset, samples.length);
  const pieces: Buffer[] = [];
  for (let at = 0, index = 0; at < bytes.length; index++) {
    const size = pieceSizes[index % pieceSizes.length] ?? bytes.length;
    pieces.push(bytes.subarray(at, at + size));
    at += size;
  }
  const collector = new PeaksCollector(samplesPerPixel, RATE, channels);
  await pipeline(Readable.from(pieces), collector);
  return { collector, peaks: collector.result() };
}

/** Min/max of every `perPixel` samples, the last pixel partial: computed on the whole signal at once. */
function expectedPairs(samples: Int8Array, perPixel = PER_PIXEL): number[] {
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
  const length = PER_PIXEL * 7 + 37; // seven whole pixels and a partial one
  const samples = signal(length);

  it.each([[[length]], [[1]], [[7]], [[159]], [[161]], [[160]], [[320, 1, 2, 3]], [[4096]], [[13, 160, 147, 1]]])(
    'keeps the min and max of every 160 samples, whatever the pieces (%j)',
    async (pieceSizes) => {
      const { collector, peaks } = await collect(samples, pieceSizes);
      expect(Array.from(peaks.data)).toEqual(expectedPairs(samples));
      expect(peaks.data).toHaveLength(2 * 8);
      expect(collector.sampleCount).toBe(length);
      expect(peaks.sampleRate).toBe(RATE);
      expect(peaks.samplesPerPixel).toBe(PER_PIXEL);
    },
  );

  it('is 50 pairs a second', () => {
    expect(PEAKS_PER_SECOND).toBe(50);
    expect(RATE / PER_PIXEL).toBe(PEAKS_PER_SECOND);
  });

  it('a pixel of several channels is samplesPerPixel frames, its min and max over all channels', async () => {
    // Stereo, 2 frames a pixel: left and right interleaved.
    const stereo = Int8Array.from([1, -5, 3, 2, /* pixel 2 */ 100, 0, 0, -100, /* partial */ 7, 9]);
    const { collector, peaks } = await collect(stereo, [3], 2, 2);
    expect(Array.from(peaks.data)).toEqual([-5, 3, -100, 100, 7, 9]);
    expect(collector.sampleCount).toBe(5); // frames, not samples
    expect(peaks.samplesPerPixel).toBe(2);
  });

  it('takes samples through add() as well as through the stream', () => {
    const collector = new PeaksCollector(2, 1000);
    collector.add(Int8Array.from([4, -4, 9]));
    collector.add(Int8Array.from([1]));
    expect(Array.from(collector.result().data)).toEqual([-4, 4, 1, 9]);
    expect(collector.sampleCount).toBe(4);
    expect(collector.result().sampleRate).toBe(1000);
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
    const collector = new PeaksCollector(PER_PIXEL, RATE);
    await pipeline(Readable.from([backing.subarray(300, 300 + 160)]), collector);
    expect(Array.from(collector.result().data)).toEqual([1, 1]);
    expect(collector.sampleCount).toBe(160);
  });

  it('reads a chunk at any byte offset the same, word-aligned or not, signed or unsigned', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.int8Array({ minLength: 1, maxLength: 600 }),
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 1, max: 100 }),
        async (values, offset, perPixel) => {
          const backing = Buffer.alloc(offset + values.length + 5, 0x7f);
          Buffer.from(values.buffer, values.byteOffset, values.length).copy(backing, offset);
          const signed = new PeaksCollector(perPixel, RATE);
          signed.add(new Int8Array(backing.buffer, backing.byteOffset + offset, values.length));
          const unsigned = new PeaksCollector(perPixel, RATE);
          unsigned.addUnsigned(Uint8Array.from(values, (value) => value + 128));
          expect(Array.from(signed.result().data)).toEqual(expectedPairs(values, perPixel));
          expect(Array.from(unsigned.result().data)).toEqual(expectedPairs(values, perPixel));
        },
      ),
      { numRuns: 300 },
    );
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

/** ffmpeg's peaks output: an unsigned 8-bit PCM WAV of `samples` (interleaved), its sizes unknown as on a pipe. */
function u8Wav(samples: readonly number[], sampleRate: number, channels = 1, bitsPerSample = 8): Buffer {
  const fmt = Buffer.alloc(24);
  fmt.write('fmt ', 0, 'latin1');
  fmt.writeUInt32LE(16, 4);
  fmt.writeUInt16LE(1, 8);
  fmt.writeUInt16LE(channels, 10);
  fmt.writeUInt32LE(sampleRate, 12);
  fmt.writeUInt32LE((sampleRate * channels * bitsPerSample) / 8, 16);
  fmt.writeUInt16LE((channels * bitsPerSample) / 8, 20);
  fmt.writeUInt16LE(bitsPerSample, 22);
  // A LIST chunk before the data, as ffmpeg writes one without +bitexact; the reader skips it.
  const list = Buffer.concat([Buffer.from('LIST\x04\x00\x00\x00INFO', 'latin1')]);
  const dataHeader = Buffer.from('data\xff\xff\xff\xff', 'latin1');
  const head = Buffer.from('RIFF\xff\xff\xff\xffWAVE', 'latin1');
  return Buffer.concat([head, fmt, list, dataHeader, Buffer.from(samples)]);
}

/** Writes `bytes` to a reader in pieces of the given sizes (cycling through them). */
async function read(bytes: Buffer, pieceSizes: readonly number[]): Promise<WavPeaksReader> {
  const pieces: Buffer[] = [];
  for (let at = 0, index = 0; at < bytes.length; index++) {
    const size = pieceSizes[index % pieceSizes.length] ?? bytes.length;
    pieces.push(Buffer.from(bytes.subarray(at, at + size)));
    at += size;
  }
  const reader = new WavPeaksReader();
  await pipeline(Readable.from(pieces), reader);
  return reader;
}

describe('WavPeaksReader', () => {
  it('reads a mono u8 WAV: unsigned samples become signed ones (128 is silence)', async () => {
    // 8 kHz: 160 frames a pixel.
    const samples = [
      ...[128, 128, 0, 255, ...Array<number>(156).fill(128)],
      ...[127, 129, ...Array<number>(158).fill(128)],
      200, // a partial pixel
    ];
    const reader = await read(u8Wav(samples, 8000), [1000]);
    expect(reader.decodedShape).toEqual({ sampleRate: 8000, channels: 1 });
    expect(reader.result()).toEqual({
      sampleRate: 8000,
      samplesPerPixel: 160,
      data: Int8Array.from([-128, 127, -1, 1, 72, 72]),
    });
    expect(reader.decodedSeconds).toBe(321 / 8000);
  });

  it('reads a stereo u8 WAV: a pixel is frames of both channels, its min and max over both', async () => {
    // 8 kHz stereo: a pixel is 160 frames, 320 interleaved samples.
    const pixel = (changes: Record<number, number>) => Array.from({ length: 320 }, (_, index) => changes[index] ?? 128);
    const samples = [
      ...pixel({ 0: 10, 11: 130 }), // the left channel's low, the right's high
      ...pixel({ 300: 250 }),
      128,
      0, // a partial pixel of one frame
    ];
    const reader = await read(u8Wav(samples, 8000, 2), [1000]);
    expect(reader.decodedShape).toEqual({ sampleRate: 8000, channels: 2 });
    expect(reader.result()?.samplesPerPixel).toBe(160);
    expect(Array.from(reader.result()?.data ?? [])).toEqual([-118, 2, 0, 122, -128, 0]);
    expect(reader.decodedSeconds).toBe(321 / 8000); // frames, not samples
  });

  it.each([[[1]], [[5]], [[13, 2, 31]], [[36]], [[44, 1]], [[7000]]])(
    'gives the same peaks however the header and samples are split (%j)',
    async (pieceSizes) => {
      const samples = Array.from({ length: 3200 }, (_, index) => (index * 37 + ((index * index) % 11)) % 256);
      const whole = await read(u8Wav(samples, 8000, 2), [1_000_000]);
      const split = await read(u8Wav(samples, 8000, 2), pieceSizes);
      expect(split.decodedShape).toEqual({ sampleRate: 8000, channels: 2 });
      expect(split.result()).toEqual(whole.result());
      expect(split.result()?.data).toHaveLength(2 * 10); // 1600 frames, 160 a pixel
      expect(split.decodedSeconds).toBe(0.2);
    },
  );

  it.each([
    [44100, 882],
    [48000, 960],
    [8000, 160],
    [11025, 221],
    [22050, 441],
  ])('takes 50 pixels a second at %i Hz: %i frames a pixel', async (sampleRate, samplesPerPixel) => {
    const reader = await read(u8Wav([128, 128], sampleRate), [1000]);
    expect(reader.result()?.samplesPerPixel).toBe(samplesPerPixel);
    expect(reader.result()?.sampleRate).toBe(sampleRate);
  });

  it('agrees with the whole-signal computation on unsigned samples, for any signal, channels and split', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 3000 }),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 2 }),
        async (values, pieceSizes, channels) => {
          const whole = values.subarray(0, values.length - (values.length % channels));
          // 8 kHz: 160 frames a pixel.
          const reader = await read(u8Wav(Array.from(whole), 8000, channels), pieceSizes);
          const signed = Int8Array.from(whole, (value) => value - 128);
          expect(Array.from(reader.result()?.data ?? [])).toEqual(expectedPairs(signed, 160 * channels));
          expect(reader.decodedSeconds).toBe(whole.length / channels / 8000);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('counts a second of 44.1 kHz audio as one second, in 50 pixels', async () => {
    const reader = await read(u8Wav(Array<number>(44100).fill(128), 44100), [4096]);
    expect(reader.decodedSeconds).toBe(1);
    expect(reader.result()?.data).toHaveLength(2 * 50);
  });

  it('a header with no samples after it: a shape, no pixels, no seconds', async () => {
    const reader = await read(u8Wav([], 48000, 2), [3]);
    expect(reader.decodedShape).toEqual({ sampleRate: 48000, channels: 2 });
    expect(reader.result()?.data).toHaveLength(0);
    expect(reader.decodedSeconds).toBe(0);
  });

  it('before (or without) a header: no shape, no peaks, no seconds', async () => {
    const reader = await read(u8Wav([], 8000).subarray(0, 30), [7]);
    expect(reader.decodedShape).toBeUndefined();
    expect(reader.result()).toBeUndefined();
    expect(reader.decodedSeconds).toBe(0);
    const empty = await read(Buffer.alloc(0), [1]);
    expect(empty.decodedShape).toBeUndefined();
    expect(empty.result()).toBeUndefined();
  });

  it('fails on a WAV that is not unsigned 8-bit', async () => {
    await expect(read(u8Wav([0, 0, 0, 0], 8000, 1, 16), [1000])).rejects.toThrow(/unsigned 8-bit/);
  });

  it('fails on bytes that are not a WAV', async () => {
    await expect(read(Buffer.from('not a WAV at all, not at all'), [1000])).rejects.toThrow();
  });
});
