import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { createUser, uploadAndFetch, type TestUser } from './kit/client.js';
import { startIsolatedService, type IsolatedService } from './kit/service.js';
import { decodeMp3, makeWav, toneFrequency, wavDurationSeconds, type WavSpec } from './kit/wav.js';

// Every rate an MP3 frame header can carry (MPEG-1, 2 and 2.5 layer III).
const MP3_RATES = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];

interface Variant {
  readonly name: string;
  readonly wav: () => Buffer;
  /** The MP3 rate expected; undefined means "any rate an MP3 allows". */
  readonly outputRate?: number;
  readonly outputChannels: number;
  /** False when the content is not the 440 Hz test tone. */
  readonly tone?: boolean;
}

const clip = (spec: WavSpec) => () => makeWav({ durationSeconds: 0.5, ...spec });

/** A file written by an external tool (ffmpeg, sox), to disk or to a pipe as streaming writers do. */
function externalWav(command: string, args: (path: string) => string[], toPipe = false): () => Buffer {
  return () => {
    if (toPipe) return execFileSync(command, args('-'), { stdio: ['ignore', 'pipe', 'ignore'] });
    const directory = mkdtempSync(join(tmpdir(), 'variant-'));
    try {
      const path = join(directory, 'input.wav');
      execFileSync(command, args(path), { stdio: 'ignore' });
      return readFileSync(path);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  };
}

const hasSox = spawnSync('sox', ['--version']).status === 0;

const variants: Variant[] = [
  // Sample encodings.
  { name: 'PCM 8-bit (unsigned)', wav: clip({ bitsPerSample: 8 }), outputRate: 44100, outputChannels: 2 },
  { name: 'PCM 16-bit', wav: clip({ bitsPerSample: 16 }), outputRate: 44100, outputChannels: 2 },
  { name: 'PCM 24-bit', wav: clip({ bitsPerSample: 24 }), outputRate: 44100, outputChannels: 2 },
  { name: 'PCM 32-bit', wav: clip({ bitsPerSample: 32 }), outputRate: 44100, outputChannels: 2 },
  { name: 'float 32-bit', wav: clip({ encoding: 'float', bitsPerSample: 32 }), outputRate: 44100, outputChannels: 2 },
  { name: 'float 64-bit', wav: clip({ encoding: 'float', bitsPerSample: 64 }), outputRate: 44100, outputChannels: 2 },
  {
    name: 'µ-law',
    wav: clip({ encoding: 'mulaw', sampleRate: 8000, channels: 1 }),
    outputRate: 8000,
    outputChannels: 1,
  },
  {
    name: 'A-law',
    wav: clip({ encoding: 'alaw', sampleRate: 8000, channels: 1 }),
    outputRate: 8000,
    outputChannels: 1,
  },
  // WAVE_FORMAT_EXTENSIBLE with several sub-formats.
  { name: 'extensible PCM 16-bit', wav: clip({ extensible: true }), outputRate: 44100, outputChannels: 2 },
  {
    name: 'extensible PCM 24-bit 48 kHz',
    wav: clip({ extensible: true, bitsPerSample: 24, sampleRate: 48000 }),
    outputRate: 48000,
    outputChannels: 2,
  },
  {
    name: 'extensible float 32-bit mono',
    wav: clip({ extensible: true, encoding: 'float', channels: 1 }),
    outputRate: 44100,
    outputChannels: 1,
  },
  // 64-bit containers.
  { name: 'RF64', wav: clip({ container: 'RF64' }), outputRate: 44100, outputChannels: 2 },
  { name: 'BW64', wav: clip({ container: 'BW64', bitsPerSample: 24 }), outputRate: 44100, outputChannels: 2 },
  {
    name: 'RF64 extensible 24-bit',
    wav: clip({ container: 'RF64', extensible: true, bitsPerSample: 24, sampleRate: 48000 }),
    outputRate: 48000,
    outputChannels: 2,
  },
  // Sample rates: MP3 rates stay, others become a rate MP3 allows.
  ...[8000, 11025, 22050, 44100, 48000].map((rate) => ({
    name: `${rate} Hz`,
    wav: clip({ sampleRate: rate, channels: 1 }),
    outputRate: rate,
    outputChannels: 1,
  })),
  { name: '88200 Hz', wav: clip({ sampleRate: 88200, channels: 1 }), outputRate: 44100, outputChannels: 1 },
  { name: '96000 Hz', wav: clip({ sampleRate: 96000, channels: 1 }), outputRate: 48000, outputChannels: 1 },
  { name: '192000 Hz', wav: clip({ sampleRate: 192000, channels: 1 }), outputRate: 48000, outputChannels: 1 },
  { name: '37800 Hz (odd)', wav: clip({ sampleRate: 37800, channels: 1 }), outputChannels: 1 },
  {
    name: '8 kHz stereo 8-bit',
    wav: clip({ sampleRate: 8000, bitsPerSample: 8 }),
    outputRate: 8000,
    outputChannels: 2,
  },
  // Channel counts: 1 and 2 stay, 3 to 8 are mixed down to stereo.
  ...[1, 2, 3, 4, 5, 6, 7, 8].map((channels) => ({
    name: `${channels} channel(s)`,
    wav: clip({ channels, sampleRate: 22050 }),
    outputRate: 22050,
    outputChannels: Math.min(channels, 2),
  })),
  {
    name: '6 channels extensible 24-bit',
    wav: clip({ channels: 6, extensible: true, bitsPerSample: 24, sampleRate: 48000 }),
    outputRate: 48000,
    outputChannels: 2,
  },
  // Metadata chunks before the audio, including odd-sized ones that need a pad byte.
  {
    name: 'LIST, bext and JUNK before data',
    wav: clip({
      chunksBeforeData: [
        { id: 'JUNK', body: Buffer.alloc(28) },
        { id: 'bext', body: Buffer.alloc(602, 0x20) },
        {
          id: 'LIST',
          body: Buffer.concat([Buffer.from('INFOINAM', 'latin1'), Buffer.from([6, 0, 0, 0]), Buffer.from('Title\0')]),
        },
      ],
    }),
    outputRate: 44100,
    outputChannels: 2,
  },
  {
    name: 'odd-sized chunks before data',
    wav: clip({
      chunksBeforeData: [
        { id: 'LIST', body: Buffer.from('INFOISFTodd', 'latin1') },
        { id: 'iXML', body: Buffer.from('<BWFXML/>', 'latin1') },
      ],
      channels: 1,
      bitsPerSample: 24,
    }),
    outputRate: 44100,
    outputChannels: 1,
  },
  {
    name: 'large JUNK chunk (64 KiB) before data',
    wav: clip({ chunksBeforeData: [{ id: 'JUNK', body: Buffer.alloc(65_537) }], channels: 1 }),
    outputRate: 44100,
    outputChannels: 1,
  },
  // Lengths and sizes.
  {
    name: '20 ms clip',
    wav: () => makeWav({ durationSeconds: 0.02, channels: 1 }),
    outputRate: 44100,
    outputChannels: 1,
    tone: false,
  },
  {
    name: '20 ms clip at 8 kHz µ-law',
    wav: () => makeWav({ durationSeconds: 0.02, encoding: 'mulaw', sampleRate: 8000, channels: 1 }),
    outputRate: 8000,
    outputChannels: 1,
    tone: false,
  },
  {
    name: 'unknown data size (0xFFFFFFFF)',
    wav: clip({ unknownDataSize: true }),
    outputRate: 44100,
    outputChannels: 2,
  },
  {
    name: 'unknown data size, 8 kHz mono 8-bit',
    wav: clip({ unknownDataSize: true, sampleRate: 8000, channels: 1, bitsPerSample: 8 }),
    outputRate: 8000,
    outputChannels: 1,
  },
  // Files written by real tools.
  {
    name: 'ffmpeg pcm_s24le (extensible, LIST chunk)',
    wav: externalWav('ffmpeg', (path) => [
      '-v',
      'error',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=440:duration=0.7:sample_rate=48000',
      '-c:a',
      'pcm_s24le',
      '-y',
      path,
    ]),
    outputRate: 48000,
    outputChannels: 1,
  },
  {
    name: 'ffmpeg to a pipe (sizes unknown)',
    wav: externalWav(
      'ffmpeg',
      (path) => [
        '-v',
        'error',
        '-f',
        'lavfi',
        '-i',
        'sine=frequency=440:duration=0.7:sample_rate=44100',
        '-ac',
        '2',
        '-c:a',
        'pcm_s16le',
        '-f',
        'wav',
        path,
      ],
      true,
    ),
    outputRate: 44100,
    outputChannels: 2,
  },
  ...(hasSox
    ? [
        {
          name: 'sox 16-bit stereo',
          wav: externalWav('sox', (path) => [
            '-n',
            '-r',
            '44100',
            '-c',
            '2',
            '-b',
            '16',
            path,
            'synth',
            '0.7',
            'sine',
            '440',
          ]),
          outputRate: 44100,
          outputChannels: 2,
        },
        {
          name: 'sox 24-bit 3 channels (extensible, fact chunk)',
          wav: externalWav('sox', (path) => [
            '-n',
            '-r',
            '48000',
            '-c',
            '3',
            '-b',
            '24',
            path,
            'synth',
            '0.7',
            'sine',
            '440',
          ]),
          outputRate: 48000,
          outputChannels: 2,
        },
        {
          name: 'sox to a pipe, 8 kHz mono 8-bit (placeholder size)',
          wav: externalWav(
            'sox',
            (path) => ['-n', '-r', '8000', '-c', '1', '-b', '8', '-t', 'wav', path, 'synth', '0.7', 'sine', '440'],
            true,
          ),
          outputRate: 8000,
          outputChannels: 1,
        },
      ]
    : []),
];

describe('every WAV a user may have becomes an MP3 of the same length (pglite)', () => {
  let service: IsolatedService;
  let user: TestUser;

  beforeAll(async () => {
    service = await startIsolatedService('pglite', { CONVERT_CONCURRENCY: '2', LOG_LEVEL: 'warn' });
    user = await createUser(service.url);
  });
  afterAll(async () => {
    await service?.cleanup();
  });

  describe.concurrent('variants', () => {
    it.for(variants)('$name', async (variant, { expect }) => {
      const wav = variant.wav();
      const expectedSeconds = wavDurationSeconds(wav);
      const { recordUrl, mp3 } = await uploadAndFetch(service.url, user, wav, { filename: 'variant.wav' });

      const decoded = decodeMp3(mp3);
      expect(MP3_RATES).toContain(decoded.sampleRate);
      if (variant.outputRate !== undefined) expect(decoded.sampleRate).toBe(variant.outputRate);
      expect(decoded.channels).toBe(variant.outputChannels);
      expect(Math.abs(decoded.seconds - expectedSeconds) * 1000).toBeLessThan(10);
      if (variant.tone !== false) expect(Math.abs((await toneFrequency(mp3)) - 440)).toBeLessThan(10);

      // The stored metadata says the same as the file.
      const metadata = (await (await fetch(recordUrl, { headers: { accept: 'application/json' } })).json()) as {
        duration_seconds: number;
        sample_rate: number;
        channels: number;
        size_bytes: number;
      };
      expect(Math.abs(metadata.duration_seconds - expectedSeconds) * 1000).toBeLessThan(10);
      expect(metadata.sample_rate).toBe(decoded.sampleRate);
      expect(metadata.channels).toBe(decoded.channels);
      expect(metadata.size_bytes).toBe(mp3.length);
    });
  });

  it('leaves no temp files behind', async ({ expect }) => {
    expect(await readdir(join(service.dataDir, 'tmp'))).toEqual([]);
  });
});
