import { describe, expect, it } from 'vitest';
import {
  muxerArguments,
  nearestRate,
  planOutput,
  STORED_FORMATS,
  type Mp3Encoding,
  type OutputRequest,
} from '../../src/media/outputs.js';
import {
  ffmpegArguments,
  type RawAudioInput,
  type TranscodeInput,
  type TranscodeJob,
} from '../../src/media/transcoder.js';
import type { PcmSampleFormat } from '../../src/media/wav.js';

const VBR: Mp3Encoding = { vbrQuality: 2, bitrateKbps: undefined, compressionLevel: undefined };
const CD: RawAudioInput = { kind: 'raw', sampleFormat: 's16le', sampleRate: 44100, channels: 2 };

const raw = (sampleFormat: PcmSampleFormat, sampleRate: number, channels: number): RawAudioInput => ({
  kind: 'raw',
  sampleFormat,
  sampleRate,
  channels,
});

interface JobOptions {
  readonly encoding?: Mp3Encoding;
  readonly request?: OutputRequest;
  readonly title?: string | null;
  readonly peaks?: boolean;
  readonly maxDurationSeconds?: number | undefined;
  readonly reportsLoudness?: boolean;
}

/** A job as the converter builds it: the plan's arguments, then the muxer's, for a raw (WAV) input. */
function jobFor(input: TranscodeInput, options: JobOptions = {}): TranscodeJob {
  const plan = planOutput(
    options.request ?? {},
    { sameCodecAs: undefined, shape: input.kind === 'raw' ? input : undefined },
    { mp3: options.encoding ?? VBR, loudnessTargetLufs: -16 },
  );
  return {
    input,
    output: [...plan.arguments, ...muxerArguments(plan.format, options.title ?? null)],
    peaks: options.peaks ?? false,
    maxDurationSeconds: 'maxDurationSeconds' in options ? options.maxDurationSeconds : 21_600,
    reportsLoudness: options.reportsLoudness,
  };
}

function argumentsFor(
  encoding: Mp3Encoding,
  input: TranscodeInput = CD,
  outputPath = '/tmp/out.mp3',
  maxDurationSeconds = 21_600,
) {
  return ffmpegArguments(jobFor(input, { encoding, maxDurationSeconds }), outputPath);
}

/**
 * The arguments before `-i` (global and input options), the stored output's (up to its `file:` path) and the
 * peaks output's (everything after that path, or after the input when there is no stored output).
 */
function split(args: string[], inputUrl = 'pipe:0') {
  const at = args.indexOf('-i');
  expect(args[at + 1]).toBe(inputUrl);
  expect(args.filter((arg) => arg === '-i')).toHaveLength(1);
  const rest = args.slice(at + 2);
  const fileAt = rest.findIndex((arg) => arg.startsWith('file:'));
  return {
    input: args.slice(0, at),
    output: fileAt === -1 ? [] : rest.slice(0, fileAt + 1),
    peaks: rest.slice(fileAt + 1),
  };
}

/** The value following `option`, which must occur exactly once in `args`. */
function valueOf(args: string[], option: string): string | undefined {
  expect(
    args.filter((arg) => arg === option),
    option,
  ).toHaveLength(1);
  return args[args.indexOf(option) + 1];
}

describe('ffmpegArguments: raw input', () => {
  it('reads raw samples of a forced format, rate and channel count from the stdin pipe only', () => {
    const { input } = split(argumentsFor(VBR, raw('s24le', 96000, 6)));
    expect(valueOf(input, '-f')).toBe('s24le');
    expect(valueOf(input, '-ar')).toBe('96000');
    expect(valueOf(input, '-ac')).toBe('6');
    expect(valueOf(input, '-protocol_whitelist')).toBe('pipe');
    expect(valueOf(input, '-probesize')).toBe('32');
    expect(valueOf(input, '-analyzeduration')).toBe('0');
    expect(input).toContain('-nostdin');
    expect(input).not.toContain('-ch_layout');
  });

  it.each(['u8', 's16le', 's24le', 's32le', 'f32le', 'f64le', 'alaw', 'mulaw'] satisfies PcmSampleFormat[])(
    'forces the raw demuxer %s',
    (sampleFormat) => {
      const { input } = split(argumentsFor(VBR, raw(sampleFormat, 8000, 1)));
      expect(valueOf(input, '-f')).toBe(sampleFormat);
    },
  );

  it('names the speaker layout of a WAVE channel mask in hex', () => {
    const { input } = split(argumentsFor(VBR, { ...raw('s16le', 48000, 6), channelMask: 0x3f }));
    expect(valueOf(input, '-ch_layout')).toBe('0x3f');
  });

  it('caps single allocations before the input is opened', () => {
    const { input } = split(argumentsFor(VBR));
    expect(Number(valueOf(input, '-max_alloc'))).toBeGreaterThan(0);
  });
});

describe('ffmpegArguments: container input', () => {
  it('reads a streamed container from the stdin pipe through the one demuxer it was recognised as', () => {
    const args = ffmpegArguments(jobFor({ kind: 'stream', demuxer: 'ogg' }), '/tmp/out.mp3');
    const { input } = split(args);
    expect(valueOf(input, '-protocol_whitelist')).toBe('pipe');
    expect(valueOf(input, '-f')).toBe('ogg');
    expect(input.slice(-2)).toEqual(['-f', 'ogg']);
    // Nothing of the raw description: the container describes itself.
    expect(input).not.toContain('-ar');
    expect(input).not.toContain('-ac');
    expect(input).not.toContain('-enable_drefs');
    expect(Number(valueOf(input, '-max_alloc'))).toBeGreaterThan(0);
  });

  it('keeps MP4 data references off for a streamed MP4 too', () => {
    const { input } = split(ffmpegArguments(jobFor({ kind: 'stream', demuxer: 'mov' }), '/tmp/out.mp3'));
    expect(valueOf(input, '-f')).toBe('mov');
    expect(valueOf(input, '-enable_drefs')).toBe('0');
  });

  it('reads a spooled file through the file protocol only, by a file: URL', () => {
    const path = '/data/scratch/spool.partial';
    const args = ffmpegArguments(jobFor({ kind: 'file', demuxer: 'mov', path }), '/tmp/out.m4a');
    const { input } = split(args, `file:${path}`);
    expect(valueOf(input, '-protocol_whitelist')).toBe('file');
    expect(valueOf(input, '-f')).toBe('mov');
    expect(valueOf(input, '-enable_drefs')).toBe('0');
    expect(args).not.toContain('pipe:0');
    expect(args).not.toContain('pipe');
  });

  it('a spooled path that looks like an option or a protocol is still a file', () => {
    for (const path of ['-i', 'http://x/y', 'concat:a|b']) {
      const args = ffmpegArguments(jobFor({ kind: 'file', demuxer: 'flac', path }), '/tmp/out.mp3');
      split(args, `file:${path}`);
      expect(args).not.toContain('-enable_drefs');
    }
  });
});

describe('ffmpegArguments: the stored output', () => {
  it('writes the output through the file: protocol as the last argument, after -y', () => {
    const args = argumentsFor(VBR, undefined, '/data/tmp/abc.partial');
    expect(args.at(-1)).toBe('file:/data/tmp/abc.partial');
    expect(args.at(-2)).toBe('-y');
    // A path that looks like an option or a protocol is still a file.
    expect(argumentsFor(VBR, undefined, '-i').at(-1)).toBe('file:-i');
    expect(argumentsFor(VBR, undefined, 'http://x/y').at(-1)).toBe('file:http://x/y');
  });

  it('keeps only the first audio stream, no metadata, no chapters, and at most the duration limit', () => {
    const { output } = split(argumentsFor(VBR, undefined, undefined, 3600));
    expect(valueOf(output, '-map')).toBe('0:a:0');
    expect(valueOf(output, '-map_metadata')).toBe('-1');
    expect(valueOf(output, '-map_chapters')).toBe('-1');
    expect(valueOf(output, '-t')).toBe('3600');
  });

  it('has no time limit when the job sets none', () => {
    const args = ffmpegArguments(jobFor(CD, { maxDurationSeconds: undefined, peaks: true }), '/tmp/out.mp3');
    expect(args).not.toContain('-t');
  });

  it('writes no stored output without an output path, or without output arguments', () => {
    const job = jobFor(CD);
    expect(ffmpegArguments(job, undefined).some((arg) => arg.startsWith('file:'))).toBe(false);
    expect(ffmpegArguments(job, undefined)).not.toContain('-y');
    expect(ffmpegArguments({ ...job, output: undefined }, '/tmp/out.mp3')).not.toContain('-y');
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

  it("a client's bitrate wins over the configured VBR quality", () => {
    const args = ffmpegArguments(jobFor(CD, { request: { bitrateKbps: 192 } }), '/tmp/out.mp3');
    expect(valueOf(args, '-b:a')).toBe('192k');
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
    expect(output).not.toContain('-metadata');
  });

  it('takes the output channels and rate from the planned shape', () => {
    const { output } = split(argumentsFor(VBR, raw('s24le', 96000, 6)));
    expect(valueOf(output, '-ac')).toBe('2');
    expect(valueOf(output, '-ar')).toBe('48000');
    const mono = split(argumentsFor(VBR, raw('u8', 8000, 1))).output;
    expect(valueOf(mono, '-ac')).toBe('1');
    expect(valueOf(mono, '-ar')).toBe('8000');
  });

  it('a title is one argument of its own, after -metadata, however it looks', () => {
    for (const title of ['-y', '-i http://x', 'a=b', 'title=x', '"; rm -rf /', 'line\nbreak']) {
      const { output } = split(ffmpegArguments(jobFor(CD, { title }), '/tmp/out.mp3'));
      expect(valueOf(output, '-metadata')).toBe(`title=${title}`);
      expect(valueOf(output, '-id3v2_version')).toBe('4');
    }
  });

  it('logs errors only, unless the loudness report is wanted (it is printed at the info level)', () => {
    expect(valueOf(ffmpegArguments(jobFor(CD), '/tmp/out.mp3'), '-loglevel')).toBe('error');
    expect(valueOf(ffmpegArguments(jobFor(CD, { reportsLoudness: false }), '/tmp/o'), '-loglevel')).toBe('error');
    expect(valueOf(ffmpegArguments(jobFor(CD, { reportsLoudness: true }), '/tmp/o'), '-loglevel')).toBe('info');
  });
});

describe('ffmpegArguments: the peaks output', () => {
  const PEAKS_TAIL = ['-c:a', 'pcm_u8', '-fflags', '+bitexact', '-flush_packets', '0', '-f', 'wav', 'pipe:3'];

  it('follows the stored output: first audio stream, an unsigned 8-bit WAV on fd 3, time-limited', () => {
    const { output, peaks } = split(ffmpegArguments(jobFor(CD, { peaks: true, maxDurationSeconds: 61 }), '/tmp/o'));
    expect(output.at(-1)).toBe('file:/tmp/o');
    expect(valueOf(peaks, '-map')).toBe('0:a:0');
    expect(valueOf(peaks, '-map_metadata')).toBe('-1');
    expect(valueOf(peaks, '-map_chapters')).toBe('-1');
    expect(valueOf(peaks, '-t')).toBe('61');
    expect(peaks.slice(-PEAKS_TAIL.length)).toEqual(PEAKS_TAIL);
    // 8-bit at the decoded rate and channels: neither resampled nor downmixed.
    expect(peaks).not.toContain('-ac');
    expect(peaks).not.toContain('-ar');
    expect(peaks).not.toContain('-af');
    // The stored output is untouched by it.
    expect(valueOf(output, '-ac')).toBe('2');
    expect(valueOf(output, '-ar')).toBe('44100');
  });

  it('is absent unless asked for', () => {
    const args = ffmpegArguments(jobFor(CD, { peaks: false }), '/tmp/o');
    expect(args).not.toContain('pipe:3');
    expect(args).not.toContain('pcm_u8');
    expect(args).not.toContain('wav');
    expect(args.at(-1)).toBe('file:/tmp/o');
  });

  it('is the only output of a peaks-only job (a stored file decoded again)', () => {
    const job: TranscodeJob = { input: { kind: 'stream', demuxer: 'mp3' }, output: undefined, peaks: true };
    const args = ffmpegArguments(job, undefined);
    const { input, output, peaks } = split(args);
    expect(valueOf(input, '-f')).toBe('mp3');
    expect(output).toEqual([]);
    expect(args).not.toContain('-y');
    expect(args).not.toContain('-t');
    expect(valueOf(peaks, '-map')).toBe('0:a:0');
    expect(args.slice(-PEAKS_TAIL.length)).toEqual(PEAKS_TAIL);
    expect(peaks).not.toContain('-ac');
    expect(peaks).not.toContain('-ar');
  });
});

describe('the MP3 output shape (planOutput with a known source shape, nearestRate)', () => {
  const SETTINGS = { mp3: VBR, loudnessTargetLufs: -16 };
  const shapeFor = (sampleRate: number, channels: number) =>
    planOutput({}, { sameCodecAs: undefined, shape: { sampleRate, channels } }, SETTINGS).shape;
  const rateFor = (sampleRate: number) => shapeFor(sampleRate, 2)?.sampleRate;
  const MP3_RATES = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];

  it('names and types its output', () => {
    const plan = planOutput({}, { sameCodecAs: undefined, shape: CD }, SETTINGS);
    expect(plan.format).toBe(STORED_FORMATS.mp3);
    expect(plan.format.name).toBe('mp3');
    expect(plan.format.mimeType).toBe('audio/mpeg');
  });

  it.each(MP3_RATES)('keeps %i Hz', (rate) => {
    expect(rateFor(rate)).toBe(rate);
    expect(nearestRate(rate, MP3_RATES)).toBe(rate);
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
    expect(nearestRate(source, MP3_RATES)).toBe(expected);
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

  it('a rate below every allowed one goes up to the lowest', () => {
    expect(rateFor(4000)).toBe(8000);
  });

  it('88.2 kHz stays 88.2 kHz where the format carries it, and goes to the highest otherwise', () => {
    expect(nearestRate(88200, [44100, 48000, 88200, 96000])).toBe(88200);
    expect(nearestRate(88200, [8000, 16000, 48000])).toBe(48000);
  });

  it.each([
    [1, 1],
    [2, 2],
    [3, 2],
    [6, 2],
    [8, 2],
  ])('%i channel(s) become %i', (channels, expected) => {
    expect(shapeFor(44100, channels)?.channels).toBe(expected);
  });
});
