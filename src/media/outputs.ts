/** The shape of the audio an output carries. */
export interface AudioShape {
  readonly sampleRate: number;
  readonly channels: 1 | 2;
}

/** How one output format is encoded and served: everything format-specific the rest of the code needs. */
export interface OutputFormat {
  /** Stored in `records.format`; also the file extension of its blobs and downloads. */
  readonly name: string;
  readonly mimeType: string;
  /** The rate and channels this format stores for a source of the given rate and channel count. */
  shapeFor(source: { readonly sampleRate: number; readonly channels: number }): AudioShape;
  /** ffmpeg's encoder and muxer options for this format; the output path follows them. */
  encoderArguments(shape: AudioShape): string[];
}

export interface Mp3Encoding {
  /** LAME VBR quality (0 best … 9 smallest); ignored when `bitrateKbps` is set. */
  readonly vbrQuality: number;
  /** Constant bitrate in kbit/s; unset means VBR. */
  readonly bitrateKbps: number | undefined;
  /** LAME algorithm quality (0 slowest/best … 9 fastest); unset keeps LAME's default. */
  readonly compressionLevel: number | undefined;
}

/** Sample rates an MP3 (MPEG-1, 2 and 2.5 layer III) can carry. */
const MP3_SAMPLE_RATES = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000] as const;

/** The MP3 rate for a source rate: the same when MP3 allows it, else the nearest one of the same family above it. */
function mp3SampleRate(sourceRate: number): number {
  if ((MP3_SAMPLE_RATES as readonly number[]).includes(sourceRate)) return sourceRate;
  // 88.2 and 176.4 kHz material comes from 44.1 kHz sessions; resampling to 44.1 kHz keeps it exact.
  if (sourceRate > 48000) return sourceRate % 11025 === 0 ? 44100 : 48000;
  return MP3_SAMPLE_RATES.find((rate) => rate >= sourceRate) ?? 48000;
}

/** MP3 through LAME, starting with a Xing/LAME frame so players know the duration and trim the padding. */
export function mp3Output(encoding: Mp3Encoding): OutputFormat {
  return {
    name: 'mp3',
    mimeType: 'audio/mpeg',
    shapeFor: (source) => ({ sampleRate: mp3SampleRate(source.sampleRate), channels: source.channels === 1 ? 1 : 2 }),
    encoderArguments: (shape) => [
      '-ac',
      String(shape.channels),
      '-ar',
      String(shape.sampleRate),
      '-c:a',
      'libmp3lame',
      ...(encoding.bitrateKbps === undefined
        ? ['-q:a', String(encoding.vbrQuality)]
        : ['-b:a', `${encoding.bitrateKbps}k`]),
      ...(encoding.compressionLevel === undefined ? [] : ['-compression_level', String(encoding.compressionLevel)]),
      // LAME is single-threaded; more threads would only add overhead.
      '-threads',
      '1',
      // No ID3 tag: the MP3 starts with the Xing/LAME frame that carries duration and gapless padding.
      '-id3v2_version',
      '0',
      '-write_xing',
      '1',
      '-f',
      'mp3',
    ],
  };
}
