import { AudioRejected } from '../domain/errors.js';

const notAWav = (detail: string) => new AudioRejected('unsupported-format', detail);
const undecodable = (detail: string) => new AudioRejected('undecodable', detail);

/** How the samples are laid out, named as ffmpeg's raw PCM demuxers are. */
export type PcmSampleFormat = 'u8' | 's16le' | 's24le' | 's32le' | 'f32le' | 'f64le' | 'alaw' | 'mulaw';

/** The facts of a WAV header that decide whether and how it is converted. */
export interface WavFormat {
  readonly container: 'RIFF' | 'RF64' | 'BW64';
  /** The effective format tag: the sub-format for WAVE_FORMAT_EXTENSIBLE. */
  readonly formatTag: number;
  readonly sampleFormat: PcmSampleFormat;
  /** Which speaker each channel feeds (WAVE_FORMAT_EXTENSIBLE's mask), when it names one per channel. */
  readonly channelMask: number | undefined;
  readonly channels: number;
  readonly sampleRate: number;
  readonly blockAlign: number;
  readonly bitsPerSample: number;
  /** Bytes of audio per second, used to turn data bytes into duration. */
  readonly bytesPerSecond: number;
  /** Offset of the first audio byte in the file. */
  readonly dataOffset: number;
  /** Declared size of the data chunk; undefined when the writer did not know it (streaming writers). */
  readonly declaredDataBytes: number | undefined;
}

const WAVE_FORMAT = {
  PCM: 0x0001,
  IEEE_FLOAT: 0x0003,
  ALAW: 0x0006,
  MULAW: 0x0007,
  EXTENSIBLE: 0xfffe,
} as const;

/**
 * The only encodings accepted, by format tag and bits per sample. Every other RIFF codec ffmpeg knows
 * (ADPCM variants, GSM, MP3 or AC-3 in WAV, S/PDIF) stays unreachable from an upload: ffmpeg only ever
 * sees raw samples of one of these layouts.
 */
const SAMPLE_FORMATS: Readonly<Record<number, Readonly<Record<number, PcmSampleFormat>>>> = {
  [WAVE_FORMAT.PCM]: { 8: 'u8', 16: 's16le', 24: 's24le', 32: 's32le' },
  [WAVE_FORMAT.IEEE_FLOAT]: { 32: 'f32le', 64: 'f64le' },
  [WAVE_FORMAT.ALAW]: { 8: 'alaw' },
  [WAVE_FORMAT.MULAW]: { 8: 'mulaw' },
};

const MIN_SAMPLE_RATE = 8000;
const MAX_SAMPLE_RATE = 192_000;
const MAX_CHANNELS = 8;
/** Metadata chunks before the audio (bext, LIST, JUNK, iXML…) are small; more than this is not a recording. */
const MAX_HEADER_BYTES = 1024 * 1024;

// Writers that stream a WAV put one of these in the size fields before they know the length: 0 or all ones
// (ffmpeg and most), and the near-2-GiB placeholders of sox and arecord, which at a low byte rate would
// otherwise trip the duration limit.
const UNKNOWN_SIZES = new Set([0, 0xffffffff, 0x7ffff000, 0x7fffffff]);

type FormatFields = Omit<WavFormat, 'container' | 'dataOffset' | 'declaredDataBytes'>;

export interface WavLimits {
  readonly maxDurationSeconds: number;
}

/**
 * Parses the header at the start of `bytes`. Returns undefined while more bytes are needed to decide;
 * throws AudioRejected (not a WAV, unusable audio, too long) as soon as the bytes rule it out.
 * With `complete`, `bytes` is the whole upload, so a header that is still unfinished is judged too.
 */
export function parseWavHeader(bytes: Buffer, limits: WavLimits, complete = false): WavFormat | undefined {
  if (bytes.length < 12) {
    if (complete) throw notAWav('The file is too short to be a WAV.');
    return undefined;
  }
  const container = bytes.toString('latin1', 0, 4);
  if (
    (container !== 'RIFF' && container !== 'RF64' && container !== 'BW64') ||
    bytes.toString('latin1', 8, 12) !== 'WAVE'
  ) {
    throw notAWav('The file is not a WAV: it does not start with a RIFF/RF64/BW64 WAVE header.');
  }

  let format: FormatFields | undefined;
  let ds64DataBytes: number | undefined;
  let offset = 12;
  for (;;) {
    if (offset + 8 > bytes.length) return needMore(offset, complete, format !== undefined);
    const chunkId = bytes.toString('latin1', offset, offset + 4);
    const chunkSize = bytes.readUInt32LE(offset + 4);
    const body = offset + 8;

    if (chunkId === 'data') {
      if (format === undefined) throw notAWav('The WAV has no "fmt " chunk before its audio data.');
      // In RF64 and BW64 the 64-bit size in ds64 is the real one (the data chunk's own field is a placeholder).
      const declared = container !== 'RIFF' && ds64DataBytes !== undefined ? ds64DataBytes : chunkSize;
      const wav: WavFormat = {
        container,
        ...format,
        dataOffset: body,
        declaredDataBytes: UNKNOWN_SIZES.has(declared) ? undefined : declared,
      };
      checkDuration(wav, wav.declaredDataBytes, limits);
      return wav;
    }

    // The chunk bodies parsed below are small, so they must be complete before parsing.
    if ((chunkId === 'fmt ' || chunkId === 'ds64') && body + chunkSize > bytes.length)
      return needMore(body + chunkSize, complete, format !== undefined);
    // Only the first "fmt " counts, as in every reader; later ones cannot change how the audio is read.
    if (chunkId === 'fmt ' && format === undefined) {
      format = parseFormatChunk(bytes.subarray(body, body + chunkSize));
    } else if (chunkId === 'ds64' && chunkSize >= 16) {
      ds64DataBytes = Number(bytes.readBigUInt64LE(body + 8));
    }
    // Chunks are padded to an even length.
    offset = body + chunkSize + (chunkSize % 2);
  }
}

function needMore(upTo: number, complete: boolean, haveFormat: boolean): undefined {
  if (upTo > MAX_HEADER_BYTES) {
    throw notAWav(`The WAV has no audio data within its first ${MAX_HEADER_BYTES} bytes.`);
  }
  if (complete) {
    // Without a whole "fmt " chunk the bytes were never shown to be a WAV; with one, it is a WAV without audio.
    if (!haveFormat) throw notAWav('The file ends before its WAV "fmt " chunk is complete.');
    throw undecodable('The WAV ends before its audio data.');
  }
  return undefined;
}

function parseFormatChunk(chunk: Buffer): FormatFields {
  if (chunk.length < 16) throw notAWav('The WAV "fmt " chunk is too short.');
  let formatTag = chunk.readUInt16LE(0);
  const channels = chunk.readUInt16LE(2);
  const sampleRate = chunk.readUInt32LE(4);
  const blockAlign = chunk.readUInt16LE(12);
  const bitsPerSample = chunk.readUInt16LE(14);

  let channelMask: number | undefined;
  if (formatTag === WAVE_FORMAT.EXTENSIBLE) {
    if (chunk.length < 40) throw notAWav('The WAV "fmt " chunk is too short for WAVE_FORMAT_EXTENSIBLE.');
    const mask = chunk.readUInt32LE(20);
    // A mask naming another number of speakers than there are channels is ignored, as ffmpeg does.
    if (mask !== 0 && bitCount(mask) === channels) channelMask = mask;
    // The sub-format GUID starts with the ordinary format tag.
    formatTag = chunk.readUInt16LE(24);
  }
  if (channels === 0 || sampleRate === 0 || blockAlign === 0) {
    throw notAWav('The WAV "fmt " chunk declares zero channels, zero sample rate or zero block size.');
  }
  if (channels > MAX_CHANNELS) {
    throw undecodable(`The WAV has ${channels} channels; at most ${MAX_CHANNELS} are supported.`);
  }
  if (sampleRate < MIN_SAMPLE_RATE || sampleRate > MAX_SAMPLE_RATE) {
    throw undecodable(`The WAV sample rate ${sampleRate} Hz is outside ${MIN_SAMPLE_RATE}–${MAX_SAMPLE_RATE} Hz.`);
  }
  const sampleFormats = SAMPLE_FORMATS[formatTag];
  if (sampleFormats === undefined) {
    throw undecodable(
      `The WAV's audio uses codec 0x${formatTag.toString(16).padStart(4, '0')}; ` +
        'only PCM, IEEE float, A-law and µ-law WAVs are accepted.',
    );
  }
  const sampleFormat = sampleFormats[bitsPerSample];
  if (sampleFormat === undefined) {
    throw undecodable(`The WAV declares ${bitsPerSample} bits per sample, which its encoding does not allow.`);
  }
  if (blockAlign !== channels * (bitsPerSample / 8)) {
    throw undecodable('The WAV block size does not match its channels and sample size.');
  }
  // The rate follows from the layout; the header's own byte-rate field is never trusted.
  const bytesPerSecond = sampleRate * blockAlign;
  return { formatTag, sampleFormat, channelMask, channels, sampleRate, blockAlign, bitsPerSample, bytesPerSecond };
}

/** Rejects audio longer than the limit; `dataBytes` may be a declared size or a count of bytes received. */
export function checkDuration(wav: WavFormat, dataBytes: number | undefined, limits: WavLimits): void {
  if (dataBytes !== undefined && dataBytes / wav.bytesPerSecond > limits.maxDurationSeconds) {
    throw new AudioRejected(
      'too-long',
      `The recording is longer than the limit of ${limits.maxDurationSeconds} seconds.`,
    );
  }
}

function bitCount(value: number): number {
  let count = 0;
  for (let rest = value >>> 0; rest !== 0; rest >>>= 1) count += rest & 1;
  return count;
}
