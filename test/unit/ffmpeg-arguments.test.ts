import { describe, expect, it } from 'vitest';
import { mp3Output, type Mp3Encoding } from '../../src/media/outputs.js';
import { ffmpegArguments, type TranscodeJob } from '../../src/media/transcoder.js';
import type { PcmSampleFormat } from '../../src/media/wav.js';

const VBR: Mp3Encoding = { vbrQuality: 2, bitrateKbps: undefined, compressionLevel: undefined };

function argumentsFor(
  encoding: Mp3Encoding,
  input: TranscodeJob['input'] = { sampleFormat: 's16le', sampleRate: 44100, channels: 2 },
  outputPath = '/tmp/out.mp3',
  maxDurationSeconds = 21_600,
) {
  const output = mp3Output(encoding);
  return ffmpegArguments({ input, output, shape: output.shapeFor(input), maxDurationSeconds }, outputPath);
}

/** The arguments before `-i pipe:0` (input options) and after it (output options). */
function split(args: string[]) {
  const at = args.indexOf('-i');
  expect(args[at + 1]).toBe('pipe:0');
  expect(args.filter((arg) => arg === '-i')).toHaveLength(1);
  return { input: args.slice(0, at), output: args.slice(at + 2) };
}

/** The value following `option`, which must occur exactly once in `args`. */
function valueOf(args: string[], option: string): string | undefined {
  expect(
    args.filter((arg) => arg === option),
    option,
  ).toHaveLength(1);
  return args[args.indexOf(option) + 1];
}

describe('ffmpegArguments', () => {
  it('reads raw samples of a forced format, rate and channel count from the stdin pipe only', () => {
    const { input } = split(argumentsFor(VBR, { sampleFormat: 's24le', sampleRate: 96000, channels: 6 }));
    expect(valueOf(input, '-f')).toBe('s24le');
    expect(valueOf(input, '-ar')).toBe('96000');
    expect(valueOf(input, '-ac')).toBe('6');
    expect(valueOf(input, '-protocol_whitelist')).toBe('pipe');
    expect(valueOf(input, '-probesize')).toBe('32');
    expect(valueOf(input, '-analyzeduration')).toBe('0');
    expect(input).toContain('-nostdin');
  });

  it.each(['u8', 's16le', 's24le', 's32le', 'f32le', 'f64le', 'alaw', 'mulaw'] satisfies PcmSampleFormat[])(
    'forces the raw demuxer %s',
    (sampleFormat) => {
      const { input } = split(argumentsFor(VBR, { sampleFormat, sampleRate: 8000, channels: 1 }));
      expect(valueOf(input, '-f')).toBe(sampleFormat);
    },
  );

  it('caps single allocations before the input is opened', () => {
    const { input } = split(argumentsFor(VBR));
    expect(Number(valueOf(input, '-max_alloc'))).toBeGreaterThan(0);
  });

  it('writes the output through the file: protocol as the last argument, after -y', () => {
    const args = argumentsFor(VBR, undefined, '/data/tmp/abc.partial');
    expect(args.at(-1)).toBe('file:/data/tmp/abc.partial');
    expect(args.at(-2)).toBe('-y');
    // A path that looks like an option or a protocol is still a file.
    expect(argumentsFor(VBR, undefined, '-i').at(-1)).toBe('file:-i');
    expect(argumentsFor(VBR, undefined, 'http://x/y').at(-1)).toBe('file:http://x/y');
  });

  it('keeps only the first audio stream, no metadata, and at most the duration limit', () => {
    const { output } = split(argumentsFor(VBR, undefined, undefined, 3600));
    expect(valueOf(output, '-map')).toBe('0:a:0');
    expect(valueOf(output, '-map_metadata')).toBe('-1');
    expect(valueOf(output, '-t')).toBe('3600');
  });

  it('encodes with LAME into the mp3 muxer', () => {
    const { output } = split(argumentsFor(VBR));
    expect(valueOf(output, '-c:a')).toBe('libmp3lame');
    expect(valueOf(output, '-f')).toBe('mp3');
  });

  it('VBR uses -q:a and no bitrate', () => {
    const args = argumentsFor({ ...VBR, vbrQuality: 4 });
    expect(valueOf(args, '-q:a')).toBe('4');
    expect(args).not.toContain('-b:a');
  });

  it('CBR uses -b:a in kbit/s and no VBR quality', () => {
    const args = argumentsFor({ ...VBR, bitrateKbps: 128 });
    expect(valueOf(args, '-b:a')).toBe('128k');
    expect(args).not.toContain('-q:a');
  });

  it('passes the compression level only when set', () => {
    expect(argumentsFor(VBR)).not.toContain('-compression_level');
    expect(valueOf(argumentsFor({ ...VBR, compressionLevel: 7 }), '-compression_level')).toBe('7');
    expect(valueOf(argumentsFor({ ...VBR, compressionLevel: 0 }), '-compression_level')).toBe('0');
  });

  it('one encoder thread, no ID3 tag, a Xing frame', () => {
    const { output } = split(argumentsFor(VBR));
    expect(valueOf(output, '-threads')).toBe('1');
    expect(valueOf(output, '-id3v2_version')).toBe('0');
    expect(valueOf(output, '-write_xing')).toBe('1');
  });

  it('takes the output channels and rate from the output shape', () => {
    const { output } = split(argumentsFor(VBR, { sampleFormat: 's24le', sampleRate: 96000, channels: 6 }));
    expect(valueOf(output, '-ac')).toBe('2');
    expect(valueOf(output, '-ar')).toBe('48000');
    const mono = split(argumentsFor(VBR, { sampleFormat: 'u8', sampleRate: 8000, channels: 1 })).output;
    expect(valueOf(mono, '-ac')).toBe('1');
    expect(valueOf(mono, '-ar')).toBe('8000');
  });
});

describe('mp3Output', () => {
  const mp3 = mp3Output(VBR);
  const rateFor = (sampleRate: number) => mp3.shapeFor({ sampleRate, channels: 2 }).sampleRate;

  it('names and types its output', () => {
    expect(mp3.name).toBe('mp3');
    expect(mp3.mimeType).toBe('audio/mpeg');
  });

  it.each([8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000])('keeps %i Hz', (rate) => {
    expect(rateFor(rate)).toBe(rate);
  });

  it.each([
    [88200, 44100],
    [176400, 44100],
    [132300, 44100],
    [96000, 48000],
    [192000, 48000],
    [64000, 48000],
  ])('resamples %i Hz to %i Hz', (source, expected) => {
    expect(rateFor(source)).toBe(expected);
  });

  it.each([
    [8001, 11025],
    [9000, 11025],
    [11026, 12000],
    [20000, 22050],
    [37800, 44100],
    [44101, 48000],
    [47999, 48000],
  ])('raises the odd rate %i Hz to the next MP3 rate, %i Hz', (source, expected) => {
    expect(rateFor(source)).toBe(expected);
  });

  it.each([
    [1, 1],
    [2, 2],
    [3, 2],
    [6, 2],
    [8, 2],
  ])('%i channel(s) become %i', (channels, expected) => {
    expect(mp3.shapeFor({ sampleRate: 44100, channels }).channels).toBe(expected);
  });
});
