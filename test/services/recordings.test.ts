import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
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
import type { ConvertedAudio } from '../../src/media/converter.js';
import { ConversionLimiter } from '../../src/media/limiter.js';
import { mp3Output } from '../../src/media/outputs.js';
import { Quota, type QuotaLimits } from '../../src/services/quota.js';
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
const MP3 = mp3Output({ vbrQuality: 2, bitrateKbps: undefined, compressionLevel: undefined });
const UNLIMITED: QuotaLimits = { maxRecords: undefined, maxBytes: undefined };

/** Stands in for the ffmpeg-backed Converter: reads the upload, writes `output` at the path it is given. */
class FakeConverter {
  readonly received: Buffer[] = [];
  readonly outputPaths: string[] = [];
  output = Buffer.from('fake mp3 audio, 28 bytes long');
  /** When set, a partial output is written and this is thrown. */
  failure: Error | undefined;
  /** Runs while the conversion is under way (e.g. the account is deleted meanwhile). */
  during: (() => void | Promise<void>) | undefined;
  durationMs = 2000;

  async convert(upload: AsyncIterable<Buffer>, outputPath: string): Promise<ConvertedAudio> {
    this.outputPaths.push(outputPath);
    for await (const chunk of upload) this.received.push(chunk);
    await this.during?.();
    if (this.failure !== undefined) {
      await writeFile(outputPath, 'partial');
      throw this.failure;
    }
    await writeFile(outputPath, this.output);
    return { format: MP3, durationMs: this.durationMs, sampleRate: 44100, channels: 2 };
  }
}

/** An upload form: the file (in chunks) when there is one, and the title field. */
function form(
  parts: { file?: Buffer[]; filename?: string; title?: string | null; signal?: AbortSignal; address?: string } = {},
) {
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
          parts.filename,
        );
      }
      return { title: parts.title ?? null };
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
  const service = new RecordingService({
    records,
    blobs,
    scratch,
    converter,
    limiter,
    quota: new Quota(options.quota ?? UNLIMITED),
    caps: new UploadCaps(options.caps ?? { perUser: 100, perAddress: 100 }),
    minFreeDiskBytes: options.minFreeDiskBytes ?? 0,
    freeDiskBytes: () => scratch.freeBytes(),
  });
  return { db, records, blobs, scratch, converter, limiter, service, folder };
}

const wavChunks = [Buffer.from('RIFF....WAVE'), Buffer.from('fmt and data')];

describe('RecordingService.upload', () => {
  it('converts, stores the audio, then inserts the row, leaving no scratch file', async () => {
    const { db, records, blobs, converter, service, folder } = await setup();
    const row = await service.upload(USER, form({ file: wavChunks, filename: 'C:\\Music\\take 1.wav' }), {});

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
    });
    expect(row.recordId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(blobs.blobs.get(audioKey(row))?.bytes).toEqual(converter.output);
    expect(db.journal).toEqual([`blob.put ${audioKey(row)}`, `row.insert ${row.recordId}`]);
    expect(records.calls).toContain('insert');
    expect(await readdir(folder)).toEqual([]);
  });

  it('takes the title from the form over the one in the query', async () => {
    const { service } = await setup();
    expect((await service.upload(USER, form({ file: wavChunks, title: 'Form' }), { title: 'Query' })).title).toBe(
      'Form',
    );
    expect((await service.upload(USER, form({ file: wavChunks }), { title: '  Query  ' })).title).toBe('Query');
  });

  it('refuses a bad query title before reading anything', async () => {
    const { records, service } = await setup();
    const source = form({ file: wavChunks });
    await expect(service.upload(USER, source, { title: 'a\u0000b' })).rejects.toBeInstanceOf(InvalidInput);
    expect(source.receiveCalls).toBe(0);
    expect(records.calls).toEqual([]);
  });

  it('with a quota, the insert goes through the admitting transaction', async () => {
    const { records, service } = await setup({ quota: { maxRecords: 10, maxBytes: 10_000 } });
    await service.upload(USER, form({ file: wavChunks }), {});
    expect(records.calls).toEqual(['usageOf', 'insertAdmitted']);
  });

  it('a user whose quota is full is refused before the body is read', async () => {
    const { db, blobs, converter, limiter, service } = await setup({ quota: { maxRecords: 1, maxBytes: undefined } });
    db.addRecord(USER_ID, 'aa000000-0000-4000-8000-000000000001');
    const source = form({ file: wavChunks });
    await expect(service.upload(USER, source, {})).rejects.toBeInstanceOf(QuotaExceeded);
    expect(source.receiveCalls).toBe(0);
    expect(converter.outputPaths).toEqual([]);
    expect(blobs.blobs.size).toBe(0);
    // No conversion slot was taken.
    expect(() => limiter.refuseIfFull()).not.toThrow();
  });

  it('a recording that does not fit at the insert is refused and its stored audio deleted', async () => {
    const { db, blobs, service, folder } = await setup({ quota: { maxRecords: undefined, maxBytes: 10 } });
    await expect(service.upload(USER, form({ file: wavChunks }), {})).rejects.toBeInstanceOf(QuotaExceeded);
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
    await expect(service.upload(USER, form({ file: wavChunks }), {})).rejects.toBeInstanceOf(Unauthorized);
    expect(db.records).toEqual([]);
    expect(blobs.blobs.size).toBe(0);
    expect(db.journal.map((line) => line.split(' ')[0])).toEqual(['blob.put', 'blob.delete']);
  });

  it('a foreign-key error wrapped by the query builder is recognised through its cause', async () => {
    const { records, blobs, service } = await setup();
    records.insertFailure = new Error('Failed query: insert into "records" …', { cause: foreignKeyViolation() });
    await expect(service.upload(USER, form({ file: wavChunks }), {})).rejects.toBeInstanceOf(Unauthorized);
    expect(blobs.blobs.size).toBe(0);
  });

  it('any other insert failure is rethrown as it is, after deleting the stored audio', async () => {
    const { records, blobs, service } = await setup();
    const failure = Object.assign(new Error('duplicate key value violates unique constraint'), { code: '23505' });
    records.insertFailure = failure;
    await expect(service.upload(USER, form({ file: wavChunks }), {})).rejects.toBe(failure);
    expect(blobs.blobs.size).toBe(0);
  });

  it('a form without a file is InvalidInput, with nothing stored and the slot released', async () => {
    const { db, blobs, converter, limiter, service, folder } = await setup();
    await expect(service.upload(USER, form({ title: 'no file' }), {})).rejects.toThrow(
      new InvalidInput('The form has no "file" part with the WAV.'),
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
    await expect(service.upload(USER, form({ file: wavChunks }), {})).rejects.toBe(failure);
    expect(converter.outputPaths).toHaveLength(1);
    expect(await readdir(folder)).toEqual([]);
    expect(blobs.blobs.size).toBe(0);
    expect(db.journal).toEqual([]);
    expect(() => limiter.refuseIfFull()).not.toThrow();
    // And the next upload gets the slot.
    converter.failure = undefined;
    await expect(service.upload(USER, form({ file: wavChunks }), {})).resolves.toBeDefined();
  });

  it('is Busy before anything else when every slot and queue place is taken', async () => {
    const { records, limiter, service } = await setup({ slots: 1, queue: 0 });
    const held = await limiter.acquire();
    const source = form({ file: wavChunks });
    await expect(service.upload(USER, source, {})).rejects.toBeInstanceOf(Busy);
    expect(() => service.refuseIfBusy()).toThrow(Busy);
    expect(source.receiveCalls).toBe(0);
    expect(records.calls).toEqual([]);
    held();
    expect(() => service.refuseIfBusy()).not.toThrow();
  });

  it('an upload whose client leaves while it is queued gives up its place without reading the body', async () => {
    const { blobs, limiter, service } = await setup({ slots: 1, queue: 1 });
    const held = await limiter.acquire();
    const controller = new AbortController();
    const source = form({ file: wavChunks, signal: controller.signal });
    const upload = service.upload(USER, source, {});
    await new Promise((resolve) => setImmediate(resolve));
    expect(() => limiter.refuseIfFull()).toThrow(Busy);
    const reason = new InvalidInput('The client closed the connection before its upload started.');
    controller.abort(reason);
    await expect(upload).rejects.toBe(reason);
    expect(source.receiveCalls).toBe(0);
    expect(blobs.blobs.size).toBe(0);
    expect(() => limiter.refuseIfFull()).not.toThrow();
    held();
  });
});

describe('RecordingService.upload: disk, caps and storage failures', () => {
  it('refuses when the scratch disk is nearly full, before reading the body or taking a slot', async () => {
    const { scratch, converter, limiter, service } = await setup({ minFreeDiskBytes: 1000 });
    scratch.free = 999;
    const source = form({ file: wavChunks });
    await expect(service.upload(USER, source, {})).rejects.toBeInstanceOf(InsufficientStorage);
    expect(source.receiveCalls).toBe(0);
    expect(converter.outputPaths).toEqual([]);
    expect(() => limiter.refuseIfFull()).not.toThrow();
    scratch.free = 1000;
    await expect(service.upload(USER, form({ file: wavChunks }), {})).resolves.toBeDefined();
  });

  it('caps the uploads one user, and one address, have under way; the cap ends with the upload', async () => {
    const { db, converter, service } = await setup({ slots: 4, caps: { perUser: 1, perAddress: 2 } });
    const other = '44444444-4444-4444-8444-444444444444';
    const third = '55555555-5555-4555-8555-555555555555';
    db.addUser(other);
    db.addUser(third);
    const gates: Array<() => void> = [];
    converter.during = () => new Promise<void>((resolve) => gates.push(resolve));
    const first = service.upload(USER, form({ file: wavChunks, address: '198.51.100.1' }), {});
    await new Promise((resolve) => setImmediate(resolve));

    const sameUser = form({ file: wavChunks, address: '198.51.100.2' });
    const refused = await service.upload(USER, sameUser, {}).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(RateLimited);
    expect((refused as RateLimited).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(sameUser.receiveCalls).toBe(0);

    // Another user from the same address fits under the address cap of two; a third user there does not.
    const second = service.upload(
      { id: other, tokenHash: 'x' },
      form({ file: wavChunks, address: '198.51.100.1' }),
      {},
    );
    await new Promise((resolve) => setImmediate(resolve));
    await expect(
      service.upload({ id: third, tokenHash: 'x' }, form({ file: wavChunks, address: '198.51.100.1' }), {}),
    ).rejects.toBeInstanceOf(RateLimited);

    for (const open of gates.splice(0)) open();
    await Promise.all([first, second]);
    converter.during = undefined;
    // Every count was given back.
    await expect(service.upload(USER, form({ file: wavChunks, address: '198.51.100.1' }), {})).resolves.toBeDefined();
    await expect(
      service.upload({ id: third, tokenHash: 'x' }, form({ file: wavChunks, address: '198.51.100.1' }), {}),
    ).resolves.toBeDefined();
  });

  it('gives the cap back after a failed upload too', async () => {
    const { converter, service } = await setup({ caps: { perUser: 1, perAddress: 1 } });
    converter.failure = new AudioRejected('undecodable', 'no');
    await expect(service.upload(USER, form({ file: wavChunks }), {})).rejects.toBeInstanceOf(AudioRejected);
    await expect(service.upload(USER, form({}), {})).rejects.toBeInstanceOf(InvalidInput);
    converter.failure = undefined;
    await expect(service.upload(USER, form({ file: wavChunks }), {})).resolves.toBeDefined();
  });

  it('a disk that fills up while storing is InsufficientStorage, with nothing left behind', async () => {
    const { db, blobs, service, folder } = await setup();
    blobs.putFailure = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    await expect(service.upload(USER, form({ file: wavChunks }), {})).rejects.toBeInstanceOf(InsufficientStorage);
    expect(blobs.blobs.size).toBe(0);
    expect(db.records).toEqual([]);
    expect(await readdir(folder)).toEqual([]);
  });

  it('any other failure to store is rethrown as it is', async () => {
    const { blobs, service } = await setup();
    const failure = Object.assign(new Error('EIO'), { code: 'EIO' });
    blobs.putFailure = failure;
    await expect(service.upload(USER, form({ file: wavChunks }), {})).rejects.toBe(failure);
  });

  it('keeps the stored audio when the database connection is lost at the insert (the row may exist)', async () => {
    const { records, blobs, service } = await setup();
    const lost = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    records.insertFailure = lost;
    await expect(service.upload(USER, form({ file: wavChunks }), {})).rejects.toBe(lost);
    expect(blobs.blobs.size).toBe(1);
  });

  it('removes the stored audio when the database refused the connection (nothing was sent)', async () => {
    const { records, blobs, service } = await setup();
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    records.insertFailure = refused;
    await expect(service.upload(USER, form({ file: wavChunks }), {})).rejects.toBe(refused);
    expect(blobs.blobs.size).toBe(0);
  });

  it.each([0, 2 ** 31])('a duration of %i ms cannot be stored: undecodable, and the audio is removed', async (ms) => {
    const { db, blobs, converter, service } = await setup();
    converter.durationMs = ms;
    const error = await service.upload(USER, form({ file: wavChunks }), {}).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AudioRejected);
    expect((error as AudioRejected).reason).toBe('undecodable');
    expect(blobs.blobs.size).toBe(0);
    expect(db.records).toEqual([]);
  });
});

describe('RecordingService.delete', () => {
  async function withRecord() {
    const context = await setup();
    const row = await context.service.upload(USER, form({ file: wavChunks }), {});
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
    const row = await service.upload(USER, form({ file: wavChunks }), {});
    const opened = await service.openAudio(row, new RecordingLogger());
    expect(opened.sizeBytes).toBe(converter.output.length);
    const chunks: Buffer[] = [];
    for await (const chunk of opened.stream()) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks)).toEqual(converter.output);
  });

  it('a row whose audio is missing is NotFound, and logged as an error', async () => {
    const { blobs, service } = await setup();
    const row = await service.upload(USER, form({ file: wavChunks }), {});
    blobs.blobs.clear();
    const log = new RecordingLogger();
    await expect(service.openAudio(row, log)).rejects.toBeInstanceOf(NotFound);
    expect(log.at('error')).toEqual([
      { level: 'error', details: { recordId: row.recordId }, message: 'record row without its audio file' },
    ]);
  });

  it('audio deleted together with its row since the lookup is NotFound without an error', async () => {
    const { service } = await setup();
    const row = await service.upload(USER, form({ file: wavChunks }), {});
    await service.delete(USER, row.recordId, new RecordingLogger());
    const log = new RecordingLogger();
    await expect(service.openAudio(row, log)).rejects.toBeInstanceOf(NotFound);
    expect(log.entries).toEqual([]);
  });
});

describe('RecordingService: list, get, rename', () => {
  it('pages with an opaque cursor', async () => {
    const { service } = await setup();
    const uploaded = [];
    for (let i = 0; i < 3; i++) uploaded.push(await service.upload(USER, form({ file: wavChunks }), {}));
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
    const row = await service.upload(USER, form({ file: wavChunks }), {});
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
