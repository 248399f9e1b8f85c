import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AudioRejected,
  Busy,
  InsufficientStorage,
  InvalidInput,
  NotFound,
  QuotaExceeded,
  RateLimited,
  Unauthorized,
} from '../../src/domain/errors.js';
import type { ConvertedAudio, ConvertRequest } from '../../src/media/converter.js';
import { ConversionLimiter } from '../../src/media/limiter.js';
import { STORED_FORMATS, type OutputRequest, type StoredFormat } from '../../src/media/outputs.js';
import type { Peaks } from '../../src/media/peaks.js';
import type { RawOutputOptions } from '../../src/services/output-options.js';
import { Quota, type QuotaLimits } from '../../src/services/quota.js';
import { RecordLinkCache } from '../../src/services/record-link-cache.js';
import { RecordingService, type AudioSink, type UploadSource } from '../../src/services/recordings.js';
import { audioKey } from '../../src/services/stored-audio.js';
import { UploadCaps, type UploadCapLimits } from '../../src/services/upload-caps.js';
import { ScratchDirectory } from '../../src/storage/scratch.js';
import {
  FakeDatabase,
  FakeRecordRepository,
  foreignKeyViolation,
  InMemoryBlobStore,
  RecordingLogger,
} from './fakes.js';

const USER_ID = '11111111-1111-4111-8111-111111111111';
const USER = { id: USER_ID, tokenHash: 'hash' };
const UNLIMITED: QuotaLimits = { maxRecords: undefined, maxBytes: undefined };
/** No title in the query, no output options. */
const NONE = { output: {} };
/** Signed samples, so that a sign lost on the way to bytea and back shows. */
const PEAKS: Peaks = { sampleRate: 8000, samplesPerPixel: 160, data: Int8Array.from([-128, 127, -3, 4, 0, -1]) };

async function bytesOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * Stands in for the ffmpeg-backed Converter: `convert` reads the upload and writes `output` at the path it is
 * given (its spool file too); `retag` writes the stored bytes followed by `|title=<title>`; `peaksOf` reads
 * the stored bytes and answers PEAKS. Everything it is asked is kept.
 */
class FakeConverter {
  readonly received: Buffer[] = [];
  readonly outputPaths: string[] = [];
  readonly requests: ConvertRequest[] = [];
  readonly checked: OutputRequest[] = [];
  readonly retags: { stored: Buffer; format: StoredFormat; title: string | null; outputPath: string }[] = [];
  readonly peaksRequests: { stored: Buffer; format: StoredFormat }[] = [];
  output = Buffer.from('fake mp3 audio, 28 bytes long');
  /** When set, a partial output is written and this is thrown. */
  failure: Error | undefined;
  /** When set, `check` throws it. */
  checkFailure: Error | undefined;
  /** When set, `retag` writes a partial file and throws it. */
  retagFailure: Error | undefined;
  /** Runs while the conversion is under way (e.g. the account is deleted meanwhile). */
  during: (() => void | Promise<void>) | undefined;
  durationMs = 2000;

  check(request: OutputRequest): void {
    this.checked.push(request);
    if (this.checkFailure !== undefined) throw this.checkFailure;
  }

  async convert(upload: AsyncIterable<Buffer>, outputPath: string, request: ConvertRequest): Promise<ConvertedAudio> {
    this.outputPaths.push(outputPath);
    this.requests.push(request);
    for await (const chunk of upload) this.received.push(chunk);
    await this.during?.();
    await writeFile(request.spoolPath, 'spooled');
    if (this.failure !== undefined) {
      await writeFile(outputPath, 'partial');
      throw this.failure;
    }
    await writeFile(outputPath, this.output);
    return {
      format: STORED_FORMATS[request.output.format ?? 'mp3'],
      sourceFormat: 'wav',
      durationMs: this.durationMs,
      sampleRate: 44100,
      channels: 2,
      peaks: PEAKS,
      loudnessLufs: request.output.normalize === true ? -16.5 : undefined,
    };
  }

  async retag(stored: Readable, format: StoredFormat, title: string | null, outputPath: string): Promise<void> {
    const bytes = await bytesOf(stored);
    this.retags.push({ stored: bytes, format, title, outputPath });
    if (this.retagFailure !== undefined) {
      await writeFile(outputPath, 'partial');
      throw this.retagFailure;
    }
    await writeFile(outputPath, Buffer.concat([bytes, Buffer.from(`|title=${title}`)]));
  }

  async peaksOf(stored: Readable, format: StoredFormat): Promise<Peaks> {
    this.peaksRequests.push({ stored: await bytesOf(stored), format });
    return PEAKS;
  }
}

interface FormParts {
  file?: Buffer[];
  filename?: string;
  title?: string | null;
  /** Whether the title field comes before the file part (the conversion then knows it); after it by default. */
  titleFirst?: boolean;
  /** Output option fields, which the form only takes before the file part. */
  options?: RawOutputOptions;
  signal?: AbortSignal;
  address?: string;
}

/** An upload form: the file (in chunks) when there is one, the title field, the option fields. */
function form(parts: FormParts = {}) {
  const title = parts.title ?? null;
  const source = {
    receiveCalls: 0,
    signal: parts.signal ?? new AbortController().signal,
    clientAddress: parts.address ?? '203.0.113.1',
    async receive(sink: AudioSink) {
      source.receiveCalls += 1;
      if (parts.file !== undefined) {
        const chunks = parts.file;
        await sink(
          (async function* () {
            yield* chunks;
          })(),
          { filename: parts.filename, title: parts.titleFirst === true ? title : null, options: parts.options ?? {} },
        );
      }
      return { title };
    },
  } satisfies UploadSource & { receiveCalls: number };
  return source;
}

/** A real scratch folder whose free space the test decides. */
class TestScratch extends ScratchDirectory {
  free = Number.MAX_SAFE_INTEGER;

  override async freeBytes(): Promise<number> {
    return this.free;
  }
}

const scratchFolders: string[] = [];

afterEach(async () => {
  await Promise.all(scratchFolders.splice(0).map((folder) => rm(folder, { recursive: true, force: true })));
});

async function setup(
  options: {
    quota?: QuotaLimits;
    slots?: number;
    queue?: number;
    caps?: UploadCapLimits;
    minFreeDiskBytes?: number;
  } = {},
) {
  const db = new FakeDatabase();
  db.addUser(USER_ID);
  const records = new FakeRecordRepository(db);
  const blobs = new InMemoryBlobStore(db.journal);
  const folder = await mkdtemp(join(tmpdir(), 'recording-service-'));
  scratchFolders.push(folder);
  const scratch = new TestScratch(folder);
  const converter = new FakeConverter();
  const limiter = new ConversionLimiter(options.slots ?? 1, options.queue ?? 0);
  // One file job at a time and none queued: a slot that is not given back makes the next one Busy.
  const fileJobs = new ConversionLimiter(1, 0);
  const service = new RecordingService({
    records,
    blobs,
    scratch,
    converter,
    limiter,
    fileJobs,
    quota: new Quota(options.quota ?? UNLIMITED),
    caps: new UploadCaps(options.caps ?? { perUser: 100, perAddress: 100 }),
    minFreeDiskBytes: options.minFreeDiskBytes ?? 0,
    freeDiskBytes: () => scratch.freeBytes(),
    linkCache: new RecordLinkCache(),
  });
  return { db, records, blobs, scratch, converter, limiter, fileJobs, service, folder };
}

const wavChunks = [Buffer.from('RIFF....WAVE'), Buffer.from('fmt and data')];

describe('RecordingService.upload', () => {
  it('converts, stores the audio, then inserts the row, leaving no scratch file', async () => {
    const { db, records, blobs, converter, service, folder } = await setup();
    const row = await service.upload(USER, form({ file: wavChunks, filename: 'C:\\Music\\take 1.wav' }), NONE);

    expect(Buffer.concat(converter.received)).toEqual(Buffer.concat(wavChunks));
    expect(dirname(converter.outputPaths[0] ?? '')).toBe(folder);
    expect(row).toMatchObject({
      userId: USER_ID,
      title: null,
      originalFilename: 'take 1.wav',
      durationMs: 2000,
      sampleRate: 44100,
      channels: 2,
      format: 'mp3',
      mimeType: 'audio/mpeg',
      sizeBytes: converter.output.length,
      bitrate: Math.round((converter.output.length * 8 * 1000) / 2000),
      sourceFormat: 'wav',
      loudnessLufs: null,
    });
    expect(row.recordId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(blobs.blobs.get(audioKey(row))?.bytes).toEqual(converter.output);
    expect(db.journal).toEqual([`blob.put ${audioKey(row)}`, `row.insert ${row.recordId}`]);
    expect(records.calls).toContain('insert');
    // The peaks the conversion computed go in with the row, byte for byte.
    const peaks = db.peaks.get(row.recordId);
    expect(peaks).toMatchObject({ sampleRate: 8000, samplesPerPixel: 160 });
    expect(Array.from(peaks?.data ?? [])).toEqual([0x80, 0x7f, 0xfd, 0x04, 0x00, 0xff]);
    // No title known, no options, and a spool path of its own in the scratch folder.
    const [request] = converter.requests;
    expect(request?.title).toBeNull();
    expect(request?.output).toEqual({
      format: undefined,
      quality: undefined,
      bitrateKbps: undefined,
      channels: undefined,
      sampleRate: undefined,
      normalize: undefined,
    });
    expect(dirname(request?.spoolPath ?? '')).toBe(folder);
    expect(request?.spoolPath).not.toBe(converter.outputPaths[0]);
    expect(converter.retags).toEqual([]);
    expect(await readdir(folder)).toEqual([]);
  });

  it('takes the title from the form over the one in the query', async () => {
    const { service } = await setup();
    expect(
      (await service.upload(USER, form({ file: wavChunks, title: 'Form' }), { title: 'Query', output: {} })).title,
    ).toBe('Form');
    expect((await service.upload(USER, form({ file: wavChunks }), { title: '  Query  ', output: {} })).title).toBe(
      'Query',
    );
  });

  it('refuses a bad query title before reading anything', async () => {
    const { records, service } = await setup();
    const source = form({ file: wavChunks });
    await expect(service.upload(USER, source, { title: 'a\u0000b', output: {} })).rejects.toBeInstanceOf(InvalidInput);
    expect(source.receiveCalls).toBe(0);
    expect(records.calls).toEqual([]);
  });

  it('with a quota, the insert goes through the admitting transaction', async () => {
    const { records, service } = await setup({ quota: { maxRecords: 10, maxBytes: 10_000 } });
    await service.upload(USER, form({ file: wavChunks }), NONE);
    expect(records.calls).toEqual(['usageOf', 'insertAdmitted']);
  });

  it('a user whose quota is full is refused before the body is read', async () => {
    const { db, blobs, converter, limiter, service } = await setup({ quota: { maxRecords: 1, maxBytes: undefined } });
    db.addRecord(USER_ID, 'aa000000-0000-4000-8000-000000000001');
    const source = form({ file: wavChunks });
    await expect(service.upload(USER, source, NONE)).rejects.toBeInstanceOf(QuotaExceeded);
    expect(source.receiveCalls).toBe(0);
    expect(converter.outputPaths).toEqual([]);
    expect(blobs.blobs.size).toBe(0);
    // No conversion slot was taken.
    expect(() => limiter.refuseIfFull()).not.toThrow();
  });

  it('a recording that does not fit at the insert is refused and its stored audio deleted', async () => {
    const { db, blobs, service, folder } = await setup({ quota: { maxRecords: undefined, maxBytes: 10 } });
    await expect(service.upload(USER, form({ file: wavChunks }), NONE)).rejects.toBeInstanceOf(QuotaExceeded);
    expect(db.records).toEqual([]);
    expect(blobs.blobs.size).toBe(0);
    expect(db.journal.map((line) => line.split(' ')[0])).toEqual(['blob.put', 'blob.delete']);
    expect(await readdir(folder)).toEqual([]);
  });

  it.each([
    ['without a quota', UNLIMITED],
    ['with a quota', { maxRecords: 5, maxBytes: 1_000_000 }],
  ])('an account deleted during the conversion (foreign key) is Unauthorized, %s', async (_name, quota) => {
    const { db, blobs, converter, service } = await setup({ quota });
    converter.during = () => {
      db.users.delete(USER_ID);
    };
    await expect(service.upload(USER, form({ file: wavChunks }), NONE)).rejects.toBeInstanceOf(Unauthorized);
    expect(db.records).toEqual([]);
    expect(blobs.blobs.size).toBe(0);
    expect(db.journal.map((line) => line.split(' ')[0])).toEqual(['blob.put', 'blob.delete']);
  });

  it('a foreign-key error wrapped by the query builder is recognised through its cause', async () => {
    const { records, blobs, service } = await setup();
    records.insertFailure = new Error('Failed query: insert into "records" …', { cause: foreignKeyViolation() });
    await expect(service.upload(USER, form({ file: wavChunks }), NONE)).rejects.toBeInstanceOf(Unauthorized);
    expect(blobs.blobs.size).toBe(0);
  });

  it('any other insert failure is rethrown as it is, after deleting the stored audio', async () => {
    const { records, blobs, service } = await setup();
    const failure = Object.assign(new Error('duplicate key value violates unique constraint'), { code: '23505' });
    records.insertFailure = failure;
    await expect(service.upload(USER, form({ file: wavChunks }), NONE)).rejects.toBe(failure);
    expect(blobs.blobs.size).toBe(0);
  });

  it('a form without a file is InvalidInput, with nothing stored and the slot released', async () => {
    const { db, blobs, converter, limiter, service, folder } = await setup();
    await expect(service.upload(USER, form({ title: 'no file' }), NONE)).rejects.toThrow(
      new InvalidInput('The form has no "file" part with the recording.'),
    );
    expect(converter.outputPaths).toEqual([]);
    expect(blobs.blobs.size).toBe(0);
    expect(db.records).toEqual([]);
    expect(await readdir(folder)).toEqual([]);
    expect(() => limiter.refuseIfFull()).not.toThrow();
  });

  it('a failed conversion stores nothing, removes its scratch file and releases the slot', async () => {
    const { db, blobs, converter, limiter, service, folder } = await setup();
    const failure = new AudioRejected('undecodable', 'The audio in this WAV could not be decoded.');
    converter.failure = failure;
    await expect(service.upload(USER, form({ file: wavChunks }), NONE)).rejects.toBe(failure);
    expect(converter.outputPaths).toHaveLength(1);
    expect(await readdir(folder)).toEqual([]);
    expect(blobs.blobs.size).toBe(0);
    expect(db.journal).toEqual([]);
    expect(() => limiter.refuseIfFull()).not.toThrow();
    // And the next upload gets the slot.
    converter.failure = undefined;
    await expect(service.upload(USER, form({ file: wavChunks }), NONE)).resolves.toBeDefined();
  });

  it('is Busy before anything else when every slot and queue place is taken', async () => {
    const { records, limiter, service } = await setup({ slots: 1, queue: 0 });
    const held = await limiter.acquire();
    const source = form({ file: wavChunks });
    await expect(service.upload(USER, source, NONE)).rejects.toBeInstanceOf(Busy);
    expect(() => service.refuseIfBusy()).toThrow(Busy);
    expect(source.receiveCalls).toBe(0);
    expect(records.calls).toEqual([]);
    held.end();
    expect(() => service.refuseIfBusy()).not.toThrow();
  });

  it('an upload whose client leaves while it is queued gives up its place without reading the body', async () => {
    const { blobs, limiter, service } = await setup({ slots: 1, queue: 1 });
    const held = await limiter.acquire();
    const controller = new AbortController();
    const source = form({ file: wavChunks, signal: controller.signal });
    const upload = service.upload(USER, source, NONE);
    await new Promise((resolve) => setImmediate(resolve));
    expect(() => limiter.refuseIfFull()).toThrow(Busy);
    const reason = new InvalidInput('The client closed the connection before its upload started.');
    controller.abort(reason);
    await expect(upload).rejects.toBe(reason);
    expect(source.receiveCalls).toBe(0);
    expect(blobs.blobs.size).toBe(0);
    expect(() => limiter.refuseIfFull()).not.toThrow();
    held.end();
  });
});

/**
 * Holds the next `count` puts until `open()`; `reached` resolves once they have all started, i.e. once
 * those uploads have converted and are committing.
 */
function holdPuts(blobs: InMemoryBlobStore, count: number) {
  const put = blobs.put.bind(blobs);
  let gate!: () => void;
  const opened = new Promise<void>((resolve) => (gate = resolve));
  let arrived!: () => void;
  const reached = new Promise<void>((resolve) => (arrived = resolve));
  let held = 0;
  blobs.put = async (key, source) => {
    if (held < count) {
      held += 1;
      if (held === count) arrived();
      await opened;
    }
    return put(key, source);
  };
  return { reached, open: () => gate() };
}

describe('RecordingService.upload: the slot ends with the encoder, the place with the commit', () => {
  it('the next upload converts while the previous one is still being stored', async () => {
    const { blobs, db, converter, limiter, service, folder } = await setup({ slots: 1, queue: 1 });
    const puts = holdPuts(blobs, 1);
    const first = service.upload(USER, form({ file: wavChunks }), NONE);
    await puts.reached;
    // The first upload is committing and holds no slot: the second converts and is stored meanwhile.
    const second = await service.upload(USER, form({ file: wavChunks }), NONE);
    expect(converter.outputPaths).toHaveLength(2);
    expect(db.journal.filter((entry) => entry.startsWith('row.insert'))).toEqual([`row.insert ${second.recordId}`]);
    puts.open();
    await first;
    expect(await readdir(folder)).toEqual([]);
    expect(() => limiter.refuseIfFull()).not.toThrow();
  });

  it('uploads that are committing keep their places: a full house is refused before its body is read', async () => {
    const { blobs, limiter, service, folder } = await setup({ slots: 1, queue: 1 });
    const puts = holdPuts(blobs, 2);
    const uploads = [1, 2].map(() => service.upload(USER, form({ file: wavChunks }), NONE));
    await puts.reached;
    // No encoder runs, but both places are taken by commits.
    const third = form({ file: wavChunks });
    await expect(service.upload(USER, third, NONE)).rejects.toBeInstanceOf(Busy);
    expect(third.receiveCalls).toBe(0);
    puts.open();
    await Promise.all(uploads);
    expect(blobs.blobs.size).toBe(2);
    expect(await readdir(folder)).toEqual([]);
    expect(() => limiter.refuseIfFull()).not.toThrow();
  });

  it('a client that leaves while its upload commits: the upload is stored, its place then given back', async () => {
    const { blobs, db, limiter, service, folder } = await setup({ slots: 1, queue: 0 });
    const puts = holdPuts(blobs, 1);
    const controller = new AbortController();
    const upload = service.upload(USER, form({ file: wavChunks, signal: controller.signal }), NONE);
    await puts.reached;
    controller.abort(new InvalidInput('The client closed the connection before its upload started.'));
    expect(() => limiter.refuseIfFull()).toThrow(Busy);
    puts.open();
    const record = await upload;
    expect(db.journal).toContain(`row.insert ${record.recordId}`);
    expect(await readdir(folder)).toEqual([]);
    expect(() => limiter.refuseIfFull()).not.toThrow();
  });

  it('a commit that fails leaves no file or row behind and gives its place back', async () => {
    const { blobs, db, records, limiter, service, folder } = await setup({ slots: 1, queue: 1 });
    const puts = holdPuts(blobs, 1);
    const failing = service.upload(USER, form({ file: wavChunks }), NONE);
    await puts.reached;
    // Converted and stored while the first one commits; then the first one's insert fails.
    const stored = await service.upload(USER, form({ file: wavChunks }), NONE);
    records.insertFailure = new Error('database went away');
    puts.open();
    await expect(failing).rejects.toThrow('database went away');
    expect([...blobs.blobs.keys()]).toEqual([audioKey(stored)]);
    expect(db.journal.filter((entry) => entry.startsWith('row.insert'))).toEqual([`row.insert ${stored.recordId}`]);
    expect(await readdir(folder)).toEqual([]);
    expect(() => limiter.refuseIfFull()).not.toThrow();
  });
});

describe('RecordingService.upload: disk, caps and storage failures', () => {
  it('refuses when the scratch disk is nearly full, before reading the body or taking a slot', async () => {
    const { scratch, converter, limiter, service } = await setup({ minFreeDiskBytes: 1000 });
    scratch.free = 999;
    const source = form({ file: wavChunks });
    await expect(service.upload(USER, source, NONE)).rejects.toBeInstanceOf(InsufficientStorage);
    expect(source.receiveCalls).toBe(0);
    expect(converter.outputPaths).toEqual([]);
    expect(() => limiter.refuseIfFull()).not.toThrow();
    scratch.free = 1000;
    await expect(service.upload(USER, form({ file: wavChunks }), NONE)).resolves.toBeDefined();
  });

  it('caps the uploads one user, and one address, have under way; the cap ends with the upload', async () => {
    const { db, converter, service } = await setup({ slots: 4, caps: { perUser: 1, perAddress: 2 } });
    const other = '44444444-4444-4444-8444-444444444444';
    const third = '55555555-5555-4555-8555-555555555555';
    db.addUser(other);
    db.addUser(third);
    const gates: Array<() => void> = [];
    converter.during = () => new Promise<void>((resolve) => gates.push(resolve));
    const first = service.upload(USER, form({ file: wavChunks, address: '198.51.100.1' }), NONE);
    await new Promise((resolve) => setImmediate(resolve));

    const sameUser = form({ file: wavChunks, address: '198.51.100.2' });
    const refused = await service.upload(USER, sameUser, NONE).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(RateLimited);
    expect((refused as RateLimited).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(sameUser.receiveCalls).toBe(0);

    // Another user from the same address fits under the address cap of two; a third user there does not.
    const second = service.upload(
      { id: other, tokenHash: 'x' },
      form({ file: wavChunks, address: '198.51.100.1' }),
      NONE,
    );
    await new Promise((resolve) => setImmediate(resolve));
    await expect(
      service.upload({ id: third, tokenHash: 'x' }, form({ file: wavChunks, address: '198.51.100.1' }), NONE),
    ).rejects.toBeInstanceOf(RateLimited);

    for (const open of gates.splice(0)) open();
    await Promise.all([first, second]);
    converter.during = undefined;
    // Every count was given back.
    await expect(service.upload(USER, form({ file: wavChunks, address: '198.51.100.1' }), NONE)).resolves.toBeDefined();
    await expect(
      service.upload({ id: third, tokenHash: 'x' }, form({ file: wavChunks, address: '198.51.100.1' }), NONE),
    ).resolves.toBeDefined();
  });

  it('gives the cap back after a failed upload too', async () => {
    const { converter, service } = await setup({ caps: { perUser: 1, perAddress: 1 } });
    converter.failure = new AudioRejected('undecodable', 'no');
    await expect(service.upload(USER, form({ file: wavChunks }), NONE)).rejects.toBeInstanceOf(AudioRejected);
    await expect(service.upload(USER, form({}), NONE)).rejects.toBeInstanceOf(InvalidInput);
    converter.failure = undefined;
    await expect(service.upload(USER, form({ file: wavChunks }), NONE)).resolves.toBeDefined();
  });

  it('a disk that fills up while storing is InsufficientStorage, with nothing left behind', async () => {
    const { db, blobs, service, folder } = await setup();
    blobs.putFailure = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    await expect(service.upload(USER, form({ file: wavChunks }), NONE)).rejects.toBeInstanceOf(InsufficientStorage);
    expect(blobs.blobs.size).toBe(0);
    expect(db.records).toEqual([]);
    expect(await readdir(folder)).toEqual([]);
  });

  it('any other failure to store is rethrown as it is', async () => {
    const { blobs, service } = await setup();
    const failure = Object.assign(new Error('EIO'), { code: 'EIO' });
    blobs.putFailure = failure;
    await expect(service.upload(USER, form({ file: wavChunks }), NONE)).rejects.toBe(failure);
  });

  it('keeps the stored audio when the database connection is lost at the insert (the row may exist)', async () => {
    const { records, blobs, service } = await setup();
    const lost = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    records.insertFailure = lost;
    await expect(service.upload(USER, form({ file: wavChunks }), NONE)).rejects.toBe(lost);
    expect(blobs.blobs.size).toBe(1);
  });

  it('removes the stored audio when the database refused the connection (nothing was sent)', async () => {
    const { records, blobs, service } = await setup();
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    records.insertFailure = refused;
    await expect(service.upload(USER, form({ file: wavChunks }), NONE)).rejects.toBe(refused);
    expect(blobs.blobs.size).toBe(0);
  });

  it.each([0, 2 ** 31])('a duration of %i ms cannot be stored: undecodable, and the audio is removed', async (ms) => {
    const { db, blobs, converter, service } = await setup();
    converter.durationMs = ms;
    const error = await service.upload(USER, form({ file: wavChunks }), NONE).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AudioRejected);
    expect((error as AudioRejected).reason).toBe('undecodable');
    expect(blobs.blobs.size).toBe(0);
    expect(db.records).toEqual([]);
  });
});

describe('RecordingService.delete', () => {
  async function withRecord() {
    const context = await setup();
    const row = await context.service.upload(USER, form({ file: wavChunks }), NONE);
    context.db.journal.length = 0;
    return { ...context, row };
  }

  it('removes the row, then the audio', async () => {
    const { db, blobs, service, row } = await withRecord();
    const log = new RecordingLogger();
    await service.delete(USER, row.recordId, log);
    expect(db.journal).toEqual([`row.delete ${row.recordId}`, `blob.delete ${audioKey(row)}`]);
    expect(db.records).toEqual([]);
    expect(blobs.blobs.size).toBe(0);
    expect(log.entries).toEqual([]);
  });

  it("another user's record, or none, is NotFound and nothing is removed", async () => {
    const { db, blobs, service, row } = await withRecord();
    const stranger = { id: '22222222-2222-4222-8222-222222222222', tokenHash: 'x' };
    await expect(service.delete(stranger, row.recordId, new RecordingLogger())).rejects.toBeInstanceOf(NotFound);
    await expect(
      service.delete(USER, '33333333-3333-4333-8333-333333333333', new RecordingLogger()),
    ).rejects.toBeInstanceOf(NotFound);
    expect(db.journal).toEqual([]);
    expect(blobs.blobs.size).toBe(1);
  });

  it('audio that cannot be removed is logged as a warning; the delete still succeeds', async () => {
    const { db, blobs, service, row } = await withRecord();
    blobs.deleteFailure = new Error('EIO');
    const log = new RecordingLogger();
    await expect(service.delete(USER, row.recordId, log)).resolves.toBeUndefined();
    expect(db.records).toEqual([]);
    expect(log.at('warn')).toEqual([
      {
        level: 'warn',
        details: { err: blobs.deleteFailure, recordId: row.recordId },
        message: 'could not remove the audio of a deleted record; the storage check will',
      },
    ]);
  });
});

describe('RecordingService.openAudio', () => {
  it('opens the stored audio of a record', async () => {
    const { converter, service } = await setup();
    const row = await service.upload(USER, form({ file: wavChunks }), NONE);
    const opened = await service.openAudio(row, new RecordingLogger());
    expect(opened.sizeBytes).toBe(converter.output.length);
    const chunks: Buffer[] = [];
    for await (const chunk of opened.stream()) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks)).toEqual(converter.output);
  });

  it('a row whose audio is missing is NotFound, and logged as an error', async () => {
    const { blobs, service } = await setup();
    const row = await service.upload(USER, form({ file: wavChunks }), NONE);
    blobs.blobs.clear();
    const log = new RecordingLogger();
    await expect(service.openAudio(row, log)).rejects.toBeInstanceOf(NotFound);
    expect(log.at('error')).toEqual([
      { level: 'error', details: { recordId: row.recordId }, message: 'record row without its audio file' },
    ]);
  });

  it('audio deleted together with its row since the lookup is NotFound without an error', async () => {
    const { service } = await setup();
    const row = await service.upload(USER, form({ file: wavChunks }), NONE);
    await service.delete(USER, row.recordId, new RecordingLogger());
    const log = new RecordingLogger();
    await expect(service.openAudio(row, log)).rejects.toBeInstanceOf(NotFound);
    expect(log.entries).toEqual([]);
  });

  it('a record another replica deleted is NotFound once its audio is gone, though its link is remembered', async () => {
    const { db, blobs, service } = await setup();
    const row = await service.upload(USER, form({ file: wavChunks }), NONE);
    await service.findByLink(row.recordId, USER_ID);
    // Another process deletes row and audio: this one's memory still has the row, for a few seconds.
    db.records.splice(0);
    blobs.blobs.clear();
    const remembered = await service.findByLink(row.recordId, USER_ID);
    const log = new RecordingLogger();
    await expect(service.openAudio(remembered, log)).rejects.toBeInstanceOf(NotFound);
    expect(log.entries).toEqual([]);
    // And it is forgotten: the next lookup asks the database.
    await expect(service.findByLink(row.recordId, USER_ID)).rejects.toBeInstanceOf(NotFound);
  });
});

describe('RecordingService: list, get, rename', () => {
  it('pages with an opaque cursor', async () => {
    const { service } = await setup();
    const uploaded = [];
    for (let i = 0; i < 3; i++) uploaded.push(await service.upload(USER, form({ file: wavChunks }), NONE));
    const first = await service.list(USER, { limit: 2, cursor: undefined, titleContains: undefined });
    expect(first.records.map((row) => row.id)).toEqual([uploaded[2]?.id, uploaded[1]?.id]);
    expect(first.nextCursor).not.toBeNull();
    const second = await service.list(USER, { limit: 2, cursor: first.nextCursor ?? '', titleContains: undefined });
    expect(second.records.map((row) => row.id)).toEqual([uploaded[0]?.id]);
    expect(second.nextCursor).toBeNull();
  });

  it('a cursor it did not give out is InvalidInput, before any query', async () => {
    const { records, service } = await setup();
    await expect(
      service.list(USER, { limit: 2, cursor: 'bm90IGEgY3Vyc29y', titleContains: undefined }),
    ).rejects.toBeInstanceOf(InvalidInput);
    expect(records.calls).toEqual([]);
  });

  it('a blank title filter is no filter; others are trimmed and normalised', async () => {
    const { records, service } = await setup();
    await service.list(USER, { limit: 5, cursor: undefined, titleContains: '   ' });
    expect(records.lastListOptions?.titleContains).toBeUndefined();
    await service.list(USER, { limit: 5, cursor: undefined, titleContains: ' Cafe\u0301 ' });
    expect(records.lastListOptions?.titleContains).toBe('Caf\u00e9');
  });

  it("get and rename see only the user's own records", async () => {
    const { service } = await setup();
    const row = await service.upload(USER, form({ file: wavChunks }), NONE);
    const stranger = { id: '22222222-2222-4222-8222-222222222222', tokenHash: 'x' };
    await expect(service.get(USER, row.recordId)).resolves.toMatchObject({ recordId: row.recordId });
    await expect(service.get(stranger, row.recordId)).rejects.toBeInstanceOf(NotFound);
    await expect(service.rename(stranger, row.recordId, 'x')).rejects.toBeInstanceOf(NotFound);
    expect((await service.rename(USER, row.recordId, '  New  ')).title).toBe('New');
    expect((await service.rename(USER, row.recordId, '   ')).title).toBeNull();
    expect((await service.rename(USER, row.recordId, null)).title).toBeNull();
    await expect(service.rename(USER, row.recordId, 'x'.repeat(201))).rejects.toBeInstanceOf(InvalidInput);
  });
});

describe('RecordingService.upload: the title in the file', () => {
  it('a title sent before the file goes into the conversion: no second pass', async () => {
    const { blobs, converter, service, folder } = await setup();
    const row = await service.upload(USER, form({ file: wavChunks, title: 'Early', titleFirst: true }), NONE);
    expect(converter.requests[0]?.title).toBe('Early');
    expect(converter.retags).toEqual([]);
    expect(row.title).toBe('Early');
    expect(blobs.blobs.get(audioKey(row))?.bytes).toEqual(converter.output);
    expect(await readdir(folder)).toEqual([]);
  });

  it("the query's title goes into the conversion when the form has none before the file", async () => {
    const { converter, service } = await setup();
    const row = await service.upload(USER, form({ file: wavChunks }), { title: ' From query ', output: {} });
    expect(converter.requests[0]?.title).toBe('From query');
    expect(converter.retags).toEqual([]);
    expect(row.title).toBe('From query');
  });

  it('a title after the file is written by a retag into a second scratch file, which is what gets stored', async () => {
    const { db, blobs, converter, service, folder } = await setup();
    const row = await service.upload(USER, form({ file: wavChunks, title: 'Late' }), { title: 'Query', output: {} });
    // The conversion only knew the query's title.
    expect(converter.requests[0]?.title).toBe('Query');
    expect(converter.retags).toHaveLength(1);
    const [retag] = converter.retags;
    expect(retag?.stored).toEqual(converter.output);
    expect(retag?.format).toBe(STORED_FORMATS.mp3);
    expect(retag?.title).toBe('Late');
    expect(dirname(retag?.outputPath ?? '')).toBe(folder);
    expect(retag?.outputPath).not.toBe(converter.outputPaths[0]);
    expect(retag?.outputPath).not.toBe(converter.requests[0]?.spoolPath);
    const retagged = Buffer.concat([converter.output, Buffer.from('|title=Late')]);
    expect(blobs.blobs.get(audioKey(row))?.bytes).toEqual(retagged);
    expect(row).toMatchObject({ title: 'Late', sizeBytes: retagged.length });
    expect(db.journal).toEqual([`blob.put ${audioKey(row)}`, `row.insert ${row.recordId}`]);
    expect(await readdir(folder)).toEqual([]);
  });

  it('retags the format that was converted to', async () => {
    const { converter, service } = await setup();
    await service.upload(USER, form({ file: wavChunks, title: 'Late', options: { format: 'flac' } }), NONE);
    expect(converter.retags[0]?.format).toBe(STORED_FORMATS.flac);
  });

  it('a title after the file that the conversion already had needs no retag', async () => {
    const { converter, service } = await setup();
    const row = await service.upload(USER, form({ file: wavChunks, title: 'Same' }), { title: 'Same', output: {} });
    expect(converter.retags).toEqual([]);
    expect(row.title).toBe('Same');
  });

  it('a failed retag stores nothing and leaves no scratch file', async () => {
    const { db, blobs, converter, limiter, service, folder } = await setup();
    const failure = new Error('ffmpeg died');
    converter.retagFailure = failure;
    await expect(service.upload(USER, form({ file: wavChunks, title: 'Late' }), NONE)).rejects.toBe(failure);
    expect(blobs.blobs.size).toBe(0);
    expect(db.records).toEqual([]);
    expect(db.peaks.size).toBe(0);
    expect(await readdir(folder)).toEqual([]);
    expect(() => limiter.refuseIfFull()).not.toThrow();
  });
});

describe('RecordingService.upload: output options', () => {
  it('options from form fields win over the same options in the query; the others still apply', async () => {
    const { converter, service } = await setup();
    const row = await service.upload(
      USER,
      form({ file: wavChunks, options: { format: 'opus', sample_rate: '48000' } }),
      { output: { format: 'flac', channels: '1', normalize: 'true' } },
    );
    expect(converter.requests[0]?.output).toEqual({
      format: 'opus',
      quality: undefined,
      bitrateKbps: undefined,
      channels: 1,
      sampleRate: 48000,
      normalize: true,
    });
    // Only the query's options were known before the body.
    expect(converter.checked).toEqual([
      {
        format: 'flac',
        quality: undefined,
        bitrateKbps: undefined,
        channels: 1,
        sampleRate: undefined,
        normalize: true,
      },
    ]);
    expect(row).toMatchObject({ format: 'opus', mimeType: 'audio/ogg', loudnessLufs: -16.5 });
  });

  it('the converted format names the stored blob and the row', async () => {
    const { blobs, service } = await setup();
    const row = await service.upload(USER, form({ file: wavChunks }), { output: { format: 'm4a' } });
    expect(row).toMatchObject({ format: 'm4a', mimeType: 'audio/mp4' });
    expect(audioKey(row)).toMatch(/\.m4a$/);
    expect(blobs.blobs.has(audioKey(row))).toBe(true);
  });

  it('a malformed query option is refused before the body is read or anything else is asked', async () => {
    const { records, converter, limiter, service } = await setup({ quota: { maxRecords: 10, maxBytes: undefined } });
    const source = form({ file: wavChunks });
    await expect(service.upload(USER, source, { output: { bitrate: '12.5' } })).rejects.toBeInstanceOf(InvalidInput);
    expect(source.receiveCalls).toBe(0);
    expect(converter.checked).toEqual([]);
    expect(records.calls).toEqual([]);
    expect(() => limiter.refuseIfFull()).not.toThrow();
  });

  it('an option the format cannot do (the converter refuses it) is refused before the body is read', async () => {
    const { records, converter, limiter, service } = await setup({
      quota: { maxRecords: 10, maxBytes: undefined },
      caps: { perUser: 1, perAddress: 1 },
    });
    const refusal = new InvalidInput('flac is lossless: it takes no bitrate.');
    converter.checkFailure = refusal;
    const source = form({ file: wavChunks });
    await expect(service.upload(USER, source, { output: { format: 'flac', bitrate: '128' } })).rejects.toBe(refusal);
    expect(converter.checked).toEqual([expect.objectContaining({ format: 'flac', bitrateKbps: 128 })]);
    expect(source.receiveCalls).toBe(0);
    expect(converter.requests).toEqual([]);
    // Refused before the quota lookup, a conversion slot or an upload count.
    expect(records.calls).toEqual([]);
    expect(() => limiter.refuseIfFull()).not.toThrow();
    converter.checkFailure = undefined;
    await expect(service.upload(USER, form({ file: wavChunks }), NONE)).resolves.toBeDefined();
  });

  it('a malformed form option is InvalidInput, with nothing converted or stored', async () => {
    const { db, blobs, converter, limiter, service, folder } = await setup();
    await expect(
      service.upload(USER, form({ file: wavChunks, options: { channels: '3' } }), NONE),
    ).rejects.toBeInstanceOf(InvalidInput);
    expect(converter.requests).toEqual([]);
    expect(blobs.blobs.size).toBe(0);
    expect(db.records).toEqual([]);
    expect(await readdir(folder)).toEqual([]);
    expect(() => limiter.refuseIfFull()).not.toThrow();
  });

  it('an empty form field leaves the query option in force, as a blank title field does', async () => {
    const { converter, service } = await setup();
    await service.upload(USER, form({ file: wavChunks, options: { format: '' } }), { output: { format: 'opus' } });
    expect(converter.requests[0]?.output.format).toBe('opus');
  });
});

describe('RecordingService.rename', () => {
  async function withRecord(options: { title?: string; output?: RawOutputOptions } = {}) {
    const context = await setup();
    const row = await context.service.upload(USER, form({ file: wavChunks, title: options.title, titleFirst: true }), {
      output: options.output ?? {},
    });
    context.db.journal.length = 0;
    context.records.calls.length = 0;
    const original = context.blobs.blobs.get(audioKey(row))?.bytes ?? Buffer.alloc(0);
    return { ...context, row, original };
  }

  it("rewrites the stored file's tag and stores it over the old file, then renames the row", async () => {
    const { db, blobs, converter, fileJobs, service, folder, row, original } = await withRecord({ title: 'Old' });
    const renamed = await service.rename(USER, row.recordId, '  New  ');
    expect(renamed.title).toBe('New');
    expect(converter.retags).toEqual([
      { stored: original, format: STORED_FORMATS.mp3, title: 'New', outputPath: expect.any(String) as string },
    ]);
    expect(dirname(converter.retags[0]?.outputPath ?? '')).toBe(folder);
    expect(blobs.blobs.get(audioKey(row))?.bytes).toEqual(Buffer.concat([original, Buffer.from('|title=New')]));
    expect(db.journal).toEqual([`blob.put ${audioKey(row)}`, `row.rename ${row.recordId}`]);
    expect(await readdir(folder)).toEqual([]);
    expect(() => fileJobs.refuseIfFull()).not.toThrow();
  });

  it('removing the title rewrites the file without one', async () => {
    const { converter, service, row } = await withRecord({ title: 'Old' });
    expect((await service.rename(USER, row.recordId, null)).title).toBeNull();
    expect(converter.retags.map((retag) => retag.title)).toEqual([null]);
    expect((await service.rename(USER, row.recordId, 'Again')).title).toBe('Again');
    expect((await service.rename(USER, row.recordId, '   ')).title).toBeNull();
    expect(converter.retags.map((retag) => retag.title)).toEqual([null, 'Again', null]);
  });

  it("reads and writes the record's own format", async () => {
    const { blobs, converter, service, row, original } = await withRecord({ output: { format: 'opus' } });
    await service.rename(USER, row.recordId, 'New');
    expect(converter.retags[0]?.format).toBe(STORED_FORMATS.opus);
    expect(audioKey(row)).toMatch(/\.opus$/);
    expect(blobs.blobs.get(audioKey(row))?.bytes).toEqual(Buffer.concat([original, Buffer.from('|title=New')]));
  });

  it.each<[string, string | undefined, string | null]>([
    ['the same title', 'Same', 'Same'],
    ['the same title, untrimmed', 'Same', '  Same '],
    ['no title, as null', undefined, null],
    ['no title, as blanks', undefined, '   '],
  ])('%s: nothing is rewritten and the record is returned as it is', async (_name, title, asked) => {
    const { db, blobs, converter, records, fileJobs, service, row, original } = await withRecord({ title });
    const held = await fileJobs.acquire(); // the unchanged title needs no file-job slot
    const result = await service.rename(USER, row.recordId, asked);
    held.end();
    expect(result).toMatchObject({ recordId: row.recordId, title: title ?? null });
    expect(converter.retags).toEqual([]);
    expect(records.calls).toEqual(['findOwned']);
    expect(db.journal).toEqual([]);
    expect(blobs.blobs.get(audioKey(row))?.bytes).toEqual(original);
  });

  it('a record whose audio has vanished is NotFound; the row keeps its title', async () => {
    const { db, blobs, converter, records, fileJobs, service, folder, row } = await withRecord({ title: 'Old' });
    blobs.blobs.clear();
    await expect(service.rename(USER, row.recordId, 'New')).rejects.toBeInstanceOf(NotFound);
    expect(converter.retags).toEqual([]);
    expect(records.calls).not.toContain('rename');
    expect(db.records[0]?.title).toBe('Old');
    expect(db.journal).toEqual([]);
    expect(await readdir(folder)).toEqual([]);
    expect(() => fileJobs.refuseIfFull()).not.toThrow();
  });

  it('a failed retag changes neither the file nor the row', async () => {
    const { db, blobs, converter, fileJobs, service, folder, row, original } = await withRecord({ title: 'Old' });
    const failure = new Error('ffmpeg died');
    converter.retagFailure = failure;
    await expect(service.rename(USER, row.recordId, 'New')).rejects.toBe(failure);
    expect(blobs.blobs.get(audioKey(row))?.bytes).toEqual(original);
    expect(db.records[0]?.title).toBe('Old');
    expect(db.journal).toEqual([]);
    expect(await readdir(folder)).toEqual([]);
    expect(() => fileJobs.refuseIfFull()).not.toThrow();
  });

  it('is Busy, with nothing changed, when every file-job slot is taken', async () => {
    const { db, converter, fileJobs, service, row } = await withRecord({ title: 'Old' });
    const held = await fileJobs.acquire();
    await expect(service.rename(USER, row.recordId, 'New')).rejects.toBeInstanceOf(Busy);
    held.end();
    expect(converter.retags).toEqual([]);
    expect(db.records[0]?.title).toBe('Old');
  });

  it('a bad title is refused before anything is looked up', async () => {
    const { records, converter, service, row } = await withRecord({ title: 'Old' });
    await expect(service.rename(USER, row.recordId, 'a\u0007b')).rejects.toBeInstanceOf(InvalidInput);
    expect(records.calls).toEqual([]);
    expect(converter.retags).toEqual([]);
  });

  it("another user's record is NotFound, and its file is not touched", async () => {
    const { blobs, converter, service, row, original } = await withRecord({ title: 'Old' });
    const stranger = { id: '22222222-2222-4222-8222-222222222222', tokenHash: 'x' };
    await expect(service.rename(stranger, row.recordId, 'Mine')).rejects.toBeInstanceOf(NotFound);
    expect(converter.retags).toEqual([]);
    expect(blobs.blobs.get(audioKey(row))?.bytes).toEqual(original);
  });

  it('a disk that fills up while storing the rewritten file is InsufficientStorage; the row keeps its title', async () => {
    const { db, blobs, service, folder, row } = await withRecord({ title: 'Old' });
    blobs.putFailure = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    await expect(service.rename(USER, row.recordId, 'New')).rejects.toBeInstanceOf(InsufficientStorage);
    expect(db.records[0]?.title).toBe('Old');
    expect(await readdir(folder)).toEqual([]);
  });

  it('a failed store of the rewritten file keeps the old audio', async () => {
    const { blobs, service, row, original } = await withRecord({ title: 'Old' });
    blobs.putFailure = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    await expect(service.rename(USER, row.recordId, 'New')).rejects.toBeInstanceOf(InsufficientStorage);
    expect(blobs.blobs.get(audioKey(row))?.bytes).toEqual(original);
  });
});

describe('RecordingService.peaks', () => {
  /** A record stored before peaks existed: a row and its audio, no peaks. */
  async function olderRecord(format: 'mp3' | 'flac' = 'mp3') {
    const context = await setup();
    const row = context.db.insertRow({
      userId: USER_ID,
      recordId: 'aa000000-0000-4000-8000-000000000001',
      sizeBytes: 10,
      durationMs: 1000,
      sampleRate: 44100,
      channels: 2,
      bitrate: 80,
      format,
      mimeType: STORED_FORMATS[format].mimeType,
    });
    const audio = Buffer.from('older audio');
    context.blobs.seed(audioKey(row), new Date(), audio);
    return { ...context, row, audio };
  }

  it('returns the peaks stored with the record, without the converter or a file-job slot', async () => {
    const { converter, fileJobs, records, service } = await setup();
    const row = await service.upload(USER, form({ file: wavChunks }), NONE);
    records.calls.length = 0;
    const held = await fileJobs.acquire();
    const peaks = await service.peaks(row);
    held.end();
    expect(peaks.sampleRate).toBe(8000);
    expect(peaks.samplesPerPixel).toBe(160);
    expect(peaks.data).toBeInstanceOf(Int8Array);
    expect(Array.from(peaks.data)).toEqual(Array.from(PEAKS.data));
    expect(converter.peaksRequests).toEqual([]);
    expect(records.calls).toEqual(['findPeaks']);
  });

  it('computes missing peaks from the stored audio, saves them, and uses them from then on', async () => {
    const { db, converter, fileJobs, records, service, row, audio } = await olderRecord();
    const peaks = await service.peaks(row);
    expect(Array.from(peaks.data)).toEqual(Array.from(PEAKS.data));
    expect(converter.peaksRequests).toEqual([{ stored: audio, format: STORED_FORMATS.mp3 }]);
    expect(records.calls).toEqual(['findPeaks', 'savePeaks']);
    expect(db.journal).toEqual([`peaks.save ${row.recordId}`]);
    expect(Array.from(db.peaks.get(row.recordId)?.data ?? [])).toEqual([0x80, 0x7f, 0xfd, 0x04, 0x00, 0xff]);
    expect(() => fileJobs.refuseIfFull()).not.toThrow();

    const again = await service.peaks(row);
    expect(Array.from(again.data)).toEqual(Array.from(PEAKS.data));
    expect(converter.peaksRequests).toHaveLength(1);
  });

  it("decodes the stored audio through the record's own format", async () => {
    const { converter, service, row } = await olderRecord('flac');
    await service.peaks(row);
    expect(converter.peaksRequests[0]?.format).toBe(STORED_FORMATS.flac);
  });

  it('a record without peaks whose audio has vanished is NotFound, and nothing is saved', async () => {
    const { db, blobs, converter, fileJobs, service, row } = await olderRecord();
    blobs.blobs.clear();
    await expect(service.peaks(row)).rejects.toBeInstanceOf(NotFound);
    expect(converter.peaksRequests).toEqual([]);
    expect(db.peaks.size).toBe(0);
    expect(() => fileJobs.refuseIfFull()).not.toThrow();
  });

  it('computing peaks waits for a file-job slot: with none free and no queue, Busy', async () => {
    const { converter, fileJobs, service, row } = await olderRecord();
    const held = await fileJobs.acquire();
    await expect(service.peaks(row)).rejects.toBeInstanceOf(Busy);
    held.end();
    expect(converter.peaksRequests).toEqual([]);
    await expect(service.peaks(row)).resolves.toBeDefined();
  });
});
