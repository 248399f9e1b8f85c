import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ACCEPTED_INPUTS, MAX_SNIFF_BYTES, sniffInput, type SniffResult } from '../../src/media/input-kinds.js';

// Every input is built here byte by byte, independently of the sniffer.

type Part = string | number[] | Buffer;

/** Strings are latin1, so '\xff' is the byte 0xFF. */
function bytes(...parts: Part[]): Buffer {
  return Buffer.concat(
    parts.map((part) =>
      typeof part === 'string' ? Buffer.from(part, 'latin1') : Array.isArray(part) ? Buffer.from(part) : part,
    ),
  );
}

function u32be(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32BE(value);
  return buffer;
}

function u64be(value: bigint): Buffer {
  const buffer = Buffer.alloc(8);
  buffer.writeBigUInt64BE(value);
  return buffer;
}

const NEED_MORE: SniffResult = { verdict: 'need-more' };
const UNSUPPORTED: SniffResult = { verdict: 'unsupported' };

const sniff = (head: Buffer, complete = false) => sniffInput(head, complete);

function recognisedAs(head: Buffer, complete = false): string {
  const result = sniffInput(head, complete);
  if (result.verdict !== 'recognised') throw new Error(`expected a recognised kind, got ${result.verdict}`);
  return result.kind.name;
}

function streamable(head: Buffer, complete = false): boolean {
  const result = sniffInput(head, complete);
  if (result.verdict !== 'recognised' || result.kind.name !== 'mp4') {
    throw new Error(`expected mp4, got ${JSON.stringify(result)}`);
  }
  return result.streamable;
}

// ---- MP4 boxes ----

/** A box whose 32-bit size field is `size` (which may lie), followed by `body`. */
function box(type: string, body: Buffer = Buffer.alloc(0), size = 8 + body.length): Buffer {
  return bytes(u32be(size), type, body);
}

/** A box with size field 1 and a 64-bit size (which may lie) after the type. */
function largeBox(type: string, body: Buffer = Buffer.alloc(0), size = BigInt(16 + body.length)): Buffer {
  return bytes(u32be(1), type, u64be(size), body);
}

function ftyp(major: string, compatible: string[] = []): Buffer {
  return box('ftyp', bytes(major, u32be(0x200), ...compatible));
}

const FTYP = ftyp('isom', ['isom', 'iso2', 'mp41']);
const MOOV = box('moov', Buffer.alloc(32));
const MDAT = box('mdat', Buffer.alloc(64));

// ---- EBML ----

/** An EBML variable-size integer of `length` bytes (minimal when not given). */
function vint(value: number, length = Math.max(1, Math.ceil(Math.log2(value + 2) / 7))): Buffer {
  const buffer = Buffer.alloc(length);
  let rest = value;
  for (let index = length - 1; index >= 0; index--) {
    buffer[index] = rest % 256;
    rest = Math.floor(rest / 256);
  }
  buffer[0] = (buffer[0] ?? 0) | (0x80 >> (length - 1));
  return buffer;
}

/** An element: its ID as hex (marker bits included), a size (which may lie), then `body`. */
function element(idHex: string, body: Part, size?: Buffer): Buffer {
  const content = bytes(body);
  return bytes(Buffer.from(idHex, 'hex'), size ?? vint(content.length), content);
}

const EBML_MAGIC = Buffer.from('1a45dfa3', 'hex');
const docType = (text: string) => element('4282', text);
const ebmlVersion = element('4286', [1]);
const docTypeReadVersion = element('4285', [2]);

/** The EBML header with `children`, its size field given or computed; then the start of a Segment. */
function ebml(children: Buffer[], size?: Buffer): Buffer {
  const body = bytes(...children);
  return bytes(EBML_MAGIC, size ?? vint(body.length), body, Buffer.from('18538067', 'hex'), [0x01, 0xff]);
}

// ---- MPEG audio frames ----

interface FrameSpec {
  readonly version: '1' | '2' | '2.5';
  readonly layer: 1 | 2 | 3;
  readonly bitrateIndex: number;
  readonly rateIndex: number;
  readonly padding?: boolean;
}

const VERSION_BITS = { '1': 0b11, '2': 0b10, '2.5': 0b00 } as const;
const LAYER_BITS = { 1: 0b11, 2: 0b10, 3: 0b01 } as const;

/** A frame header: sync, version, layer, no CRC; bitrate, rate, padding; joint stereo. */
function frameHeader(spec: FrameSpec): Buffer {
  return Buffer.from([
    0xff,
    0xe0 | (VERSION_BITS[spec.version] << 3) | (LAYER_BITS[spec.layer] << 1) | 1,
    (spec.bitrateIndex << 4) | (spec.rateIndex << 2) | (spec.padding === true ? 0b10 : 0),
    0x44,
  ]);
}

/** `first` at offset 0 and `second` at `secondAt`, zeros between; `tail` zeros after. */
function twoHeaders(first: Buffer, secondAt: number, second: Buffer = first, tail = 64): Buffer {
  const buffer = Buffer.alloc(secondAt + second.length + tail);
  first.copy(buffer, 0);
  second.copy(buffer, secondAt);
  return buffer;
}

const MPEG1_L3_128K_44K: FrameSpec = { version: '1', layer: 3, bitrateIndex: 9, rateIndex: 0 };
const MP3_STREAM = twoHeaders(frameHeader(MPEG1_L3_128K_44K), 417);

const ID3 = bytes('ID3', [4, 0, 0, 0x00, 0x00, 0x02, 0x01]);

// ---- one valid sample of each kind ----

interface Sample {
  readonly label: string;
  readonly file: Buffer;
  readonly name: string;
  readonly demuxer: string | undefined;
  /** The shortest head that is recognised; every shorter one needs more. */
  readonly decidesAt: number;
}

const webm = ebml([ebmlVersion, docType('webm'), docTypeReadVersion]);
const matroska = ebml([ebmlVersion, docType('matroska'), docTypeReadVersion]);
/** Magic, one-byte size, then the header's children. */
const ebmlHeaderEnd = (file: Buffer) => 5 + (file[4] ?? 0) - 0x80;

const SAMPLES: readonly Sample[] = [
  {
    label: 'RIFF WAV',
    file: bytes('RIFF', u32be(0x24), 'WAVEfmt ', Buffer.alloc(24)),
    name: 'wav',
    demuxer: undefined,
    decidesAt: 12,
  },
  {
    label: 'RF64 WAV',
    file: bytes('RF64', u32be(0xffffffff), 'WAVEds64', Buffer.alloc(24)),
    name: 'wav',
    demuxer: undefined,
    decidesAt: 12,
  },
  {
    label: 'BW64 WAV',
    file: bytes('BW64', u32be(0xffffffff), 'WAVEds64', Buffer.alloc(24)),
    name: 'wav',
    demuxer: undefined,
    decidesAt: 12,
  },
  {
    label: 'FLAC',
    file: bytes('fLaC', [0x80, 0, 0, 0x22], Buffer.alloc(34)),
    name: 'flac',
    demuxer: 'flac',
    decidesAt: 4,
  },
  {
    label: 'Ogg',
    file: bytes('OggS', [0, 2], Buffer.alloc(22), 'OpusHead'),
    name: 'ogg',
    demuxer: 'ogg',
    decidesAt: 5,
  },
  { label: 'WebM', file: webm, name: 'webm', demuxer: 'matroska', decidesAt: ebmlHeaderEnd(webm) },
  { label: 'Matroska', file: matroska, name: 'matroska', demuxer: 'matroska', decidesAt: ebmlHeaderEnd(matroska) },
  { label: 'MP4', file: bytes(FTYP, MOOV, MDAT), name: 'mp4', demuxer: 'mov', decidesAt: FTYP.length + 8 },
  { label: 'MP3 frames', file: MP3_STREAM, name: 'mp3', demuxer: 'mp3', decidesAt: 417 + 4 },
  { label: 'MP3 with ID3v2', file: bytes(ID3, Buffer.alloc(20)), name: 'mp3', demuxer: 'mp3', decidesAt: 10 },
  {
    label: 'AIFF',
    file: bytes('FORM', u32be(100), 'AIFFCOMM', Buffer.alloc(22)),
    name: 'aiff',
    demuxer: 'aiff',
    decidesAt: 12,
  },
  {
    label: 'AIFC',
    file: bytes('FORM', u32be(100), 'AIFCFVER', Buffer.alloc(22)),
    name: 'aiff',
    demuxer: 'aiff',
    decidesAt: 12,
  },
  { label: 'AMR-NB', file: bytes('#!AMR\n', [0x3c], Buffer.alloc(31)), name: 'amr', demuxer: 'amr', decidesAt: 6 },
  { label: 'AMR-WB', file: bytes('#!AMR-WB\n', [0x44], Buffer.alloc(60)), name: 'amr', demuxer: 'amr', decidesAt: 9 },
];

describe('sniffInput: hostile and truncated input', () => {
  it('an empty head asks for more, and is unsupported when it is the whole file', () => {
    expect(sniff(Buffer.alloc(0))).toEqual(NEED_MORE);
    expect(sniff(Buffer.alloc(0), true)).toEqual(UNSUPPORTED);
  });

  it('bytes that start no accepted kind are unsupported at once', () => {
    for (const text of ['hello', '<html>', '%PDF-1.7', 'PK\x03\x04', '\x89PNG', '{"a":1}', 'RIFX', 'MThd']) {
      expect(sniff(bytes(text)), text).toEqual(UNSUPPORTED);
    }
  });

  it('a file ending inside a magic is unsupported, and need-more while it might go on', () => {
    for (const head of ['R', 'RIF', 'RIFF', 'RIFF\0\0\0\0WAV', 'BW6', 'fLa', 'OggS', 'FORM\0\0\0\0AIF', '#!AMR']) {
      expect(sniff(bytes(head)), head).toEqual(NEED_MORE);
      expect(sniff(bytes(head), true), head).toEqual(UNSUPPORTED);
    }
  });

  it.each(SAMPLES)('$label: every shorter head needs more, and is unsupported as a whole file', (sample) => {
    // An MP4 is known once its ftyp is in; a file ending after that is judged not streamable (tested below).
    const unsupportedBelow = sample.name === 'mp4' ? FTYP.length : sample.decidesAt;
    for (let length = 0; length < sample.decidesAt; length++) {
      const head = sample.file.subarray(0, length);
      expect(sniff(head), `cut at ${length}`).toEqual(NEED_MORE);
      if (length < unsupportedBelow) expect(sniff(head, true), `cut at ${length}`).toEqual(UNSUPPORTED);
    }
    expect(sniff(sample.file.subarray(0, sample.decidesAt)).verdict).toBe('recognised');
  });

  it('once decided, a verdict never changes with more bytes', () => {
    fc.assert(
      fc.property(fc.constantFrom(...SAMPLES), fc.uint8Array({ maxLength: 64 }), fc.nat(), (sample, tail, cutSeed) => {
        const file = bytes(sample.file, Buffer.from(tail));
        const cut = cutSeed % (file.length + 1);
        const early = sniff(file.subarray(0, cut));
        if (early.verdict !== 'need-more') expect(sniff(file)).toEqual(early);
      }),
      { numRuns: 500 },
    );
  });

  it('random bytes, alone or after the start of a valid magic, never throw, and a complete file is decided', () => {
    const leads = SAMPLES.map((sample) => sample.file.subarray(0, 12));
    fc.assert(
      fc.property(
        fc.oneof(fc.constant(Buffer.alloc(0)), fc.constantFrom(...leads)),
        fc.uint8Array({ maxLength: 600 }),
        (lead, random) => {
          const file = bytes(lead, Buffer.from(random));
          expect(sniff(file, true).verdict).not.toBe('need-more');
          expect(() => sniff(file)).not.toThrow();
        },
      ),
      { numRuns: 1000 },
    );
  });

  it.each(SAMPLES)('$label: a head of MAX_SNIFF_BYTES is always decided, whatever follows the start', (sample) => {
    for (const keep of [0, 1, 4, 9, sample.decidesAt - 1]) {
      const head = bytes(sample.file.subarray(0, keep), Buffer.alloc(MAX_SNIFF_BYTES - keep));
      expect(sniff(head).verdict, `keeping ${keep}`).not.toBe('need-more');
    }
  });
});

describe('sniffInput: kinds, demuxers and streaming', () => {
  it.each(SAMPLES)('$label is $name, demuxed by $demuxer, streamable', ({ file, name, demuxer }) => {
    const expected = { verdict: 'recognised', kind: { name, demuxer }, streamable: true };
    expect(sniff(file)).toEqual(expected);
    expect(sniff(file, true)).toEqual(expected);
  });

  it('the 415 message lists every kind', () => {
    for (const name of ['WAV', 'RF64', 'BW64', 'FLAC', 'Ogg', 'WebM', 'Matroska', 'MP4', 'M4A', 'MP3', 'AIFF', 'AMR']) {
      expect(ACCEPTED_INPUTS).toContain(name);
    }
  });

  it('MAX_SNIFF_BYTES is 1 MiB', () => {
    expect(MAX_SNIFF_BYTES).toBe(1024 * 1024);
  });
});

describe('sniffInput: magic-only kinds', () => {
  it('WAV needs WAVE at offset 8, whatever the size field says', () => {
    expect(recognisedAs(bytes('RIFF', u32be(0), 'WAVE'))).toBe('wav');
    expect(recognisedAs(bytes('RIFF', u32be(0xffffffff), 'WAVE'))).toBe('wav');
    expect(sniff(bytes('RIFF', u32be(100), 'AVI LIST'))).toEqual(UNSUPPORTED);
    expect(sniff(bytes('RIFF', u32be(100), 'WEBPVP8 '))).toEqual(UNSUPPORTED);
    expect(sniff(bytes('riff', u32be(100), 'WAVE'))).toEqual(UNSUPPORTED);
    expect(sniff(bytes('RIFF', u32be(100), 'WAVX'))).toEqual(UNSUPPORTED);
  });

  it('Ogg needs stream structure version 0', () => {
    expect(sniff(bytes('OggS', [1, 2], Buffer.alloc(22)))).toEqual(UNSUPPORTED);
    expect(sniff(bytes('OggS', [0xff]))).toEqual(UNSUPPORTED);
    expect(recognisedAs(bytes('OggS', [0]))).toBe('ogg');
  });

  it('FLAC is case-sensitive', () => {
    expect(sniff(bytes('FLAC', Buffer.alloc(40)))).toEqual(UNSUPPORTED);
    expect(sniff(bytes('flac', Buffer.alloc(40)))).toEqual(UNSUPPORTED);
  });

  it('an IFF FORM other than AIFF/AIFC is unsupported', () => {
    expect(sniff(bytes('FORM', u32be(100), '8SVXVHDR'))).toEqual(UNSUPPORTED);
    expect(sniff(bytes('FORM', u32be(100), 'ILBMBMHD'))).toEqual(UNSUPPORTED);
    expect(sniff(bytes('FORM', u32be(100), 'aiff'))).toEqual(UNSUPPORTED);
  });

  it('multichannel AMR and near-misses are unsupported', () => {
    expect(sniff(bytes('#!AMR_MC1.0\n', Buffer.alloc(8)))).toEqual(UNSUPPORTED);
    expect(sniff(bytes('#!AMR-WB_MC1.0\n', Buffer.alloc(8)))).toEqual(UNSUPPORTED);
    expect(sniff(bytes('#!AMR\r\n'))).toEqual(UNSUPPORTED);
    expect(sniff(bytes('#!AMR-W\n'))).toEqual(UNSUPPORTED);
    expect(sniff(bytes('#!/bin/sh\n'))).toEqual(UNSUPPORTED);
  });

  it('"#!AMR-WB" without its newline still needs more, and is unsupported when complete', () => {
    expect(sniff(bytes('#!AMR-WB'))).toEqual(NEED_MORE);
    expect(sniff(bytes('#!AMR-WB'), true)).toEqual(UNSUPPORTED);
    expect(sniff(bytes('#!AMR-'))).toEqual(NEED_MORE);
  });

  it('garbage after a valid magic does not matter: the demuxer judges the rest', () => {
    expect(recognisedAs(bytes('fLaC', 'this is not a STREAMINFO block'))).toBe('flac');
    expect(recognisedAs(bytes('#!AMR\n', '<script>'))).toBe('amr');
  });
});

describe('sniffInput: EBML (WebM/Matroska)', () => {
  it('refuses an unknown-size EBML header, in any vint length', () => {
    expect(sniff(ebml([docType('webm')], Buffer.from([0xff])))).toEqual(UNSUPPORTED);
    expect(sniff(ebml([docType('webm')], Buffer.from([0x7f, 0xff])))).toEqual(UNSUPPORTED);
    expect(sniff(ebml([docType('webm')], Buffer.from('01ffffffffffffff', 'hex')))).toEqual(UNSUPPORTED);
  });

  it('refuses a header larger than 4 KiB, however its size is written', () => {
    // DocType "webm" takes 7 bytes, and a Void element with a 2-byte size 3 more than its body.
    const atLimit = ebml([docType('webm'), element('ec', Buffer.alloc(4096 - 7 - 3))]);
    expect(atLimit.subarray(4, 6)).toEqual(vint(4096));
    expect(recognisedAs(atLimit)).toBe('webm');
    expect(sniff(ebml([docType('webm'), element('ec', Buffer.alloc(4097 - 7 - 3))]))).toEqual(UNSUPPORTED);
    // Huge claimed sizes: refused at once, without waiting for the bytes.
    expect(sniff(bytes(EBML_MAGIC, Buffer.from('01ffffffffffff00', 'hex')))).toEqual(UNSUPPORTED);
    expect(sniff(bytes(EBML_MAGIC, Buffer.from('0810000000', 'hex'), docType('webm')))).toEqual(UNSUPPORTED);
  });

  it('refuses a header size vint with no length marker', () => {
    expect(sniff(bytes(EBML_MAGIC, [0x00, 0x85], docType('webm')))).toEqual(UNSUPPORTED);
  });

  it('accepts a header size written in a longer vint than needed', () => {
    const children = bytes(docType('webm'));
    expect(recognisedAs(ebml([children], vint(children.length, 8)))).toBe('webm');
  });

  it('needs the whole header: need-more while it is cut, unsupported when the file ends there', () => {
    const headerEnd = ebmlHeaderEnd(webm);
    expect(sniff(webm.subarray(0, headerEnd - 1))).toEqual(NEED_MORE);
    expect(sniff(webm.subarray(0, headerEnd - 1), true)).toEqual(UNSUPPORTED);
    expect(recognisedAs(webm.subarray(0, headerEnd), true)).toBe('webm');
    // A truncated multi-byte size vint.
    expect(sniff(bytes(EBML_MAGIC, [0x40]))).toEqual(NEED_MORE);
    expect(sniff(bytes(EBML_MAGIC, [0x40]), true)).toEqual(UNSUPPORTED);
  });

  it('only the DocTypes webm and matroska are accepted', () => {
    for (const text of ['mkv', 'WEBM', 'webmx', 'web', 'matroska2', '', 'constructor', '__proto__', 'toString']) {
      expect(sniff(ebml([docType(text)])), text).toEqual(UNSUPPORTED);
    }
  });

  it('a DocType padded with NULs counts', () => {
    expect(recognisedAs(ebml([docType('webm\0\0\0')]))).toBe('webm');
    expect(sniff(ebml([docType('\0webm')]))).toEqual(UNSUPPORTED);
  });

  it('a header without a DocType, or with two, is unsupported', () => {
    expect(sniff(ebml([ebmlVersion, docTypeReadVersion]))).toEqual(UNSUPPORTED);
    expect(sniff(ebml([]))).toEqual(UNSUPPORTED);
    expect(sniff(ebml([docType('webm'), docType('matroska')]))).toEqual(UNSUPPORTED);
    expect(sniff(ebml([docType('webm'), docType('webm')]))).toEqual(UNSUPPORTED);
  });

  it('a child reaching past the header is unsupported, even when the file has the bytes', () => {
    // DocType claims 8 bytes but the header ends after 4 of them; the Segment that follows would supply the rest.
    const lying = element('4282', 'webm', vint(8));
    expect(sniff(ebml([lying]))).toEqual(UNSUPPORTED);
    // The last child's ID or size runs past the header.
    expect(sniff(ebml([docType('webm'), Buffer.from([0x42])]))).toEqual(UNSUPPORTED);
    expect(sniff(ebml([docType('webm'), Buffer.from([0x42, 0x86, 0x40])]))).toEqual(UNSUPPORTED);
  });

  it('malformed children are unsupported: bad vints, over-long IDs, reserved IDs, unknown sizes', () => {
    expect(sniff(ebml([Buffer.from([0x00, 0x81, 0x01]), docType('webm')]))).toEqual(UNSUPPORTED);
    // A 5-byte ID.
    expect(sniff(ebml([element('0811223344', [1]), docType('webm')]))).toEqual(UNSUPPORTED);
    // IDs whose value bits are all ones or all zeros are reserved.
    expect(sniff(ebml([element('ff', [1]), docType('webm')]))).toEqual(UNSUPPORTED);
    expect(sniff(ebml([element('80', [1]), docType('webm')]))).toEqual(UNSUPPORTED);
    expect(sniff(ebml([element('4000', [1]), docType('webm')]))).toEqual(UNSUPPORTED);
    // A child of unknown size, even where its one-byte size (127) would fit in the header.
    expect(sniff(ebml([element('4286', Buffer.alloc(127), Buffer.from([0xff])), docType('webm')]))).toEqual(
      UNSUPPORTED,
    );
    // A child size vint with no length marker.
    expect(sniff(ebml([element('4286', [1], Buffer.from([0x00])), docType('webm')]))).toEqual(UNSUPPORTED);
    // A child claiming a huge 8-byte size.
    expect(sniff(ebml([docType('webm'), element('ec', [], Buffer.from('01fffffffffffffe', 'hex'))]))).toEqual(
      UNSUPPORTED,
    );
  });

  it('unknown children, Void and CRC-32 elements are walked over', () => {
    const crc = element('bf', [1, 2, 3, 4]);
    const unknown = element('4abc', 'whatever');
    expect(recognisedAs(ebml([crc, ebmlVersion, unknown, element('ec', Buffer.alloc(9)), docType('matroska')]))).toBe(
      'matroska',
    );
  });

  it('a zero-size header or one after the wrong magic is unsupported', () => {
    expect(sniff(bytes(EBML_MAGIC, [0x80], docType('webm')))).toEqual(UNSUPPORTED);
    expect(sniff(bytes([0x1a, 0x45, 0xdf, 0xa4, 0x84], docType('webm')))).toEqual(UNSUPPORTED);
  });
});

describe('sniffInput: MP4', () => {
  it('recognises known brands as the major brand or only among the compatible brands', () => {
    for (const brand of ['isom', 'iso6', 'mp42', 'M4A ', 'M4B ', 'qt  ', '3gp4', '3gp6', '3g2a', 'dash', 'f4a ']) {
      expect(recognisedAs(bytes(ftyp(brand), MOOV)), brand).toBe('mp4');
    }
    expect(recognisedAs(bytes(ftyp('XXXX', ['abcd', 'M4A ']), MOOV))).toBe('mp4');
  });

  it('an ftyp naming no known brand (HEIF, AVIF, JPEG 2000, CR3) is unsupported', () => {
    expect(sniff(bytes(ftyp('heic', ['mif1', 'heic']), MOOV))).toEqual(UNSUPPORTED);
    expect(sniff(bytes(ftyp('avif', ['avif', 'mif1', 'miaf']), MOOV))).toEqual(UNSUPPORTED);
    expect(sniff(bytes(ftyp('jp2 ', ['jp2 ']), MOOV))).toEqual(UNSUPPORTED);
    expect(sniff(bytes(ftyp('crx ', ['crx ']), MOOV))).toEqual(UNSUPPORTED);
    expect(sniff(bytes(ftyp('ISOM'), MOOV))).toEqual(UNSUPPORTED);
  });

  it('the minor version is not a brand', () => {
    const minorLooksLikeBrand = box('ftyp', bytes('abcd', 'isom'));
    expect(sniff(bytes(minorLooksLikeBrand, MOOV))).toEqual(UNSUPPORTED);
  });

  it('a brand cut by the end of the ftyp box does not count', () => {
    // 18-byte ftyp: the compatible brand "isom" would need 20.
    // An 18-byte ftyp ending in "is": the "om" after it belongs to the next box, not to a brand "isom".
    expect(sniff(bytes(u32be(18), 'ftyp', 'abcd', u32be(0), 'isom', Buffer.alloc(40)))).toEqual(UNSUPPORTED);
  });

  it('refuses an ftyp size outside 16..4096, including a 64-bit or zero one', () => {
    expect(sniff(bytes(u32be(15), 'ftypisom', Buffer.alloc(20)))).toEqual(UNSUPPORTED);
    expect(sniff(bytes(u32be(8), 'ftypisom', Buffer.alloc(20)))).toEqual(UNSUPPORTED);
    expect(sniff(bytes(u32be(0), 'ftypisom', Buffer.alloc(20)))).toEqual(UNSUPPORTED);
    expect(sniff(bytes(u32be(1), 'ftyp', u64be(24n), 'isom', Buffer.alloc(20)))).toEqual(UNSUPPORTED);
    expect(sniff(bytes(u32be(4097), 'ftypisom', Buffer.alloc(5000)))).toEqual(UNSUPPORTED);
    expect(sniff(bytes(u32be(0xffffffff), 'ftypisom'))).toEqual(UNSUPPORTED);
    // 4096 is still sane.
    expect(recognisedAs(bytes(box('ftyp', bytes('isom', Buffer.alloc(4084))), MOOV))).toBe('mp4');
  });

  it('refuses a size prefix that cannot reach a sane ftyp size before the type is even in', () => {
    expect(sniff(Buffer.from([0x00, 0x00, 0x00]))).toEqual(NEED_MORE);
    expect(sniff(Buffer.from([0x00, 0x00, 0x10]))).toEqual(NEED_MORE);
    expect(sniff(Buffer.from([0x00, 0x00, 0x11]))).toEqual(UNSUPPORTED);
    expect(sniff(Buffer.from([0x00, 0x01]))).toEqual(UNSUPPORTED);
    expect(sniff(Buffer.from([0x00, 0x00, 0x00, 0x0f]))).toEqual(UNSUPPORTED);
    expect(sniff(bytes(u32be(24), 'fty'))).toEqual(NEED_MORE);
    expect(sniff(bytes(u32be(24), 'free'))).toEqual(UNSUPPORTED);
  });

  it('a first box other than ftyp is unsupported, even a moov', () => {
    expect(sniff(bytes(MOOV, FTYP, MDAT))).toEqual(UNSUPPORTED);
    expect(sniff(bytes(box('free', Buffer.alloc(8)), FTYP, MOOV))).toEqual(UNSUPPORTED);
  });

  it('needs the whole ftyp before judging its brands; a cut ftyp in a complete file is unsupported', () => {
    const cut = FTYP.subarray(0, FTYP.length - 1);
    expect(sniff(cut)).toEqual(NEED_MORE);
    expect(sniff(cut, true)).toEqual(UNSUPPORTED);
  });

  it('moov before mdat is streamable; mdat before moov is not', () => {
    expect(streamable(bytes(FTYP, MOOV, MDAT))).toBe(true);
    expect(streamable(bytes(FTYP, MDAT, MOOV))).toBe(false);
    // Decided at mdat's header, without waiting for the rest.
    expect(streamable(bytes(FTYP, MDAT.subarray(0, 8)))).toBe(false);
    expect(streamable(bytes(FTYP, MOOV.subarray(0, 8)))).toBe(true);
  });

  it('free, skip, wide, uuid and other boxes before moov are walked over', () => {
    const before = [
      box('free', Buffer.alloc(100)),
      box('skip'),
      box('wide'),
      box('uuid', Buffer.alloc(16)),
      box('pdin', Buffer.alloc(4)),
    ];
    expect(streamable(bytes(FTYP, ...before, MOOV, MDAT))).toBe(true);
    expect(streamable(bytes(FTYP, ...before, MDAT, MOOV))).toBe(false);
  });

  it('an mdat inside a skipped box does not count: only top-level boxes do', () => {
    const free = box('free', bytes(box('mdat', Buffer.alloc(8))));
    expect(streamable(bytes(FTYP, free, MOOV))).toBe(true);
  });

  it('follows 64-bit sizes', () => {
    expect(streamable(bytes(FTYP, largeBox('free', Buffer.alloc(40)), MOOV))).toBe(true);
    expect(streamable(bytes(FTYP, largeBox('mdat', Buffer.alloc(40)), MOOV))).toBe(false);
    expect(streamable(bytes(FTYP, largeBox('moov', Buffer.alloc(40)), MDAT))).toBe(true);
    // A 64-bit size cut off after the type needs more.
    expect(sniff(bytes(FTYP, u32be(1), 'free', [0, 0, 0]))).toEqual(NEED_MORE);
    expect(streamable(bytes(FTYP, u32be(1), 'free', [0, 0, 0]), true)).toBe(false);
  });

  it('a huge 64-bit size is followed, not trusted: need-more, then not streamable at the limit or the end', () => {
    for (const size of [2n ** 32n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n]) {
      const file = bytes(FTYP, largeBox('free', Buffer.alloc(16), size), MOOV);
      expect(sniff(file), String(size)).toEqual(NEED_MORE);
      expect(streamable(file, true), String(size)).toBe(false);
    }
  });

  it('a size-0 box runs to the end of the file: not streamable, unless it is the moov', () => {
    expect(streamable(bytes(FTYP, box('mdat', Buffer.alloc(40), 0)))).toBe(false);
    expect(streamable(bytes(FTYP, box('free', Buffer.alloc(40), 0), MOOV))).toBe(false);
    expect(streamable(bytes(FTYP, box('moov', Buffer.alloc(40), 0)))).toBe(true);
  });

  it('a box smaller than its own header is unsupported', () => {
    for (const size of [2, 7]) {
      expect(sniff(bytes(FTYP, box('free', Buffer.alloc(8), size), MOOV)), String(size)).toEqual(UNSUPPORTED);
      expect(sniff(bytes(FTYP, box('mdat', Buffer.alloc(8), size))), String(size)).toEqual(UNSUPPORTED);
      expect(sniff(bytes(FTYP, box('moov', Buffer.alloc(8), size))), String(size)).toEqual(UNSUPPORTED);
    }
    for (const size of [0n, 8n, 15n]) {
      expect(sniff(bytes(FTYP, largeBox('free', Buffer.alloc(16), size), MOOV)), String(size)).toEqual(UNSUPPORTED);
    }
    // 8 (an empty box) and 16 (an empty 64-bit box) are fine.
    expect(streamable(bytes(FTYP, box('free', Buffer.alloc(0), 8), MOOV))).toBe(true);
    expect(streamable(bytes(FTYP, largeBox('free', Buffer.alloc(0), 16n), MOOV))).toBe(true);
  });

  it('needs more while the next box header lies past the head, and decides when the file is complete', () => {
    const free = box('free', Buffer.alloc(1000));
    const file = bytes(FTYP, free, MOOV);
    for (const cut of [FTYP.length, FTYP.length + 7, FTYP.length + 500, FTYP.length + free.length + 7]) {
      expect(sniff(file.subarray(0, cut)), String(cut)).toEqual(NEED_MORE);
      expect(streamable(file.subarray(0, cut), true), String(cut)).toBe(false);
    }
    expect(streamable(file.subarray(0, FTYP.length + free.length + 8))).toBe(true);
  });

  it('a box claiming more bytes than the complete file has is not streamable', () => {
    expect(streamable(bytes(FTYP, box('free', Buffer.alloc(10), 0xfffffff0), MOOV), true)).toBe(false);
    expect(sniff(bytes(FTYP, box('free', Buffer.alloc(10), 0xfffffff0), MOOV))).toEqual(NEED_MORE);
  });

  it('decides once MAX_SNIFF_BYTES are in, and never looks further', () => {
    const free = box('free', Buffer.alloc(MAX_SNIFF_BYTES));
    const file = bytes(FTYP, free, MOOV);
    expect(sniff(file.subarray(0, MAX_SNIFF_BYTES - 1))).toEqual(NEED_MORE);
    expect(streamable(file.subarray(0, MAX_SNIFF_BYTES))).toBe(false);
    // The moov past the limit is not looked at, even when the caller passes it.
    expect(streamable(file)).toBe(false);
    expect(streamable(file, true)).toBe(false);
    // A moov whose header ends exactly at the limit is seen.
    const fits = bytes(FTYP, box('free', Buffer.alloc(MAX_SNIFF_BYTES - FTYP.length - 16)), MOOV);
    expect(streamable(fits.subarray(0, MAX_SNIFF_BYTES))).toBe(true);
  });

  it('many tiny boxes up to the limit are walked without trouble', () => {
    const empties = Buffer.concat(
      Array.from({ length: Math.ceil((MAX_SNIFF_BYTES - FTYP.length) / 8) }, () => box('free')),
    );
    expect(streamable(bytes(FTYP, empties))).toBe(false);
    expect(sniff(bytes(FTYP, empties.subarray(0, empties.length - 8)))).toEqual(NEED_MORE);
  });
});

describe('sniffInput: MP3', () => {
  const frame = (spec: Partial<FrameSpec> = {}) => frameHeader({ ...MPEG1_L3_128K_44K, ...spec });

  it.each([
    ['MPEG-1 Layer III 128 kbit/s 44.1 kHz', MPEG1_L3_128K_44K, 417],
    ['MPEG-1 Layer III 128 kbit/s 44.1 kHz, padded', { ...MPEG1_L3_128K_44K, padding: true }, 418],
    ['MPEG-1 Layer III 320 kbit/s 48 kHz', { version: '1', layer: 3, bitrateIndex: 14, rateIndex: 1 }, 960],
    ['MPEG-1 Layer III 32 kbit/s 32 kHz', { version: '1', layer: 3, bitrateIndex: 1, rateIndex: 2 }, 144],
    ['MPEG-2 Layer III 64 kbit/s 22.05 kHz', { version: '2', layer: 3, bitrateIndex: 8, rateIndex: 0 }, 208],
    [
      'MPEG-2 Layer III 64 kbit/s 22.05 kHz, padded',
      { version: '2', layer: 3, bitrateIndex: 8, rateIndex: 0, padding: true },
      209,
    ],
    ['MPEG-2 Layer III 8 kbit/s 16 kHz', { version: '2', layer: 3, bitrateIndex: 1, rateIndex: 2 }, 36],
    ['MPEG-2.5 Layer III 32 kbit/s 8 kHz', { version: '2.5', layer: 3, bitrateIndex: 4, rateIndex: 2 }, 288],
    ['MPEG-2.5 Layer III 16 kbit/s 11.025 kHz', { version: '2.5', layer: 3, bitrateIndex: 2, rateIndex: 0 }, 104],
    ['MPEG-1 Layer II 192 kbit/s 48 kHz', { version: '1', layer: 2, bitrateIndex: 10, rateIndex: 1 }, 576],
    ['MPEG-1 Layer II 160 kbit/s 44.1 kHz', { version: '1', layer: 2, bitrateIndex: 9, rateIndex: 0 }, 522],
    ['MPEG-2 Layer II 64 kbit/s 24 kHz (144, not 72)', { version: '2', layer: 2, bitrateIndex: 8, rateIndex: 1 }, 384],
    ['MPEG-1 Layer I 384 kbit/s 48 kHz', { version: '1', layer: 1, bitrateIndex: 12, rateIndex: 1 }, 384],
    [
      'MPEG-1 Layer I 384 kbit/s 48 kHz, padded (a 4-byte slot)',
      { version: '1', layer: 1, bitrateIndex: 12, rateIndex: 1, padding: true },
      388,
    ],
    ['MPEG-1 Layer I 32 kbit/s 44.1 kHz', { version: '1', layer: 1, bitrateIndex: 1, rateIndex: 0 }, 32],
    ['MPEG-2 Layer I 256 kbit/s 16 kHz', { version: '2', layer: 1, bitrateIndex: 14, rateIndex: 2 }, 768],
  ] as [string, FrameSpec, number][])('%s: the next frame is %i bytes on', (_label, spec, length) => {
    const header = frameHeader(spec);
    expect(recognisedAs(twoHeaders(header, length))).toBe('mp3');
    // One byte off either way finds no frame there.
    expect(sniff(twoHeaders(header, length - 1))).toEqual(UNSUPPORTED);
    expect(sniff(twoHeaders(header, length + 1))).toEqual(UNSUPPORTED);
  });

  // Frame lengths for bitrate indexes 1–14, worked out by hand from the standard's formulas.
  it.each([
    // 144 × bitrate / 44100, rounded down.
    ['MPEG-1 Layer III, 44.1 kHz', '1', 3, 0, [104, 130, 156, 182, 208, 261, 313, 365, 417, 522, 626, 731, 835, 1044]],
    // 144 × bitrate / 48000 = 3 bytes per kbit/s.
    ['MPEG-1 Layer II, 48 kHz', '1', 2, 1, [96, 144, 168, 192, 240, 288, 336, 384, 480, 576, 672, 768, 960, 1152]],
    // 12 × bitrate / 48000 slots of 4 bytes = 1 byte per kbit/s.
    ['MPEG-1 Layer I, 48 kHz', '1', 1, 1, [32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448]],
    // 72 × bitrate / 22050, rounded down.
    ['MPEG-2 Layer III, 22.05 kHz', '2', 3, 0, [26, 52, 78, 104, 130, 156, 182, 208, 261, 313, 365, 417, 470, 522]],
    // 144 × bitrate / 24000 = 6 bytes per kbit/s.
    ['MPEG-2 Layer II, 24 kHz', '2', 2, 1, [48, 96, 144, 192, 240, 288, 336, 384, 480, 576, 672, 768, 864, 960]],
    // 12 × bitrate / 24000 slots of 4 bytes = 2 bytes per kbit/s.
    ['MPEG-2 Layer I, 24 kHz', '2', 1, 1, [64, 96, 112, 128, 160, 192, 224, 256, 288, 320, 352, 384, 448, 512]],
    // MPEG-2.5 shares MPEG-2's bitrates: 72 × bitrate / 8000 = 9 bytes per kbit/s.
    [
      'MPEG-2.5 Layer III, 8 kHz',
      '2.5',
      3,
      2,
      [72, 144, 216, 288, 360, 432, 504, 576, 720, 864, 1008, 1152, 1296, 1440],
    ],
  ] as [string, FrameSpec['version'], FrameSpec['layer'], number, number[]][])(
    '%s: every bitrate index',
    (_label, version, layer, rateIndex, lengths) => {
      lengths.forEach((length, index) => {
        const header = frameHeader({ version, layer, rateIndex, bitrateIndex: index + 1 });
        expect(recognisedAs(twoHeaders(header, length)), `index ${index + 1}`).toBe('mp3');
        expect(sniff(twoHeaders(header, length + 1)), `index ${index + 1}`).toEqual(UNSUPPORTED);
      });
    },
  );

  it('needs more until the second header is whole; a file ending before it is unsupported', () => {
    for (let cut = 0; cut < 417 + 4; cut++) {
      expect(sniff(MP3_STREAM.subarray(0, cut)), String(cut)).toEqual(NEED_MORE);
      expect(sniff(MP3_STREAM.subarray(0, cut), true), String(cut)).toEqual(UNSUPPORTED);
    }
    expect(recognisedAs(MP3_STREAM.subarray(0, 417 + 4), true)).toBe('mp3');
  });

  it('text right after a valid first frame is unsupported', () => {
    const text = Buffer.from('Lorem ipsum dolor sit amet. '.repeat(30), 'latin1');
    expect(sniff(bytes(frame(), text))).toEqual(UNSUPPORTED);
    expect(sniff(bytes(frame(), text), true)).toEqual(UNSUPPORTED);
    // Rejected as soon as the byte where the second header should start is in.
    expect(sniff(bytes(frame(), text).subarray(0, 418))).toEqual(UNSUPPORTED);
  });

  it('a second header of another version, layer or sample rate is unsupported; another bitrate is fine (VBR)', () => {
    expect(sniff(twoHeaders(frame(), 417, frame({ version: '2' })))).toEqual(UNSUPPORTED);
    expect(sniff(twoHeaders(frame(), 417, frame({ layer: 2 })))).toEqual(UNSUPPORTED);
    expect(sniff(twoHeaders(frame(), 417, frame({ rateIndex: 1 })))).toEqual(UNSUPPORTED);
    expect(recognisedAs(twoHeaders(frame(), 417, frame({ bitrateIndex: 5, padding: true })))).toBe('mp3');
  });

  it('a second header that is itself invalid is unsupported', () => {
    expect(sniff(twoHeaders(frame(), 417, frame({ bitrateIndex: 15 })))).toEqual(UNSUPPORTED);
    expect(sniff(twoHeaders(frame(), 417, frame({ rateIndex: 3 })))).toEqual(UNSUPPORTED);
    expect(sniff(twoHeaders(frame(), 417, Buffer.from([0xff, 0x00, 0x90, 0x44])))).toEqual(UNSUPPORTED);
  });

  it('free-format, bad bitrate, reserved rate, reserved version and reserved layer headers are unsupported', () => {
    const invalid = [
      frame({ bitrateIndex: 0 }),
      frame({ bitrateIndex: 15 }),
      frame({ rateIndex: 3 }),
      Buffer.from([0xff, 0xe0 | (0b01 << 3) | (0b01 << 1) | 1, 0x90, 0x44]),
      Buffer.from([0xff, 0xe0 | (0b11 << 3) | (0b00 << 1) | 1, 0x90, 0x44]),
    ];
    for (const header of invalid) {
      // Even with a copy where a 417-byte frame would put one.
      expect(sniff(twoHeaders(header, 417)), header.toString('hex')).toEqual(UNSUPPORTED);
      expect(sniff(header.subarray(0, 3)), header.toString('hex')).toEqual(UNSUPPORTED);
    }
  });

  it('needs all 11 sync bits', () => {
    expect(sniff(twoHeaders(Buffer.from([0xff, 0xdb, 0x90, 0x44]), 417))).toEqual(UNSUPPORTED);
    expect(sniff(twoHeaders(Buffer.from([0xfe, 0xfb, 0x90, 0x44]), 417))).toEqual(UNSUPPORTED);
    expect(sniff(Buffer.from([0xff]))).toEqual(NEED_MORE);
    expect(sniff(Buffer.from([0xff, 0xfb]))).toEqual(NEED_MORE);
    expect(sniff(Buffer.from([0xff, 0x1b]))).toEqual(UNSUPPORTED);
  });

  it('a frame sync further into the file is not searched for', () => {
    expect(sniff(bytes([0x00], MP3_STREAM))).toEqual(UNSUPPORTED);
  });

  it('an ID3v2 tag is enough on its own, for versions 2.2 to 2.4', () => {
    for (const major of [2, 3, 4]) {
      expect(recognisedAs(bytes('ID3', [major, 0, 0x80, 0, 0, 0x7f, 0x7f]), true)).toBe('mp3');
    }
    expect(recognisedAs(bytes(ID3, 'not audio at all'))).toBe('mp3');
  });

  it('an ID3v2 header that is not one is not taken via the ID3 path', () => {
    const notTags = [
      bytes('ID3', [4, 0, 0, 0x00, 0x00, 0x80, 0x01]),
      bytes('ID3', [4, 0, 0, 0xff, 0xff, 0xff, 0xff]),
      bytes('ID3', [4, 0, 0, 0x00, 0x00, 0x00, 0x80]),
      bytes('ID3', [1, 0, 0, 0, 0, 0, 0]),
      bytes('ID3', [5, 0, 0, 0, 0, 0, 0]),
      bytes('ID3', [4, 0xff, 0, 0, 0, 0, 0]),
      bytes('id3', [4, 0, 0, 0, 0, 0, 0]),
    ];
    for (const header of notTags) {
      expect(sniff(bytes(header, MP3_STREAM)), header.toString('hex')).toEqual(UNSUPPORTED);
      expect(sniff(bytes(header, MP3_STREAM), true), header.toString('hex')).toEqual(UNSUPPORTED);
    }
  });

  it('an ID3v2 header needs more until its size bytes are in, but a wrong byte rules it out at once', () => {
    expect(sniff(bytes('ID3', [4, 0, 0, 0, 0, 0]))).toEqual(NEED_MORE);
    expect(sniff(bytes('ID3', [4, 0, 0, 0, 0, 0]), true)).toEqual(UNSUPPORTED);
    expect(sniff(bytes('ID3', [9]))).toEqual(UNSUPPORTED);
    expect(sniff(bytes('ID3', [3, 0xff]))).toEqual(UNSUPPORTED);
    expect(sniff(bytes('ID3', [3, 0, 0, 0x80]))).toEqual(UNSUPPORTED);
  });
});
