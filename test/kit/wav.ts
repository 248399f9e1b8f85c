import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

type SampleEncoding = 'pcm' | 'float' | 'alaw' | 'mulaw';

export interface WavSpec {
  readonly encoding?: SampleEncoding;
  readonly bitsPerSample?: number;
  readonly sampleRate?: number;
  readonly channels?: number;
  readonly durationSeconds?: number;
  /** Write WAVE_FORMAT_EXTENSIBLE instead of the plain format tag. */
  readonly extensible?: boolean;
  readonly container?: 'RIFF' | 'RF64' | 'BW64';
  /** Chunks placed between "fmt " and "data", e.g. LIST, bext, JUNK. */
  readonly chunksBeforeData?: ReadonlyArray<{ id: string; body: Buffer }>;
  /** Write the data size as unknown (0xFFFFFFFF), as streaming writers do. */
  readonly unknownDataSize?: boolean;
}

const FORMAT_TAG: Record<SampleEncoding, number> = { pcm: 1, float: 3, alaw: 6, mulaw: 7 };

/** Builds a WAV holding a 440 Hz sine (a different phase per channel), byte by byte, in any layout. */
export function makeWav(spec: WavSpec = {}): Buffer {
  const encoding = spec.encoding ?? 'pcm';
  const bits = spec.bitsPerSample ?? (encoding === 'float' ? 32 : encoding === 'pcm' ? 16 : 8);
  const rate = spec.sampleRate ?? 44100;
  const channels = spec.channels ?? 2;
  const frames = Math.round((spec.durationSeconds ?? 1) * rate);
  const bytesPerSample = bits / 8;
  const blockAlign = channels * bytesPerSample;
  const data = Buffer.alloc(frames * blockAlign);
  for (let frame = 0; frame < frames; frame++) {
    for (let channel = 0; channel < channels; channel++) {
      const value = 0.5 * Math.sin((2 * Math.PI * 440 * frame) / rate + channel);
      writeSample(data, (frame * channels + channel) * bytesPerSample, value, encoding, bits);
    }
  }
  return assembleWav({ spec, formatTag: FORMAT_TAG[encoding], channels, rate, bits, blockAlign, data });
}

function writeSample(buffer: Buffer, offset: number, value: number, encoding: SampleEncoding, bits: number): void {
  if (encoding === 'float') {
    if (bits === 32) buffer.writeFloatLE(value, offset);
    else buffer.writeDoubleLE(value, offset);
  } else if (encoding === 'alaw') {
    buffer[offset] = linearToAlaw(Math.round(value * 32767));
  } else if (encoding === 'mulaw') {
    buffer[offset] = linearToMulaw(Math.round(value * 32767));
  } else if (bits === 8) {
    buffer.writeUInt8(Math.round(value * 127) + 128, offset);
  } else {
    buffer.writeIntLE(Math.round(value * (2 ** (bits - 1) - 1)), offset, bits / 8);
  }
}

interface Assembly {
  spec: WavSpec;
  formatTag: number;
  channels: number;
  rate: number;
  bits: number;
  blockAlign: number;
  data: Buffer;
}

function assembleWav({ spec, formatTag, channels, rate, bits, blockAlign, data }: Assembly): Buffer {
  const fmt = Buffer.alloc(spec.extensible ? 40 : 16);
  fmt.writeUInt16LE(spec.extensible ? 0xfffe : formatTag, 0);
  fmt.writeUInt16LE(channels, 2);
  fmt.writeUInt32LE(rate, 4);
  fmt.writeUInt32LE(rate * blockAlign, 8);
  fmt.writeUInt16LE(blockAlign, 12);
  fmt.writeUInt16LE(bits, 14);
  if (spec.extensible) {
    fmt.writeUInt16LE(22, 16);
    fmt.writeUInt16LE(bits, 18);
    fmt.writeUInt32LE(channels === 1 ? 0x4 : channels === 2 ? 0x3 : 2 ** channels - 1, 20);
    // KSDATAFORMAT_SUBTYPE_*: the format tag, then the fixed GUID tail.
    fmt.writeUInt16LE(formatTag, 24);
    Buffer.from('000000001000800000aa00389b71', 'hex').copy(fmt, 26);
  }
  const container = spec.container ?? 'RIFF';
  const chunks: Buffer[] = [];
  if (container !== 'RIFF') {
    const ds64 = Buffer.alloc(28);
    ds64.writeBigUInt64LE(BigInt(4 + 36 + 8 + fmt.length + 8 + data.length), 0);
    ds64.writeBigUInt64LE(BigInt(data.length), 8);
    ds64.writeBigUInt64LE(BigInt(data.length / blockAlign), 16);
    chunks.push(chunk('ds64', ds64));
  }
  chunks.push(chunk('fmt ', fmt));
  for (const extra of spec.chunksBeforeData ?? []) chunks.push(chunk(extra.id, extra.body));
  const dataSize = container !== 'RIFF' || spec.unknownDataSize ? 0xffffffff : data.length;
  chunks.push(chunkHeader('data', dataSize), data);
  const body = Buffer.concat(chunks);
  const header = Buffer.alloc(12);
  header.write(container, 0, 'latin1');
  header.writeUInt32LE(container !== 'RIFF' || spec.unknownDataSize ? 0xffffffff : 4 + body.length, 4);
  header.write('WAVE', 8, 'latin1');
  return Buffer.concat([header, body]);
}

function chunkHeader(id: string, size: number): Buffer {
  const header = Buffer.alloc(8);
  header.write(id, 0, 'latin1');
  header.writeUInt32LE(size, 4);
  return header;
}

export function chunk(id: string, body: Buffer): Buffer {
  const padding = body.length % 2 === 1 ? Buffer.alloc(1) : Buffer.alloc(0);
  return Buffer.concat([chunkHeader(id, body.length), body, padding]);
}

// G.711 encoders, as in the ITU reference: enough to produce real A-law and µ-law test audio.
function linearToMulaw(sample: number): number {
  const BIAS = 0x84;
  const sign = sample < 0 ? 0x80 : 0;
  let magnitude = Math.min(Math.abs(sample), 32635) + BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (magnitude & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (magnitude >> (exponent + 3)) & 0x0f;
  magnitude = ~(sign | (exponent << 4) | mantissa) & 0xff;
  return magnitude;
}

function linearToAlaw(sample: number): number {
  const sign = sample >= 0 ? 0xd5 : 0x55;
  const magnitude = Math.min(Math.abs(sample), 32767) >> 3;
  if (magnitude < 32) return ((magnitude >> 1) ^ sign) & 0xff;
  let exponent = 1;
  while (magnitude >> (exponent + 4) !== 0 && exponent < 7) exponent++;
  return (((exponent << 4) | ((magnitude >> exponent) & 0x0f)) ^ sign) & 0xff;
}

/**
 * Decodes an MP3 the way a player does, from a file (from a pipe ffmpeg cannot apply the end padding
 * that the LAME header declares), and returns its length from the decoded sample count.
 */
export function decodeMp3(mp3: Buffer): { seconds: number; sampleRate: number; channels: number } {
  const directory = mkdtempSync(join(tmpdir(), 'decode-'));
  const path = join(directory, 'audio.mp3');
  try {
    writeFileSync(path, mp3);
    const probe = execFileSync('ffprobe', [
      '-v',
      'error',
      '-show_entries',
      'stream=sample_rate,channels',
      '-of',
      'json',
      path,
    ]);
    const stream = (JSON.parse(probe.toString()) as { streams: Array<{ sample_rate: string; channels: number }> })
      .streams[0];
    if (stream === undefined) throw new Error('no audio stream in the MP3');
    const sampleRate = Number(stream.sample_rate);
    const pcm = execFileSync('ffmpeg', ['-v', 'error', '-i', path, '-f', 's16le', '-ac', '1', 'pipe:1'], {
      maxBuffer: 1024 ** 3,
    });
    return { seconds: pcm.length / 2 / sampleRate, sampleRate, channels: stream.channels };
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

/** Overwrites the format tag of the first "fmt " chunk (e.g. to declare a codec nobody knows). */
export function withFormatTag(wav: Buffer, formatTag: number): Buffer {
  const copy = Buffer.from(wav);
  const at = copy.indexOf('fmt ', 12, 'latin1');
  if (at === -1) throw new Error('no "fmt " chunk');
  copy.writeUInt16LE(formatTag, at + 8);
  return copy;
}

/**
 * The length of a WAV's audio, read independently of the service's parser: the data chunk's declared size,
 * or everything after its header when the size is a streaming writer's placeholder.
 */
export function wavDurationSeconds(wav: Buffer): number {
  let offset = 12;
  let bytesPerFrame = 0;
  let rate = 0;
  let ds64Data: number | undefined;
  while (offset + 8 <= wav.length) {
    const id = wav.toString('latin1', offset, offset + 4);
    const size = wav.readUInt32LE(offset + 4);
    if (id === 'ds64') ds64Data = Number(wav.readBigUInt64LE(offset + 16));
    if (id === 'fmt ') {
      rate = wav.readUInt32LE(offset + 12);
      bytesPerFrame = wav.readUInt16LE(offset + 20);
    }
    if (id === 'data') {
      const available = wav.length - offset - 8;
      const declared = size === 0xffffffff ? ds64Data : size;
      const bytes = declared === undefined ? available : Math.min(declared, available);
      return Math.floor(bytes / bytesPerFrame) / rate;
    }
    offset += 8 + size + (size % 2);
  }
  throw new Error('no data chunk');
}

/**
 * The frequency of the tone in an MP3 (mono mix), from zero crossings over its middle half: a quick check
 * that the samples were read in the right encoding, not just that the length is right.
 */
export async function toneFrequency(mp3: Buffer): Promise<number> {
  const directory = mkdtempSync(join(tmpdir(), 'tone-'));
  const path = join(directory, 'audio.mp3');
  try {
    writeFileSync(path, mp3);
    const rate = 48000;
    const { stdout } = await promisify(execFile)(
      'ffmpeg',
      ['-v', 'error', '-i', path, '-f', 's16le', '-ac', '1', '-ar', String(rate), 'pipe:1'],
      { encoding: 'buffer', maxBuffer: 1024 ** 3 },
    );
    const samples = new Int16Array(stdout.buffer, stdout.byteOffset, Math.floor(stdout.length / 2));
    const from = Math.floor(samples.length / 4);
    const to = Math.floor((samples.length * 3) / 4);
    let crossings = 0;
    for (let index = from + 1; index < to; index++) {
      if ((samples[index - 1] ?? 0) < 0 !== (samples[index] ?? 0) < 0) crossings++;
    }
    return (crossings / 2) * (rate / Math.max(1, to - from));
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}
