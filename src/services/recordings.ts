import { randomUUID } from 'node:crypto';
import { isForeignKeyViolation, isOutcomeUnknown } from '../db/postgres-errors.js';
import type { RecordRepository } from '../db/records.js';
import type { NewRecordRow, RecordRow, StoredAudioRef } from '../db/schema.js';
import {
  AudioRejected,
  InsufficientStorage,
  InvalidInput,
  NotFound,
  Unauthorized,
  Unavailable,
} from '../domain/errors.js';
import type { ConvertedAudio, Converter } from '../media/converter.js';
import type { ConversionLimiter } from '../media/limiter.js';
import type { BlobStore, OpenedBlob } from '../storage/blob-store.js';
import type { ScratchDirectory } from '../storage/scratch.js';
import type { AuthenticatedUser } from './accounts.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import type { Logger } from './logger.js';
import type { Quota } from './quota.js';
import type { UploadCaps } from './upload-caps.js';
import { audioKey, removeAudio } from './stored-audio.js';
import { cleanFilename, cleanOptionalText } from './text.js';

export const MAX_TITLE_LENGTH = 200;
const NO_SUCH_RECORD = 'No such record for this user.';

/** Checks a title as given by a client; blank means none. */
export function cleanTitle(title: string | undefined): string | null {
  return cleanOptionalText(title, 'title', MAX_TITLE_LENGTH);
}

/** Hands the audio file of an upload to the conversion, as its bytes arrive. */
export type AudioSink = (file: AsyncIterable<Buffer>, filename: string | undefined) => Promise<void>;

/** Where an upload's body comes from: the HTTP layer reads its form, the service converts what it finds. */
export interface UploadSource {
  /** Aborts when the client goes away while the upload waits for a conversion slot. */
  readonly signal: AbortSignal;
  /** Who is sending, for the per-address cap: the client's address (an IPv6 client by its /64). */
  readonly clientAddress: string;
  /**
   * Reads the whole body, calling `sink` once for the audio file while it streams in; resolves with the
   * title field when one was sent (already checked with `cleanTitle`).
   */
  receive(sink: AudioSink): Promise<{ readonly title: string | null }>;
}

export interface RecordListOptions {
  readonly limit: number;
  /** A `nextCursor` from an earlier page. */
  readonly cursor: string | undefined;
  /** Keep records whose title contains this, ignoring case. */
  readonly titleContains: string | undefined;
}

export interface RecordList {
  readonly records: RecordRow[];
  /** Where the next page starts; null on the last page. */
  readonly nextCursor: string | null;
}

/** What recordings need; the repository and converter are structural, so that tests can hand in fakes. */
export interface RecordingDependencies {
  readonly records: Pick<
    RecordRepository,
    'usageOf' | 'insert' | 'insertAdmitted' | 'listPage' | 'findOwned' | 'rename' | 'deleteOwned'
  >;
  readonly blobs: BlobStore;
  readonly scratch: ScratchDirectory;
  readonly converter: Pick<Converter, 'convert'>;
  readonly limiter: ConversionLimiter;
  readonly quota: Quota;
  readonly caps: UploadCaps;
  /** Free disk space an upload needs to be admitted … */
  readonly minFreeDiskBytes: number;
  /** … and the space left where its scratch file and its audio are written, whichever is less. */
  readonly freeDiskBytes: () => Promise<number>;
}

/** The use cases of recordings: upload, list, inspect, rename, delete, and play by link. */
export class RecordingService {
  constructor(private readonly deps: RecordingDependencies) {}

  /** Refuses an upload at once when every conversion slot and queue place is taken: the cheapest refusal. */
  refuseIfBusy(): void {
    this.deps.limiter.refuseIfFull();
  }

  /**
   * Converts the upload while it streams in, stores the audio, then its row. Nothing of a failed upload
   * stays behind: the scratch file always goes, the stored audio too when the row could not be inserted.
   */
  async upload(user: AuthenticatedUser, source: UploadSource, options: { title?: string }): Promise<RecordRow> {
    this.deps.limiter.refuseIfFull();
    const queryTitle = cleanTitle(options.title);
    // A user with no room left is refused before the body is read; the exact size is checked at the insert.
    if (!this.deps.quota.unlimited) this.deps.quota.refuseIfFull(await this.deps.records.usageOf(user.id));
    const free = await this.deps.freeDiskBytes().catch((error: unknown) => {
      throw new Unavailable('The server cannot tell how much disk space it has left.', 30, { cause: error });
    });
    if (free < this.deps.minFreeDiskBytes) {
      throw new InsufficientStorage('The server is running out of disk space; try again later.');
    }

    const endCount = this.deps.caps.take(user.id, source.clientAddress, this.deps.limiter.retryAfterSeconds());
    const scratchPath = this.deps.scratch.newPath();
    try {
      // Admission is decided before a byte of the body is read; waiting here holds no upload in memory.
      const release = await this.deps.limiter.acquire(source.signal);
      let converted: ConvertedAudio | undefined;
      let originalFilename: string | null = null;
      let fields;
      try {
        fields = await source.receive(async (file, filename) => {
          converted = await this.deps.converter.convert(file, scratchPath);
          originalFilename = cleanFilename(filename);
        });
      } finally {
        release();
      }
      if (converted === undefined) throw new InvalidInput('The form has no "file" part with the WAV.');
      return await this.store(scratchPath, {
        userId: user.id,
        recordId: randomUUID(),
        title: fields.title ?? queryTitle,
        originalFilename,
        durationMs: converted.durationMs,
        sampleRate: converted.sampleRate,
        channels: converted.channels,
        format: converted.format.name,
        mimeType: converted.format.mimeType,
      });
    } finally {
      endCount();
      await this.deps.scratch.discard(scratchPath);
    }
  }

  async list(user: AuthenticatedUser, options: RecordListOptions): Promise<RecordList> {
    const after = options.cursor === undefined ? undefined : decodeCursor(options.cursor);
    const q = options.titleContains?.normalize('NFC').trim();
    const page = await this.deps.records.listPage(user.id, {
      limit: options.limit,
      after,
      titleContains: q === '' ? undefined : q,
    });
    return { records: page.records, nextCursor: page.next === undefined ? null : encodeCursor(page.next) };
  }

  async get(user: AuthenticatedUser, recordId: string): Promise<RecordRow> {
    return found(await this.deps.records.findOwned(recordId, user.id));
  }

  /** Sets the title; null or blank removes it. */
  async rename(user: AuthenticatedUser, recordId: string, title: string | null): Promise<RecordRow> {
    return found(await this.deps.records.rename(recordId, user.id, cleanTitle(title ?? undefined)));
  }

  async delete(user: AuthenticatedUser, recordId: string, log: Logger): Promise<void> {
    // The row goes first, in its own committed transaction; the audio only after that. A crash in between
    // leaves at worst audio without a row, invisible to every route and removed by the storage check,
    // never a row pointing at missing audio. Downloads that already opened a local file keep reading it:
    // an unlinked file lives on until its last handle closes.
    const deleted = found(await this.deps.records.deleteOwned(recordId, user.id));
    await removeAudio(this.deps.blobs, [deleted], log);
  }

  /** A record by its link: the two ids are the capability, no token is needed. */
  async findByLink(recordId: string, userId: string): Promise<RecordRow> {
    return found(await this.deps.records.findOwned(recordId, userId));
  }

  async openAudio(record: RecordRow, log: Logger): Promise<OpenedBlob> {
    const blob = await this.deps.blobs.open(audioKey(record));
    if (blob !== undefined) return blob;
    // A delete may have removed row and audio since the lookup; only a row still there is an inconsistency.
    if ((await this.deps.records.findOwned(record.recordId, record.userId)) !== undefined) {
      log.error({ recordId: record.recordId }, 'record row without its audio file');
    }
    throw new NotFound(NO_SUCH_RECORD);
  }

  private async store(
    scratchPath: string,
    record: Omit<NewRecordRow, 'sizeBytes' | 'bitrate'> & StoredAudioRef,
  ): Promise<RecordRow> {
    const key = audioKey(record);
    let stored;
    try {
      stored = await this.deps.blobs.put(key, { path: scratchPath });
    } catch (error) {
      await this.deps.blobs.delete(key).catch(() => undefined);
      if (error instanceof Error && 'code' in error && error.code === 'ENOSPC') {
        throw new InsufficientStorage('The server ran out of disk space while storing the recording.', {
          cause: error,
        });
      }
      throw error;
    }
    const row: NewRecordRow = {
      ...record,
      sizeBytes: stored.sizeBytes,
      bitrate: Math.round((stored.sizeBytes * 8 * 1000) / Math.max(record.durationMs, 1)),
    };
    // Columns are 32-bit integers: a value past them would fail the insert after the whole conversion.
    if (![row.durationMs, row.bitrate, row.sampleRate, row.channels].every(isInt32) || row.durationMs <= 0) {
      await this.deps.blobs.delete(key);
      throw new AudioRejected('undecodable', 'The recording’s duration or bitrate is out of range.');
    }
    try {
      return this.deps.quota.unlimited
        ? await this.deps.records.insert(row)
        : await this.deps.records.insertAdmitted(row, (usage) => this.deps.quota.admit(usage, stored.sizeBytes));
    } catch (error) {
      // A connection lost around the commit leaves its outcome unknown: the row may exist, so its audio
      // stays; if the row does not exist, the storage check removes the orphan later.
      if (!isOutcomeUnknown(error)) await this.deps.blobs.delete(key);
      // The account was deleted while its upload converted: the token no longer names a user.
      if (isForeignKeyViolation(error)) throw new Unauthorized();
      throw error;
    }
  }
}

const isInt32 = (value: number) => Number.isSafeInteger(value) && value >= 0 && value < 2 ** 31;

function found<T>(record: T | undefined): T {
  if (record === undefined) throw new NotFound(NO_SUCH_RECORD);
  return record;
}
