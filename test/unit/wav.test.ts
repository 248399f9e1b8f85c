import { describe, expect, it } from 'vitest';
import { AudioRejected, type AudioRejection } from '../../src/domain/errors.js';
import { checkDuration, parseWavHeader, type WavFormat } from '../../src/media/wav.js';

// A small WAV byte builder, independent of the service's parser and of the integration helpers.

const TAG = { pcm: 0x0001, float: 0x0003, alaw: 0x0006, mulaw: 0x0007, extensible: 0xfffe } as const;
const KSDATAFORMAT_TAIL = Buffer.from('000000001000800000aa00389b71', 'hex');
const LIMITS = { maxDurationSeconds: 6 * 3600 };

interface FmtSpec {
  tag?: number;
  channels?: number;
  rate?: number;
  bits?: number;
  /** Defaults to channels × bits / 8. */
  blockAlign?: number;
  /** Defaults to rate × blockAlign. */
  byteRate?: number;
  /** Write WAVE_FORMAT_EXTENSIBLE with `tag` as its sub-format. */
  extensible?: boolean;
  /** Overrides the chunk body's length (to make it too short). */
  size?: number;
}

function fmtBody(spec: FmtSpec = {}): Buffer {
  const channels = spec.channels ?? 2;
  const bits = spec.bits ?? 16;
  const rate = spec.rate ?? 44100;
  const blockAlign = spec.blockAlign ?? (channels * bits) / 8;
  const body = Buffer.alloc(spec.extensible === true ? 40 : 16);
  body.writeUInt16LE(spec.extensible === true ? TAG.extensible : (spec.tag ?? TAG.pcm), 0);
  body.writeUInt16LE(channels, 2);
  body.writeUInt32LE(rate, 4);
  body.writeUInt32LE(spec.byteRate ?? rate * blockAlign, 8);
  body.writeUInt16LE(blockAlign, 12);
  body.writeUInt16LE(bits, 14);
  if (spec.extensible === true) {
    body.writeUInt16LE(22, 16);
    body.writeUInt16LE(bits, 18);
    body.writeUInt32LE(channels === 1 ? 0x4 : 0x3, 20);
    body.writeUInt16LE(spec.tag ?? TAG.pcm, 24);
    KSDATAFORMAT_TAIL.copy(body, 26);
  }
  return spec.size === undefined ? body : body.subarray(0, spec.size);
}

/** A chunk header with an explicit size field (which may lie), without body. */
function chunkHeader(id: string, size: number): Buffer {
  const header = Buffer.alloc(8);
  header.write(id, 0, 'latin1');
  header.writeUInt32LE(size, 4);
  return header;
}

/** A whole chunk, padded to an even length. */
function chunk(id: string, body: Buffer): Buffer {
  return Buffer.concat([chunkHeader(id, body.length), body, Buffer.alloc(body.length % 2)]);
}

function ds64(dataBytes: bigint): Buffer {
  const body = Buffer.alloc(28);
  body.writeBigUInt64LE(dataBytes + 100n, 0);
  body.writeBigUInt64LE(dataBytes, 8);
  body.writeBigUInt64LE(0n, 16);
  return chunk('ds64', body);
}

function riff(chunks: Buffer[], container = 'RIFF', form = 'WAVE'): Buffer {
  const head = Buffer.alloc(12);
  head.write(container, 0, 'latin1');
  head.writeUInt32LE(container === 'RIFF' ? 4 + chunks.reduce((sum, c) => sum + c.length, 0) : 0xffffffff, 4);
  head.write(form, 8, 'latin1');
  return Buffer.concat([head, ...chunks]);
}

/** A plain WAV: fmt, optional chunks, then a data chunk of `dataBytes` zero bytes (or a declared size). */
function wav(
  spec: FmtSpec = {},
  options: { before?: Buffer[]; dataBytes?: number; declaredDataSize?: number; container?: string } = {},
): Buffer {
  const data = Buffer.alloc(options.dataBytes ?? 64);
  return riff(
    [
      chunk('fmt ', fmtBody(spec)),
      ...(options.before ?? []),
      chunkHeader('data', options.declaredDataSize ?? data.length),
      data,
    ],
    options.container,
  );
}

function parse(bytes: Buffer, complete = false, maxDurationSeconds = LIMITS.maxDurationSeconds): WavFormat {
  const result = parseWavHeader(bytes, { maxDurationSeconds }, complete);
  if (result === undefined) throw new Error('the parser asked for more bytes');
  return result;
}

function rejection(run: () => unknown): AudioRejection {
  try {
    run();
  } catch (error) {
    if (error instanceof AudioRejected) return error.reason;
    throw error;
  }
  throw new Error('expected an AudioRejected, but nothing was thrown');
}

describe('parseWavHeader: accepted variants', () => {
  it.each([
    [8, 'u8'],
    [16, 's16le'],
    [24, 's24le'],
    [32, 's32le'],
  ] as const)('PCM %i-bit is %s', (bits, sampleFormat) => {
    const format = parse(wav({ bits, channels: 2, rate: 44100 }));
    expect(format).toEqual({
      container: 'RIFF',
      formatTag: TAG.pcm,
      sampleFormat,
      channels: 2,
      sampleRate: 44100,
      blockAlign: (2 * bits) / 8,
      bitsPerSample: bits,
      bytesPerSecond: 44100 * ((2 * bits) / 8),
      dataOffset: 44,
      declaredDataBytes: 64,
    });
  });

  it.each([
    [32, 'f32le'],
    [64, 'f64le'],
  ] as const)('IEEE float %i-bit is %s', (bits, sampleFormat) => {
    const format = parse(wav({ tag: TAG.float, bits, channels: 1, rate: 48000 }));
    expect(format.formatTag).toBe(TAG.float);
    expect(format.sampleFormat).toBe(sampleFormat);
    expect(format.bitsPerSample).toBe(bits);
    expect(format.bytesPerSecond).toBe(48000 * (bits / 8));
  });

  it.each([
    ['A-law', TAG.alaw, 'alaw'],
    ['µ-law', TAG.mulaw, 'mulaw'],
  ] as const)('%s 8-bit', (_name, tag, sampleFormat) => {
    const format = parse(wav({ tag, bits: 8, channels: 1, rate: 8000 }));
    expect(format.formatTag).toBe(tag);
    expect(format.sampleFormat).toBe(sampleFormat);
    expect(format.bytesPerSecond).toBe(8000);
  });

  it('WAVE_FORMAT_EXTENSIBLE reports its sub-format as the format tag', () => {
    const pcm = parse(wav({ extensible: true, tag: TAG.pcm, bits: 24, channels: 2, rate: 48000 }));
    expect(pcm.formatTag).toBe(TAG.pcm);
    expect(pcm.sampleFormat).toBe('s24le');
    expect(pcm.blockAlign).toBe(6);
    expect(pcm.dataOffset).toBe(12 + 8 + 40 + 8);

    const float = parse(wav({ extensible: true, tag: TAG.float, bits: 32, channels: 1 }));
    expect(float.formatTag).toBe(TAG.float);
    expect(float.sampleFormat).toBe('f32le');
  });

  it('extensible sub-formats are checked like plain ones', () => {
    expect(rejection(() => parse(wav({ extensible: true, tag: TAG.pcm, bits: 20, blockAlign: 6 })))).toBe(
      'undecodable',
    );
    expect(rejection(() => parse(wav({ extensible: true, tag: TAG.float, bits: 16 })))).toBe('undecodable');
  });

  it.each(['RF64', 'BW64'] as const)('%s takes the data size from its ds64 chunk', (container) => {
    const bytes = riff(
      [ds64(123_456n), chunk('fmt ', fmtBody()), chunkHeader('data', 0xffffffff), Buffer.alloc(16)],
      container,
    );
    const format = parse(bytes);
    expect(format.container).toBe(container);
    expect(format.declaredDataBytes).toBe(123_456);
    expect(format.dataOffset).toBe(12 + 36 + 24 + 8);
  });

  it('a ds64 size beyond 4 GiB is read exactly, and judged against the duration limit', () => {
    const fiveGiB = 5n * 1024n ** 3n;
    const build = () => riff([ds64(fiveGiB), chunk('fmt ', fmtBody()), chunkHeader('data', 0xffffffff)], 'RF64');
    // 5 GiB of 44.1 kHz 16-bit stereo is about 8.5 hours.
    expect(parse(build(), false, 10 * 3600).declaredDataBytes).toBe(Number(fiveGiB));
    expect(rejection(() => parse(build(), false, 8 * 3600))).toBe('too-long');
  });

  it('in RF64 the ds64 size wins even when the data chunk carries a size of its own', () => {
    const bytes = riff([ds64(5000n), chunk('fmt ', fmtBody()), chunkHeader('data', 64), Buffer.alloc(64)], 'RF64');
    expect(parse(bytes).declaredDataBytes).toBe(5000);
  });

  it('a plain RIFF ignores a ds64 chunk', () => {
    const bytes = riff([ds64(5000n), chunk('fmt ', fmtBody()), chunkHeader('data', 64), Buffer.alloc(64)]);
    expect(parse(bytes).declaredDataBytes).toBe(64);
    const unknown = riff([ds64(5000n), chunk('fmt ', fmtBody()), chunkHeader('data', 0xffffffff)]);
    expect(parse(unknown).declaredDataBytes).toBeUndefined();
  });

  it('only the first fmt chunk counts', () => {
    const second = chunk('fmt ', fmtBody({ channels: 9, rate: 1 }));
    const format = parse(wav({ channels: 1, rate: 22050 }, { before: [second] }));
    expect(format.channels).toBe(1);
    expect(format.sampleRate).toBe(22050);
  });

  it('an RF64 without a ds64 chunk has an unknown data size', () => {
    const bytes = riff([chunk('fmt ', fmtBody()), chunkHeader('data', 0xffffffff)], 'RF64');
    expect(parse(bytes).declaredDataBytes).toBeUndefined();
  });

  it('skips LIST, bext and JUNK chunks before the data', () => {
    const before = [
      chunk('JUNK', Buffer.alloc(28)),
      chunk('bext', Buffer.alloc(602, 0x20)),
      chunk('LIST', Buffer.from('INFOINAM\x06\x00\x00\x00Title\0', 'latin1')),
    ];
    const format = parse(wav({}, { before }));
    expect(format.dataOffset).toBe(12 + 24 + 36 + 610 + 26 + 8);
    expect(format.declaredDataBytes).toBe(64);
  });

  it('skips the pad byte after odd-sized chunks', () => {
    const odd = [chunk('LIST', Buffer.from('INFOISFTodd', 'latin1')), chunk('iXML', Buffer.from('<BWFXML/>'))];
    expect(odd.map((c) => c.length)).toEqual([8 + 11 + 1, 8 + 9 + 1]);
    const format = parse(wav({ channels: 1, bits: 24 }, { before: odd }));
    expect(format.dataOffset).toBe(12 + 24 + 20 + 18 + 8);
  });

  it.each([0, 0xffffffff, 0x7ffff000, 0x7fffffff])('a data size of %i is a streaming placeholder', (size) => {
    // 8 kHz 8-bit mono: 0x7ffff000 bytes would be 74 hours, far beyond the limit, were it taken literally.
    const format = parse(wav({ channels: 1, bits: 8, rate: 8000 }, { declaredDataSize: size }));
    expect(format.declaredDataBytes).toBeUndefined();
  });

  it('a size next to a placeholder is a real size', () => {
    const bytes = wav({ channels: 1, bits: 8, rate: 8000 }, { declaredDataSize: 0x7ffff001 });
    expect(rejection(() => parse(bytes))).toBe('too-long');
  });

  it('accepts 1 to 8 channels and 8 to 192 kHz', () => {
    expect(parse(wav({ channels: 8 })).channels).toBe(8);
    expect(parse(wav({ rate: 8000 })).sampleRate).toBe(8000);
    expect(parse(wav({ rate: 192_000 })).sampleRate).toBe(192_000);
  });

  it('the byte rate follows from the layout, not from the byte-rate field', () => {
    const format = parse(wav({ channels: 1, bits: 8, rate: 8000, byteRate: 0xffffffff }));
    expect(format.bytesPerSecond).toBe(8000);
    // Seven hours at 8000 bytes/s: a lying byte rate must not hide it.
    const long = wav({ channels: 1, bits: 8, rate: 8000, byteRate: 0xffffffff }, { declaredDataSize: 8000 * 7 * 3600 });
    expect(rejection(() => parse(long))).toBe('too-long');
    // A byte-rate field of zero is just as irrelevant.
    expect(parse(wav({ channels: 2, bits: 16, rate: 8000, byteRate: 0 })).bytesPerSecond).toBe(32_000);
  });
});

describe('parseWavHeader: incremental input', () => {
  it('asks for more bytes until the data chunk header has arrived, then decides', () => {
    const bytes = wav({}, { before: [chunk('LIST', Buffer.from('INFOISFTodd', 'latin1'))] });
    const dataOffset = parse(bytes).dataOffset;
    for (let length = 0; length < dataOffset; length++) {
      expect(parseWavHeader(bytes.subarray(0, length), LIMITS), `at ${length} bytes`).toBeUndefined();
    }
    expect(parseWavHeader(bytes.subarray(0, dataOffset), LIMITS)?.dataOffset).toBe(dataOffset);
  });

  it('rejects a non-WAV as soon as 12 bytes are there', () => {
    expect(rejection(() => parseWavHeader(Buffer.from('OggS\0\0\0\0vorb'), LIMITS))).toBe('unsupported-format');
  });

  it('does not need the body of a skipped chunk before the next header is reached', () => {
    const junk = chunk('JUNK', Buffer.alloc(600_000));
    const bytes = wav({}, { before: [junk] });
    // Only the JUNK header: the parser waits without complaining.
    expect(parseWavHeader(bytes.subarray(0, 12 + 24 + 8), LIMITS)).toBeUndefined();
    expect(parse(bytes).dataOffset).toBe(12 + 24 + junk.length + 8);
  });
});

describe('parseWavHeader: rejected input', () => {
  const cases: Array<[string, () => unknown, AudioRejection]> = [
    ['not RIFF', () => parse(Buffer.concat([Buffer.from('RIFX'), wav().subarray(4)])), 'unsupported-format'],
    ['text', () => parse(Buffer.from('This is not audio at all.\n')), 'unsupported-format'],
    ['RIFF but not WAVE', () => parse(riff([chunk('LIST', Buffer.alloc(4))], 'RIFF', 'AVI ')), 'unsupported-format'],
    [
      'data before fmt',
      () => parse(riff([chunkHeader('data', 64), Buffer.alloc(64), chunk('fmt ', fmtBody())])),
      'unsupported-format',
    ],
    ['fmt too short', () => parse(wav({ size: 14 })), 'unsupported-format'],
    ['extensible fmt too short', () => parse(wav({ extensible: true, size: 18 })), 'unsupported-format'],
    ['zero channels', () => parse(wav({ channels: 0, blockAlign: 2 })), 'unsupported-format'],
    ['zero sample rate', () => parse(wav({ rate: 0 })), 'unsupported-format'],
    ['zero block align', () => parse(wav({ blockAlign: 0 })), 'unsupported-format'],
    ['9 channels', () => parse(wav({ channels: 9 })), 'undecodable'],
    ['7999 Hz', () => parse(wav({ rate: 7999 })), 'undecodable'],
    ['192001 Hz', () => parse(wav({ rate: 192_001 })), 'undecodable'],
    ['12-bit PCM', () => parse(wav({ bits: 12, blockAlign: 4 })), 'undecodable'],
    ['7-bit PCM', () => parse(wav({ bits: 7, channels: 1, blockAlign: 1 })), 'undecodable'],
    ['16-bit float', () => parse(wav({ tag: TAG.float, bits: 16 })), 'undecodable'],
    ['16-bit A-law', () => parse(wav({ tag: TAG.alaw, bits: 16 })), 'undecodable'],
    ['16-bit µ-law', () => parse(wav({ tag: TAG.mulaw, bits: 16 })), 'undecodable'],
    ['block align lying', () => parse(wav({ channels: 2, bits: 16, blockAlign: 3 })), 'undecodable'],
    // Only PCM, float, A-law and µ-law reach ffmpeg: every other codec tag is refused, whatever its byte rate.
    ['an unknown codec 0x1234', () => parse(wav({ tag: 0x1234, bits: 16 })), 'undecodable'],
    ['an unknown codec with a zero byte rate', () => parse(wav({ tag: 0x1234, bits: 16, byteRate: 0 })), 'undecodable'],
    ['MP3 in WAV (0x0055)', () => parse(wav({ tag: 0x0055, bits: 0, blockAlign: 1 })), 'undecodable'],
    ['IMA ADPCM (0x0011)', () => parse(wav({ tag: 0x0011, bits: 4, blockAlign: 512 })), 'undecodable'],
    ['extensible with an unknown sub-format', () => parse(wav({ extensible: true, tag: 0x0002 })), 'undecodable'],
    [
      'no data within 1 MiB',
      // Only the header of a 1 MiB JUNK chunk: its size alone puts the data out of reach.
      () => parseWavHeader(riff([chunk('fmt ', fmtBody()), chunkHeader('JUNK', 1024 * 1024)]), LIMITS),
      'unsupported-format',
    ],
    [
      'a fmt chunk declaring gigabytes',
      () => parseWavHeader(riff([chunkHeader('fmt ', 0xfffffff0), fmtBody()]), LIMITS),
      'unsupported-format',
    ],
    [
      'declared data longer than the limit',
      () => parse(wav({ channels: 1, bits: 8, rate: 8000 }, { declaredDataSize: 8000 * 10 + 1 }), false, 10),
      'too-long',
    ],
  ];

  it.each(cases)('%s', (_name, run, reason) => {
    expect(rejection(run)).toBe(reason);
  });

  it('a recording exactly as long as the limit is accepted', () => {
    const bytes = wav({ channels: 1, bits: 8, rate: 8000 }, { declaredDataSize: 8000 * 10 });
    expect(parse(bytes, false, 10).declaredDataBytes).toBe(80_000);
  });

  it('the data chunk is found just within 1 MiB', () => {
    const junkBody = 1024 * 1024 - (12 + 24 + 8) - 8;
    const head = riff([chunk('fmt ', fmtBody()), chunkHeader('JUNK', junkBody), Buffer.alloc(junkBody)]);
    // The next chunk header starts 8 bytes before 1 MiB: still looked for, and found.
    expect(parseWavHeader(head, LIMITS)).toBeUndefined();
    const bytes = Buffer.concat([head, chunkHeader('data', 64), Buffer.alloc(64)]);
    expect(parse(bytes).dataOffset).toBe(1024 * 1024);
  });

  describe('with the whole upload (complete)', () => {
    const full = wav();

    it('fewer than 12 bytes are not a WAV, but only once the upload is complete', () => {
      expect(parseWavHeader(full.subarray(0, 11), LIMITS)).toBeUndefined();
      expect(rejection(() => parseWavHeader(full.subarray(0, 11), LIMITS, true))).toBe('unsupported-format');
      expect(rejection(() => parseWavHeader(Buffer.alloc(0), LIMITS, true))).toBe('unsupported-format');
    });

    it('ending before the fmt chunk is complete is not a WAV', () => {
      expect(parseWavHeader(full.subarray(0, 12 + 8 + 10), LIMITS)).toBeUndefined();
      expect(rejection(() => parseWavHeader(full.subarray(0, 12 + 8 + 10), LIMITS, true))).toBe('unsupported-format');
      expect(rejection(() => parseWavHeader(full.subarray(0, 12), LIMITS, true))).toBe('unsupported-format');
    });

    it('ending after the fmt chunk but before the data is an undecodable WAV', () => {
      expect(rejection(() => parseWavHeader(full.subarray(0, 12 + 24), LIMITS, true))).toBe('undecodable');
      expect(rejection(() => parseWavHeader(full.subarray(0, 12 + 24 + 5), LIMITS, true))).toBe('undecodable');
    });
  });
});

describe('checkDuration', () => {
  const format = parse(wav({ channels: 1, bits: 16, rate: 8000 }));

  it('judges a byte count against the limit', () => {
    expect(() => checkDuration(format, 16_000 * 10, { maxDurationSeconds: 10 })).not.toThrow();
    expect(rejection(() => checkDuration(format, 16_000 * 10 + 2, { maxDurationSeconds: 10 }))).toBe('too-long');
  });

  it('an unknown size is never too long', () => {
    expect(() => checkDuration(format, undefined, { maxDurationSeconds: 1 })).not.toThrow();
  });
});
