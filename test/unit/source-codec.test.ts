import { describe, expect, it } from 'vitest';
import type { InputKindName } from '../../src/media/input-kinds.js';
import { copyableAs, firstMpegFrameOffset } from '../../src/media/source-codec.js';

// Every head is built here byte by byte, from the formats' specifications.

type Part = string | number[] | Buffer;

/** Strings are latin1, so '\xff' is the byte 0xFF. */
function bytes(...parts: Part[]): Buffer {
  return Buffer.concat(
    parts.map((part) =>
      typeof part === 'string' ? Buffer.from(part, 'latin1') : Array.isArray(part) ? Buffer.from(part) : part,
    ),
  );
}

/** The first page of an Ogg stream carrying `packet` (lacing values as the segment table says). */
function oggFirstPage(packet: Buffer, segmentTable: number[] = lacing(packet.length)): Buffer {
  const header = Buffer.alloc(27);
  header.write('OggS', 0, 'latin1');
  header[4] = 0; // stream structure version
  header[5] = 0x02; // beginning of stream
  header.writeUInt32LE(0x1234, 14); // serial number
  header[26] = segmentTable.length;
  return bytes(header, segmentTable, packet);
}

function lacing(length: number): number[] {
  const table = Array<number>(Math.floor(length / 255)).fill(255);
  table.push(length % 255);
  return table;
}

const OPUS_HEAD = bytes('OpusHead', [1, 2, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0]);
const VORBIS_IDENTIFICATION = bytes('\x01vorbis', [0, 0, 0, 0, 2, 0x44, 0xac, 0, 0], Buffer.alloc(13));
const OGG_FLAC_HEAD = bytes('\x7fFLAC', [1, 0, 0, 1], 'fLaC', Buffer.alloc(38));

/** A four-byte MPEG audio frame header, then some frame body. */
const frame = (second: number) => bytes([0xff, second, 0x90, 0x44], Buffer.alloc(60));
const MPEG1_LAYER3 = frame(0xfb);
const MPEG2_LAYER3 = frame(0xf3);
const MPEG25_LAYER3 = frame(0xe3);
const MPEG1_LAYER2 = frame(0xfd);
const MPEG1_LAYER1 = frame(0xff);
const RESERVED_LAYER = frame(0xf9);

/** An ID3v2 header declaring a tag body of `size` bytes (syncsafe), with the given flags. */
function id3Header(size: number, flags = 0, version = 4): Buffer {
  return bytes('ID3', [version, 0, flags], [(size >> 21) & 0x7f, (size >> 14) & 0x7f, (size >> 7) & 0x7f, size & 0x7f]);
}

const FOOTER_FLAG = 0x10;

/** An ID3v2 tag of `size` body bytes (plus its footer when flagged), followed by `after`. */
function behindId3(after: Buffer, size: number, flags = 0): Buffer {
  const footer = (flags & FOOTER_FLAG) !== 0 ? bytes('3DI', [4, 0, flags], Buffer.alloc(4)) : Buffer.alloc(0);
  return bytes(id3Header(size, flags), Buffer.alloc(size, 0x41), footer, after);
}

describe('copyableAs', () => {
  it('a FLAC is FLAC', () => {
    expect(copyableAs('flac', bytes('fLaC', [0x00, 0x00, 0x00, 0x22], Buffer.alloc(34)))).toBe('flac');
  });

  it('an Ogg whose first packet is OpusHead is Opus', () => {
    expect(copyableAs('ogg', oggFirstPage(OPUS_HEAD))).toBe('opus');
  });

  it('finds the first packet after a segment table of several lacing values', () => {
    // A first packet of 300 bytes spans two segments (255 + 45).
    const long = bytes(OPUS_HEAD, Buffer.alloc(300 - OPUS_HEAD.length));
    expect(oggFirstPage(long)[26]).toBe(2);
    expect(copyableAs('ogg', oggFirstPage(long))).toBe('opus');
  });

  it.each([
    ['Vorbis', VORBIS_IDENTIFICATION],
    ['FLAC in Ogg', OGG_FLAC_HEAD],
    ['an OpusHead that is not at the packet start', bytes('x', OPUS_HEAD)],
    ['an OpusTags packet', bytes('OpusTags', Buffer.alloc(8))],
    ['a lower-case signature', bytes('opushead', Buffer.alloc(11))],
  ])('an Ogg whose first packet is %s is not Opus', (_name, packet) => {
    expect(copyableAs('ogg', oggFirstPage(packet))).toBeUndefined();
  });

  it('an OpusHead placed where a wrong segment count says the packet starts is not found', () => {
    // The segment table says two lacing values; the packet is read after both of them.
    const page = oggFirstPage(OPUS_HEAD, [19]);
    const lying = Buffer.from(page);
    lying[26] = 2;
    expect(copyableAs('ogg', lying)).toBeUndefined();
  });

  it.each([
    ['cut inside the page header', 20],
    ['cut inside the segment table', 27],
    ['cut inside the signature', 28 + 7],
  ])('an Ogg head %s is not shown to be Opus', (_name, length) => {
    expect(copyableAs('ogg', oggFirstPage(OPUS_HEAD).subarray(0, length))).toBeUndefined();
  });

  it('an Ogg head just long enough for the signature is Opus', () => {
    expect(copyableAs('ogg', oggFirstPage(OPUS_HEAD).subarray(0, 28 + 8))).toBe('opus');
  });

  it('bytes that are not an Ogg page are not Opus, even with OpusHead where a packet would be', () => {
    const page = oggFirstPage(OPUS_HEAD);
    page.write('OggX', 0, 'latin1');
    expect(copyableAs('ogg', page)).toBeUndefined();
  });

  it.each([
    ['MPEG-1', MPEG1_LAYER3],
    ['MPEG-2', MPEG2_LAYER3],
    ['MPEG-2.5', MPEG25_LAYER3],
  ])('an %s layer III frame is MP3', (_name, head) => {
    expect(copyableAs('mp3', head)).toBe('mp3');
  });

  it.each([
    ['layer II', MPEG1_LAYER2],
    ['layer I', MPEG1_LAYER1],
    ['a reserved layer', RESERVED_LAYER],
    ['no frame sync', bytes([0xfe, 0xfb, 0x90, 0x44], Buffer.alloc(60))],
    ['a broken second sync byte', bytes([0xff, 0xdb, 0x90, 0x44], Buffer.alloc(60))],
  ])('MPEG audio of %s is not MP3', (_name, head) => {
    expect(copyableAs('mp3', head)).toBeUndefined();
  });

  it('an MP3 behind an ID3v2 tag is MP3; a layer II behind one is not', () => {
    expect(copyableAs('mp3', behindId3(MPEG1_LAYER3, 257))).toBe('mp3');
    expect(copyableAs('mp3', behindId3(MPEG1_LAYER2, 257))).toBeUndefined();
  });

  it('an MP3 behind an ID3v2.4 tag with a footer is found after the footer', () => {
    expect(copyableAs('mp3', behindId3(MPEG1_LAYER3, 100, FOOTER_FLAG))).toBe('mp3');
    // The same tag read without its footer would land on the footer's "3DI", not a frame.
    const unflagged = behindId3(MPEG1_LAYER3, 100, FOOTER_FLAG);
    unflagged[5] = 0;
    expect(copyableAs('mp3', unflagged)).toBeUndefined();
  });

  it('a head cut before the frame behind the tag is not shown to be MP3', () => {
    const head = behindId3(MPEG1_LAYER3, 257);
    expect(copyableAs('mp3', head.subarray(0, 10 + 257 + 3))).toBeUndefined();
    expect(copyableAs('mp3', head.subarray(0, 10 + 257 + 4))).toBe('mp3');
  });

  it.each(['wav', 'webm', 'matroska', 'mp4', 'aiff', 'amr'] satisfies InputKindName[])(
    '%s is never copied, whatever its bytes hold',
    (kind) => {
      expect(copyableAs(kind, MPEG1_LAYER3)).toBeUndefined();
      expect(copyableAs(kind, oggFirstPage(OPUS_HEAD))).toBeUndefined();
      expect(copyableAs(kind, bytes('fLaC', Buffer.alloc(40)))).toBeUndefined();
    },
  );
});

describe('firstMpegFrameOffset', () => {
  it('is 0 for a head that starts with a frame', () => {
    expect(firstMpegFrameOffset(MPEG1_LAYER3)).toBe(0);
  });

  it('needs the first 10 bytes to tell whether there is a tag', () => {
    expect(firstMpegFrameOffset(Buffer.alloc(0))).toEqual({ need: 10 });
    expect(firstMpegFrameOffset(bytes('ID3', [4, 0, 0, 0, 0]))).toEqual({ need: 10 });
    expect(firstMpegFrameOffset(MPEG1_LAYER3.subarray(0, 9))).toEqual({ need: 10 });
  });

  it('is just past the tag: header (10) + its syncsafe size', () => {
    const head = behindId3(MPEG1_LAYER3, 257);
    expect(firstMpegFrameOffset(head)).toBe(267);
    expect(head[267]).toBe(0xff);
  });

  it('adds the 10-byte footer when the header flags one', () => {
    expect(firstMpegFrameOffset(behindId3(MPEG1_LAYER3, 257, FOOTER_FLAG))).toBe(277);
    // Other flags (unsynchronisation, extended header, experimental) change nothing of the size.
    expect(firstMpegFrameOffset(behindId3(MPEG1_LAYER3, 257, 0xe0))).toBe(267);
  });

  it('reads the size as a syncsafe integer: each byte gives its low seven bits', () => {
    const head = bytes(id3Header(0), Buffer.alloc(10));
    head.set([0x01, 0x02, 0x03, 0x04], 6);
    const size = (1 << 21) | (2 << 14) | (3 << 7) | 4;
    expect(firstMpegFrameOffset(head)).toEqual({ need: 10 + size + 4 });
    // The high bit of each size byte is not part of the value.
    head.set([0x81, 0x82, 0x83, 0x84], 6);
    expect(firstMpegFrameOffset(head)).toEqual({ need: 10 + size + 4 });
  });

  it('asks for the whole tag and four bytes of the frame header: the need-more answer', () => {
    const head = behindId3(MPEG1_LAYER3, 1000, FOOTER_FLAG);
    const frameAt = 10 + 1000 + 10;
    for (const length of [10, 11, 500, frameAt, frameAt + 3]) {
      expect(firstMpegFrameOffset(head.subarray(0, length)), String(length)).toEqual({ need: frameAt + 4 });
    }
    expect(firstMpegFrameOffset(head.subarray(0, frameAt + 4))).toBe(frameAt);
  });

  it('the largest tag a header can declare asks for 256 MiB, which a caller can refuse to wait for', () => {
    const head = bytes(id3Header(0), Buffer.alloc(4));
    head.set([0x7f, 0x7f, 0x7f, 0x7f], 6);
    expect(firstMpegFrameOffset(head)).toEqual({ need: 10 + (2 ** 28 - 1) + 4 });
    head[5] = FOOTER_FLAG;
    expect(firstMpegFrameOffset(head)).toEqual({ need: 10 + (2 ** 28 - 1) + 10 + 4 });
  });

  it('an ID3v2.3 tag is read the same way', () => {
    const head = bytes(id3Header(64, 0, 3), Buffer.alloc(64), MPEG2_LAYER3);
    expect(firstMpegFrameOffset(head)).toBe(74);
    expect(copyableAs('mp3', head)).toBe('mp3');
  });
});
