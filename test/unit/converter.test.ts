import type { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { AudioRejected, type AudioRejection } from '../../src/domain/errors.js';
import { Converter } from '../../src/media/converter.js';
import { mp3Output } from '../../src/media/outputs.js';
import type { TranscodeJob } from '../../src/media/transcoder.js';

const MP3 = mp3Output({ vbrQuality: 2, bitrateKbps: undefined, compressionLevel: undefined });

/** Stands in for ffmpeg: reads everything it is fed, as ffmpeg would, and remembers it. */
class FakeTranscoder {
  fed: Buffer | undefined;
  job: TranscodeJob | undefined;

  async run(input: Readable, job: TranscodeJob, _outputPath: string): Promise<void> {
    this.job = job;
    const chunks: Buffer[] = [];
    for await (const chunk of input) chunks.push(chunk as Buffer);
    this.fed = Buffer.concat(chunks);
  }
}

function converterWith(maxDurationSeconds = 3600) {
  const transcoder = new FakeTranscoder();
  // Transcoder is a class with a private member, so only a cast makes the fake acceptable to the constructor.
  const converter = new Converter(transcoder, MP3, { maxDurationSeconds });
  return { transcoder, converter };
}

/** 8 kHz 16-bit mono (16 000 bytes a second), with `samples` as the data chunk and `after` following it. */
function wav(samples: Buffer, options: { declaredSize?: number; after?: Buffer } = {}): Buffer {
  const fmt = Buffer.alloc(24);
  fmt.write('fmt ', 0, 'latin1');
  fmt.writeUInt32LE(16, 4);
  fmt.writeUInt16LE(1, 8);
  fmt.writeUInt16LE(1, 10);
  fmt.writeUInt32LE(8000, 12);
  fmt.writeUInt32LE(16000, 16);
  fmt.writeUInt16LE(2, 20);
  fmt.writeUInt16LE(16, 22);
  const dataHeader = Buffer.alloc(8);
  dataHeader.write('data', 0, 'latin1');
  dataHeader.writeUInt32LE(options.declaredSize ?? samples.length, 4);
  const head = Buffer.from('RIFF\0\0\0\0WAVE', 'latin1');
  return Buffer.concat([head, fmt, dataHeader, samples, options.after ?? Buffer.alloc(0)]);
}

async function* inPieces(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

async function rejection(promise: Promise<unknown>): Promise<AudioRejection> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof AudioRejected) return error.reason;
    throw error;
  }
  throw new Error('expected an AudioRejected');
}

const samples = (bytes: number) => Buffer.from(Array.from({ length: bytes }, (_, index) => (index * 7 + 1) % 256));

describe('Converter', () => {
  it('feeds the encoder the samples of the data chunk only, described as raw PCM', async () => {
    const { transcoder, converter } = converterWith();
    const audio = samples(16_000);
    const result = await converter.convert(inPieces(wav(audio), 4096), '/tmp/out.mp3');
    expect(transcoder.fed).toEqual(audio);
    expect(transcoder.job?.input).toEqual({ sampleFormat: 's16le', sampleRate: 8000, channels: 1 });
    expect(transcoder.job?.shape).toEqual({ sampleRate: 8000, channels: 1 });
    expect(transcoder.job?.maxDurationSeconds).toBe(3600);
    expect(result).toEqual({ format: MP3, durationMs: 1000, sampleRate: 8000, channels: 1 });
  });

  it('reads a header that arrives a byte at a time', async () => {
    const { transcoder, converter } = converterWith();
    const audio = samples(800);
    await converter.convert(inPieces(wav(audio), 1), '/tmp/out.mp3');
    expect(transcoder.fed).toEqual(audio);
  });

  it('drops whatever follows the declared data (metadata chunks, a second data chunk)', async () => {
    const { transcoder, converter } = converterWith();
    const audio = samples(1600);
    const trailer = Buffer.concat([Buffer.from('LIST\x04\x00\x00\x00INFOdata\x10\x00\x00\x00', 'latin1'), samples(16)]);
    const result = await converter.convert(inPieces(wav(audio, { after: trailer }), 1000), '/tmp/out.mp3');
    expect(transcoder.fed).toEqual(audio);
    expect(result.durationMs).toBe(100);
  });

  it('with an unknown size, feeds everything and counts whole frames only', async () => {
    const { transcoder, converter } = converterWith();
    const audio = samples(16_001); // half a frame at the end
    const result = await converter.convert(inPieces(wav(audio, { declaredSize: 0xffffffff }), 3000), '/tmp/x');
    expect(transcoder.fed).toEqual(audio);
    expect(result.durationMs).toBe(1000);
  });

  it('with an unknown size, stops at the duration limit while streaming', async () => {
    const { converter } = converterWith(1);
    const upload = inPieces(wav(samples(16_000 * 3), { declaredSize: 0xffffffff }), 4096);
    expect(await rejection(converter.convert(upload, '/tmp/x'))).toBe('too-long');
  });

  it('refuses a declared size over the limit before the encoder runs', async () => {
    const { transcoder, converter } = converterWith(1);
    const upload = inPieces(wav(samples(100), { declaredSize: 16_002 }), 4096);
    expect(await rejection(converter.convert(upload, '/tmp/x'))).toBe('too-long');
    expect(transcoder.job).toBeUndefined();
  });

  it.each([
    ['an empty upload', Buffer.alloc(0), 'unsupported-format'],
    ['text', Buffer.from('hello, this is not a WAV at all'), 'unsupported-format'],
    ['a header cut inside fmt', wav(samples(10)).subarray(0, 20), 'unsupported-format'],
    ['a header without data', wav(samples(10)).subarray(0, 36), 'undecodable'],
    ['a data chunk without a whole frame', wav(samples(1)), 'undecodable'],
  ] as const)('rejects %s as %s', async (_name, bytes, reason) => {
    const { converter } = converterWith();
    expect(await rejection(converter.convert(inPieces(bytes, 7), '/tmp/x'))).toBe(reason);
  });
});
