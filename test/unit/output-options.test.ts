import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidInput } from '../../src/domain/errors.js';
import {
  isOutputOptionName,
  OUTPUT_OPTION_NAMES,
  parseOutputOptions,
  type OutputOptionName,
  type RawOutputOptions,
} from '../../src/services/output-options.js';

const NOTHING = {
  format: undefined,
  quality: undefined,
  bitrateKbps: undefined,
  channels: undefined,
  sampleRate: undefined,
  normalize: undefined,
};

function refusal(raw: RawOutputOptions): string {
  try {
    parseOutputOptions(raw);
  } catch (error) {
    if (error instanceof InvalidInput) return error.detail;
    throw error;
  }
  throw new Error(`expected InvalidInput for ${JSON.stringify(raw)}`);
}

// Values no option takes: signs, decimals, exponents, other bases, padding, other scripts' digits, case.
const HOSTILE_NUMBERS = [
  '-1',
  '-0',
  '+128',
  '0',
  '1.5',
  '128.0',
  '.5',
  '1e3',
  '1E3',
  '0x80',
  '0X80',
  '0b101',
  '0o17',
  ' 128',
  '128 ',
  '\t128',
  '128\n',
  '1 28',
  '1_000',
  '1,000',
  '128k',
  'k128',
  '１２８', // fullwidth digits
  '١٢٨', // Arabic-Indic digits
  '१२८', // Devanagari digits
  '𝟏𝟐𝟖', // mathematical bold digits
  'Infinity',
  '-Infinity',
  'NaN',
  'null',
  'undefined',
  'true',
  '[]',
  '99999999', // eight digits
  '9007199254740993',
  '1e309',
  '0'.repeat(100) + '1',
  '1'.repeat(10_000),
];

describe('parseOutputOptions', () => {
  it('reads nothing as nothing', () => {
    expect(parseOutputOptions({})).toEqual(NOTHING);
  });

  it('reads every option', () => {
    expect(
      parseOutputOptions({
        format: 'opus',
        quality: 'voice',
        bitrate: '64',
        channels: '1',
        sample_rate: '48000',
        normalize: 'true',
      }),
    ).toEqual({
      format: 'opus',
      quality: 'voice',
      bitrateKbps: 64,
      channels: 1,
      sampleRate: 48000,
      normalize: true,
    });
    expect(parseOutputOptions({ channels: '2', normalize: 'false' })).toMatchObject({ channels: 2, normalize: false });
  });

  it.each(OUTPUT_OPTION_NAMES)('an empty %s is the same as an absent one', (name) => {
    expect(parseOutputOptions({ [name]: '' })).toEqual(NOTHING);
  });

  it.each(['mp3', 'opus', 'm4a', 'flac'])('takes the format %s', (format) => {
    expect(parseOutputOptions({ format }).format).toBe(format);
  });

  it.each(['voice', 'standard', 'high'])('takes the quality %s', (quality) => {
    expect(parseOutputOptions({ quality }).quality).toBe(quality);
  });

  it.each([
    'MP3',
    'Mp3',
    ' mp3',
    'mp3 ',
    'mp3\u0000',
    'ｍｐ３',
    'wav',
    'ogg',
    'aac',
    '.mp3',
    'audio/mpeg',
    'constructor',
    '__proto__',
    'toString',
    'mp3,opus',
  ])('refuses the format %j', (format) => {
    expect(refusal({ format })).toBe('format must be one of mp3, opus, m4a, flac.');
  });

  it.each(['VOICE', 'Voice', 'low', 'best', ' high', 'high\n', 'constructor', '1'])(
    'refuses the quality %j',
    (quality) => {
      expect(refusal({ quality })).toMatch(/^quality must be one of voice, standard, high/);
    },
  );

  it.each([
    ['1', 1],
    ['128', 128],
    ['10000', 10_000],
    ['007', 7],
  ])('takes the bitrate %j as %i', (bitrate, expected) => {
    expect(parseOutputOptions({ bitrate }).bitrateKbps).toBe(expected);
  });

  it.each([...HOSTILE_NUMBERS, '10001', '1000000'])('refuses the bitrate %j', (bitrate) => {
    expect(refusal({ bitrate })).toBe('bitrate must be a whole number.');
  });

  it.each([
    ['1', 1],
    ['44100', 44100],
    ['1000000', 1_000_000],
  ])('takes the sample_rate %j as %i', (sampleRate, expected) => {
    expect(parseOutputOptions({ sample_rate: sampleRate }).sampleRate).toBe(expected);
  });

  it.each([...HOSTILE_NUMBERS, '1000001', '44100.0', '44.1k', '44,100'])('refuses the sample_rate %j', (value) => {
    expect(refusal({ sample_rate: value })).toBe('sample_rate must be a whole number.');
  });

  it.each(['0', '3', '01', '1.0', '+1', '-1', ' 1', '2 ', '１', 'mono', 'stereo', 'true'])(
    'refuses channels %j',
    (channels) => {
      expect(refusal({ channels })).toBe('channels must be one of 1, 2.');
    },
  );

  it.each(['TRUE', 'True', 'FALSE', 'False', '1', '0', 'yes', 'no', 'on', 'off', ' true', 'true ', 'ｔｒｕｅ'])(
    'refuses normalize %j',
    (normalize) => {
      expect(refusal({ normalize })).toBe('normalize must be one of true, false.');
    },
  );

  it('names the first bad option it meets, whatever the others hold', () => {
    expect(refusal({ format: 'mp3', bitrate: '-5', channels: '2' })).toMatch(/^bitrate/);
  });

  it('any string is either refused with InvalidInput or read as a whole number in range', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 12 }), (value) => {
        let parsed: number | undefined;
        try {
          parsed = parseOutputOptions({ bitrate: value }).bitrateKbps;
        } catch (error) {
          expect(error).toBeInstanceOf(InvalidInput);
          return;
        }
        if (value === '') {
          expect(parsed).toBeUndefined();
          return;
        }
        expect(value).toMatch(/^[0-9]+$/);
        expect(Number.isInteger(parsed)).toBe(true);
        expect(parsed).toBeGreaterThanOrEqual(1);
        expect(parsed).toBeLessThanOrEqual(10_000);
        expect(parsed).toBe(Number.parseInt(value, 10));
      }),
      { numRuns: 2000 },
    );
  });

  it('any whole number from 1 to 10000 is a bitrate to this parser (the format judges it later)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), (bitrate) => {
        expect(parseOutputOptions({ bitrate: String(bitrate) }).bitrateKbps).toBe(bitrate);
      }),
    );
  });
});

describe('isOutputOptionName', () => {
  it('knows the six option names and nothing else', () => {
    const names: OutputOptionName[] = ['format', 'quality', 'bitrate', 'channels', 'sample_rate', 'normalize'];
    for (const name of names) expect(isOutputOptionName(name)).toBe(true);
    for (const name of ['title', 'file', 'sampleRate', 'Format', 'constructor', '__proto__', '']) {
      expect(isOutputOptionName(name), name).toBe(false);
    }
  });
});
