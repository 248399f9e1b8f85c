import { randomUUID } from 'node:crypto';
import { isForeignKeyViolation } from '../db/postgres-errors.js';
import type { RecordRepository } from '../db/records.js';
import type { NewRecordRow, RecordRow, StoredAudioRef } from '../db/schema.js';
import { InvalidInput, NotFound, Unauthorized } from '../domain/errors.js';
import type { ConvertedAudio, Converter } from '../media/converter.js';
import type { ConversionLimiter } from '../media/limiter.js';
import type { BlobStore, OpenedBlob } from '../storage/blob-store.js';
import type { ScratchDirectory } from '../storage/scratch.js';
import type { AuthenticatedUser } from './accounts.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import type { Logger } from './logger.js';
import type { Quota } from './quota.js';
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

/** The use cases of recordings: upload, list, inspect, rename, delete, and play by link. */
export class RecordingService {
  constructor(
    private readonly records: RecordRepository,
    private readonly blobs: BlobStore,
    private readonly scratch: ScratchDirectory,
    private readonly converter: Converter,
    private readonly limiter: ConversionLimiter,
    private readonly quota: Quota,
  ) {}

  /** Refuses an upload at once when every conversion slot and queue place is taken: the cheapest refusal. */
  refuseIfBusy(): void {
    this.limiter.refuseIfFull();
  }

  /**
   * Converts the upload while it streams in, stores the audio, then its row. Nothing of a failed upload
   * stays behind: the scratch file always goes, the stored audio too when the row could not be inserted.
   */
  async upload(user: AuthenticatedUser, source: UploadSource, options: { title?: string }): Promise<RecordRow> {
    this.limiter.refuseIfFull();
    const queryTitle = cleanTitle(options.title);
    // A user with no room left is refused before the body is read; the exact size is checked at the insert.
    if (!this.quota.unlimited) this.quota.refuseIfFull(await this.records.usageOf(user.id));

    // Admission is decided before a byte of the body is read; waiting here holds no upload in memory.
    const release = await this.limiter.acquire(source.signal);
    const scratchPath = this.scratch.newPath();
    try {
      let converted: ConvertedAudio | undefined;
      let originalFilename: string | null = null;
      let fields;
      try {
        fields = await source.receive(async (file, filename) => {
          converted = await this.converter.convert(file, scratchPath);
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
      await this.scratch.discard(scratchPath);
    }
  }

  async list(user: AuthenticatedUser, options: RecordListOptions): Promise<RecordList> {
    const after = options.cursor === undefined ? undefined : decodeCursor(options.cursor);
    const q = options.titleContains?.normalize('NFC').trim();
    const page = await this.records.listPage(user.id, {
      limit: options.limit,
      after,
      titleContains: q === '' ? undefined : q,
    });
    return { records: page.records, nextCursor: page.next === undefined ? null : encodeCursor(page.next) };
  }

  async get(user: AuthenticatedUser, recordId: string): Promise<RecordRow> {
    return found(await this.records.findOwned(recordId, user.id));
  }

  /** Sets the title; null or blank removes it. */
  async rename(user: AuthenticatedUser, recordId: string, title: string | null): Promise<RecordRow> {
    return found(await this.records.rename(recordId, user.id, cleanTitle(title ?? undefined)));
  }

  async delete(user: AuthenticatedUser, recordId: string, log: Logger): Promise<void> {
    // The row goes first, in its own committed transaction; the audio only after that. A crash in between
    // leaves at worst audio without a row, invisible to every route and removed by the storage check,
    // never a row pointing at missing audio. Downloads that already opened a local file keep reading it:
    // an unlinked file lives on until its last handle closes.
    const deleted = found(await this.records.deleteOwned(recordId, user.id));
    await removeAudio(this.blobs, [deleted], log);
  }

  /** A record by its link: the two ids are the capability, no token is needed. */
  async findByLink(recordId: string, userId: string): Promise<RecordRow> {
    return found(await this.records.findOwned(recordId, userId));
  }

  async openAudio(record: RecordRow, log: Logger): Promise<OpenedBlob> {
    const blob = await this.blobs.open(audioKey(record));
    if (blob !== undefined) return blob;
    // A delete may have removed row and audio since the lookup; only a row still there is an inconsistency.
    if ((await this.records.findOwned(record.recordId, record.userId)) !== undefined) {
      log.error({ recordId: record.recordId }, 'record row without its audio file');
    }
    throw new NotFound(NO_SUCH_RECORD);
  }

  private async store(
    scratchPath: string,
    record: Omit<NewRecordRow, 'sizeBytes' | 'bitrate'> & StoredAudioRef,
  ): Promise<RecordRow> {
    const key = audioKey(record);
    const stored = await this.blobs.put(key, { path: scratchPath });
    const row: NewRecordRow = {
      ...record,
      sizeBytes: stored.sizeBytes,
      bitrate: Math.round((stored.sizeBytes * 8 * 1000) / Math.max(record.durationMs, 1)),
    };
    try {
      return this.quota.unlimited
        ? await this.records.insert(row)
        : await this.records.insertAdmitted(row, (usage) => this.quota.admit(usage, stored.sizeBytes));
    } catch (error) {
      await this.blobs.delete(key);
      // The account was deleted while its upload converted: the token no longer names a user.
      if (isForeignKeyViolation(error)) throw new Unauthorized();
      throw error;
    }
  }
}

function found<T>(record: T | undefined): T {
  if (record === undefined) throw new NotFound(NO_SUCH_RECORD);
  return record;
}
