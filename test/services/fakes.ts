import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { RecordRepository, Usage } from '../../src/db/records.js';
import type { NewRecordRow, PeaksRow, RecordRow, StoredAudioRef } from '../../src/db/schema.js';
import type { NewUser, UserProfile, UserRepository } from '../../src/db/users.js';
import type { Logger } from '../../src/services/logger.js';
import type {
  BlobInfo,
  BlobStore,
  ByteRange,
  ListedBlob,
  LocalFile,
  OpenedBlob,
} from '../../src/storage/blob-store.js';
import { isRecordKey } from '../../src/storage/keys.js';

/** One ordered log shared by the fakes, so that tests can check which side effect came first. */
export type Journal = string[];

interface StoredBlob {
  readonly bytes: Buffer;
  readonly modifiedAt: Date;
}

/**
 * A BlobStore in memory. Like LocalBlobStore it accepts only record keys (keys.ts); `seed` puts anything
 * anywhere, as a person or another program might on disk, for the storage check's stray names.
 */
export class InMemoryBlobStore implements BlobStore {
  readonly blobs = new Map<string, StoredBlob>();
  /** When set, `delete` throws it (and deletes nothing). */
  deleteFailure: Error | undefined;
  /** When set, `put` throws it (and stores nothing). */
  putFailure: Error | undefined;

  constructor(
    private readonly journal: Journal = [],
    private readonly now: () => Date = () => new Date(),
  ) {}

  async put(key: string, source: LocalFile | Readable): Promise<BlobInfo> {
    checkKey(key);
    if (this.putFailure !== undefined) throw this.putFailure;
    const bytes = source instanceof Readable ? await collect(source) : await readFile(source.path);
    const modifiedAt = this.now();
    this.blobs.set(key, { bytes, modifiedAt });
    this.journal.push(`blob.put ${key}`);
    return { sizeBytes: bytes.length, modifiedAt };
  }

  async open(key: string): Promise<OpenedBlob | undefined> {
    checkKey(key);
    const blob = this.blobs.get(key);
    if (blob === undefined) return undefined;
    return {
      sizeBytes: blob.bytes.length,
      modifiedAt: blob.modifiedAt,
      stream: (range?: ByteRange) =>
        Readable.from([range === undefined ? blob.bytes : blob.bytes.subarray(range.start, range.end + 1)]),
      close: async () => undefined,
    };
  }

  async ping(): Promise<void> {}

  async stat(key: string): Promise<BlobInfo | undefined> {
    checkKey(key);
    const blob = this.blobs.get(key);
    return blob === undefined ? undefined : { sizeBytes: blob.bytes.length, modifiedAt: blob.modifiedAt };
  }

  async delete(key: string): Promise<void> {
    checkKey(key);
    this.journal.push(`blob.delete ${key}`);
    if (this.deleteFailure !== undefined) throw this.deleteFailure;
    this.blobs.delete(key);
  }

  async *list(prefix: string): AsyncIterable<ListedBlob> {
    const keys = [...this.blobs.keys()].filter((key) => key.startsWith(prefix)).sort();
    for (const key of keys) {
      const blob = this.blobs.get(key);
      if (blob !== undefined) yield { key, modifiedAt: blob.modifiedAt };
    }
  }

  /** Stores bytes under any name, bypassing the key check. */
  seed(key: string, modifiedAt: Date, bytes: Buffer = Buffer.from('audio')): void {
    this.blobs.set(key, { bytes, modifiedAt });
  }
}

function checkKey(key: string): void {
  if (!isRecordKey(key)) throw new Error(`Not a blob key: ${JSON.stringify(key)}`);
}

async function collect(source: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of source) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks);
}

/** What PostgreSQL's driver throws for a foreign-key violation: an Error carrying SQLSTATE 23503. */
export function foreignKeyViolation(): Error {
  return Object.assign(
    new Error('insert or update on table "records" violates foreign key constraint "records_user_id_users_id__fk"'),
    { code: '23503' },
  );
}

/** The users, records and record_peaks tables, in memory, shared by the two fake repositories. */
export class FakeDatabase {
  readonly users = new Map<string, NewUser & { createdAt: Date }>();
  readonly records: RecordRow[] = [];
  /** record_peaks by record id; a record's peaks go with its row (ON DELETE CASCADE). */
  readonly peaks = new Map<string, PeaksRow>();
  private nextId = 1;

  constructor(readonly journal: Journal = []) {}

  addUser(id: string, username = `user-${id.slice(0, 8)}`, accessTokenHash = `hash-${id}`): void {
    this.users.set(id, { id, username, accessTokenHash, createdAt: new Date() });
  }

  /** Inserts a row as the database would, failing the foreign key for an unknown user. */
  insertRow(row: NewRecordRow): RecordRow {
    if (!this.users.has(row.userId)) throw foreignKeyViolation();
    if (this.records.some((existing) => existing.recordId === row.recordId)) throw new Error('duplicate record_id');
    const inserted: RecordRow = {
      id: this.nextId++,
      userId: row.userId,
      recordId: row.recordId,
      title: row.title ?? null,
      originalFilename: row.originalFilename ?? null,
      createdAt: row.createdAt ?? new Date(),
      sizeBytes: row.sizeBytes,
      durationMs: row.durationMs,
      sampleRate: row.sampleRate,
      channels: row.channels,
      bitrate: row.bitrate,
      format: row.format ?? 'mp3',
      mimeType: row.mimeType ?? 'audio/mpeg',
      sourceFormat: row.sourceFormat ?? 'wav',
      loudnessLufs: row.loudnessLufs ?? null,
    };
    this.records.push(inserted);
    return inserted;
  }

  /** A row for a record whose audio is (or should be) in the store. */
  addRecord(userId: string, recordId: string, sizeBytes = 100): RecordRow {
    return this.insertRow({
      userId,
      recordId,
      sizeBytes,
      durationMs: 1000,
      sampleRate: 44100,
      channels: 2,
      bitrate: 800,
    });
  }

  removeRecords(predicate: (row: RecordRow) => boolean): RecordRow[] {
    const removed = this.records.filter(predicate);
    for (const row of removed) {
      this.records.splice(this.records.indexOf(row), 1);
      this.peaks.delete(row.recordId);
    }
    return removed;
  }
}

/** The RecordRepository methods the services call. */
type RecordStore = Pick<
  RecordRepository,
  | 'insert'
  | 'insertAdmitted'
  | 'findOwned'
  | 'listPage'
  | 'rename'
  | 'deleteOwned'
  | 'usageOf'
  | 'inShard'
  | 'existingRecordIds'
  | 'deleteByRecordIds'
  | 'findPeaks'
  | 'savePeaks'
>;

const ref = (row: RecordRow): StoredAudioRef => ({ recordId: row.recordId, format: row.format });

export class FakeRecordRepository implements RecordStore {
  /** When set, the next insert (either kind) throws it instead of inserting. */
  insertFailure: Error | undefined;
  /** Runs after `inShard` has read its rows: a row inserted here is one the check read too early. */
  afterInShard: ((shard: string) => void) | undefined;
  readonly calls: string[] = [];
  lastListOptions: Parameters<RecordRepository['listPage']>[1] | undefined;

  constructor(private readonly db: FakeDatabase) {}

  async insert(record: NewRecordRow, peaks: PeaksRow): Promise<RecordRow> {
    this.calls.push('insert');
    return this.doInsert(record, peaks);
  }

  async insertAdmitted(record: NewRecordRow, peaks: PeaksRow, admit: (usage: Usage) => void): Promise<RecordRow> {
    this.calls.push('insertAdmitted');
    if (!this.db.users.has(record.userId)) throw foreignKeyViolation(); // the lock finds no user row
    admit(this.usage(record.userId));
    return this.doInsert(record, peaks);
  }

  async findPeaks(recordId: string): Promise<PeaksRow | undefined> {
    this.calls.push('findPeaks');
    return this.db.peaks.get(recordId);
  }

  /** Like the real one: a record's first peaks stay (ON CONFLICT DO NOTHING); a record without a row fails its key. */
  async savePeaks(recordId: string, peaks: PeaksRow): Promise<void> {
    this.calls.push('savePeaks');
    if (!this.db.records.some((row) => row.recordId === recordId)) throw foreignKeyViolation();
    if (this.db.peaks.has(recordId)) return;
    this.db.peaks.set(recordId, copyPeaks(peaks));
    this.db.journal.push(`peaks.save ${recordId}`);
  }

  async findOwned(recordId: string, userId: string): Promise<RecordRow | undefined> {
    this.calls.push('findOwned');
    return this.db.records.find((row) => row.recordId === recordId && row.userId === userId);
  }

  async listPage(userId: string, options: Parameters<RecordRepository['listPage']>[1]) {
    this.calls.push('listPage');
    this.lastListOptions = options;
    const rows = this.db.records
      .filter((row) => row.userId === userId)
      .filter((row) => options.titleContains === undefined || (row.title ?? '').includes(options.titleContains))
      .sort((a, b) => b.id - a.id)
      .filter((row) => options.after === undefined || row.id < options.after.id);
    const page = rows.slice(0, options.limit);
    const last = page.at(-1);
    return {
      records: page,
      next:
        rows.length > options.limit && last !== undefined
          ? { createdAt: `${last.createdAt.toISOString().slice(0, 23)}000Z`, id: last.id }
          : undefined,
    };
  }

  async rename(recordId: string, userId: string, title: string | null): Promise<RecordRow | undefined> {
    this.calls.push('rename');
    const row = this.db.records.find((candidate) => candidate.recordId === recordId && candidate.userId === userId);
    if (row !== undefined) {
      row.title = title;
      this.db.journal.push(`row.rename ${recordId}`);
    }
    return row;
  }

  async deleteOwned(recordId: string, userId: string): Promise<StoredAudioRef | undefined> {
    this.calls.push('deleteOwned');
    const [removed] = this.db.removeRecords((row) => row.recordId === recordId && row.userId === userId);
    if (removed !== undefined) this.db.journal.push(`row.delete ${removed.recordId}`);
    return removed === undefined ? undefined : ref(removed);
  }

  async usageOf(userId: string): Promise<Usage> {
    this.calls.push('usageOf');
    return this.usage(userId);
  }

  async inShard(shard: string): Promise<StoredAudioRef[]> {
    const rows = this.db.records.filter((row) => row.recordId.startsWith(shard)).map(ref);
    this.afterInShard?.(shard);
    return rows;
  }

  async existingRecordIds(recordIds: readonly string[]): Promise<Set<string>> {
    const wanted = new Set(recordIds);
    return new Set(this.db.records.filter((row) => wanted.has(row.recordId)).map((row) => row.recordId));
  }

  async deleteByRecordIds(recordIds: readonly string[]): Promise<number> {
    const wanted = new Set(recordIds);
    return this.db.removeRecords((row) => wanted.has(row.recordId)).length;
  }

  private doInsert(record: NewRecordRow, peaks: PeaksRow): RecordRow {
    if (this.insertFailure !== undefined) {
      const failure = this.insertFailure;
      this.insertFailure = undefined;
      throw failure;
    }
    // One transaction: the row and its peaks, or neither.
    const row = this.db.insertRow(record);
    this.db.peaks.set(row.recordId, copyPeaks(peaks));
    this.db.journal.push(`row.insert ${row.recordId}`);
    return row;
  }

  private usage(userId: string): Usage {
    const rows = this.db.records.filter((row) => row.userId === userId);
    return { recordCount: rows.length, totalBytes: rows.reduce((sum, row) => sum + row.sizeBytes, 0) };
  }
}

/** What a database hands back is its own copy of the bytes, never the caller's array. */
function copyPeaks(peaks: PeaksRow): PeaksRow {
  return { ...peaks, data: Uint8Array.from(peaks.data) };
}

/** The UserRepository methods the services call. */
type UserStore = Pick<
  UserRepository,
  'create' | 'findTokenHash' | 'findByTokenHash' | 'replaceTokenHash' | 'deleteWithRecords'
>;

export class FakeUserRepository implements UserStore {
  readonly calls: string[] = [];

  constructor(private readonly db: FakeDatabase) {}

  async create(user: NewUser): Promise<boolean> {
    this.calls.push('create');
    const taken = [...this.db.users.values()].some(
      (existing) => existing.username.toLowerCase() === user.username.toLowerCase(),
    );
    if (taken) return false;
    this.db.users.set(user.id, { ...user, createdAt: new Date() });
    return true;
  }

  async findTokenHash(userId: string): Promise<string | undefined> {
    this.calls.push('findTokenHash');
    return this.db.users.get(userId)?.accessTokenHash;
  }

  async findByTokenHash(accessTokenHash: string): Promise<UserProfile | undefined> {
    this.calls.push('findByTokenHash');
    const user = [...this.db.users.values()].find((candidate) => candidate.accessTokenHash === accessTokenHash);
    return user === undefined ? undefined : { id: user.id, username: user.username, createdAt: user.createdAt };
  }

  async replaceTokenHash(userId: string, currentHash: string, newHash: string): Promise<boolean> {
    this.calls.push('replaceTokenHash');
    const user = this.db.users.get(userId);
    if (user?.accessTokenHash !== currentHash) return false;
    this.db.users.set(userId, { ...user, accessTokenHash: newHash });
    return true;
  }

  async deleteWithRecords(userId: string): Promise<StoredAudioRef[] | undefined> {
    this.calls.push('deleteWithRecords');
    if (!this.db.users.delete(userId)) return undefined;
    const removed = this.db.removeRecords((row) => row.userId === userId).map(ref);
    this.db.journal.push(`rows.delete-user ${userId}`);
    return removed;
  }
}

export interface LogEntry {
  readonly level: 'info' | 'warn' | 'error';
  readonly details: object;
  readonly message: string;
}

/** A Logger that keeps its lines for inspection. */
export class RecordingLogger implements Logger {
  readonly entries: LogEntry[] = [];

  info(details: object, message: string): void {
    this.entries.push({ level: 'info', details, message });
  }

  warn(details: object, message: string): void {
    this.entries.push({ level: 'warn', details, message });
  }

  error(details: object, message: string): void {
    this.entries.push({ level: 'error', details, message });
  }

  at(level: LogEntry['level']): LogEntry[] {
    return this.entries.filter((entry) => entry.level === level);
  }
}
