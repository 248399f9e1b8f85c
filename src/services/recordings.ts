import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { isForeignKeyViolation, isOutcomeUnknown } from '../db/postgres-errors.js';
import type { RecordRepository } from '../db/records.js';
import type { NewRecordRow, PeaksRow, RecordRow, StoredAudioRef } from '../db/schema.js';
import {
  AudioRejected,
  InsufficientStorage,
  InvalidInput,
  NotFound,
  Unauthorized,
  Unavailable,
} from '../domain/errors.js';
import type { ConvertedAudio, Converter } from '../media/converter.js';
import type { Admission, ConversionLimiter } from '../media/limiter.js';
import { storedFormat } from '../media/outputs.js';
import type { Peaks } from '../media/peaks.js';
import type { BlobStore, OpenedBlob } from '../storage/blob-store.js';
import type { ScratchDirectory } from '../storage/scratch.js';
import type { AuthenticatedUser } from './accounts.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import type { Logger } from './logger.js';
import type { Quota } from './quota.js';
import type { RecordLinkCache } from './record-link-cache.js';
import type { UploadCaps } from './upload-caps.js';
import { audioKey, removeAudio } from './stored-audio.js';
import { cleanFilename, cleanOptionalText } from './text.js';
import { parseOutputOptions, type RawOutputOptions } from './output-options.js';

export const MAX_TITLE_LENGTH = 200;
const NO_SUCH_RECORD = 'No such record for this user.';

/** Checks a title as given by a client; blank means none. */
export function cleanTitle(title: string | undefined): string | null {
  return cleanOptionalText(title, 'title', MAX_TITLE_LENGTH);
}

/** What the form held before its file part: the conversion starts with the file, so these are all it knows. */
interface FieldsBeforeFile {
  readonly filename: string | undefined;
  /** Already checked with `cleanTitle`. */
  readonly title: string | null;
  readonly options: RawOutputOptions;
}

/** Hands the audio file of an upload to the conversion, as its bytes arrive. */
export type AudioSink = (file: AsyncIterable<Buffer>, before: FieldsBeforeFile) => Promise<void>;

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
    | 'usageOf'
    | 'insert'
    | 'insertAdmitted'
    | 'listPage'
    | 'findOwned'
    | 'rename'
    | 'deleteOwned'
    | 'findPeaks'
    | 'savePeaks'
  >;
  readonly blobs: BlobStore;
  readonly scratch: ScratchDirectory;
  readonly converter: Pick<Converter, 'check' | 'convert' | 'retag' | 'peaksOf'>;
  /** Guards the cores from conversions … */
  readonly limiter: ConversionLimiter;
  /** … and from the short ffmpeg runs on stored files (rewriting a tag, computing old records' peaks). */
  readonly fileJobs: ConversionLimiter;
  readonly quota: Quota;
  readonly caps: UploadCaps;
  /** Free disk space an upload needs to be admitted … */
  readonly minFreeDiskBytes: number;
  /** … and the space left where its scratch file and its audio are written, whichever is less. */
  readonly freeDiskBytes: () => Promise<number>;
  /** Send clients to the store's presigned URLs, valid at least this long; unset: the service streams audio. */
  readonly redirectDownloadsSeconds?: number | undefined;
  /** Records recently looked up by link; shared with the accounts, which forget a deleted user's. */
  readonly linkCache: RecordLinkCache;
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
  async upload(
    user: AuthenticatedUser,
    source: UploadSource,
    options: { title?: string | undefined; output: RawOutputOptions },
  ): Promise<RecordRow> {
    this.deps.limiter.refuseIfFull();
    const queryTitle = cleanTitle(options.title);
    this.deps.converter.check(parseOutputOptions(options.output));
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
    const spoolPath = this.deps.scratch.newPath();
    const retaggedPath = this.deps.scratch.newPath();
    let admission: Admission | undefined;
    try {
      // Admission is decided before a byte of the body is read; waiting here holds no upload in memory.
      admission = await this.deps.limiter.acquire(source.signal);
      const { freeSlot } = admission;
      let converted: ConvertedAudio | undefined;
      let originalFilename: string | null = null;
      let taggedTitle: string | null = null;
      let fields;
      try {
        fields = await source.receive(async (file, before) => {
          // Form fields win over query parameters, as for the title.
          const fromForm = Object.entries(before.options).filter(([, value]) => value !== '');
          const output = parseOutputOptions({ ...options.output, ...Object.fromEntries(fromForm) });
          taggedTitle = before.title ?? queryTitle;
          try {
            converted = await this.deps.converter.convert(file, scratchPath, { output, title: taggedTitle, spoolPath });
          } finally {
            // The encoder has exited: the next upload's encoder starts while this one reads its form's end
            // and is stored.
            freeSlot();
          }
          originalFilename = cleanFilename(before.filename);
        });
      } finally {
        freeSlot();
        await this.deps.scratch.discard(spoolPath);
      }
      if (converted === undefined) throw new InvalidInput('The form has no "file" part with the recording.');
      const title = fields.title ?? queryTitle;
      let audioPath = scratchPath;
      if (title !== taggedTitle) {
        // The title came after the file: the tag is written now, by copying the audio into a new file.
        const job = await this.deps.fileJobs.acquire(source.signal);
        try {
          await this.deps.converter.retag(createReadStream(scratchPath), converted.format, title, retaggedPath);
        } finally {
          job.end();
        }
        audioPath = retaggedPath;
      }
      return await this.store(
        audioPath,
        {
          userId: user.id,
          recordId: randomUUID(),
          title,
          originalFilename,
          durationMs: converted.durationMs,
          sampleRate: converted.sampleRate,
          channels: converted.channels,
          format: converted.format.name,
          mimeType: converted.format.mimeType,
          sourceFormat: converted.sourceFormat,
          loudnessLufs: converted.loudnessLufs ?? null,
        },
        peaksRow(converted.peaks),
      );
    } finally {
      endCount();
      try {
        await Promise.all([scratchPath, retaggedPath].map((path) => this.deps.scratch.discard(path)));
      } finally {
        // The upload's place in the limiter is held until it is stored (or failed) and its files are gone.
        admission?.end();
      }
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

  /**
   * Sets the title; null or blank removes it. The file's tag is rewritten first (a copy of the audio with
   * the new tag, stored over the old file atomically), then the row.
   */
  async rename(user: AuthenticatedUser, recordId: string, title: string | null): Promise<RecordRow> {
    const cleaned = cleanTitle(title ?? undefined);
    const record = found(await this.deps.records.findOwned(recordId, user.id));
    if (record.title === cleaned) return record;
    const job = await this.deps.fileJobs.acquire();
    const retaggedPath = this.deps.scratch.newPath();
    try {
      const blob = await this.deps.blobs.open(audioKey(record));
      if (blob === undefined) throw new NotFound(NO_SUCH_RECORD);
      await this.deps.converter.retag(blob.stream(), storedFormat(record.format), cleaned, retaggedPath);
      await this.putAudio(audioKey(record), retaggedPath, 'replacing');
    } finally {
      job.end();
      await this.deps.scratch.discard(retaggedPath);
    }
    try {
      return found(await this.deps.records.rename(recordId, user.id, cleaned));
    } finally {
      this.deps.linkCache.forget(recordId, user.id);
    }
  }

  /**
   * The record's waveform peaks. Records stored before peaks existed get them now, from their stored
   * audio, once.
   */
  async peaks(record: RecordRow): Promise<Peaks> {
    const stored = await this.deps.records.findPeaks(record.recordId);
    if (stored !== undefined) {
      const bytes = stored.data;
      return {
        sampleRate: stored.sampleRate,
        samplesPerPixel: stored.samplesPerPixel,
        data: new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length),
      };
    }
    const job = await this.deps.fileJobs.acquire();
    try {
      const blob = await this.deps.blobs.open(audioKey(record));
      if (blob === undefined) throw new NotFound(NO_SUCH_RECORD);
      const peaks = await this.deps.converter.peaksOf(blob.stream(), storedFormat(record.format));
      await this.deps.records.savePeaks(record.recordId, peaksRow(peaks)).catch((error: unknown) => {
        // The record was deleted meanwhile.
        throw isForeignKeyViolation(error) ? new NotFound(NO_SUCH_RECORD) : error;
      });
      return peaks;
    } finally {
      job.end();
    }
  }

  async delete(user: AuthenticatedUser, recordId: string, log: Logger): Promise<void> {
    // The row goes first, in its own committed transaction; the audio only after that. A crash in between
    // leaves at worst audio without a row, invisible to every route and removed by the storage check,
    // never a row pointing at missing audio. Downloads that already opened a local file keep reading it:
    // an unlinked file lives on until its last handle closes.
    const deleted = found(await this.deps.records.deleteOwned(recordId, user.id));
    this.deps.linkCache.forget(recordId, user.id);
    await removeAudio(this.deps.blobs, [deleted], log);
  }

  /**
   * A record by its link: the two ids are the capability, no token is needed. Looked up in memory first (see
   * RecordLinkCache): a player's Range requests for one record would otherwise each query the database.
   */
  async findByLink(recordId: string, userId: string): Promise<RecordRow> {
    return found(await this.deps.linkCache.find(recordId, userId, () => this.deps.records.findOwned(recordId, userId)));
  }

  /**
   * Where the client fetches the audio from the store itself, answering with these headers; undefined
   * when the service streams it (the default, and the only way for a store on this machine's disk).
   */
  async downloadLocation(
    record: RecordRow,
    response: { readonly contentType: string; readonly contentDisposition: string },
  ): Promise<string | undefined> {
    const seconds = this.deps.redirectDownloadsSeconds;
    if (seconds === undefined || this.deps.blobs.presignedUrl === undefined) return undefined;
    return this.deps.blobs.presignedUrl(audioKey(record), { ...response, expiresInSeconds: seconds });
  }

  async openAudio(record: RecordRow, log: Logger): Promise<OpenedBlob> {
    const blob = await this.deps.blobs.open(audioKey(record));
    if (blob !== undefined) return blob;
    // The row came from memory, perhaps after another replica deleted it: ask the database, and forget it.
    this.deps.linkCache.forget(record.recordId, record.userId);
    // A delete may have removed row and audio since the lookup; only a row still there is an inconsistency.
    if ((await this.deps.records.findOwned(record.recordId, record.userId)) !== undefined) {
      log.error({ recordId: record.recordId }, 'record row without its audio file');
    }
    throw new NotFound(NO_SUCH_RECORD);
  }

  /**
   * Stores a finished scratch file under `key`. On failure a new key is left empty; a replaced one keeps
   * its old file (puts are atomic), so a failed rename never costs a record its audio.
   */
  private async putAudio(key: string, path: string, mode: 'new' | 'replacing') {
    try {
      return await this.deps.blobs.put(key, { path });
    } catch (error) {
      if (mode === 'new') await this.deps.blobs.delete(key).catch(() => undefined);
      if (error instanceof Error && 'code' in error && error.code === 'ENOSPC') {
        throw new InsufficientStorage('The server ran out of disk space while storing the recording.', {
          cause: error,
        });
      }
      throw error;
    }
  }

  private async store(
    scratchPath: string,
    record: Omit<NewRecordRow, 'sizeBytes' | 'bitrate'> & StoredAudioRef,
    peaks: PeaksRow,
  ): Promise<RecordRow> {
    const key = audioKey(record);
    const stored = await this.putAudio(key, scratchPath, 'new');
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
        ? await this.deps.records.insert(row, peaks)
        : await this.deps.records.insertAdmitted(row, peaks, (usage) => this.deps.quota.admit(usage, stored.sizeBytes));
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

function peaksRow(peaks: Peaks): PeaksRow {
  return {
    sampleRate: peaks.sampleRate,
    samplesPerPixel: peaks.samplesPerPixel,
    data: new Uint8Array(peaks.data.buffer, peaks.data.byteOffset, peaks.data.length),
  };
}

const isInt32 = (value: number) => Number.isSafeInteger(value) && value >= 0 && value < 2 ** 31;

function found<T>(record: T | undefined): T {
  if (record === undefined) throw new NotFound(NO_SUCH_RECORD);
  return record;
}
