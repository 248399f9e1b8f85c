import { InvalidInput } from '../domain/errors.js';
import {
  OUTPUT_FORMAT_NAMES,
  QUALITY_PRESETS,
  type OutputFormatName,
  type OutputRequest,
  type QualityPreset,
} from '../media/outputs.js';

/** The output options' names, the same as query parameters and as multipart fields. */
export const OUTPUT_OPTION_NAMES = ['format', 'quality', 'bitrate', 'channels', 'sample_rate', 'normalize'] as const;
export type OutputOptionName = (typeof OUTPUT_OPTION_NAMES)[number];
export type RawOutputOptions = Partial<Record<OutputOptionName, string>>;

export const isOutputOptionName = (name: string): name is OutputOptionName =>
  (OUTPUT_OPTION_NAMES as readonly string[]).includes(name);

/**
 * Reads the options as a client sent them (text, from the query or the form) into an OutputRequest.
 * Whether the format can do what is asked (a rate, a bitrate) is checked by the media layer's plan.
 */
export function parseOutputOptions(raw: RawOutputOptions): OutputRequest {
  return {
    format: oneOf('format', raw.format, OUTPUT_FORMAT_NAMES) as OutputFormatName | undefined,
    quality: oneOf('quality', raw.quality, QUALITY_PRESETS) as QualityPreset | undefined,
    bitrateKbps: wholeNumber('bitrate', raw.bitrate, 1, 10_000),
    channels:
      oneOf('channels', raw.channels, ['1', '2'] as const) === undefined ? undefined : raw.channels === '1' ? 1 : 2,
    sampleRate: wholeNumber('sample_rate', raw.sample_rate, 1, 1_000_000),
    normalize:
      oneOf('normalize', raw.normalize, ['true', 'false'] as const) === undefined
        ? undefined
        : raw.normalize === 'true',
  };
}

function oneOf(name: string, value: string | undefined, allowed: readonly string[]): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (!allowed.includes(value)) throw new InvalidInput(`${name} must be one of ${allowed.join(', ')}.`);
  return value;
}

function wholeNumber(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined || value === '') return undefined;
  const number = /^[0-9]{1,7}$/.test(value) ? Number(value) : NaN;
  if (!(number >= min && number <= max)) throw new InvalidInput(`${name} must be a whole number.`);
  return number;
}
