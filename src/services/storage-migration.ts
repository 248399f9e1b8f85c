import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { RecordRepository, StoredAudioRow } from '../db/records.js';
import type { BlobInfo, BlobStore } from '../storage/blob-store.js';
import type { ScratchDirectory } from '../storage/scratch.js';
import { audioKey } from './stored-audio.js';

/** What the migration needs of the records repository. */
type MigratedRecords = Pick<RecordRepository, 'audioAfter'>;

export interface MigrationOptions {
  /** Compare only, copy nothing: what would be copied is counted as copied. */
  readonly dryRun: boolean;
  /** Records handled at once. */
  readonly concurrency: number;
  /** Never compare with an MD5 a store states (its ETags are not MD5s), only sizes. */
  readonly sizeOnly: boolean;
  /** Read each copy back from the destination to compare its MD5 (for the local disk, where that is cheap). */
  readonly readBack: boolean;
  /** How many ids each list of the report keeps; the counts are always complete. */
  readonly listLimit?: number;
  /** Rows read from the database at once. */
  readonly pageSize?: number;
  /** The run stops (incomplete) after this many failures in a row: the store is down, not one file. */
  readonly maxConsecutiveFailures?: number;
  /** Called after each record, with the report so far. */
  readonly onProgress?: (report: MigrationReport) => void;
}

export interface MigrationReport {
  readonly dryRun: boolean;
  rowsScanned: number;
  /** Copied and verified (in a dry run: would be copied); `bytes` in all. */
  readonly copied: IdList & { bytes: number };
  /** Already at the destination with the same size (and MD5, where a store states one). */
  readonly alreadyThere: { count: number };
  /** Of those copied and those already there, how many were compared by MD5, not by size alone. */
  checksumVerified: number;
  /** At the destination but not at the source (the service already stores there): left alone. */
  readonly onlyAtDestination: IdList;
  /** Rows whose audio is in neither store: nothing to copy. */
  readonly missingAtSource: IdList;
  readonly failed: { count: number; readonly sample: FailedCopy[] };
  /** False when the run stopped early; `stoppedBecause` says why. */
  complete: boolean;
  stoppedBecause?: string;
}

interface IdList {
  count: number;
  /** The first `listLimit` of them. */
  readonly sample: string[];
}

interface FailedCopy {
  readonly recordId: string;
  readonly error: string;
}

type Outcome =
  | { readonly kind: 'copied'; readonly bytes: number; readonly checksum: boolean }
  | { readonly kind: 'alreadyThere'; readonly checksum: boolean }
  | { readonly kind: 'onlyAtDestination' | 'missingAtSource' };

const PAGE_SIZE = 500;
const MAX_CONSECUTIVE_FAILURES = 20;

/**
 * Copies the audio of every record from one blob store to another: rows are read in table order, page by
 * page, and each key is built from its row as the service builds it, so files without a row are never
 * copied. A file already at the destination with the same size (and the same MD5, where one side states
 * it) is left alone, so a run that was interrupted, or ran while the service kept storing, can simply run
 * again. A copy goes through a scratch file, is put whole (a store never shows a partial file) and is
 * verified at the destination before it counts. The source is only read.
 */
export async function migrateStorage(
  records: MigratedRecords,
  from: BlobStore,
  to: BlobStore,
  scratch: ScratchDirectory,
  options: MigrationOptions,
): Promise<MigrationReport> {
  const limit = options.listLimit ?? 100;
  const report: MigrationReport = {
    dryRun: options.dryRun,
    rowsScanned: 0,
    copied: { count: 0, sample: [], bytes: 0 },
    alreadyThere: { count: 0 },
    checksumVerified: 0,
    onlyAtDestination: { count: 0, sample: [] },
    missingAtSource: { count: 0, sample: [] },
    failed: { count: 0, sample: [] },
    complete: false,
  };
  const add = (list: IdList, id: string) => {
    list.count += 1;
    if (list.sample.length < limit) list.sample.push(id);
  };
  const copier = new Copier(from, to, scratch, options);
  const maxFailures = options.maxConsecutiveFailures ?? MAX_CONSECUTIVE_FAILURES;
  let consecutiveFailures = 0;
  let stopped = false;

  const rows = rowsOf(records, options.pageSize ?? PAGE_SIZE);
  const worker = async () => {
    // The workers share one generator: each row goes to exactly one of them.
    while (!stopped) {
      const next = await rows.next();
      if (next.done === true) return;
      const row = next.value;
      report.rowsScanned += 1;
      try {
        const outcome = await copier.migrate(audioKey(row));
        consecutiveFailures = 0;
        if (outcome.kind === 'copied') {
          add(report.copied, row.recordId);
          report.copied.bytes += outcome.bytes;
        } else if (outcome.kind === 'alreadyThere') {
          report.alreadyThere.count += 1;
        } else {
          add(report[outcome.kind], row.recordId);
        }
        if ((outcome.kind === 'copied' || outcome.kind === 'alreadyThere') && outcome.checksum) {
          report.checksumVerified += 1;
        }
      } catch (error) {
        report.failed.count += 1;
        const message = error instanceof Error ? error.message : String(error);
        if (report.failed.sample.length < limit) report.failed.sample.push({ recordId: row.recordId, error: message });
        consecutiveFailures += 1;
        if (consecutiveFailures >= maxFailures && !stopped) {
          stopped = true;
          report.stoppedBecause = `${consecutiveFailures} records in a row failed; the last: ${message}`;
        }
      }
      options.onProgress?.(report);
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.max(1, options.concurrency) }, worker));
  // A database error ends the run; every worker has finished its record by now.
  const failure = results.find((result) => result.status === 'rejected');
  if (failure !== undefined) throw failure.reason;
  report.complete = !stopped;
  return report;
}

/** Every record's audio reference, in row order, one page at a time. */
async function* rowsOf(records: MigratedRecords, pageSize: number): AsyncGenerator<StoredAudioRow> {
  let after = 0;
  for (;;) {
    const page = await records.audioAfter(after, pageSize);
    yield* page;
    const last = page.at(-1);
    if (last === undefined || page.length < pageSize) return;
    after = last.id;
  }
}

class Copier {
  constructor(
    private readonly from: BlobStore,
    private readonly to: BlobStore,
    private readonly scratch: ScratchDirectory,
    private readonly options: MigrationOptions,
  ) {}

  async migrate(key: string): Promise<Outcome> {
    const [source, target] = await Promise.all([this.from.stat(key), this.to.stat(key)]);
    if (source === undefined) return { kind: target === undefined ? 'missingAtSource' : 'onlyAtDestination' };
    if (target !== undefined) {
      const same = await this.sameContent(key, source, target);
      if (same !== undefined) return { kind: 'alreadyThere', checksum: same.checksum };
    }
    if (this.options.dryRun) return { kind: 'copied', bytes: source.sizeBytes, checksum: false };
    return this.copy(key);
  }

  /**
   * Whether the destination already holds the source's bytes; undefined when it must be copied. With an
   * MD5 on one side (the object store's), the other side (the local file) is read for its own.
   */
  private async sameContent(
    key: string,
    source: BlobInfo,
    target: BlobInfo,
  ): Promise<{ checksum: boolean } | undefined> {
    if (source.sizeBytes !== target.sizeBytes) return undefined;
    const sourceMd5 = this.stated(source);
    const targetMd5 = this.stated(target);
    if (sourceMd5 !== undefined && targetMd5 !== undefined) {
      return sourceMd5 === targetMd5 ? { checksum: true } : undefined;
    }
    if (sourceMd5 !== undefined || targetMd5 !== undefined) {
      const read = await md5Of(sourceMd5 === undefined ? this.from : this.to, key);
      return read !== undefined && read.md5 === (sourceMd5 ?? targetMd5) ? { checksum: true } : undefined;
    }
    // Sizes alone (a multipart upload's ETag, --size-only): a source written after the destination (a record
    // renamed to a title of the same length) is copied again. Whole seconds, as S3 dates are.
    const seconds = (info: BlobInfo) => Math.floor(info.modifiedAt.getTime() / 1000);
    return seconds(source) <= seconds(target) ? { checksum: false } : undefined;
  }

  /**
   * Source → scratch file (counting and hashing the bytes) → destination, then the destination is checked:
   * its size, and its MD5 (the store's, or the local file read back) against that of the bytes read.
   */
  private async copy(key: string): Promise<Outcome> {
    const opened = await this.from.open(key);
    // Deleted since it was looked at: the service still runs on the old store and the record is gone.
    if (opened === undefined) {
      return { kind: (await this.to.stat(key)) === undefined ? 'missingAtSource' : 'onlyAtDestination' };
    }
    const path = this.scratch.newPath();
    try {
      const read = await copyToFile(opened.stream(), path);
      if (read.bytes !== opened.sizeBytes) {
        throw new Error(`read ${read.bytes} bytes of ${key} at the source, which has ${opened.sizeBytes}`);
      }
      const sourceMd5 = this.stated(opened);
      if (sourceMd5 !== undefined && sourceMd5 !== read.md5) {
        throw new Error(`the bytes read of ${key} have MD5 ${read.md5}, the source states ${sourceMd5}`);
      }
      await this.to.put(key, { path });
      const written = await this.to.stat(key);
      if (written === undefined) throw new Error(`${key} is missing at the destination right after it was put`);
      if (written.sizeBytes !== read.bytes) {
        throw new Error(`${key} has ${written.sizeBytes} bytes at the destination, not the ${read.bytes} copied`);
      }
      const statedMd5 = this.stated(written);
      // The store's MD5, or the copy read back (the local disk, where that is cheap).
      const targetMd5 = statedMd5 ?? (this.options.readBack ? (await md5Of(this.to, key))?.md5 : undefined);
      if ((statedMd5 !== undefined || this.options.readBack) && targetMd5 !== read.md5) {
        throw new Error(`${key} has MD5 ${targetMd5 ?? '(gone)'} at the destination, not the ${read.md5} copied`);
      }
      const checksum = sourceMd5 !== undefined || statedMd5 !== undefined;
      return { kind: 'copied', bytes: read.bytes, checksum };
    } finally {
      await this.scratch.discard(path);
    }
  }

  private stated(info: BlobInfo): string | undefined {
    return this.options.sizeOnly ? undefined : info.md5;
  }
}

/** The MD5 and length of a stored blob, read whole; undefined when it is gone. */
async function md5Of(store: BlobStore, key: string): Promise<Digest | undefined> {
  const opened = await store.open(key);
  if (opened === undefined) return undefined;
  const hash = createHash('md5');
  let bytes = 0;
  for await (const chunk of opened.stream()) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { md5: hash.digest('hex'), bytes };
}

/** Writes a stream into a file and answers the MD5 and count of its bytes. */
async function copyToFile(stream: Readable, path: string): Promise<Digest> {
  const hash = createHash('md5');
  let bytes = 0;
  await pipeline(
    stream,
    async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        hash.update(chunk);
        bytes += chunk.length;
        yield chunk;
      }
    },
    createWriteStream(path),
  );
  return { md5: hash.digest('hex'), bytes };
}

interface Digest {
  readonly md5: string;
  readonly bytes: number;
}
