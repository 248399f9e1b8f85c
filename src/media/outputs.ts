import { InvalidInput } from '../domain/errors.js';

/** The shape of the audio an output carries. */
export interface AudioShape {
  readonly sampleRate: number;
  readonly channels: 1 | 2;
}

export const OUTPUT_FORMAT_NAMES = ['mp3', 'opus', 'm4a', 'flac'] as const;
export type OutputFormatName = (typeof OUTPUT_FORMAT_NAMES)[number];
export const QUALITY_PRESETS = ['voice', 'standard', 'high'] as const;
export type QualityPreset = (typeof QUALITY_PRESETS)[number];

/** How a stored format is served and read back: everything format-specific outside the encoder. */
export interface StoredFormat {
  /** Stored in `records.format`; also the file extension of its blobs and downloads. */
  readonly name: OutputFormatName;
  readonly mimeType: string;
  /** The ffmpeg muxer that writes it and the demuxer that reads it back (peaks, retagging). */
  readonly muxer: string;
  readonly demuxer: 'mp3' | 'ogg' | 'mov' | 'flac';
}

/** What a client asked for; every field is optional, and `planOutput` checks them against the format. */
export interface OutputRequest {
  readonly format?: OutputFormatName | undefined;
  readonly quality?: QualityPreset | undefined;
  readonly bitrateKbps?: number | undefined;
  readonly channels?: 1 | 2 | undefined;
  readonly sampleRate?: number | undefined;
  readonly normalize?: boolean | undefined;
}

/** The server's own MP3 settings, which are the `standard` preset of MP3 (and the default output). */
export interface Mp3Encoding {
  /** LAME VBR quality (0 best … 9 smallest); ignored when `bitrateKbps` is set. */
  readonly vbrQuality: number;
  /** Constant bitrate in kbit/s; unset means VBR. */
  readonly bitrateKbps: number | undefined;
  /** LAME algorithm quality (0 slowest/best … 9 fastest); unset keeps LAME's default. */
  readonly compressionLevel: number | undefined;
}

interface DecodedShape {
  readonly sampleRate: number;
  readonly channels: number;
}

/** What is known of the source before ffmpeg runs: its kind, and its shape only when we parsed it (WAV). */
export interface SourceDescription {
  /** Whether the source's audio is already what the output stores (MP3 for mp3, Opus in Ogg for opus …). */
  readonly sameCodecAs: OutputFormatName | undefined;
  readonly shape: { readonly sampleRate: number; readonly channels: number } | undefined;
}

/** One output, decided: ffmpeg's arguments for it and what it will be once written. */
export interface OutputPlan {
  readonly format: StoredFormat;
  /** The source's audio packets are copied, not re-encoded (they are only decoded once for the peaks). */
  readonly copy: boolean;
  /** Known before the conversion when the source's shape is known or the client fixed both. */
  readonly shape: AudioShape | undefined;
  /**
   * What the stored audio's rate and channels are, given the decoded source's: the same choice ffmpeg's
   * format negotiation makes (the allowed rate closest to the source's), so no probe of the file is needed.
   */
  storedShape(decoded: DecodedShape): DecodedShape;
  readonly normalizeToLufs: number | undefined;
  /** Filters and encoder options, without the tags and the output path. */
  readonly arguments: readonly string[];
}

export const STORED_FORMATS: Readonly<Record<OutputFormatName, StoredFormat>> = {
  mp3: { name: 'mp3', mimeType: 'audio/mpeg', muxer: 'mp3', demuxer: 'mp3' },
  opus: { name: 'opus', mimeType: 'audio/ogg', muxer: 'ogg', demuxer: 'ogg' },
  m4a: { name: 'm4a', mimeType: 'audio/mp4', muxer: 'mp4', demuxer: 'mov' },
  flac: { name: 'flac', mimeType: 'audio/flac', muxer: 'flac', demuxer: 'flac' },
};

/** The stored format of a record's row; rows only ever hold these names. */
export function storedFormat(name: string): StoredFormat {
  if (!(OUTPUT_FORMAT_NAMES as readonly string[]).includes(name)) throw new Error(`unknown stored format ${name}`);
  return STORED_FORMATS[name as OutputFormatName];
}

/** What each codec can carry, and its presets. Bitrates in kbit/s. */
interface Codec {
  readonly sampleRates: readonly number[];
  /** Allowed explicit bitrates: a range, or the exact set the format defines; none for a lossless codec. */
  readonly bitrates: { readonly min: number; readonly max: number; readonly only?: readonly number[] } | undefined;
  readonly presets: Readonly<Record<QualityPreset, { bitrateKbps?: number; shape?: Partial<AudioShape> }>>;
  encoder(bitrateKbps: number | undefined, preset: QualityPreset | undefined): string[];
}

/** Sample rates an MP3 (MPEG-1, 2 and 2.5 layer III) can carry. */
const MP3_SAMPLE_RATES = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];
// Layer III bitrates: MPEG-1 (32–48 kHz) allows 32–320, MPEG-2 and 2.5 (up to 24 kHz) 8–160.
const MPEG1_BITRATES = [32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
const MPEG2_BITRATES = [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
const AAC_SAMPLE_RATES = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000];
const FLAC_SAMPLE_RATES = [...AAC_SAMPLE_RATES, 176400, 192000];

function codecs(mp3: Mp3Encoding): Readonly<Record<OutputFormatName, Codec>> {
  return {
    mp3: {
      sampleRates: MP3_SAMPLE_RATES,
      bitrates: { min: 8, max: 320, only: [...new Set([...MPEG2_BITRATES, ...MPEG1_BITRATES])] },
      presets: {
        voice: { bitrateKbps: 48, shape: { channels: 1, sampleRate: 22050 } },
        standard: {},
        high: {},
      },
      encoder: (bitrate, preset) => [
        '-c:a',
        'libmp3lame',
        ...(bitrate !== undefined
          ? ['-b:a', `${bitrate}k`]
          : preset === 'high'
            ? ['-q:a', '0']
            : mp3.bitrateKbps !== undefined
              ? ['-b:a', `${mp3.bitrateKbps}k`]
              : ['-q:a', String(mp3.vbrQuality)]),
        ...(mp3.compressionLevel === undefined ? [] : ['-compression_level', String(mp3.compressionLevel)]),
        // LAME is single-threaded; more threads would only add overhead.
        '-threads',
        '1',
        // A seekable output lets the muxer fill in the Xing/LAME frame (duration, gapless padding) at the end.
        '-write_xing',
        '1',
      ],
    },
    opus: {
      sampleRates: [8000, 12000, 16000, 24000, 48000],
      bitrates: { min: 6, max: 510 },
      presets: {
        voice: { bitrateKbps: 24, shape: { channels: 1 } },
        standard: { bitrateKbps: 96 },
        high: { bitrateKbps: 160 },
      },
      encoder: (bitrate, preset) => [
        '-c:a',
        'libopus',
        '-b:a',
        `${bitrate ?? 96}k`,
        // Opus's speech mode favours intelligibility at low rates.
        ...(preset === 'voice' ? ['-application', 'voip'] : []),
      ],
    },
    m4a: {
      sampleRates: AAC_SAMPLE_RATES,
      bitrates: { min: 16, max: 320 },
      presets: {
        voice: { bitrateKbps: 48, shape: { channels: 1, sampleRate: 24000 } },
        standard: { bitrateKbps: 128 },
        high: { bitrateKbps: 256 },
      },
      encoder: (bitrate) => ['-c:a', 'aac', '-b:a', `${bitrate ?? 128}k`],
    },
    flac: {
      sampleRates: FLAC_SAMPLE_RATES,
      bitrates: undefined,
      presets: {
        voice: { shape: { channels: 1, sampleRate: 16000 } },
        standard: {},
        high: {},
      },
      encoder: (_bitrate, preset) => ['-c:a', 'flac', '-compression_level', preset === 'high' ? '8' : '5'],
    },
  };
}

export interface OutputSettings {
  readonly mp3: Mp3Encoding;
  /** The loudness `normalize` aims at, in LUFS. */
  readonly loudnessTargetLufs: number;
}

/**
 * Decides one upload's output from what the client asked and what is known of the source, refusing with
 * InvalidInput what the format cannot do. With no options at all, a source already in the target codec is
 * copied rather than re-encoded.
 */
export function planOutput(request: OutputRequest, source: SourceDescription, settings: OutputSettings): OutputPlan {
  const name = request.format ?? 'mp3';
  const format = STORED_FORMATS[name];
  const codec = codecs(settings.mp3)[name];
  const { quality, bitrateKbps, channels, sampleRate, normalize } = request;

  if (quality !== undefined && bitrateKbps !== undefined) {
    throw new InvalidInput('Give either quality or bitrate, not both.');
  }
  if (sampleRate !== undefined && !codec.sampleRates.includes(sampleRate)) {
    throw new InvalidInput(`sample_rate for ${name} must be one of ${codec.sampleRates.join(', ')}.`);
  }
  if (bitrateKbps !== undefined) checkBitrate(name, codec, bitrateKbps, sampleRate);

  const untouched = quality === undefined && bitrateKbps === undefined && channels === undefined;
  if (untouched && sampleRate === undefined && normalize !== true && source.sameCodecAs === name) {
    return {
      format,
      copy: true,
      shape: undefined,
      storedShape: (decoded) => decoded,
      normalizeToLufs: undefined,
      arguments: ['-c:a', 'copy'],
    };
  }

  const preset = quality === undefined ? undefined : codec.presets[quality];
  const wanted: Partial<AudioShape> = {
    channels: channels ?? preset?.shape?.channels,
    sampleRate: sampleRate ?? preset?.shape?.sampleRate,
  };
  const rates = ratesFor(name, codec, bitrateKbps);
  const shape = source.shape === undefined ? undefined : resolveShape(wanted, source.shape, rates);
  const normalizeToLufs = normalize === true ? settings.loudnessTargetLufs : undefined;
  const negotiable = negotiableRates(rates, normalizeToLufs);
  return {
    format,
    copy: false,
    shape:
      shape ?? (wanted.channels !== undefined && wanted.sampleRate !== undefined ? (wanted as AudioShape) : undefined),
    storedShape: (decoded) => {
      const encoded = shape ?? {
        channels: wanted.channels ?? (decoded.channels === 1 ? 1 : 2),
        sampleRate:
          wanted.sampleRate ??
          closestRate(normalizeToLufs === undefined ? decoded.sampleRate : LOUDNORM_RATE, negotiable),
      };
      // Opus always decodes at 48 kHz, whatever rate it was encoded from: players (and ffprobe) say 48 kHz.
      return name === 'opus' ? { ...encoded, sampleRate: OPUS_DECODED_RATE } : encoded;
    },
    normalizeToLufs,
    arguments: [
      ...shapeArguments(shape ?? wanted, negotiable, normalizeToLufs),
      ...codec.encoder(bitrateKbps ?? preset?.bitrateKbps, quality),
    ],
  };
}

function checkBitrate(name: OutputFormatName, codec: Codec, bitrateKbps: number, sampleRate: number | undefined): void {
  const allowed = codec.bitrates;
  if (allowed === undefined) throw new InvalidInput(`${name} is lossless: it takes no bitrate.`);
  if (allowed.only !== undefined && !allowed.only.includes(bitrateKbps)) {
    throw new InvalidInput(`bitrate for ${name} must be one of ${allowed.only.join(', ')} (kbit/s).`);
  }
  if (bitrateKbps < allowed.min || bitrateKbps > allowed.max) {
    throw new InvalidInput(`bitrate for ${name} must be between ${allowed.min} and ${allowed.max} kbit/s.`);
  }
  if (name === 'mp3' && sampleRate !== undefined) {
    const family = sampleRate >= 32000 ? MPEG1_BITRATES : MPEG2_BITRATES;
    if (!family.includes(bitrateKbps)) {
      throw new InvalidInput(`At ${sampleRate} Hz an MP3 bitrate must be one of ${family.join(', ')} kbit/s.`);
    }
  }
}

/** The sample rates an output may take; an MP3 bitrate only exists at the rates of its MPEG version. */
function ratesFor(name: OutputFormatName, codec: Codec, bitrateKbps: number | undefined): readonly number[] {
  if (name !== 'mp3' || bitrateKbps === undefined) return codec.sampleRates;
  return codec.sampleRates.filter((rate) => (rate >= 32000 ? MPEG1_BITRATES : MPEG2_BITRATES).includes(bitrateKbps));
}

/** The shape for a source whose shape is known: the client's choice, else the source's where the codec allows. */
function resolveShape(
  wanted: Partial<AudioShape>,
  source: { readonly sampleRate: number; readonly channels: number },
  rates: readonly number[],
): AudioShape {
  return {
    channels: wanted.channels ?? (source.channels === 1 ? 1 : 2),
    sampleRate: wanted.sampleRate ?? nearestRate(source.sampleRate, rates),
  };
}

/** The same rate when allowed, else the nearest allowed one above it (the highest when none is above). */
export function nearestRate(sourceRate: number, rates: readonly number[]): number {
  if (rates.includes(sourceRate)) return sourceRate;
  // 88.2 and 176.4 kHz material comes from 44.1 kHz sessions; resampling to 44.1 kHz keeps it exact.
  const highest = rates.at(-1) ?? sourceRate;
  if (sourceRate > highest && sourceRate % 11025 === 0 && rates.includes(44100)) return 44100;
  return rates.find((rate) => rate >= sourceRate) ?? highest;
}

const MAX_NORMALIZED_RATE = 48000;
const OPUS_DECODED_RATE = 48000;
// loudnorm works, and outputs, at 192 kHz.
const LOUDNORM_RATE = 192000;

/** The rates ffmpeg may pick from; loudnorm's 192 kHz would otherwise be the closest a FLAC or AAC allows. */
function negotiableRates(rates: readonly number[], normalizeToLufs: number | undefined): readonly number[] {
  return normalizeToLufs === undefined ? rates : rates.filter((rate) => rate <= MAX_NORMALIZED_RATE);
}

/** ffmpeg's choice among allowed rates: the smallest absolute difference, the first of equals. */
function closestRate(rate: number, rates: readonly number[]): number {
  return rates.reduce((best, candidate) => (Math.abs(candidate - rate) < Math.abs(best - rate) ? candidate : best));
}

/**
 * Fixed rate and channels where they are known; otherwise ffmpeg's format negotiation picks, from the
 * allowed ones, the closest to the decoded source (mono stays mono, anything wider becomes stereo).
 */
function shapeArguments(
  shape: Partial<AudioShape>,
  rates: readonly number[],
  normalizeToLufs: number | undefined,
): string[] {
  const filters: string[] = [];
  // Single-pass (dynamic) loudness normalisation, so the output still streams; it resamples to 192 kHz
  // internally, which the rate below undoes.
  if (normalizeToLufs !== undefined) filters.push(`loudnorm=I=${normalizeToLufs}:TP=-1.5:LRA=11:print_format=json`);
  const negotiated = [
    ...(shape.sampleRate === undefined ? [`sample_rates=${rates.join('|')}`] : []),
    ...(shape.channels === undefined ? ['channel_layouts=mono|stereo'] : []),
  ];
  if (negotiated.length > 0) filters.push(`aformat=${negotiated.join(':')}`);
  return [
    ...(filters.length > 0 ? ['-af', filters.join(',')] : []),
    ...(shape.channels === undefined ? [] : ['-ac', String(shape.channels)]),
    ...(shape.sampleRate === undefined ? [] : ['-ar', String(shape.sampleRate)]),
  ];
}

/**
 * The muxer and the title tag: ID3v2.4 for MP3 (no tag at all without a title, so the file starts with its
 * Xing frame), Vorbis comments for Ogg and FLAC, MP4 tags for M4A.
 */
export function muxerArguments(format: StoredFormat, title: string | null): string[] {
  const tags = title === null ? [] : ['-metadata', `title=${title}`];
  // The Ogg muxer writes the stream's comments, not the file's.
  if (title !== null && format.muxer === 'ogg') tags.push('-metadata:s:a:0', `title=${title}`);
  return [
    ...(format.name === 'mp3' ? ['-id3v2_version', title === null ? '0' : '4'] : []),
    // The index goes to the front, so the file plays while it downloads and reads back from a pipe (for
    // peaks and the next retag): on every write, encoded or copied.
    ...(format.muxer === 'mp4' ? ['-movflags', '+faststart'] : []),
    ...tags,
    // No "encoder" tag naming the ffmpeg build.
    '-fflags',
    '+bitexact',
    '-f',
    format.muxer,
  ];
}
