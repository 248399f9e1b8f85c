import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Agent } from 'node:http';
import { sendRequest, type HttpAnswer } from './http.js';
import { multipartBody, type FormPart } from './multipart.js';
import { PREFIX, type TestUser } from './client.js';

/**
 * Audio files of every kind the service reads, and hostile ones, made with the real ffmpeg (or byte by byte
 * where no encoder exists or the file must lie), each once per test process and parameters; and ffprobe
 * helpers to check what the service stored. Nothing here knows how the service reads them.
 */

// The real tools on PATH, never the service's FFMPEG_PATH (which a test may point at a spy).
const FFMPEG = 'ffmpeg';
const FFPROBE = 'ffprobe';
const run = promisify(execFile);

/** What the service's metadata calls an input (`source_format`). */
type SourceFormat = 'wav' | 'flac' | 'ogg' | 'webm' | 'matroska' | 'mp4' | 'mp3' | 'aiff' | 'amr';

/** What the audio of a fixture sounds like, so that a test knows what to expect of its peaks. */
type Signal =
  /** A chirp of amplitude 0.4 plus noise of 0.05 (peaks always within ±0.45), on every channel. */
  | 'chirp'
  /** Random codec parameters: loud, of no known amplitude. */
  | 'noise'
  /** Digital silence, or a decoder's concealment of missing frames. */
  | 'silence'
  /** No audio to speak of. */
  | 'none';

export interface MediaFixture {
  readonly name: FixtureName;
  /** The file, in the kit's temp folder: read it, never change it. */
  readonly path: string;
  readonly bytes: Buffer;
  /** The length of the signal that went in (for the hostile ones, what the file claims or decodes to). */
  readonly seconds: number;
  /** The chirp's gain: 0 dB is 0.4 plus noise of 0.05. */
  readonly gainDb: number;
  /** The `source_format` the service should report; undefined for bytes that are no recognisable container. */
  readonly sourceFormat: SourceFormat | undefined;
  /** A name and a Content-Type such as a browser would send with it. */
  readonly filename: string;
  readonly contentType: string;
  readonly signal: Signal;
  /** A file the fixture refers to, which the test must put in place itself (the external dref's target). */
  readonly companion?: { readonly path: string; readonly bytes: Buffer };
}

export interface FixtureOptions {
  /** Length of the signal; 3 s unless said (the silence bomb: 3600 s). */
  readonly seconds?: number;
  /** Gain applied to the chirp (not to AMR's noise); 0 dB unless said. */
  readonly gainDb?: number;
  /** For the external-reference MP4s: the absolute path their data reference points at. */
  readonly target?: string;
}

interface Recipe {
  readonly sourceFormat: SourceFormat | undefined;
  readonly extension: string;
  readonly contentType: string;
  readonly signal: Signal;
  readonly defaultSeconds?: number;
  /** Writes the file at `path`; `work` is a scratch folder of its own. */
  make(context: MakeContext): Promise<void | Buffer>;
}

interface MakeContext {
  readonly seconds: number;
  /** Linear gain of the chirp. */
  readonly gain: number;
  /** Where to write the file (a recipe may answer the bytes instead). */
  readonly path: string;
  /** A scratch folder of the fixture's own. */
  readonly work: string;
  readonly target: string | undefined;
}

// ---------------------------------------------------------------------------------------------------------
// The signal, and ffmpeg.

/**
 * A lavfi source: a rising chirp (220 Hz up, a different one per channel) at 0.4 plus white noise at 0.05,
 * so that every 20 ms of it has peaks near ±0.4 and a decoder that drops or garbles audio shows.
 */
function chirp(rate: number, channels: number, { seconds, gain }: Pick<MakeContext, 'seconds' | 'gain'>): string[] {
  const channel = (index: number) =>
    `${gain}*(0.4*sin(2*PI*(${220 + 110 * index}+${110 + 55 * index}*t)*t)+0.05*(2*random(${index})-1))`;
  const exprs = Array.from({ length: channels }, (_, index) => channel(index)).join('|');
  return ['-f', 'lavfi', '-i', `aevalsrc=exprs='${exprs}':s=${rate}:d=${seconds}`];
}

/** Runs ffmpeg (no shell) and answers its stdout; a failure carries its stderr. */
async function ffmpeg(args: readonly string[]): Promise<Buffer> {
  try {
    const { stdout } = await run(FFMPEG, ['-nostdin', '-hide_banner', '-loglevel', 'error', '-y', ...args], {
      encoding: 'buffer',
      maxBuffer: 1024 ** 3,
    });
    return stdout;
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`ffmpeg ${args.join(' ')} failed: ${stderr || String(error)}`);
  }
}

/** ffmpeg writing `path` from the chirp: the encoder and muxer options come from the recipe. */
function encodeChirp(rate: number, channels: number, output: readonly string[]): Recipe['make'] {
  return async (context) => {
    await ffmpeg([...chirp(rate, channels, context), ...output, context.path]);
  };
}

// ---------------------------------------------------------------------------------------------------------
// The recipes.

const RECIPES = {
  // The baseline: what the service read before formats.
  wav: {
    sourceFormat: 'wav',
    extension: 'wav',
    contentType: 'audio/wav',
    signal: 'chirp',
    make: encodeChirp(44100, 2, ['-c:a', 'pcm_s16le', '-f', 'wav']),
  },
  'flac-24bit-96k': {
    sourceFormat: 'flac',
    extension: 'flac',
    contentType: 'audio/flac',
    signal: 'chirp',
    // s32 samples with 24 significant bits: ffmpeg's FLAC encoder then writes a 24-bit stream.
    make: encodeChirp(96000, 2, ['-c:a', 'flac', '-sample_fmt', 's32', '-bits_per_raw_sample', '24', '-f', 'flac']),
  },
  'flac-16bit-44k': {
    sourceFormat: 'flac',
    extension: 'flac',
    contentType: 'audio/flac',
    signal: 'chirp',
    make: encodeChirp(44100, 2, ['-c:a', 'flac', '-sample_fmt', 's16', '-f', 'flac']),
  },
  'ogg-opus': {
    sourceFormat: 'ogg',
    extension: 'opus',
    contentType: 'audio/ogg',
    signal: 'chirp',
    make: encodeChirp(48000, 2, ['-c:a', 'libopus', '-b:a', '96k', '-f', 'ogg']),
  },
  'ogg-vorbis': {
    sourceFormat: 'ogg',
    extension: 'ogg',
    contentType: 'audio/ogg',
    signal: 'chirp',
    make: encodeChirp(44100, 2, ['-c:a', 'libvorbis', '-q:a', '4', '-f', 'ogg']),
  },
  'ogg-flac': {
    sourceFormat: 'ogg',
    extension: 'oga',
    contentType: 'audio/ogg',
    signal: 'chirp',
    make: encodeChirp(48000, 1, ['-c:a', 'flac', '-f', 'ogg']),
  },
  // As Chrome's MediaRecorder writes it: streamed, so the Segment's and every Cluster's size is "unknown".
  'webm-opus-mediarecorder': {
    sourceFormat: 'webm',
    extension: 'webm',
    contentType: 'audio/webm;codecs=opus',
    signal: 'chirp',
    make: async (context) => {
      // To a pipe, ffmpeg cannot go back to fill in the Segment's size, but it still buffers each Cluster
      // and writes its size; Chrome does not, so the Cluster headers are rewritten with Chrome's 8-byte
      // unknown-size marker (nothing refers to a Cluster's offset: a live WebM has no Cues).
      const piped = await ffmpeg([
        ...chirp(48000, 1, context),
        ...['-c:a', 'libopus', '-b:a', '64k', '-f', 'webm', '-live', '1', '-cluster_time_limit', '1000', 'pipe:1'],
      ]);
      const streamed = withUnknownClusterSizes(piped);
      const layout = ebmlLayout(streamed);
      if (layout.docType !== 'webm' || layout.segment.size !== undefined || layout.clusters.length < 2) {
        throw new Error(`not a streamed WebM: ${JSON.stringify(layout)}`);
      }
      if (layout.clusters.some((cluster) => cluster.size !== undefined || cluster.sizeLength !== 8)) {
        throw new Error('a Cluster kept its size');
      }
      if (layout.blocks.length === 0) throw new Error('no SimpleBlock found in the Clusters');
      return streamed;
    },
  },
  'matroska-vorbis': {
    sourceFormat: 'matroska',
    extension: 'mka',
    contentType: 'audio/x-matroska',
    signal: 'chirp',
    make: encodeChirp(44100, 2, ['-c:a', 'libvorbis', '-q:a', '3', '-f', 'matroska']),
  },
  // ffmpeg's default: the moov after the mdat, as any writer that cannot seek back before it finishes.
  'm4a-aac-moov-last': {
    sourceFormat: 'mp4',
    extension: 'm4a',
    contentType: 'audio/mp4',
    signal: 'chirp',
    make: encodeChirp(44100, 2, ['-c:a', 'aac', '-b:a', '128k', '-f', 'ipod']),
  },
  'm4a-aac-faststart': {
    sourceFormat: 'mp4',
    extension: 'm4a',
    contentType: 'audio/mp4',
    signal: 'chirp',
    make: encodeChirp(48000, 1, ['-c:a', 'aac', '-b:a', '96k', '-movflags', '+faststart', '-f', 'ipod']),
  },
  'm4a-alac': {
    sourceFormat: 'mp4',
    extension: 'm4a',
    contentType: 'audio/mp4',
    signal: 'chirp',
    make: encodeChirp(44100, 2, ['-c:a', 'alac', '-sample_fmt', 's16p', '-f', 'ipod']),
  },
  // As a phone records: 3GPP, AAC, 16 kHz mono.
  '3gp-aac': {
    sourceFormat: 'mp4',
    extension: '3gp',
    contentType: 'audio/3gpp',
    signal: 'chirp',
    make: encodeChirp(16000, 1, ['-c:a', 'aac', '-b:a', '32k', '-f', '3gp']),
  },
  // A screen or camera recording: the video track first, so that "the first stream" is not the audio.
  'mp4-video-first': {
    sourceFormat: 'mp4',
    extension: 'mp4',
    contentType: 'video/mp4',
    signal: 'chirp',
    make: async (context) => {
      const { seconds, path } = context;
      await ffmpeg([
        ...['-f', 'lavfi', '-i', `testsrc=size=96x64:rate=10:duration=${seconds}`],
        ...chirp(48000, 2, context),
        ...['-map', '0:v', '-map', '1:a', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p'],
        ...['-c:a', 'aac', '-b:a', '96k', '-f', 'mp4', path],
      ]);
    },
  },
  mp3: {
    sourceFormat: 'mp3',
    extension: 'mp3',
    contentType: 'audio/mpeg',
    signal: 'chirp',
    make: encodeChirp(44100, 2, ['-c:a', 'libmp3lame', '-b:a', '128k', '-id3v2_version', '0', '-f', 'mp3']),
  },
  // As music players keep them: an ID3v2.3 tag with a title and a front cover (a PNG) before the audio.
  'mp3-id3-cover': {
    sourceFormat: 'mp3',
    extension: 'mp3',
    contentType: 'audio/mpeg',
    signal: 'chirp',
    make: async (context) => {
      const { path, work } = context;
      const cover = join(work, 'cover.png');
      await ffmpeg(['-f', 'lavfi', '-i', 'color=c=0x3366cc:s=64x64', '-frames:v', '1', '-f', 'image2', cover]);
      await ffmpeg([
        ...chirp(44100, 2, context),
        ...['-i', cover, '-map', '0:a', '-map', '1:v', '-c:a', 'libmp3lame', '-q:a', '4', '-c:v', 'png'],
        ...['-disposition:v', 'attached_pic', '-metadata:s:v', 'title=Album cover'],
        ...['-metadata:s:v', 'comment=Cover (front)', '-metadata', 'title=Fixture with a cover'],
        ...['-metadata', 'artist=The Test Kit', '-id3v2_version', '3', '-f', 'mp3', path],
      ]);
    },
  },
  // ffmpeg writes plain AIFF for big-endian PCM and AIFF-C for anything else: 'sowt' (little-endian
  // 16-bit) is what macOS apps write.
  aiff: {
    sourceFormat: 'aiff',
    extension: 'aiff',
    contentType: 'audio/aiff',
    signal: 'chirp',
    make: encodeChirp(44100, 2, ['-c:a', 'pcm_s16be', '-f', 'aiff']),
  },
  aifc: {
    sourceFormat: 'aiff',
    extension: 'aifc',
    contentType: 'audio/aiff',
    signal: 'chirp',
    make: encodeChirp(48000, 1, ['-c:a', 'pcm_s16le', '-f', 'aiff']),
  },
  // No AMR encoder exists here: valid frames are written by hand (see amrFile).
  'amr-nb': {
    sourceFormat: 'amr',
    extension: 'amr',
    contentType: 'audio/amr',
    signal: 'noise',
    make: async ({ seconds }) => amrFile('nb', seconds),
  },
  'amr-wb': {
    sourceFormat: 'amr',
    extension: 'awb',
    contentType: 'audio/amr-wb',
    signal: 'noise',
    make: async ({ seconds }) => amrFile('wb', seconds),
  },

  // ------------------------------------------------------------------------------------------------------
  // Hostile.

  /**
   * An M4A whose only track's data reference is an external `url ` entry (flags 0: "not in this file")
   * naming `target`, and no mdat at all: the chunk offsets point into `target` (the companion, a real M4A).
   * Read as the file says, it is the companion's audio; read safely (ffmpeg ignores `url ` entries
   * altogether), it has no audio.
   */
  'mp4-external-dref-url': {
    sourceFormat: 'mp4',
    extension: 'm4a',
    contentType: 'audio/mp4',
    signal: 'none',
    make: async (context) => externalReference(context, 'url'),
  },
  /**
   * The same with the QuickTime alias record ffmpeg does follow when `-enable_drefs 1` is given (with
   * `-use_absolute_path 1` for this absolute path): the control that a reference can be followed at all.
   */
  'mp4-external-dref-alis': {
    sourceFormat: 'mp4',
    extension: 'm4a',
    contentType: 'audio/mp4',
    signal: 'none',
    make: async (context) => externalReference(context, 'alis'),
  },
  /**
   * A chained Ogg: an Opus stream, and after its end a second logical stream that is Theora video.
   * ffmpeg 5.1 decodes the Opus, then logs "failed to create or replace stream" and still exits 0.
   */
  'ogg-chained-theora': {
    sourceFormat: 'ogg',
    extension: 'ogg',
    contentType: 'audio/ogg',
    signal: 'chirp',
    make: async (context) => {
      const { path, work } = context;
      const video = join(work, 'video.ogv');
      await ffmpeg([...chirp(48000, 1, context), '-c:a', 'libopus', '-f', 'ogg', path]);
      // A serial number of its own: the second link must be a different logical stream.
      await ffmpeg([
        ...['-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=10:duration=1', '-c:v', 'libtheora'],
        ...['-serial_offset', '7777', '-f', 'ogg', video],
      ]);
      return Buffer.concat([await readFile(path), await readFile(video)]);
    },
  },
  /** A Matroska (named .mka) with a subtitle track and an attached text file: no audio at all. */
  'matroska-attachment-only': {
    sourceFormat: 'matroska',
    extension: 'mka',
    contentType: 'audio/x-matroska',
    signal: 'none',
    make: async ({ seconds, path, work }) => {
      const subtitles = join(work, 'subtitles.srt');
      const note = join(work, 'note.txt');
      await writeFile(subtitles, `1\n00:00:00,000 --> 00:00:0${Math.min(9, seconds)},000\nNo audio here.\n`);
      await writeFile(note, 'An attachment, and nothing to listen to.\n');
      await ffmpeg([
        ...['-i', subtitles, '-map', '0:s', '-c:s', 'srt'],
        ...['-attach', note, '-metadata:s:t', 'mimetype=text/plain', '-f', 'matroska', path],
      ]);
    },
  },
  /**
   * A small Ogg/Opus that decodes to `seconds` (an hour by default) of silence: 120 ms packets of two bytes
   * each (a code-3 packet of six empty 20 ms CELT frames, which decoders conceal as silence), ~26 bytes a
   * second. Written by hand: libopus with DTX still spends ~30 bytes a packet (155 KB for 10 minutes).
   */
  'opus-silence-bomb': {
    sourceFormat: 'ogg',
    extension: 'opus',
    contentType: 'audio/ogg',
    signal: 'silence',
    defaultSeconds: 3600,
    make: async ({ seconds }) => silentOpus(seconds),
  },
  /** An M4A with its moov at the front, cut off in the middle of the moov: nothing after it. */
  'm4a-truncated-moov': {
    sourceFormat: 'mp4',
    extension: 'm4a',
    contentType: 'audio/mp4',
    signal: 'none',
    make: async (context) => {
      await encodeChirp(44100, 2, ['-c:a', 'aac', '-movflags', '+faststart', '-f', 'ipod'])(context);
      const whole = await readFile(context.path);
      const moov = topLevelBoxes(whole).find((box) => box.type === 'moov');
      if (moov === undefined) throw new Error('no moov');
      return whole.subarray(0, moov.offset + Math.floor(moov.size / 2));
    },
  },
  /** One valid MPEG-1 layer III frame (no ID3, no Xing), then plain text. */
  'mp3-frame-then-text': {
    sourceFormat: 'mp3',
    extension: 'mp3',
    contentType: 'audio/mpeg',
    signal: 'none',
    make: async (context) => {
      const mp3 = await ffmpeg([
        ...chirp(44100, 2, { ...context, seconds: 1 }),
        ...['-c:a', 'libmp3lame', '-b:a', '128k', '-id3v2_version', '0', '-write_xing', '0', '-f', 'mp3', 'pipe:1'],
      ]);
      const frame = mp3.subarray(0, mpegFrameLength(mp3));
      const text = 'This is not audio. It is a letter, in plain text, after one MP3 frame.\n'.repeat(
        Math.max(1, Math.round(context.seconds * 20)),
      );
      return Buffer.concat([frame, Buffer.from(text)]);
    },
  },
  /**
   * A WebM whose EBML sizes lie: every Cluster and every SimpleBlock claims the largest size its size field
   * can hold (16 KB for a two-byte field), so blocks overrun into the next ones or past their Cluster, and
   * the last Cluster past the end of the file. ffprobe still reads the header; ffmpeg decodes nothing.
   */
  'webm-lying-sizes': {
    sourceFormat: 'webm',
    extension: 'webm',
    contentType: 'audio/webm',
    signal: 'none',
    make: async (context) => {
      await ffmpeg([...chirp(48000, 1, context), '-c:a', 'libopus', '-f', 'webm', context.path]);
      return withLyingSizes(await readFile(context.path));
    },
  },
} satisfies Record<string, Recipe>;

export type FixtureName = keyof typeof RECIPES;

/** Inputs the service must accept. */
export const ACCEPTED_FIXTURES = [
  'wav',
  'flac-24bit-96k',
  'flac-16bit-44k',
  'ogg-opus',
  'ogg-vorbis',
  'ogg-flac',
  'webm-opus-mediarecorder',
  'matroska-vorbis',
  'm4a-aac-moov-last',
  'm4a-aac-faststart',
  'm4a-alac',
  '3gp-aac',
  'mp4-video-first',
  'mp3',
  'mp3-id3-cover',
  'aiff',
  'aifc',
  'amr-nb',
  'amr-wb',
] as const satisfies readonly FixtureName[];

// ---------------------------------------------------------------------------------------------------------
// The cache.

let directory: string | undefined;

/** The kit's folder for this process, removed by removeMediaFixtures or when the process exits. */
function kitDirectory(): string {
  if (directory === undefined) {
    const made = mkdtempSync(join(tmpdir(), 'media-fixtures-'));
    directory = made;
    process.once('exit', () => rmSync(made, { recursive: true, force: true }));
  }
  return directory;
}

const cache = new Map<string, Promise<MediaFixture>>();

/**
 * Removes every fixture made so far (call it in an afterAll: vitest's workers end without running exit
 * handlers); later calls make them again.
 */
export async function removeMediaFixtures(): Promise<void> {
  await Promise.allSettled(cache.values());
  cache.clear();
  const made = directory;
  directory = undefined;
  if (made !== undefined) await rm(made, { recursive: true, force: true });
}

/** The fixture `name`, made on first use and kept for the rest of the process (per options). */
export function mediaFixture(name: FixtureName, options: FixtureOptions = {}): Promise<MediaFixture> {
  const recipe: Recipe = RECIPES[name];
  const seconds = options.seconds ?? recipe.defaultSeconds ?? 3;
  const gainDb = options.gainDb ?? 0;
  const key = JSON.stringify([name, seconds, gainDb, options.target ?? null]);
  let made = cache.get(key);
  if (made === undefined) {
    made = makeFixture(name, recipe, { seconds, gainDb, target: options.target });
    cache.set(key, made);
    // A failure is not kept: the next caller sees it again, with its own stack.
    made.catch(() => cache.delete(key));
  }
  return made;
}

async function makeFixture(
  name: FixtureName,
  recipe: Recipe,
  options: { seconds: number; gainDb: number; target: string | undefined },
): Promise<MediaFixture> {
  const work = mkdtempSync(join(kitDirectory(), `${name}-`));
  const path = join(work, `${name}.${recipe.extension}`);
  const companion = join(work, 'companion');
  const written = await recipe.make({
    seconds: options.seconds,
    gain: 10 ** (options.gainDb / 20),
    path,
    work,
    target: options.target ?? companion,
  });
  if (written !== undefined) await writeFile(path, written);
  const bytes = await readFile(path);
  const companionBytes = await readFile(companion).catch(() => undefined);
  return {
    name,
    path,
    bytes,
    seconds: options.seconds,
    gainDb: options.gainDb,
    sourceFormat: recipe.sourceFormat,
    filename: `${name}.${recipe.extension}`,
    contentType: recipe.contentType,
    signal: recipe.signal,
    ...(companionBytes === undefined
      ? {}
      : { companion: { path: options.target ?? companion, bytes: companionBytes } }),
  };
}

// ---------------------------------------------------------------------------------------------------------
// AMR, by hand.

/** A deterministic byte stream (xorshift32): fixtures are the same on every run. */
function pseudoRandomBytes(length: number, seed: number): Buffer {
  const bytes = Buffer.alloc(length);
  let state = seed >>> 0 || 1;
  for (let index = 0; index < length; index++) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    bytes[index] = state & 0xff;
  }
  return bytes;
}

/**
 * An AMR file (RFC 4867 §5, the storage format): the magic, then 20 ms frames of the highest mode, each a
 * header byte (F=0, frame type, Q=1) and its payload. Every bit pattern is a valid parameter set, so random
 * payloads decode to noise: NB mode 7 (12.2 kbit/s) is 0x3C + 31 bytes, WB mode 8 (23.85 kbit/s) 0x44 + 60.
 */
function amrFile(kind: 'nb' | 'wb', seconds: number): Buffer {
  const frames = Math.round(seconds / 0.02);
  const [magic, header, payload] = kind === 'nb' ? ['#!AMR\n', 0x3c, 31] : ['#!AMR-WB\n', 0x44, 60];
  const noise = pseudoRandomBytes(frames * payload, kind === 'nb' ? 0x4e42 : 0x5742);
  const parts: Buffer[] = [Buffer.from(magic, 'latin1')];
  for (let frame = 0; frame < frames; frame++) {
    parts.push(Buffer.from([header]), noise.subarray(frame * payload, (frame + 1) * payload));
  }
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------------------
// Ogg, by hand.

const OGG_CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let index = 0; index < 256; index++) {
    let value = index << 24;
    for (let bit = 0; bit < 8; bit++) value = value & 0x80000000 ? (value << 1) ^ 0x04c11db7 : value << 1;
    table[index] = value >>> 0;
  }
  return table;
})();

/** Ogg's CRC-32: polynomial 0x04C11DB7, not reflected, starting at 0, no final xor. */
function oggCrc(bytes: Buffer): number {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) ^ (OGG_CRC_TABLE[((crc >>> 24) ^ byte) & 0xff] ?? 0)) >>> 0;
  return crc;
}

/** One Ogg page holding whole packets (each under 255 bytes × 255 lacing values in all). */
function oggPage(headerType: number, granule: bigint, serial: number, sequence: number, packets: Buffer[]): Buffer {
  const lacing: number[] = [];
  for (const packet of packets) {
    let left = packet.length;
    while (left >= 255) {
      lacing.push(255);
      left -= 255;
    }
    lacing.push(left);
  }
  if (lacing.length > 255) throw new Error('too many packets for one Ogg page');
  const header = Buffer.alloc(27 + lacing.length);
  header.write('OggS', 0, 'latin1');
  header[5] = headerType;
  header.writeBigInt64LE(granule, 6);
  header.writeUInt32LE(serial, 14);
  header.writeUInt32LE(sequence, 18);
  header[26] = lacing.length;
  Buffer.from(lacing).copy(header, 27);
  const page = Buffer.concat([header, ...packets]);
  page.writeUInt32LE(oggCrc(page), 22);
  return page;
}

/** An Ogg/Opus of `seconds` of silence (see 'opus-silence-bomb'), mono, 48 kHz. */
function silentOpus(seconds: number): Buffer {
  const serial = 0x51_1e_4c_e0;
  const preSkip = 312;
  const head = Buffer.alloc(19);
  head.write('OpusHead', 0, 'latin1');
  head[8] = 1; // version
  head[9] = 1; // channels
  head.writeUInt16LE(preSkip, 10);
  head.writeUInt32LE(48000, 12);
  const vendor = Buffer.from('test kit');
  const tags = Buffer.concat([Buffer.from('OpusTags'), Buffer.alloc(4), vendor, Buffer.alloc(4)]);
  tags.writeUInt32LE(vendor.length, 8);
  // TOC: config 31 (CELT fullband 20 ms), mono, code 3; then the frame count byte: CBR, no padding, 6 frames.
  const packet = Buffer.from([(31 << 3) | 3, 6]);
  const samplesPerPacket = 6 * 960;
  const packets = Math.ceil((seconds * 48000) / samplesPerPacket);
  const pages = [oggPage(2, 0n, serial, 0, [head]), oggPage(0, 0n, serial, 1, [tags])];
  let granule = BigInt(preSkip);
  for (let written = 0; written < packets;) {
    const count = Math.min(255, packets - written);
    written += count;
    granule += BigInt(count * samplesPerPacket);
    pages.push(
      oggPage(
        written === packets ? 4 : 0,
        granule,
        serial,
        pages.length,
        Array.from({ length: count }, () => packet),
      ),
    );
  }
  return Buffer.concat(pages);
}

// ---------------------------------------------------------------------------------------------------------
// MP3 frames.

/** The length of the MPEG audio frame at the start of `bytes` (layer III, MPEG-1/2/2.5). */
function mpegFrameLength(bytes: Buffer): number {
  const header = bytes.readUInt32BE(0);
  if (header >>> 21 !== 0x7ff) throw new Error('no MPEG frame sync at the start');
  const version = (header >>> 19) & 3; // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
  const bitrateIndex = (header >>> 12) & 0xf;
  const rateIndex = (header >>> 10) & 3;
  const padding = (header >>> 9) & 1;
  const mpeg1 = version === 3;
  const bitrates = mpeg1
    ? [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320]
    : [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
  const rates = [44100, 48000, 32000][rateIndex] ?? 44100;
  const sampleRate = mpeg1 ? rates : version === 2 ? rates / 2 : rates / 4;
  const kbps = bitrates[bitrateIndex] ?? 0;
  return Math.floor(((mpeg1 ? 144 : 72) * kbps * 1000) / sampleRate) + padding;
}

// ---------------------------------------------------------------------------------------------------------
// ISO BMFF (MP4) boxes.

interface Box {
  readonly type: string;
  readonly offset: number;
  readonly size: number;
  readonly headerSize: number;
}

/** The boxes laid side by side in `bytes` from `start` to `end` (32- or 64-bit sizes; 0 = to the end). */
function boxesIn(bytes: Buffer, start = 0, end = bytes.length): Box[] {
  const boxes: Box[] = [];
  for (let offset = start; offset + 8 <= end;) {
    let size = bytes.readUInt32BE(offset);
    let headerSize = 8;
    if (size === 1) {
      size = Number(bytes.readBigUInt64BE(offset + 8));
      headerSize = 16;
    } else if (size === 0) {
      size = end - offset;
    }
    if (size < headerSize) throw new Error(`box of size ${size} at ${offset}`);
    boxes.push({ type: bytes.toString('latin1', offset + 4, offset + 8), offset, size, headerSize });
    offset += size;
  }
  return boxes;
}

function topLevelBoxes(bytes: Buffer): Box[] {
  return boxesIn(bytes);
}

function box(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(8 + body.length, 0);
  header.write(type, 4, 'latin1');
  return Buffer.concat([header, body]);
}

/**
 * `container` (a whole box) with the box at `path` below it replaced by `replace(old)`, every size on the
 * way recomputed.
 */
function replaceBox(container: Buffer, path: readonly string[], replace: (old: Buffer) => Buffer): Buffer {
  const [first, ...rest] = path;
  const outer = boxesIn(container)[0];
  if (outer === undefined) throw new Error('no box');
  const children = boxesIn(container, outer.headerSize, outer.size);
  if (!children.some((child) => child.type === first)) throw new Error(`no ${first} in ${outer.type}`);
  const body = children.map((child) => {
    const bytes = container.subarray(child.offset, child.offset + child.size);
    if (child.type !== first) return bytes;
    return rest.length === 0 ? replace(bytes) : replaceBox(bytes, rest, replace);
  });
  return box(outer.type, Buffer.concat(body));
}

/**
 * A QuickTime alias record (`alis` data reference entry) as ffmpeg's mov demuxer reads it: 150 bytes of
 * fixed fields (volume and file name as Pascal strings; levels from/to 0, i.e. absolute), then tagged
 * fields, here type 2 (absolute path; ffmpeg 5.1 ignores a type 18 POSIX path here), ended by type -1.
 */
function aliasRecord(path: string): Buffer {
  const fixed = Buffer.alloc(150);
  const volume = 'Macintosh HD';
  fixed[10] = volume.length;
  fixed.write(volume, 11, 'latin1');
  const name = path.split('/').at(-1) ?? path;
  fixed[50] = Math.min(63, name.length);
  fixed.write(name.slice(0, 63), 51, 'latin1');
  // nlvl_from / nlvl_to at 130 and 132 stay 0: the path is absolute.
  const pathBytes = Buffer.from(path);
  const padded = Buffer.concat([pathBytes, Buffer.alloc(pathBytes.length % 2)]);
  const tag = Buffer.alloc(4);
  tag.writeUInt16BE(2, 0);
  tag.writeUInt16BE(pathBytes.length, 2);
  const end = Buffer.from([0xff, 0xff, 0, 0]);
  return Buffer.concat([fixed, tag, padded, end]);
}

/** The chunk offsets of an stco box, all moved by `by`. */
function movedChunkOffsets(stco: Buffer, by: number): Buffer {
  const moved = Buffer.from(stco);
  const count = moved.readUInt32BE(12);
  for (let entry = 0; entry < count; entry++)
    moved.writeUInt32BE(moved.readUInt32BE(16 + entry * 4) + by, 16 + entry * 4);
  return moved;
}

/** See 'mp4-external-dref-url' and 'mp4-external-dref-alis'. */
async function externalReference(context: MakeContext, kind: 'url' | 'alis'): Promise<Buffer> {
  const target = context.target ?? join(context.work, 'companion');
  const plainPath = join(context.work, 'plain.m4a');
  await encodeChirp(44100, 1, ['-c:a', 'aac', '-b:a', '64k', '-movflags', '+faststart', '-f', 'ipod'])({
    ...context,
    path: plainPath,
  });
  const plain = await readFile(plainPath);
  const boxes = topLevelBoxes(plain);
  const ftyp = boxes.find((candidate) => candidate.type === 'ftyp');
  const moov = boxes.find((candidate) => candidate.type === 'moov');
  if (ftyp === undefined || moov === undefined) throw new Error('no ftyp or moov');
  // The companion (the file the reference names): the plain M4A with 4 KiB of free space after its moov, so
  // that every chunk offset lies past the end of the hostile file, which is about as long as the moov: read
  // from the hostile file itself, the offsets find nothing.
  const padding = 4096;
  const movedMoov = replaceBox(
    plain.subarray(moov.offset, moov.offset + moov.size),
    ['trak', 'mdia', 'minf', 'stbl', 'stco'],
    (stco) => movedChunkOffsets(stco, padding),
  );
  const rest = plain.subarray(moov.offset + moov.size);
  const ftypBytes = plain.subarray(ftyp.offset, ftyp.offset + ftyp.size);
  await writeFile(
    join(context.work, 'companion'),
    Buffer.concat([ftypBytes, movedMoov, box('free', Buffer.alloc(padding - 8)), rest]),
  );
  const entry =
    kind === 'url'
      ? // A full box: version 0, flags 0 (the data is NOT in this file), then the location, NUL-terminated.
        box('url ', Buffer.concat([Buffer.alloc(4), Buffer.from(`file://${target}\0`)]))
      : box('alis', Buffer.concat([Buffer.alloc(4), aliasRecord(target)]));
  const dref = box('dref', Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 1]), entry]));
  const hostileMoov = replaceBox(movedMoov, ['trak', 'mdia', 'minf', 'dinf', 'dref'], () => dref);
  const hostile = Buffer.concat([ftypBytes, hostileMoov]);
  if (hostile.length >= ftyp.size + moov.size + padding) throw new Error('the target path is too long');
  return hostile;
}

// ---------------------------------------------------------------------------------------------------------
// EBML (Matroska, WebM).

interface EbmlElement {
  readonly id: number;
  readonly offset: number;
  readonly sizeOffset: number;
  readonly sizeLength: number;
  /** undefined: the "unknown size" marker (every value bit set). */
  readonly size: number | undefined;
  readonly dataOffset: number;
}

const EBML_HEADER = 0x1a45dfa3;
const DOC_TYPE = 0x4282;
const SEGMENT = 0x18538067;
const CLUSTER = 0x1f43b675;
const SIMPLE_BLOCK = 0xa3;
const BLOCK_GROUP = 0xa0;
/** Elements that may follow a Cluster in a Segment: they end a Cluster of unknown size. */
const SEGMENT_CHILDREN = new Set([
  0x114d9b74,
  0x1549a966,
  0x1654ae6b,
  CLUSTER,
  0x1c53bb6b,
  0x1941a469,
  0x1043a770,
  0x1254c367,
]);

function readVint(
  bytes: Buffer,
  offset: number,
  keepMarker: boolean,
): { value: number; length: number; allOnes: boolean } {
  const first = bytes[offset] ?? 0;
  let length = 1;
  while (length <= 8 && (first & (0x80 >> (length - 1))) === 0) length++;
  if (length > 8) throw new Error(`bad EBML number at ${offset}`);
  let value = keepMarker ? first : first & (0xff >> length);
  let allOnes = value === 0xff >> length;
  for (let index = 1; index < length; index++) {
    const byte = bytes[offset + index] ?? 0;
    value = value * 256 + byte;
    allOnes &&= byte === 0xff;
  }
  return { value, length, allOnes };
}

function readElement(bytes: Buffer, offset: number): EbmlElement {
  const id = readVint(bytes, offset, true);
  const size = readVint(bytes, offset + id.length, false);
  return {
    id: id.value,
    offset,
    sizeOffset: offset + id.length,
    sizeLength: size.length,
    size: size.allOnes ? undefined : size.value,
    dataOffset: offset + id.length + size.length,
  };
}

/**
 * A walk over a Matroska/WebM file's top levels: its DocType, the Segment, the Clusters (of known or unknown
 * size: an unknown-size Cluster ends where a Segment-level element starts) and the blocks in them.
 */
export function ebmlLayout(bytes: Buffer): {
  docType: string;
  segment: EbmlElement;
  clusters: EbmlElement[];
  blocks: EbmlElement[];
} {
  const header = readElement(bytes, 0);
  if (header.id !== EBML_HEADER || header.size === undefined) throw new Error('no EBML header');
  let docType = '';
  for (let offset = header.dataOffset; offset < header.dataOffset + header.size;) {
    const child = readElement(bytes, offset);
    if (child.size === undefined) throw new Error('unknown size in the EBML header');
    if (child.id === DOC_TYPE) docType = bytes.toString('latin1', child.dataOffset, child.dataOffset + child.size);
    offset = child.dataOffset + child.size;
  }
  const segment = readElement(bytes, header.dataOffset + header.size);
  if (segment.id !== SEGMENT) throw new Error('no Segment after the EBML header');
  const segmentEnd =
    segment.size === undefined ? bytes.length : Math.min(bytes.length, segment.dataOffset + segment.size);
  const clusters: EbmlElement[] = [];
  const blocks: EbmlElement[] = [];
  for (let offset = segment.dataOffset; offset < segmentEnd;) {
    const child = readElement(bytes, offset);
    if (child.id !== CLUSTER) {
      if (child.size === undefined) throw new Error(`unknown size for element ${child.id.toString(16)}`);
      offset = child.dataOffset + child.size;
      continue;
    }
    clusters.push(child);
    const clusterEnd = child.size === undefined ? segmentEnd : child.dataOffset + child.size;
    offset = child.dataOffset;
    while (offset < clusterEnd) {
      const inner = readElement(bytes, offset);
      if (child.size === undefined && SEGMENT_CHILDREN.has(inner.id)) break;
      if (inner.size === undefined) throw new Error('unknown size inside a Cluster');
      if (inner.id === SIMPLE_BLOCK || inner.id === BLOCK_GROUP) blocks.push(inner);
      offset = inner.dataOffset + inner.size;
    }
  }
  return { docType, segment, clusters, blocks };
}

/** Every Cluster's header rewritten with an 8-byte unknown size (0x01FFFFFFFFFFFFFF), as Chrome writes. */
function withUnknownClusterSizes(bytes: Buffer): Buffer {
  const { clusters } = ebmlLayout(bytes);
  const parts: Buffer[] = [];
  let from = 0;
  for (const cluster of clusters) {
    parts.push(bytes.subarray(from, cluster.sizeOffset), Buffer.from('01ffffffffffffff', 'hex'));
    from = cluster.dataOffset;
  }
  parts.push(bytes.subarray(from));
  return Buffer.concat(parts);
}

/** Sizes that lie (see 'webm-lying-sizes'), each rewritten in place, in its own length. */
function withLyingSizes(bytes: Buffer): Buffer {
  const { clusters, blocks } = ebmlLayout(bytes);
  const lying = Buffer.from(bytes);
  // The largest size a field of this length can say (all ones but the last bit: all ones means "unknown").
  const writeLargest = (element: EbmlElement) => {
    const field = Buffer.alloc(element.sizeLength, 0xff);
    field[0] = (0xff >> element.sizeLength) | (0x80 >> (element.sizeLength - 1));
    field[element.sizeLength - 1] = 0xfe;
    field.copy(lying, element.sizeOffset);
  };
  for (const block of blocks) writeLargest(block);
  for (const cluster of clusters) writeLargest(cluster);
  return lying;
}

// ---------------------------------------------------------------------------------------------------------
// Probing what came out.

interface ProbedStream {
  readonly index: number;
  readonly codecType: string;
  readonly codecName: string;
  readonly sampleRate: number | undefined;
  readonly channels: number | undefined;
  /** Significant bits per sample, where the codec has them (PCM, FLAC, ALAC). */
  readonly bits: number | undefined;
  readonly duration: number | undefined;
  readonly bitRate: number | undefined;
  readonly attachedPicture: boolean;
}

export interface MediaProbe {
  /** ffprobe's format name, e.g. "mov,mp4,m4a,3gp,3g2,mj2", "ogg", "mp3", "flac". */
  readonly formatName: string;
  readonly duration: number | undefined;
  readonly bitRate: number | undefined;
  /** The container's tags, names in lower case. */
  readonly tags: Readonly<Record<string, string>>;
  readonly streams: readonly ProbedStream[];
  /** The first audio stream. */
  readonly audio: ProbedStream | undefined;
}

/** Runs `work` on a file holding `input` (a path is used as it is): ffprobe needs to seek, a pipe cannot. */
async function withFile<T>(input: Buffer | string, work: (path: string) => Promise<T>): Promise<T> {
  if (typeof input === 'string') return work(input);
  const path = join(kitDirectory(), `probe-${randomUUID()}`);
  await writeFile(path, input);
  try {
    return await work(path);
  } finally {
    await rm(path, { force: true });
  }
}

const numberOr = (value: unknown) => (value === undefined || value === 'N/A' ? undefined : Number(value));

/** ffprobe's view of a file: its container, duration, bit rate, tags and streams. */
export async function probe(input: Buffer | string): Promise<MediaProbe> {
  return withFile(input, async (path) => {
    const { stdout } = await run(FFPROBE, ['-v', 'error', '-show_format', '-show_streams', '-of', 'json', path], {
      maxBuffer: 64 * 1024 * 1024,
    });
    interface Json {
      format?: { format_name?: string; duration?: string; bit_rate?: string; tags?: Record<string, string> };
      streams?: Array<{
        index: number;
        codec_type?: string;
        codec_name?: string;
        sample_rate?: string;
        channels?: number;
        bits_per_sample?: number;
        bits_per_raw_sample?: string;
        duration?: string;
        bit_rate?: string;
        disposition?: { attached_pic?: number };
      }>;
    }
    const json = JSON.parse(stdout) as Json;
    const streams = (json.streams ?? []).map((stream): ProbedStream => ({
      index: stream.index,
      codecType: stream.codec_type ?? 'unknown',
      codecName: stream.codec_name ?? 'unknown',
      sampleRate: numberOr(stream.sample_rate),
      channels: stream.channels,
      bits: numberOr(stream.bits_per_raw_sample) ?? (stream.bits_per_sample || undefined),
      duration: numberOr(stream.duration),
      bitRate: numberOr(stream.bit_rate),
      attachedPicture: stream.disposition?.attached_pic === 1,
    }));
    return {
      formatName: json.format?.format_name ?? 'unknown',
      duration: numberOr(json.format?.duration),
      bitRate: numberOr(json.format?.bit_rate),
      tags: Object.fromEntries(
        Object.entries(json.format?.tags ?? {}).map(([name, value]) => [name.toLowerCase(), value]),
      ),
      streams,
      audio: streams.find((stream) => stream.codecType === 'audio' && !stream.attachedPicture),
    };
  });
}

export interface DecodedAudio {
  /** Decoded sample frames over the stream's own rate: what a player plays, priming and padding trimmed. */
  readonly seconds: number;
  readonly sampleRate: number;
  readonly channels: number;
  /** The first audio stream mixed to mono at `sampleRate`, as 16-bit samples. */
  readonly samples: Int16Array;
}

/**
 * Decodes the first audio stream from a file (from a pipe ffmpeg cannot apply an MP3's LAME padding or an
 * MP4's edit list) and counts what comes out; `resample` asks for another rate (e.g. 8000 for peaks).
 */
export async function decodeAudio(input: Buffer | string, resample?: number): Promise<DecodedAudio> {
  return withFile(input, async (path) => {
    const probed = await probe(path);
    const audio = probed.audio;
    if (audio?.sampleRate === undefined || audio.channels === undefined) throw new Error('no audio stream');
    const sampleRate = resample ?? audio.sampleRate;
    const pcm = await ffmpeg([
      ...['-i', path, '-map', `0:${audio.index}`, '-ac', '1'],
      ...(resample === undefined ? [] : ['-ar', String(resample)]),
      ...['-f', 's16le', '-c:a', 'pcm_s16le', 'pipe:1'],
    ]);
    const samples = new Int16Array(pcm.buffer, pcm.byteOffset, Math.floor(pcm.length / 2));
    return { seconds: samples.length / sampleRate, sampleRate, channels: audio.channels, samples: samples.slice() };
  });
}

/** The integrated loudness (EBU R128, LUFS) of the first audio stream, as ffmpeg's ebur128 filter measures it. */
export async function integratedLoudness(input: Buffer | string): Promise<number> {
  return withFile(input, async (path) => {
    const { stderr } = await run(
      FFMPEG,
      ['-nostdin', '-hide_banner', '-nostats', '-i', path, '-map', '0:a:0', '-af', 'ebur128', '-f', 'null', '-'],
      { maxBuffer: 64 * 1024 * 1024 },
    );
    // The summary comes last: "Integrated loudness:\n    I:         -23.0 LUFS".
    const value = /Integrated loudness:\s+I:\s+(-?[\d.]+|-inf) LUFS/.exec(stderr)?.[1];
    if (value === undefined) throw new Error(`no loudness in: ${stderr.slice(-500)}`);
    return value === '-inf' ? Number.NEGATIVE_INFINITY : Number(value);
  });
}

/** Waveform peaks as BBC audiowaveform computes them at 8 bits: min and max of each pixel's samples, / 256. */
export function referencePeaks(samples: Int16Array, samplesPerPixel: number): number[] {
  const data: number[] = [];
  for (let start = 0; start < samples.length; start += samplesPerPixel) {
    let min = 0;
    let max = 0;
    const end = Math.min(samples.length, start + samplesPerPixel);
    for (let index = start; index < end; index++) {
      const sample = samples[index] ?? 0;
      if (index === start || sample < min) min = sample;
      if (index === start || sample > max) max = sample;
    }
    data.push(Math.floor(min / 256), Math.floor(max / 256));
  }
  return data;
}

// ---------------------------------------------------------------------------------------------------------
// Uploading with output options.

export interface MediaUpload {
  /** Form fields sent before the file part, in this order (output options, title). */
  readonly before?: Record<string, string>;
  /** Form fields sent after the file part. */
  readonly after?: Record<string, string>;
  /** Query parameters besides user_id. */
  readonly query?: Record<string, string>;
  readonly filename?: string;
  readonly contentType?: string;
  /**
   * The connection: a new one for this request alone unless an agent is given. An early refusal leaves a
   * keep-alive connection with the rest of the body on it, and a test should not inherit another's.
   */
  readonly agent?: Agent;
}

/**
 * POSTs `bytes` as the form's `file` part, with fields before and after it as asked, authenticated with the
 * Bearer token. The form is written byte by byte so that the order of parts is the test's.
 */
export function uploadMedia(
  baseUrl: string,
  user: TestUser,
  bytes: Buffer,
  options: MediaUpload = {},
): Promise<HttpAnswer> {
  const boundary = `----media${randomUUID().replace(/-/g, '')}`;
  const fields = (record: Record<string, string> = {}) =>
    Object.entries(record).map(([name, data]): FormPart => ({ name, data }));
  const parts: FormPart[] = [
    ...fields(options.before),
    {
      name: 'file',
      filename: options.filename ?? 'recording',
      contentType: options.contentType ?? 'application/octet-stream',
      data: bytes,
    },
    ...fields(options.after),
  ];
  const query = new URLSearchParams({ user_id: user.user_id, ...options.query });
  return sendRequest(`${baseUrl}${PREFIX}/record/?${query.toString()}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${user.access_token}`,
      'content-type': `multipart/form-data; boundary=${boundary}`,
    },
    body: multipartBody(parts, boundary),
    agent: options.agent ?? false,
  });
}

/** The metadata of a record, as far as formats go (GET /records/{id}, or record_url asking for JSON). */
interface RecordJson {
  readonly record_id: string;
  readonly record_url: string;
  readonly title: string | null;
  readonly duration_seconds: number;
  readonly sample_rate: number;
  readonly channels: number;
  readonly bitrate_kbps: number;
  readonly size_bytes: number;
  readonly format: string;
  readonly mime_type: string;
  readonly source_format: string;
  readonly loudness_lufs?: number;
  readonly peaks_url: string;
}

/** Waveform peaks in BBC audiowaveform's JSON (version 2). */
export interface PeaksJson {
  readonly version: number;
  readonly channels: number;
  readonly sample_rate: number;
  readonly samples_per_pixel: number;
  readonly bits: number;
  readonly length: number;
  /** min, max of each pixel in turn. */
  readonly data: number[];
}

export interface StoredRecord {
  readonly recordId: string;
  readonly recordUrl: string;
  /** The audio as record_url serves it, and the headers it came with. */
  readonly audio: Buffer;
  readonly contentType: string | null;
  readonly disposition: string | null;
  readonly metadata: RecordJson;
  /** From GET /records/{id}/peaks, with the token. */
  readonly peaks: PeaksJson;
}

/** Reads a successful upload's answer and fetches what it stored: the audio, the metadata, the peaks. */
export async function fetchStored(baseUrl: string, user: TestUser, upload: HttpAnswer): Promise<StoredRecord> {
  if (upload.status !== 200) throw new Error(`upload: ${upload.status} ${upload.text}`);
  const recordUrl = (JSON.parse(upload.text) as { record_url: string }).record_url;
  const recordId = new URL(recordUrl).searchParams.get('record_id') ?? '';
  const download = await fetch(recordUrl);
  if (download.status !== 200) throw new Error(`download: ${download.status} ${await download.text()}`);
  const audio = Buffer.from(await download.arrayBuffer());
  const owned = async <T>(path: string): Promise<T> => {
    const response = await fetch(`${baseUrl}${PREFIX}/records/${recordId}${path}?user_id=${user.user_id}`, {
      headers: { authorization: `Bearer ${user.access_token}` },
    });
    const body = await response.text();
    if (response.status !== 200) throw new Error(`GET /records/${recordId}${path}: ${response.status} ${body}`);
    return JSON.parse(body) as T;
  };
  return {
    recordId,
    recordUrl,
    audio,
    contentType: download.headers.get('content-type'),
    disposition: download.headers.get('content-disposition'),
    metadata: await owned<RecordJson>(''),
    peaks: await owned<PeaksJson>('/peaks'),
  };
}
