import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { AudioRejected, InvalidInput, type AudioRejection } from '../../src/domain/errors.js';
import { Converter, type ConvertRequest } from '../../src/media/converter.js';
import { muxerArguments, STORED_FORMATS, type OutputRequest } from '../../src/media/outputs.js';
import type { Peaks } from '../../src/media/peaks.js';
import type { TranscodeJob, TranscodeResult } from '../../src/media/transcoder.js';

const SETTINGS = {
  mp3: { vbrQuality: 2, bitrateKbps: undefined, compressionLevel: undefined },
  loudnessTargetLufs: -16,
};
const PEAKS: Peaks = { sampleRate: 8000, samplesPerPixel: 160, data: Int8Array.from([-5, 9, -1, 2]) };

/** Stands in for ffmpeg: reads everything it is fed, as ffmpeg would, remembers it, answers what it is told. */
class FakeTranscoder {
  fed: Buffer | undefined;
  job: TranscodeJob | undefined;
  outputPath: string | undefined;
  runs = 0;
  /** What the next runs report. */
  result: TranscodeResult = {
    peaks: PEAKS,
    decodedSeconds: 2.5,
    decodedShape: { sampleRate: 44100, channels: 2 },
    loudnessLufs: undefined,
  };
  /** Runs when the transcoder starts, before it reads anything. */
  onRun: (() => void) | undefined;

  async run(input: Readable | undefined, job: TranscodeJob, outputPath?: string): Promise<TranscodeResult> {
    this.runs += 1;
    this.job = job;
    this.outputPath = outputPath;
    this.onRun?.();
    if (input !== undefined) {
      const chunks: Buffer[] = [];
      for await (const chunk of input) chunks.push(chunk as Buffer);
      this.fed = Buffer.concat(chunks);
    }
    return this.result;
  }
}

function converterWith(maxDurationSeconds = 3600) {
  const transcoder = new FakeTranscoder();
  const converter = new Converter(transcoder, SETTINGS, { maxDurationSeconds });
  return { transcoder, converter };
}

const folders: string[] = [];

afterEach(async () => {
  await Promise.all(folders.splice(0).map((folder) => rm(folder, { recursive: true, force: true })));
});

/** A request with a spool path in a fresh folder (the converter creates the spool file exclusively). */
async function requestFor(output: OutputRequest = {}, title: string | null = null): Promise<ConvertRequest> {
  const folder = await mkdtemp(join(tmpdir(), 'converter-'));
  folders.push(folder);
  return { output, title, spoolPath: join(folder, 'spool.partial') };
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

/** A FLAC: the magic and a STREAMINFO block, then frames the fake never decodes. */
const flac = (body = 400) => Buffer.concat([Buffer.from('fLaC\x80\x00\x00\x22', 'latin1'), Buffer.alloc(34 + body, 1)]);

/** An MPEG-1 layer III (or, with 0xfd, layer II) frame at 44.1 kHz and 128 kbit/s: 417 bytes. */
const mpegFrame = (second = 0xfb) => Buffer.concat([Buffer.from([0xff, second, 0x90, 0x00]), Buffer.alloc(413)]);

/** An ID3v2.4 tag of `size` body bytes. */
function id3(size: number): Buffer {
  const header = Buffer.from([
    0x49,
    0x44,
    0x33,
    4,
    0,
    0,
    (size >> 21) & 0x7f,
    (size >> 14) & 0x7f,
    (size >> 7) & 0x7f,
    size & 0x7f,
  ]);
  return Buffer.concat([header, Buffer.alloc(size)]);
}

/** A top-level MP4 box. */
function box(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(8 + body.length);
  header.write(type, 4, 'latin1');
  return Buffer.concat([header, body]);
}

/** An M4A whose index (moov) comes after its audio (mdat): ffmpeg must seek, so it is spooled first. */
const m4aIndexLast = Buffer.concat([
  box('ftyp', Buffer.from('M4A \0\0\0\0M4A isom', 'latin1')),
  box('mdat', Buffer.alloc(300, 7)),
  box('moov', Buffer.alloc(50)),
]);

function* piecesOf(bytes: Buffer, size: number): Generator<Buffer> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

async function* inPieces(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  yield* piecesOf(bytes, size);
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

/** Compares bytes as bytes: deep equality over a large Buffer takes seconds. */
function expectBytes(actual: Buffer | undefined, expected: Buffer): void {
  expect(actual?.length).toBe(expected.length);
  expect(actual?.equals(expected)).toBe(true);
}

const samples = (bytes: number) => Buffer.from(Array.from({ length: bytes }, (_, index) => (index * 7 + 1) % 256));

/** The value following `option` in the job's output arguments, which must hold it exactly once. */
function outputValue(job: TranscodeJob | undefined, option: string): string | undefined {
  const output = job?.output ?? [];
  expect(
    output.filter((arg) => arg === option),
    option,
  ).toHaveLength(1);
  return output[output.indexOf(option) + 1];
}

describe('Converter: a WAV', () => {
  it('feeds the encoder the samples of the data chunk only, described as raw PCM', async () => {
    const { transcoder, converter } = converterWith();
    // Whatever the decoder reports, a WAV's shape is its header's.
    transcoder.result = { ...transcoder.result, decodedShape: { sampleRate: 48000, channels: 2 } };
    const audio = samples(16_000);
    const request = await requestFor();
    const result = await converter.convert(inPieces(wav(audio), 4096), '/tmp/out.mp3', request);
    expectBytes(transcoder.fed, audio);
    expect(transcoder.job?.input).toEqual({
      kind: 'raw',
      sampleFormat: 's16le',
      sampleRate: 8000,
      channels: 1,
      channelMask: undefined,
    });
    expect(outputValue(transcoder.job, '-ar')).toBe('8000');
    expect(outputValue(transcoder.job, '-ac')).toBe('1');
    expect(transcoder.job?.maxDurationSeconds).toBe(3600);
    expect(transcoder.job?.peaks).toBe(true);
    expect(transcoder.job?.reportsLoudness).toBe(false);
    expect(transcoder.outputPath).toBe('/tmp/out.mp3');
    // The duration comes from the bytes counted, not from the decoder; the shape from the header.
    expect(result).toEqual({
      format: STORED_FORMATS.mp3,
      sourceFormat: 'wav',
      durationMs: 1000,
      sampleRate: 8000,
      channels: 1,
      peaks: PEAKS,
      loudnessLufs: undefined,
    });
  });

  it('reads a header that arrives a byte at a time', async () => {
    const { transcoder, converter } = converterWith();
    const audio = samples(800);
    await converter.convert(inPieces(wav(audio), 1), '/tmp/out.mp3', await requestFor());
    expectBytes(transcoder.fed, audio);
  });

  it('drops whatever follows the declared data (metadata chunks, a second data chunk)', async () => {
    const { transcoder, converter } = converterWith();
    const audio = samples(1600);
    const trailer = Buffer.concat([Buffer.from('LIST\x04\x00\x00\x00INFOdata\x10\x00\x00\x00', 'latin1'), samples(16)]);
    const upload = inPieces(wav(audio, { after: trailer }), 1000);
    const result = await converter.convert(upload, '/tmp/out.mp3', await requestFor());
    expectBytes(transcoder.fed, audio);
    expect(result.durationMs).toBe(100);
  });

  it('with an unknown size, feeds everything and counts whole frames only', async () => {
    const { transcoder, converter } = converterWith();
    const audio = samples(16_001); // half a frame at the end
    const upload = inPieces(wav(audio, { declaredSize: 0xffffffff }), 3000);
    const result = await converter.convert(upload, '/tmp/x', await requestFor());
    expectBytes(transcoder.fed, audio);
    expect(result.durationMs).toBe(1000);
  });

  it('with an unknown size, stops at the duration limit while streaming', async () => {
    const { converter } = converterWith(1);
    const upload = inPieces(wav(samples(16_000 * 3), { declaredSize: 0xffffffff }), 4096);
    expect(await rejection(converter.convert(upload, '/tmp/x', await requestFor()))).toBe('too-long');
  });

  it('refuses a declared size over the limit before the encoder runs', async () => {
    const { transcoder, converter } = converterWith(1);
    const upload = inPieces(wav(samples(100), { declaredSize: 16_002 }), 4096);
    expect(await rejection(converter.convert(upload, '/tmp/x', await requestFor()))).toBe('too-long');
    expect(transcoder.job).toBeUndefined();
  });

  it.each([
    ['an empty upload', Buffer.alloc(0), 'unsupported-format'],
    ['text', Buffer.from('hello, this is not a WAV at all'), 'unsupported-format'],
    ['a header cut inside fmt', wav(samples(10)).subarray(0, 20), 'unsupported-format'],
    ['a header without data', wav(samples(10)).subarray(0, 36), 'undecodable'],
    ['a data chunk without a whole frame', wav(samples(1)), 'undecodable'],
  ] as const)('rejects %s as $2', async (_name, bytes, reason) => {
    const { converter } = converterWith();
    expect(await rejection(converter.convert(inPieces(bytes, 7), '/tmp/x', await requestFor()))).toBe(reason);
  });

  it('encodes into the format asked for, with the title known before the audio in its tags', async () => {
    const { transcoder, converter } = converterWith();
    const request = await requestFor({ format: 'opus', quality: 'voice' }, 'Take 1');
    const result = await converter.convert(inPieces(wav(samples(1600)), 512), '/tmp/out.opus', request);
    expect(outputValue(transcoder.job, '-c:a')).toBe('libopus');
    expect(outputValue(transcoder.job, '-metadata')).toBe('title=Take 1');
    expect(outputValue(transcoder.job, '-metadata:s:a:0')).toBe('title=Take 1');
    expect(transcoder.job?.output?.slice(-2)).toEqual(['-f', 'ogg']);
    // Encoded from 8 kHz, but an Opus stream decodes at 48 kHz: that is the rate stored.
    expect(outputValue(transcoder.job, '-ar')).toBe('8000');
    expect(result).toMatchObject({ format: STORED_FORMATS.opus, sampleRate: 48000, channels: 1 });
  });

  it('normalising asks ffmpeg for its loudness report and returns what it measured', async () => {
    const { transcoder, converter } = converterWith();
    transcoder.result = { ...transcoder.result, loudnessLufs: -16.3 };
    const request = await requestFor({ normalize: true });
    const result = await converter.convert(inPieces(wav(samples(1600)), 512), '/tmp/x', request);
    expect(transcoder.job?.reportsLoudness).toBe(true);
    expect(outputValue(transcoder.job, '-af')).toMatch(/^loudnorm=I=-16:/);
    expect(result.loudnessLufs).toBe(-16.3);
  });

  it('refuses what the format cannot do before the encoder starts', async () => {
    const { transcoder, converter } = converterWith();
    let pulled = 0;
    async function* upload() {
      pulled += 1;
      yield wav(samples(1600));
    }
    const request = await requestFor({ format: 'flac', bitrateKbps: 128 });
    // The WAV's header is read to know its shape; the plan is then refused before the encoder starts.
    await expect(converter.convert(upload(), '/tmp/x', request)).rejects.toBeInstanceOf(InvalidInput);
    expect(pulled).toBeLessThanOrEqual(1);
    expect(transcoder.runs).toBe(0);
  });
});

describe('Converter: other inputs', () => {
  it('streams a FLAC, whole, through the flac demuxer and takes the shape from the decoded audio', async () => {
    const { transcoder, converter } = converterWith(60);
    const upload = flac();
    // Decoded at 96 kHz mono: the MP3 stores the closest rate it allows, 48 kHz, and stays mono.
    transcoder.result = { ...transcoder.result, decodedShape: { sampleRate: 96000, channels: 1 } };
    const result = await converter.convert(inPieces(upload, 3), '/tmp/out.mp3', await requestFor());
    expectBytes(transcoder.fed, upload);
    expect(transcoder.job?.input).toEqual({ kind: 'stream', demuxer: 'flac' });
    expect(outputValue(transcoder.job, '-c:a')).toBe('libmp3lame');
    expect(outputValue(transcoder.job, '-af')).toMatch(/^aformat=/);
    // ffmpeg stops a little past the limit, so that a file over it shows.
    expect(transcoder.job?.maxDurationSeconds).toBe(61);
    expect(result).toEqual({
      format: STORED_FORMATS.mp3,
      sourceFormat: 'flac',
      durationMs: 2500,
      sampleRate: 48000,
      channels: 1,
      peaks: PEAKS,
      loudnessLufs: undefined,
    });
  });

  it('copies a FLAC into a FLAC output without re-encoding', async () => {
    const { transcoder, converter } = converterWith();
    transcoder.result = { ...transcoder.result, decodedShape: { sampleRate: 88200, channels: 6 } };
    const request = await requestFor({ format: 'flac' }, 'T');
    const result = await converter.convert(inPieces(flac(), 64), '/tmp/out.flac', request);
    expect(transcoder.job?.output).toEqual(['-c:a', 'copy', ...muxerArguments(STORED_FORMATS.flac, 'T')]);
    expect(transcoder.job?.peaks).toBe(true);
    // A copy stores exactly what was decoded.
    expect(result).toMatchObject({ sampleRate: 88200, channels: 6 });
  });

  it('reads past an ID3 tag to the first frame before deciding to copy an MP3', async () => {
    const { transcoder, converter } = converterWith();
    const upload = Buffer.concat([id3(257), mpegFrame(), mpegFrame()]);
    let pulled = 0;
    let pulledAtRun = 0;
    transcoder.onRun = () => (pulledAtRun = pulled);
    async function* counted() {
      for await (const piece of inPieces(upload, 1)) {
        pulled += 1;
        yield piece;
      }
    }
    await converter.convert(counted(), '/tmp/out.mp3', await requestFor());
    expect(pulledAtRun).toBe(10 + 257 + 4);
    expectBytes(transcoder.fed, upload);
    expect(transcoder.job?.input).toEqual({ kind: 'stream', demuxer: 'mp3' });
    expect(transcoder.job?.output?.slice(0, 2)).toEqual(['-c:a', 'copy']);
  });

  it('re-encodes MPEG layer II behind an ID3 tag (MPEG audio, but not MP3)', async () => {
    const { transcoder, converter } = converterWith();
    const upload = Buffer.concat([id3(100), mpegFrame(0xfd), mpegFrame(0xfd)]);
    await converter.convert(inPieces(upload, 1), '/tmp/out.mp3', await requestFor());
    expect(outputValue(transcoder.job, '-c:a')).toBe('libmp3lame');
  });

  it('does not wait for the end of an ID3 tag larger than it ever sniffs: it re-encodes instead', async () => {
    const { transcoder, converter } = converterWith();
    const upload = Buffer.concat([id3(2 * 1024 * 1024), mpegFrame()]);
    let pulled = 0;
    let pulledAtRun = 0;
    transcoder.onRun = () => (pulledAtRun = pulled);
    async function* counted() {
      // The tag's header alone first, then the rest in large pieces.
      for (const piece of [upload.subarray(0, 10), ...piecesOf(upload.subarray(10), 64 * 1024)]) {
        pulled += 1;
        yield piece;
      }
    }
    await converter.convert(counted(), '/tmp/out.mp3', await requestFor());
    expect(pulledAtRun).toBe(1);
    expectBytes(transcoder.fed, upload);
    expect(outputValue(transcoder.job, '-c:a')).toBe('libmp3lame');
  });

  it('any option makes a copyable source a re-encode', async () => {
    const { transcoder, converter } = converterWith();
    await converter.convert(inPieces(flac(), 64), '/tmp/out.flac', await requestFor({ format: 'flac', channels: 1 }));
    expect(outputValue(transcoder.job, '-c:a')).toBe('flac');
    expect(outputValue(transcoder.job, '-ac')).toBe('1');
  });

  it('spools an MP4 whose index comes last, then has ffmpeg read the file instead of a pipe', async () => {
    const { transcoder, converter } = converterWith();
    const request = await requestFor({ format: 'm4a' });
    await converter.convert(inPieces(m4aIndexLast, 7), '/tmp/out.m4a', request);
    expect(transcoder.job?.input).toEqual({ kind: 'file', demuxer: 'mov', path: request.spoolPath });
    expect(transcoder.fed).toBeUndefined();
    expectBytes(await readFile(request.spoolPath), m4aIndexLast);
  });

  it('never overwrites an existing spool file', async () => {
    const { transcoder, converter } = converterWith();
    const request = await requestFor();
    await converter.convert(inPieces(m4aIndexLast, 64), '/tmp/out.mp3', request);
    await expect(converter.convert(inPieces(m4aIndexLast, 64), '/tmp/out.mp3', request)).rejects.toMatchObject({
      code: 'EEXIST',
    });
    expect(transcoder.runs).toBe(1);
  });

  it('a file with no decodable audio is undecodable', async () => {
    const { transcoder, converter } = converterWith();
    transcoder.result = { ...transcoder.result, decodedSeconds: 0 };
    expect(await rejection(converter.convert(inPieces(flac(), 64), '/tmp/x', await requestFor()))).toBe('undecodable');
  });

  it('judges a compressed input by what it decodes to: up to the limit is fine, past it too long', async () => {
    const { transcoder, converter } = converterWith(10);
    transcoder.result = { ...transcoder.result, decodedSeconds: 10 };
    await expect(converter.convert(inPieces(flac(), 64), '/tmp/x', await requestFor())).resolves.toMatchObject({
      durationMs: 10_000,
    });
    transcoder.result = { ...transcoder.result, decodedSeconds: 10.0125 };
    expect(await rejection(converter.convert(inPieces(flac(), 64), '/tmp/x', await requestFor()))).toBe('too-long');
  });

  it('takes a shape the plan already knows, whatever was decoded', async () => {
    const { transcoder, converter } = converterWith();
    transcoder.result = { ...transcoder.result, decodedShape: { sampleRate: 96000, channels: 6 } };
    const result = await converter.convert(
      inPieces(flac(), 64),
      '/tmp/x',
      await requestFor({ sampleRate: 22050, channels: 1 }),
    );
    expect(result).toMatchObject({ sampleRate: 22050, channels: 1 });
  });

  it('a file whose decoded audio has no shape (no peaks header from ffmpeg) is undecodable', async () => {
    const { transcoder, converter } = converterWith();
    transcoder.result = { ...transcoder.result, decodedShape: undefined };
    expect(await rejection(converter.convert(inPieces(flac(), 64), '/tmp/x', await requestFor()))).toBe('undecodable');
  });

  it('a transcoder that returns no peaks for a peaks job is a bug, not a client error', async () => {
    const { transcoder, converter } = converterWith();
    transcoder.result = { ...transcoder.result, peaks: undefined };
    const error = await converter.convert(inPieces(flac(), 64), '/tmp/x', await requestFor()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(AudioRejected);
  });
});

describe('Converter.check', () => {
  it('refuses what the format cannot do, without running anything', () => {
    const { transcoder, converter } = converterWith();
    expect(() => converter.check({ format: 'flac', bitrateKbps: 128 })).toThrow(InvalidInput);
    expect(() => converter.check({ format: 'opus', sampleRate: 44100 })).toThrow(InvalidInput);
    expect(() => converter.check({ quality: 'high', bitrateKbps: 128 })).toThrow(InvalidInput);
    expect(() => converter.check({ bitrateKbps: 144, sampleRate: 44100 })).toThrow(InvalidInput);
    expect(transcoder.runs).toBe(0);
  });

  it('accepts what it can', () => {
    const { converter } = converterWith();
    expect(() => converter.check({})).not.toThrow();
    expect(() => converter.check({ format: 'm4a', quality: 'voice', normalize: true })).not.toThrow();
    expect(() => converter.check({ bitrateKbps: 144 })).not.toThrow();
  });
});

describe('Converter.retag and peaksOf', () => {
  it('retag copies the stored audio through its own demuxer into a file with the new title', async () => {
    const { transcoder, converter } = converterWith();
    const stored = Buffer.from('stored ogg bytes');
    await converter.retag(Readable.from([stored]), STORED_FORMATS.opus, 'New -title=', '/tmp/retagged');
    expectBytes(transcoder.fed, stored);
    expect(transcoder.outputPath).toBe('/tmp/retagged');
    expect(transcoder.job).toEqual({
      input: { kind: 'stream', demuxer: 'ogg' },
      output: ['-c:a', 'copy', ...muxerArguments(STORED_FORMATS.opus, 'New -title=')],
      peaks: false,
    });
  });

  it('retag with no title removes the tag (an MP3 gets no ID3 tag at all)', async () => {
    const { transcoder, converter } = converterWith();
    await converter.retag(Readable.from([Buffer.from('mp3')]), STORED_FORMATS.mp3, null, '/tmp/retagged');
    expect(transcoder.job?.output).toEqual(['-c:a', 'copy', ...muxerArguments(STORED_FORMATS.mp3, null)]);
    expect(outputValue(transcoder.job, '-id3v2_version')).toBe('0');
    expect(transcoder.job?.output).not.toContain('-metadata');
  });

  it('retag of an M4A keeps its index in front, so that it still reads back from a pipe', async () => {
    const { transcoder, converter } = converterWith();
    await converter.retag(Readable.from([Buffer.from('m4a')]), STORED_FORMATS.m4a, 'New', '/tmp/retagged');
    expect(transcoder.job?.input).toEqual({ kind: 'stream', demuxer: 'mov' });
    expect(outputValue(transcoder.job, '-movflags')).toMatch(/\+faststart/);
  });

  it('peaksOf decodes the stored audio for its peaks only, writing no file', async () => {
    const { transcoder, converter } = converterWith();
    const stored = Buffer.from('stored mp3 bytes');
    await expect(converter.peaksOf(Readable.from([stored]), STORED_FORMATS.mp3)).resolves.toBe(PEAKS);
    expectBytes(transcoder.fed, stored);
    expect(transcoder.outputPath).toBeUndefined();
    expect(transcoder.job).toEqual({ input: { kind: 'stream', demuxer: 'mp3' }, output: undefined, peaks: true });
  });

  it('peaksOf reads each stored format through its own demuxer', async () => {
    const { transcoder, converter } = converterWith();
    for (const format of Object.values(STORED_FORMATS)) {
      await converter.peaksOf(Readable.from([Buffer.from('x')]), format);
      expect(transcoder.job?.input).toEqual({ kind: 'stream', demuxer: format.demuxer });
    }
  });
});
