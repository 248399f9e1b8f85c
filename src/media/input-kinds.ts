// Which kind of audio an upload is, judged from its first bytes only: a file name or a Content-Type is whatever
// the client says, while the bytes are what ffmpeg will actually read.

export type InputKindName = 'wav' | 'flac' | 'ogg' | 'webm' | 'matroska' | 'mp4' | 'mp3' | 'aiff' | 'amr';

/** The ffmpeg demuxer forced for a kind; WAV has none: the service parses WAV itself and feeds raw PCM. */
type Demuxer = 'flac' | 'ogg' | 'matroska' | 'mov' | 'mp3' | 'aiff' | 'amr';

export interface InputKind {
  readonly name: InputKindName;
  /** Undefined only for WAV. */
  readonly demuxer: Demuxer | undefined;
}

export type SniffResult =
  /** Cannot decide yet; call again with more bytes. */
  | { readonly verdict: 'need-more' }
  /** Not any accepted kind. */
  | { readonly verdict: 'unsupported' }
  /** `streamable` is false when ffmpeg must be able to seek (an MP4 whose index comes after its audio). */
  | { readonly verdict: 'recognised'; readonly kind: InputKind; readonly streamable: boolean };

/** Human list for the 415 message. */
export const ACCEPTED_INPUTS =
  'WAV (RIFF/RF64/BW64), FLAC, Ogg (Opus, Vorbis, FLAC), WebM/Matroska, MP4/M4A/3GP, MP3, AIFF/AIFC, AMR';

/** The most bytes sniffInput ever looks at: once `head` holds this many it always decides. */
export const MAX_SNIFF_BYTES = 1024 * 1024;

const WAV: InputKind = { name: 'wav', demuxer: undefined };
const FLAC: InputKind = { name: 'flac', demuxer: 'flac' };
const OGG: InputKind = { name: 'ogg', demuxer: 'ogg' };
const WEBM: InputKind = { name: 'webm', demuxer: 'matroska' };
const MATROSKA: InputKind = { name: 'matroska', demuxer: 'matroska' };
const MP4: InputKind = { name: 'mp4', demuxer: 'mov' };
const MP3: InputKind = { name: 'mp3', demuxer: 'mp3' };
const AIFF: InputKind = { name: 'aiff', demuxer: 'aiff' };
const AMR: InputKind = { name: 'amr', demuxer: 'amr' };

const NEED_MORE: SniffResult = { verdict: 'need-more' };
const UNSUPPORTED: SniffResult = { verdict: 'unsupported' };

const recognised = (kind: InputKind, streamable: boolean): SniffResult => ({ verdict: 'recognised', kind, streamable });

/** `decisive` when no more bytes will come (the upload ended, or MAX_SNIFF_BYTES are in). */
const needMoreUnless = (decisive: boolean): SniffResult => (decisive ? UNSUPPORTED : NEED_MORE);

/** 'short': the bytes present agree so far, and more are needed to tell. */
type Match = 'yes' | 'no' | 'short';

const verdictFor = (match: Match, kind: InputKind, decisive: boolean): SniffResult =>
  match === 'yes' ? recognised(kind, true) : match === 'short' ? needMoreUnless(decisive) : UNSUPPORTED;

type Sniffer = (head: Buffer, decisive: boolean) => SniffResult;

/** A kind that fixed bytes at fixed offsets settle. */
function byMagic(kind: InputKind, match: (head: Buffer) => Match): Sniffer {
  return (head, decisive) => verdictFor(match(head), kind, decisive);
}

// The kinds' first bytes never overlap, so at most one sniffer recognises any head.
const SNIFFERS: readonly Sniffer[] = [
  byMagic(WAV, (head) => allOf(magicAt(head, 0, 'RIFF', 'RF64', 'BW64'), magicAt(head, 8, 'WAVE'))),
  byMagic(FLAC, (head) => magicAt(head, 0, 'fLaC')),
  // The byte after the capture pattern is the stream structure version, of which only 0 exists.
  byMagic(OGG, (head) => magicAt(head, 0, 'OggS\0')),
  byMagic(AIFF, (head) => allOf(magicAt(head, 0, 'FORM'), magicAt(head, 8, 'AIFF', 'AIFC'))),
  // AMR-NB and AMR-WB; the multichannel files ("#!AMR_MC1.0\n", "#!AMR-WB_MC1.0\n") differ after "#!AMR".
  byMagic(AMR, (head) => magicAt(head, 0, '#!AMR\n', '#!AMR-WB\n')),
  sniffMatroska,
  sniffMp4,
  sniffMp3,
];

/** `complete` is true when `head` is the whole file (the upload ended): then never answer need-more. */
export function sniffInput(head: Buffer, complete: boolean): SniffResult {
  // Nothing past MAX_SNIFF_BYTES is read, which bounds the MP4 box walk and makes the verdict depend on
  // those bytes alone, however much a caller happens to pass.
  const bytes = head.subarray(0, MAX_SNIFF_BYTES);
  const decisive = complete || head.length >= MAX_SNIFF_BYTES;
  // A sniffer still waiting for bytes keeps the answer at need-more until one recognises.
  let verdict = UNSUPPORTED;
  for (const sniff of SNIFFERS) {
    const result = sniff(bytes, decisive);
    if (result.verdict === 'recognised') return result;
    if (result.verdict === 'need-more') verdict = result;
  }
  return verdict;
}

function magicAt(head: Buffer, offset: number, ...magics: string[]): Match {
  return anyOf(
    ...magics.map((magic): Match => {
      const expected = Buffer.from(magic, 'latin1');
      const present = head.subarray(offset, offset + expected.length);
      if (!present.equals(expected.subarray(0, present.length))) return 'no';
      return present.length === expected.length ? 'yes' : 'short';
    }),
  );
}

function anyOf(...matches: Match[]): Match {
  if (matches.includes('yes')) return 'yes';
  return matches.includes('short') ? 'short' : 'no';
}

/** For parts in file order: a later part cannot be 'yes' or 'no' while an earlier one is still 'short'. */
function allOf(...matches: Match[]): Match {
  if (matches.includes('no')) return 'no';
  return matches.includes('short') ? 'short' : 'yes';
}

// ---- WebM / Matroska: an EBML header whose DocType names the format ----

const EBML_MAGIC = '\x1a\x45\xdf\xa3';
/** Real EBML headers take a few dozen bytes. */
const MAX_EBML_HEADER_BYTES = 4096;
const DOC_TYPE_ID = 0x4282;
/** EBMLMaxIDLength's default; the EBML header itself is read before any other value could apply. */
const MAX_EBML_ID_BYTES = 4;
// A Map, so that a DocType such as "constructor" finds nothing.
const DOC_TYPES: ReadonlyMap<string, InputKind> = new Map([
  ['webm', WEBM],
  ['matroska', MATROSKA],
]);

function sniffMatroska(head: Buffer, decisive: boolean): SniffResult {
  const magic = magicAt(head, 0, EBML_MAGIC);
  if (magic !== 'yes') return verdictFor(magic, MATROSKA, decisive);
  const size = vintAt(head, EBML_MAGIC.length);
  if (size === 'short') return needMoreUnless(decisive);
  if (size === 'no' || size.allOnes || size.value > MAX_EBML_HEADER_BYTES) return UNSUPPORTED;
  const bodyStart = EBML_MAGIC.length + size.length;
  const bodyEnd = bodyStart + size.value;
  if (head.length < bodyEnd) return needMoreUnless(decisive);
  const docType = docTypeIn(head.subarray(bodyStart, bodyEnd));
  const kind = docType === undefined ? undefined : DOC_TYPES.get(docType);
  return kind === undefined ? UNSUPPORTED : recognised(kind, true);
}

/** The DocType among the EBML header's children; undefined when missing or repeated, or when any child is malformed. */
function docTypeIn(body: Buffer): string | undefined {
  let docType: string | undefined;
  let offset = 0;
  while (offset < body.length) {
    // Running out of `body` ('short') means a child reaching past the header: as malformed as a bad vint.
    const id = vintAt(body, offset);
    if (typeof id === 'string' || id.length > MAX_EBML_ID_BYTES || id.allOnes || id.value === 0) return undefined;
    const size = vintAt(body, offset + id.length);
    // An unknown size is only for some master elements, none of them in the EBML header.
    if (typeof size === 'string' || size.allOnes) return undefined;
    const start = offset + id.length + size.length;
    const end = start + size.value;
    if (end > body.length) return undefined;
    if (body.readUIntBE(offset, id.length) === DOC_TYPE_ID) {
      if (docType !== undefined) return undefined;
      // EBML strings may be padded with NULs.
      docType = body.toString('latin1', start, end).replace(/\0+$/, '');
    }
    offset = end;
  }
  return docType;
}

interface Vint {
  readonly length: number;
  /** Without the length marker. Past 2^53 it is rounded, harmlessly: it only ever meets bounds of a few KiB. */
  readonly value: number;
  /** Every value bit set: an unknown size, or a reserved ID. */
  readonly allOnes: boolean;
}

function vintAt(bytes: Buffer, offset: number): Vint | 'no' | 'short' {
  const first = bytes[offset];
  if (first === undefined) return 'short';
  // The number of leading zero bits, plus one, is the length; a zero first byte would make it more than 8.
  const length = Math.clz32(first) - 23;
  if (length > 8) return 'no';
  if (offset + length > bytes.length) return 'short';
  const firstBits = 0xff >> length;
  let value = first & firstBits;
  let allOnes = value === firstBits;
  for (let index = 1; index < length; index++) {
    const byte = bytes.readUInt8(offset + index);
    value = value * 256 + byte;
    allOnes &&= byte === 0xff;
  }
  return { length, value, allOnes };
}

// ---- MP4: an ftyp box naming a known brand; streamable when moov comes before mdat ----

const MIN_FTYP_BYTES = 16;
const MAX_FTYP_BYTES = 4096;

/**
 * Brands of the ISO base media family that ffmpeg's mov demuxer reads. Each names a specification the file
 * conforms to, so the major brand or any compatible brand being one of these is enough.
 */
const MP4_BRANDS: ReadonlySet<string> = new Set([
  // ISO/IEC 14496-12 base media, and the MP4 file format (14496-14)
  'isom',
  'iso2',
  'iso3',
  'iso4',
  'iso5',
  'iso6',
  'iso7',
  'iso8',
  'iso9',
  'mp41',
  'mp42',
  'mp71',
  // Apple: iTunes audio, audiobook, protected audio and video; QuickTime
  'M4A ',
  'M4B ',
  'M4P ',
  'M4V ',
  'qt  ',
  // 3GPP and 3GPP2, as phones write voice memos
  '3gp4',
  '3gp5',
  '3gp6',
  '3gp7',
  '3gp8',
  '3gp9',
  '3ge6',
  '3ge7',
  '3gg6',
  '3g2a',
  '3g2b',
  '3g2c',
  // MPEG-DASH, plain AVC, Sony PSP, Adobe Flash audio and video
  'dash',
  'avc1',
  'MSNV',
  'f4a ',
  'f4v ',
]);

function sniffMp4(head: Buffer, decisive: boolean): SniffResult {
  const ftyp = allOf(uint32Within(head, MIN_FTYP_BYTES, MAX_FTYP_BYTES), magicAt(head, 4, 'ftyp'));
  if (ftyp !== 'yes') return verdictFor(ftyp, MP4, decisive);
  const ftypSize = head.readUInt32BE(0);
  if (head.length < ftypSize) return needMoreUnless(decisive);
  // Major brand at 8, minor version at 12, then compatible brands; a stray partial brand at the end is ignored.
  const brandOffsets = [8];
  for (let offset = 16; offset + 4 <= ftypSize; offset += 4) brandOffsets.push(offset);
  if (!brandOffsets.some((offset) => MP4_BRANDS.has(head.toString('latin1', offset, offset + 4)))) return UNSUPPORTED;
  return mp4Layout(head, ftypSize, decisive);
}

/** Whether the big-endian 32-bit number at the start of `head` is within [min, max], or still could be. */
function uint32Within(head: Buffer, min: number, max: number): Match {
  const known = head.subarray(0, 4);
  const padded = (fill: number) => Buffer.concat([known, Buffer.alloc(4 - known.length, fill)]).readUInt32BE(0);
  if (padded(0xff) < min || padded(0x00) > max) return 'no';
  return known.length === 4 ? 'yes' : 'short';
}

/**
 * Walks the top-level boxes after ftyp. ffmpeg reading from a pipe cannot seek, so it needs the index (moov)
 * before the audio (mdat); otherwise the caller spools the file first. When the answer lies beyond the bytes
 * that will come, the file is taken as not streamable, which is always safe.
 */
function mp4Layout(head: Buffer, firstBox: number, decisive: boolean): SniffResult {
  const undecided = () => (decisive ? recognised(MP4, false) : NEED_MORE);
  let offset = firstBox;
  for (;;) {
    if (head.length < offset + 8) return undecided();
    const size32 = head.readUInt32BE(offset);
    const type = head.toString('latin1', offset + 4, offset + 8);
    // Size 1: a 64-bit size follows the type. Size 0: the box runs to the end of the file.
    const headerBytes = size32 === 1 ? 16 : 8;
    if (head.length < offset + headerBytes) return undecided();
    // Past 2^53 the size is rounded, harmlessly: the next box would still lie far past MAX_SNIFF_BYTES.
    const size = size32 === 1 ? Number(head.readBigUInt64BE(offset + 8)) : size32;
    if (size32 !== 0 && size < headerBytes) return UNSUPPORTED;
    if (type === 'moov') return recognised(MP4, true);
    if (type === 'mdat' || size32 === 0) return recognised(MP4, false);
    offset += size;
  }
}

// ---- MP3: an ID3v2 tag, or two consecutive MPEG audio frame headers ----

/** After "ID3": major version 2–4, a revision other than 0xFF, flags, then the size as four 7-bit bytes. */
const ID3_FIELDS: readonly ((byte: number) => boolean)[] = [
  (major) => major >= 2 && major <= 4,
  (revision) => revision !== 0xff,
  (_flags) => true,
  (size) => size < 0x80,
  (size) => size < 0x80,
  (size) => size < 0x80,
  (size) => size < 0x80,
];

function id3TagAt(head: Buffer): Match {
  const magic = magicAt(head, 0, 'ID3');
  if (magic !== 'yes') return magic;
  for (const [index, valid] of ID3_FIELDS.entries()) {
    const byte = head[3 + index];
    if (byte === undefined) return 'short';
    if (!valid(byte)) return 'no';
  }
  return 'yes';
}

type MpegVersion = '1' | '2' | '2.5';
type Layer = 1 | 2 | 3;

// Indexed by the header's bits; undefined where the value is reserved.
const MPEG_VERSIONS = ['2.5', undefined, '2', '1'] as const;
const LAYERS = [undefined, 3, 2, 1] as const;

const SAMPLE_RATES: Readonly<Record<MpegVersion, readonly number[]>> = {
  '1': [44100, 48000, 32000],
  '2': [22050, 24000, 16000],
  '2.5': [11025, 12000, 8000],
};

/** kbit/s for bitrate indexes 1–14 (ISO/IEC 11172-3 and 13818-3); MPEG-2.5 uses MPEG-2's. */
const BITRATES: Readonly<Record<'mpeg1' | 'mpeg2', Readonly<Record<Layer, readonly number[]>>>> = {
  mpeg1: {
    1: [32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
    2: [32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
    3: [32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
  },
  mpeg2: {
    1: [32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
    2: [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    3: [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
  },
};

interface FrameHeader {
  readonly layer: Layer;
  readonly sampleRate: number;
  /** Bytes from this header to the next. */
  readonly frameBytes: number;
}

// One valid-looking frame header is four bytes that turn up by chance in any large file; a second one exactly
// where the first says the next frame starts is not chance.
function sniffMp3(head: Buffer, decisive: boolean): SniffResult {
  const tag = id3TagAt(head);
  if (tag === 'yes') return recognised(MP3, true);
  const first = frameHeaderAt(head, 0);
  if (typeof first === 'string') return verdictFor(anyOf(tag, first), MP3, decisive);
  const second = frameHeaderAt(head, first.frameBytes);
  if (typeof second === 'string') return verdictFor(second, MP3, decisive);
  // The bitrate may change from frame to frame (VBR); the stream's version, layer and rate may not. Each
  // version has rates of its own, so the same rate in Hz means the same version.
  const sameStream = second.layer === first.layer && second.sampleRate === first.sampleRate;
  return sameStream ? recognised(MP3, true) : UNSUPPORTED;
}

/** The MPEG audio frame header at `offset`; judged byte by byte, so that a wrong byte rules it out at once. */
function frameHeaderAt(head: Buffer, offset: number): FrameHeader | 'no' | 'short' {
  const syncByte = head[offset];
  if (syncByte === undefined) return 'short';
  if (syncByte !== 0xff) return 'no';

  const versionLayerByte = head[offset + 1];
  if (versionLayerByte === undefined) return 'short';
  const version = MPEG_VERSIONS[(versionLayerByte >> 3) & 0b11];
  const layer = LAYERS[(versionLayerByte >> 1) & 0b11];
  // The top three bits end the 11-bit frame sync.
  if ((versionLayerByte & 0xe0) !== 0xe0 || version === undefined || layer === undefined) return 'no';

  const rateByte = head[offset + 2];
  if (rateByte === undefined) return 'short';
  // Index 0 (free format, whose frame length no header states) and 15 (invalid) have no entry.
  const kbps = BITRATES[version === '1' ? 'mpeg1' : 'mpeg2'][layer][(rateByte >> 4) - 1];
  const sampleRate = SAMPLE_RATES[version][(rateByte >> 2) & 0b11];
  if (kbps === undefined || sampleRate === undefined) return 'no';

  if (head.length < offset + 4) return 'short';
  const padding = (rateByte >> 1) & 1;
  return { layer, sampleRate, frameBytes: frameBytes(version, layer, kbps * 1000, sampleRate, padding) };
}

function frameBytes(version: MpegVersion, layer: Layer, bitrate: number, sampleRate: number, padding: number): number {
  // Layer I frames hold 384 samples in 4-byte slots: 384 / 8 / 4 = 12.
  if (layer === 1) return (Math.floor((12 * bitrate) / sampleRate) + padding) * 4;
  // Layers II and III hold 1152 samples a frame (1152 / 8 = 144), but Layer III of MPEG-2 and 2.5 only 576.
  const coefficient = layer === 3 && version !== '1' ? 72 : 144;
  return Math.floor((coefficient * bitrate) / sampleRate) + padding;
}
