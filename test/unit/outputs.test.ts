import { describe, expect, it } from 'vitest';
import { InvalidInput } from '../../src/domain/errors.js';
import {
  muxerArguments,
  OUTPUT_FORMAT_NAMES,
  planOutput,
  STORED_FORMATS,
  storedFormat,
  type OutputFormatName,
  type OutputPlan,
  type OutputRequest,
  type OutputSettings,
  type SourceDescription,
} from '../../src/media/outputs.js';

// A VBR quality other than LAME's default, so that the test sees it is the configured one.
const SETTINGS: OutputSettings = {
  mp3: { vbrQuality: 3, bitrateKbps: undefined, compressionLevel: undefined },
  loudnessTargetLufs: -14,
};
const UNKNOWN: SourceDescription = { sameCodecAs: undefined, shape: undefined };
const CD_WAV: SourceDescription = { sameCodecAs: undefined, shape: { sampleRate: 44100, channels: 2 } };

const MP3_RATES = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];
const OPUS_RATES = [8000, 12000, 16000, 24000, 48000];
const AAC_RATES = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000];
const FLAC_RATES = [...AAC_RATES, 176400, 192000];
const RATES_BY_FORMAT: [OutputFormatName, number[]][] = [
  ['mp3', MP3_RATES],
  ['opus', OPUS_RATES],
  ['m4a', AAC_RATES],
  ['flac', FLAC_RATES],
];
const MPEG1_BITRATES = [32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
const MPEG2_BITRATES = [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

const plan = (request: OutputRequest, source: SourceDescription = CD_WAV, settings = SETTINGS) =>
  planOutput(request, source, settings);

/** The value following `option`, which must occur exactly once. */
function valueOf(args: readonly string[], option: string): string | undefined {
  expect(
    args.filter((arg) => arg === option),
    option,
  ).toHaveLength(1);
  return args[args.indexOf(option) + 1];
}

function refusal(request: OutputRequest, source: SourceDescription = CD_WAV): string {
  try {
    plan(request, source);
  } catch (error) {
    if (error instanceof InvalidInput) return error.detail;
    throw error;
  }
  throw new Error(`expected InvalidInput for ${JSON.stringify(request)}`);
}

const filterOf = (result: OutputPlan) => valueOf(result.arguments, '-af');

describe('planOutput: defaults', () => {
  it('is an MP3 at the configured VBR quality, in the WAV source’s shape', () => {
    const result = plan({});
    expect(result.format).toBe(STORED_FORMATS.mp3);
    expect(result.copy).toBe(false);
    expect(result.shape).toEqual({ sampleRate: 44100, channels: 2 });
    expect(result.normalizeToLufs).toBeUndefined();
    expect(valueOf(result.arguments, '-c:a')).toBe('libmp3lame');
    expect(valueOf(result.arguments, '-q:a')).toBe('3');
    expect(result.arguments).not.toContain('-b:a');
    expect(result.arguments).not.toContain('-af');
    expect(valueOf(result.arguments, '-ac')).toBe('2');
    expect(valueOf(result.arguments, '-ar')).toBe('44100');
  });

  it('takes the configured constant bitrate and compression level', () => {
    const settings: OutputSettings = { ...SETTINGS, mp3: { vbrQuality: 3, bitrateKbps: 160, compressionLevel: 0 } };
    const result = plan({}, CD_WAV, settings);
    expect(valueOf(result.arguments, '-b:a')).toBe('160k');
    expect(result.arguments).not.toContain('-q:a');
    expect(valueOf(result.arguments, '-compression_level')).toBe('0');
  });

  it('never copies a WAV, whatever the format', () => {
    for (const format of OUTPUT_FORMAT_NAMES) expect(plan({ format }).copy).toBe(false);
  });
});

describe('planOutput: copying the source', () => {
  it.each(OUTPUT_FORMAT_NAMES)('copies a source already in the %s codec when nothing else is asked', (format) => {
    const result = plan({ format }, { sameCodecAs: format, shape: undefined });
    // storedShape is a function: compared on its own below.
    expect({ ...result, storedShape: undefined }).toEqual({
      format: STORED_FORMATS[format],
      copy: true,
      shape: undefined,
      storedShape: undefined,
      normalizeToLufs: undefined,
      arguments: ['-c:a', 'copy'],
    });
    expect(result.storedShape({ sampleRate: 44100, channels: 2 })).toEqual({ sampleRate: 44100, channels: 2 });
  });

  it('copies an MP3 source for the default output', () => {
    expect(plan({}, { sameCodecAs: 'mp3', shape: undefined }).copy).toBe(true);
  });

  it('re-encodes a source in another codec than the target', () => {
    const result = plan({ format: 'mp3' }, { sameCodecAs: 'flac', shape: undefined });
    expect(result.copy).toBe(false);
    expect(valueOf(result.arguments, '-c:a')).toBe('libmp3lame');
    expect(plan({ format: 'opus' }, { sameCodecAs: 'mp3', shape: undefined }).copy).toBe(false);
  });

  it.each<[string, OutputRequest]>([
    ['quality', { quality: 'standard' }],
    ['quality high', { quality: 'high' }],
    ['bitrate', { bitrateKbps: 128 }],
    ['channels', { channels: 2 }],
    ['sample_rate', { sampleRate: 44100 }],
    ['normalize', { normalize: true }],
  ])('any %s option makes it a re-encode', (_name, request) => {
    const result = plan({ format: 'mp3', ...request }, { sameCodecAs: 'mp3', shape: undefined });
    expect(result.copy).toBe(false);
    expect(result.arguments).not.toContain('copy');
    expect(valueOf(result.arguments, '-c:a')).toBe('libmp3lame');
  });

  it('normalize=false asks for nothing, so the source is still copied', () => {
    expect(plan({ normalize: false }, { sameCodecAs: 'mp3', shape: undefined }).copy).toBe(true);
  });

  it('still refuses what the format cannot do, even for a copyable source', () => {
    expect(() => plan({ format: 'flac', bitrateKbps: 128 }, { sameCodecAs: 'flac', shape: undefined })).toThrow(
      InvalidInput,
    );
  });
});

describe('planOutput: formats', () => {
  it.each<[OutputFormatName, string, string, string, string]>([
    ['mp3', 'libmp3lame', 'mp3', 'mp3', 'audio/mpeg'],
    ['opus', 'libopus', 'ogg', 'ogg', 'audio/ogg'],
    ['m4a', 'aac', 'mp4', 'mov', 'audio/mp4'],
    ['flac', 'flac', 'flac', 'flac', 'audio/flac'],
  ])('%s: encoder %s, muxer %s, demuxer %s, %s', (format, encoder, muxer, demuxer, mimeType) => {
    const result = plan({ format });
    expect(valueOf(result.arguments, '-c:a')).toBe(encoder);
    expect(result.format).toEqual({ name: format, mimeType, muxer, demuxer });
    expect(muxerArguments(result.format, null).slice(-2)).toEqual(['-f', muxer]);
    expect(storedFormat(format)).toBe(STORED_FORMATS[format]);
  });

  it('opus defaults to 96 kbit/s, m4a to 128 kbit/s with its index in front, flac to compression 5', () => {
    expect(valueOf(plan({ format: 'opus' }).arguments, '-b:a')).toBe('96k');
    expect(plan({ format: 'opus' }).arguments).not.toContain('-application');
    const m4a = plan({ format: 'm4a' }).arguments;
    expect(valueOf(m4a, '-b:a')).toBe('128k');
    // The muxer's arguments, so that a copy (a retag) keeps the index in front too.
    expect(valueOf(muxerArguments(STORED_FORMATS.m4a, null), '-movflags')).toBe('+faststart');
    const flac = plan({ format: 'flac' }).arguments;
    expect(valueOf(flac, '-compression_level')).toBe('5');
    expect(flac).not.toContain('-b:a');
  });

  it('storedFormat refuses a name no row holds', () => {
    for (const name of ['wav', 'MP3', '', 'constructor', 'toString', '__proto__']) {
      expect(() => storedFormat(name), name).toThrow();
    }
  });
});

describe('planOutput: quality presets', () => {
  it('mp3 voice is 48 kbit/s mono at 22.05 kHz, known before the conversion even for an unknown source', () => {
    const result = plan({ quality: 'voice' }, UNKNOWN);
    expect(valueOf(result.arguments, '-b:a')).toBe('48k');
    expect(valueOf(result.arguments, '-ac')).toBe('1');
    expect(valueOf(result.arguments, '-ar')).toBe('22050');
    expect(result.arguments).not.toContain('-af');
    expect(result.shape).toEqual({ channels: 1, sampleRate: 22050 });
  });

  it('mp3 high is VBR quality 0; standard is the configured setting', () => {
    const high = plan({ quality: 'high' }).arguments;
    expect(valueOf(high, '-q:a')).toBe('0');
    expect(high).not.toContain('-b:a');
    expect(valueOf(plan({ quality: 'standard' }).arguments, '-q:a')).toBe('3');
  });

  it('opus voice is 24 kbit/s mono in speech mode, at the source’s nearest Opus rate', () => {
    const result = plan({ format: 'opus', quality: 'voice' });
    expect(valueOf(result.arguments, '-b:a')).toBe('24k');
    expect(valueOf(result.arguments, '-application')).toBe('voip');
    expect(result.shape).toEqual({ channels: 1, sampleRate: 48000 });
  });

  it.each<[OutputFormatName, 'standard' | 'high', string]>([
    ['opus', 'standard', '96k'],
    ['opus', 'high', '160k'],
    ['m4a', 'standard', '128k'],
    ['m4a', 'high', '256k'],
  ])('%s %s is %s', (format, quality, bitrate) => {
    const result = plan({ format, quality });
    expect(valueOf(result.arguments, '-b:a')).toBe(bitrate);
    expect(result.arguments).not.toContain('-application');
    expect(result.shape).toEqual({ channels: 2, sampleRate: format === 'opus' ? 48000 : 44100 });
  });

  it('m4a voice is 48 kbit/s mono at 24 kHz', () => {
    const result = plan({ format: 'm4a', quality: 'voice' });
    expect(valueOf(result.arguments, '-b:a')).toBe('48k');
    expect(result.shape).toEqual({ channels: 1, sampleRate: 24000 });
  });

  it('flac voice is mono at 16 kHz; high compresses hardest', () => {
    const voice = plan({ format: 'flac', quality: 'voice' });
    expect(voice.shape).toEqual({ channels: 1, sampleRate: 16000 });
    expect(valueOf(voice.arguments, '-compression_level')).toBe('5');
    expect(valueOf(plan({ format: 'flac', quality: 'high' }).arguments, '-compression_level')).toBe('8');
  });

  it("the client's channels and sample_rate win over the preset's", () => {
    const result = plan({ quality: 'voice', channels: 2, sampleRate: 44100 });
    expect(result.shape).toEqual({ channels: 2, sampleRate: 44100 });
    expect(valueOf(result.arguments, '-ac')).toBe('2');
    expect(valueOf(result.arguments, '-ar')).toBe('44100');
    expect(valueOf(result.arguments, '-b:a')).toBe('48k');
  });
});

describe('planOutput: bitrate', () => {
  it('refuses quality and bitrate together', () => {
    for (const format of ['mp3', 'opus', 'm4a'] as const) {
      expect(refusal({ format, quality: 'high', bitrateKbps: 128 })).toMatch(/either quality or bitrate/);
    }
  });

  it.each([8, 16, 128, 320, 1000])('flac refuses any bitrate (%i kbit/s): it is lossless', (bitrateKbps) => {
    expect(refusal({ format: 'flac', bitrateKbps })).toMatch(/lossless/);
  });

  it.each([...new Set([...MPEG1_BITRATES, ...MPEG2_BITRATES])])('mp3 takes %i kbit/s', (bitrateKbps) => {
    expect(valueOf(plan({ bitrateKbps }).arguments, '-b:a')).toBe(`${bitrateKbps}k`);
  });

  it.each([0, 1, 7, 9, 100, 129, 130, 150, 161, 200, 319, 321, 384, 640])(
    'mp3 refuses %i kbit/s, which no MPEG layer III version has',
    (bitrateKbps) => {
      expect(refusal({ bitrateKbps })).toMatch(/bitrate for mp3/);
    },
  );

  it.each([
    [144, 44100],
    [144, 32000],
    [8, 48000],
    [16, 44100],
    [24, 32000],
    [192, 24000],
    [320, 22050],
    [224, 8000],
  ])('mp3 refuses %i kbit/s at %i Hz: another MPEG version’s bitrate', (bitrateKbps, sampleRate) => {
    expect(refusal({ bitrateKbps, sampleRate })).toMatch(new RegExp(`At ${sampleRate} Hz`));
  });

  it.each([
    [320, 48000],
    [32, 32000],
    [160, 24000],
    [144, 22050],
    [8, 8000],
    [64, 11025],
  ])('mp3 takes %i kbit/s at %i Hz', (bitrateKbps, sampleRate) => {
    const result = plan({ bitrateKbps, sampleRate });
    expect(result.shape?.sampleRate).toBe(sampleRate);
    expect(valueOf(result.arguments, '-b:a')).toBe(`${bitrateKbps}k`);
  });

  it("an mp3 bitrate without a rate picks a rate of the bitrate's MPEG version", () => {
    // 320 kbit/s exists only in MPEG-1 (32–48 kHz); 144 only in MPEG-2 (up to 24 kHz).
    expect(
      plan({ bitrateKbps: 320 }, { sameCodecAs: undefined, shape: { sampleRate: 22050, channels: 1 } }).shape,
    ).toEqual({ sampleRate: 32000, channels: 1 });
    expect(plan({ bitrateKbps: 144 }).shape).toEqual({ sampleRate: 24000, channels: 2 });
    expect(filterOf(plan({ bitrateKbps: 320 }, UNKNOWN))).toBe(
      'aformat=sample_rates=32000|44100|48000:channel_layouts=mono|stereo',
    );
    expect(filterOf(plan({ bitrateKbps: 144 }, UNKNOWN))).toBe(
      'aformat=sample_rates=8000|11025|12000|16000|22050|24000:channel_layouts=mono|stereo',
    );
  });

  it.each([
    ['opus', 5, false],
    ['opus', 6, true],
    ['opus', 77, true],
    ['opus', 510, true],
    ['opus', 511, false],
    ['m4a', 15, false],
    ['m4a', 16, true],
    ['m4a', 99, true],
    ['m4a', 320, true],
    ['m4a', 321, false],
  ] as const)('%s at %i kbit/s: allowed %s', (format, bitrateKbps, allowed) => {
    if (allowed) {
      expect(valueOf(plan({ format, bitrateKbps }).arguments, '-b:a')).toBe(`${bitrateKbps}k`);
    } else {
      expect(refusal({ format, bitrateKbps })).toMatch(new RegExp(`bitrate for ${format} must be between`));
    }
  });
});

describe('planOutput: sample rate and channels', () => {
  const candidates = [...new Set([...FLAC_RATES, 1, 7999, 22000, 44099, 44101, 50000, 352800, 384000])].sort(
    (a, b) => a - b,
  );

  it.each(
    RATES_BY_FORMAT.flatMap(([format, rates]) =>
      candidates.map((rate) => [format, rate, rates.includes(rate)] as const),
    ),
  )('%s at %i Hz: allowed %s', (format, sampleRate, allowed) => {
    if (allowed) {
      const result = plan({ format, sampleRate });
      expect(result.shape).toEqual({ sampleRate, channels: 2 });
      expect(valueOf(result.arguments, '-ar')).toBe(String(sampleRate));
    } else {
      expect(refusal({ format, sampleRate })).toMatch(new RegExp(`sample_rate for ${format} must be one of`));
    }
  });

  it('the source’s rate goes to the nearest one the format carries', () => {
    expect(plan({ format: 'opus' }).shape?.sampleRate).toBe(48000);
    expect(
      plan({ format: 'opus' }, { sameCodecAs: undefined, shape: { sampleRate: 22050, channels: 2 } }).shape,
    ).toEqual({ sampleRate: 24000, channels: 2 });
    const hiRes = { sameCodecAs: undefined, shape: { sampleRate: 176400, channels: 2 } };
    expect(plan({ format: 'flac' }, hiRes).shape?.sampleRate).toBe(176400);
    expect(plan({ format: 'm4a' }, hiRes).shape?.sampleRate).toBe(44100);
    expect(plan({ format: 'mp3' }, hiRes).shape?.sampleRate).toBe(44100);
  });

  it('channels 1 downmixes a stereo source; channels 2 widens a mono one', () => {
    expect(plan({ channels: 1 }).shape).toEqual({ sampleRate: 44100, channels: 1 });
    expect(valueOf(plan({ channels: 1 }).arguments, '-ac')).toBe('1');
    const mono = { sameCodecAs: undefined, shape: { sampleRate: 16000, channels: 1 } };
    expect(plan({}, mono).shape).toEqual({ sampleRate: 16000, channels: 1 });
    expect(plan({ channels: 2 }, mono).shape).toEqual({ sampleRate: 16000, channels: 2 });
  });

  it('a surround source becomes stereo', () => {
    expect(plan({}, { sameCodecAs: undefined, shape: { sampleRate: 48000, channels: 6 } }).shape).toEqual({
      sampleRate: 48000,
      channels: 2,
    });
  });
});

describe('planOutput: a source of unknown shape', () => {
  it.each(RATES_BY_FORMAT)('%s: ffmpeg negotiates the closest allowed rate and mono or stereo', (format, rates) => {
    const result = plan({ format }, UNKNOWN);
    expect(result.copy).toBe(false);
    expect(result.shape).toBeUndefined();
    expect(filterOf(result)).toBe(`aformat=sample_rates=${rates.join('|')}:channel_layouts=mono|stereo`);
    expect(result.arguments).not.toContain('-ac');
    expect(result.arguments).not.toContain('-ar');
  });

  it('negotiates only what the client left open', () => {
    const channels = plan({ format: 'opus', channels: 1 }, UNKNOWN);
    expect(filterOf(channels)).toBe(`aformat=sample_rates=${OPUS_RATES.join('|')}`);
    expect(valueOf(channels.arguments, '-ac')).toBe('1');
    expect(channels.shape).toBeUndefined();

    const rate = plan({ format: 'opus', sampleRate: 16000 }, UNKNOWN);
    expect(filterOf(rate)).toBe('aformat=channel_layouts=mono|stereo');
    expect(valueOf(rate.arguments, '-ar')).toBe('16000');
    expect(rate.shape).toBeUndefined();

    const both = plan({ format: 'opus', sampleRate: 16000, channels: 2 }, UNKNOWN);
    expect(both.arguments).not.toContain('-af');
    expect(both.shape).toEqual({ sampleRate: 16000, channels: 2 });
  });
});

describe('planOutput: the stored shape, from the decoded one', () => {
  const stored = (request: OutputRequest, sampleRate: number, channels = 2, source = UNKNOWN) =>
    plan(request, source).storedShape({ sampleRate, channels });

  it.each(OUTPUT_FORMAT_NAMES)('a copy into %s stores what was decoded, unchanged', (format) => {
    const copy = plan({ format }, { sameCodecAs: format, shape: undefined });
    expect(copy.copy).toBe(true);
    expect(copy.storedShape({ sampleRate: 22050, channels: 6 })).toEqual({ sampleRate: 22050, channels: 6 });
    expect(copy.storedShape({ sampleRate: 48000, channels: 1 })).toEqual({ sampleRate: 48000, channels: 1 });
  });

  it('an encode whose shape is known stores that shape, whatever is decoded', () => {
    expect(stored({ format: 'mp3' }, 8000, 1, CD_WAV)).toEqual({ sampleRate: 44100, channels: 2 });
    const speech = { sameCodecAs: undefined, shape: { sampleRate: 16000, channels: 1 } };
    expect(stored({ format: 'flac' }, 44100, 2, speech)).toEqual({ sampleRate: 16000, channels: 1 });
    // The client fixed both.
    expect(stored({ format: 'm4a', sampleRate: 22050, channels: 1 }, 96000, 2)).toEqual({
      sampleRate: 22050,
      channels: 1,
    });
  });

  it.each([
    [96000, 48000],
    [192000, 48000],
    [88200, 48000],
    [11000, 11025],
    [10000, 11025],
    [9000, 8000], // closer below: not raised to the next rate, as for a WAV
    [44100, 44100],
    [46050, 44100], // equally far from 44100 and 48000: the first
    [7000, 8000],
  ])('mp3 from an unknown source decoded at %i Hz stores the closest allowed rate, %i Hz', (decoded, expected) => {
    expect(stored({ format: 'mp3' }, decoded).sampleRate).toBe(expected);
  });

  it.each<[OutputFormatName, number, number]>([
    ['flac', 96000, 96000],
    ['flac', 176400, 176400],
    ['m4a', 176400, 96000],
    ['m4a', 11000, 11025],
    ['flac', 8000, 8000],
  ])('%s from an unknown source decoded at %i Hz stores %i Hz', (format, decoded, expected) => {
    expect(stored({ format }, decoded).sampleRate).toBe(expected);
  });

  it('mono stays mono; anything else becomes stereo, unless the client asked', () => {
    expect(stored({ format: 'mp3' }, 44100, 1).channels).toBe(1);
    expect(stored({ format: 'mp3' }, 44100, 2).channels).toBe(2);
    expect(stored({ format: 'flac' }, 44100, 6).channels).toBe(2);
    expect(stored({ format: 'flac', channels: 1 }, 44100, 6).channels).toBe(1);
    expect(stored({ format: 'flac', channels: 2 }, 44100, 1).channels).toBe(2);
  });

  it('a rate the client asked for is stored, whatever is decoded', () => {
    expect(stored({ format: 'mp3', sampleRate: 16000 }, 96000, 1)).toEqual({ sampleRate: 16000, channels: 1 });
  });

  it('an MP3 bitrate limits the rates to its MPEG version', () => {
    expect(stored({ format: 'mp3', bitrateKbps: 320 }, 11025).sampleRate).toBe(32000);
    expect(stored({ format: 'mp3', bitrateKbps: 8 }, 44100).sampleRate).toBe(24000);
  });

  it.each<OutputFormatName>(['mp3', 'm4a', 'flac'])(
    '%s with normalize stores 48 kHz: loudnorm outputs 192 kHz, and the allowed rates stop at 48 kHz',
    (format) => {
      expect(stored({ format, normalize: true }, 8000, 1)).toEqual({ sampleRate: 48000, channels: 1 });
      expect(stored({ format, normalize: true }, 96000, 2)).toEqual({ sampleRate: 48000, channels: 2 });
    },
  );

  it('opus is always reported at 48 kHz, the rate it decodes at, whatever it was encoded from', () => {
    expect(stored({ format: 'opus' }, 12000, 1)).toEqual({ sampleRate: 48000, channels: 1 });
    expect(stored({ format: 'opus' }, 8000, 2)).toEqual({ sampleRate: 48000, channels: 2 });
    expect(stored({ format: 'opus', sampleRate: 16000 }, 44100)).toEqual({ sampleRate: 48000, channels: 2 });
    expect(stored({ format: 'opus', normalize: true }, 12000, 1)).toEqual({ sampleRate: 48000, channels: 1 });
    const speech = { sameCodecAs: undefined, shape: { sampleRate: 16000, channels: 1 } };
    expect(plan({ format: 'opus' }, speech).shape).toEqual({ sampleRate: 16000, channels: 1 });
    expect(stored({ format: 'opus' }, 16000, 1, speech)).toEqual({ sampleRate: 48000, channels: 1 });
  });
});

describe('planOutput: normalize', () => {
  it('adds a single-pass loudnorm to the configured target, reported as JSON', () => {
    const result = plan({ normalize: true });
    expect(result.normalizeToLufs).toBe(-14);
    expect(filterOf(result)).toBe('loudnorm=I=-14:TP=-1.5:LRA=11:print_format=json');
    // loudnorm resamples internally: the output rate is stated.
    expect(valueOf(result.arguments, '-ar')).toBe('44100');
  });

  it('for an unknown source, loudnorm comes before the format negotiation, in one filter chain', () => {
    const result = plan({ format: 'opus', normalize: true }, UNKNOWN, { ...SETTINGS, loudnessTargetLufs: -23 });
    expect(filterOf(result)).toBe(
      `loudnorm=I=-23:TP=-1.5:LRA=11:print_format=json,aformat=sample_rates=${OPUS_RATES.join('|')}:channel_layouts=mono|stereo`,
    );
  });

  it.each(['flac', 'm4a'] as const)(
    "%s: loudnorm's internal 192 kHz does not carry over; the negotiation stops at 48 kHz",
    (format) => {
      const result = plan({ format, normalize: true }, UNKNOWN);
      const rates = (format === 'flac' ? FLAC_RATES : AAC_RATES).filter((rate) => rate <= 48000);
      expect(filterOf(result)).toBe(
        `loudnorm=I=-14:TP=-1.5:LRA=11:print_format=json,aformat=sample_rates=${rates.join('|')}:channel_layouts=mono|stereo`,
      );
      // Without normalize the format's higher rates stay open.
      expect(filterOf(plan({ format }, UNKNOWN))).toMatch(/\|96000[|:]/);
    },
  );

  it("a known source's rate is kept with normalize too, even above 48 kHz", () => {
    const hiRes = { sameCodecAs: undefined, shape: { sampleRate: 96000, channels: 2 } };
    const result = plan({ format: 'flac', normalize: true }, hiRes);
    expect(result.shape).toEqual({ sampleRate: 96000, channels: 2 });
    expect(valueOf(result.arguments, '-ar')).toBe('96000');
    expect(filterOf(result)).toBe('loudnorm=I=-14:TP=-1.5:LRA=11:print_format=json');
  });

  it('normalize=false adds nothing', () => {
    const result = plan({ normalize: false });
    expect(result.normalizeToLufs).toBeUndefined();
    expect(result.arguments).not.toContain('-af');
  });
});

describe('muxerArguments', () => {
  it('mp3 without a title writes no ID3 tag at all', () => {
    expect(muxerArguments(STORED_FORMATS.mp3, null)).toEqual([
      '-id3v2_version',
      '0',
      '-fflags',
      '+bitexact',
      '-f',
      'mp3',
    ]);
  });

  it('mp3 with a title writes it in an ID3v2.4 tag', () => {
    expect(muxerArguments(STORED_FORMATS.mp3, 'Take 1')).toEqual([
      '-id3v2_version',
      '4',
      '-metadata',
      'title=Take 1',
      '-fflags',
      '+bitexact',
      '-f',
      'mp3',
    ]);
  });

  it("ogg writes the title in the stream's comments too", () => {
    const args = muxerArguments(STORED_FORMATS.opus, 'Take 1');
    expect(valueOf(args, '-metadata')).toBe('title=Take 1');
    expect(valueOf(args, '-metadata:s:a:0')).toBe('title=Take 1');
    expect(args).not.toContain('-id3v2_version');
    expect(args.slice(-2)).toEqual(['-f', 'ogg']);
    expect(muxerArguments(STORED_FORMATS.opus, null)).toEqual(['-fflags', '+bitexact', '-f', 'ogg']);
  });

  it.each(['flac', 'm4a'] as const)('%s writes the file title only, and no ID3 tag', (format) => {
    const args = muxerArguments(STORED_FORMATS[format], 'Take 1');
    expect(valueOf(args, '-metadata')).toBe('title=Take 1');
    expect(args).not.toContain('-metadata:s:a:0');
    expect(args).not.toContain('-id3v2_version');
    expect(muxerArguments(STORED_FORMATS[format], null)).not.toContain('-metadata');
  });

  it.each(['-y', '-f', '--', '=', '==x', 'a=b=c', 'title=evil', '-metadata', ' spaced ', 'ünï ✓ 🎵', 'x\ny', ''])(
    'the title %j stays one argument, behind title=',
    (title) => {
      for (const format of Object.values(STORED_FORMATS)) {
        const withTitle = muxerArguments(format, title);
        const without = muxerArguments(format, null);
        const tagCount = format.muxer === 'ogg' ? 2 : 1;
        expect(withTitle).toHaveLength(without.length + 2 * tagCount);
        expect(withTitle.filter((arg) => arg === `title=${title}`)).toHaveLength(tagCount);
        expect(withTitle.slice(-2)).toEqual(['-f', format.muxer]);
      }
    },
  );
});
