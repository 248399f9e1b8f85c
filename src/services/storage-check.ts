import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { RecordRepository } from '../db/records.js';
import type { BlobStore } from '../storage/blob-store.js';
import { recordIdOfKey, SHARDS } from '../storage/keys.js';
import type { Logger } from './logger.js';
import { audioKey } from './stored-audio.js';

/** What the check needs of the records repository. */
type CheckedRecords = Pick<RecordRepository, 'inShard' | 'existingRecordIds' | 'deleteByRecordIds'>;

export interface StorageCheckOptions {
  /** Delete orphan files (files without a row, older than `orphanMinAgeMs`). */
  readonly removeOrphanFiles: boolean;
  /** Delete rows whose file is missing: the record cannot be served any more. */
  readonly removeRowsWithoutFile: boolean;
  /**
   * Files younger than this are left alone and not called orphans: an upload renames its file into place
   * just before it inserts the row, so a fresh file without a row may be one that is still being saved.
   */
  readonly orphanMinAgeMs: number;
  /** Stops the check between two shards (the service is shutting down). */
  readonly signal?: AbortSignal;
  /** How many ids each list of the report keeps; the counts are always complete. */
  readonly listLimit?: number;
  /**
   * Unfinished uploads (an object store's multipart uploads) older than this are stale, and aborted along
   * with orphan files; a day by default, since a live one can take as long as a huge file's transfer.
   */
  readonly incompleteUploadMinAgeMs?: number;
}

const INCOMPLETE_UPLOAD_MIN_AGE_MS = 24 * 3600 * 1000;

export interface StorageReport {
  readonly filesScanned: number;
  readonly rowsScanned: number;
  /** Rows whose audio does not exist. */
  readonly rowsWithoutFile: IdList;
  /** Audio named after a record id that has no row, older than the minimum age. */
  readonly orphanFiles: IdList;
  /** Files without a row that are too young to judge (their upload may still be finishing). */
  readonly recentUnreferencedFiles: number;
  /** Names in the store the service never writes; reported, never deleted. */
  readonly strayEntries: IdList;
  readonly removedFiles: number;
  readonly removedRows: number;
  /** Unfinished uploads older than the minimum age; null when the store has none or cannot list them. */
  readonly staleUploads: number | null;
  readonly abortedUploads: number;
  /** False when the check was stopped before it covered every shard. */
  readonly complete: boolean;
}

interface IdList {
  count: number;
  /** The first `listLimit` of them. */
  readonly sample: string[];
}

/**
 * Compares the records table with the stored audio, one key prefix (fan-out folder) at a time so that
 * memory stays small at any size, and optionally repairs what it finds. Safe to run while the service
 * serves: every finding is confirmed again just before it is acted on.
 */
export async function checkStorage(
  records: CheckedRecords,
  blobs: BlobStore,
  options: StorageCheckOptions,
): Promise<StorageReport> {
  const limit = options.listLimit ?? 100;
  const report = {
    filesScanned: 0,
    rowsScanned: 0,
    rowsWithoutFile: idList(),
    orphanFiles: idList(),
    recentUnreferencedFiles: 0,
    strayEntries: idList(),
    removedFiles: 0,
    removedRows: 0,
    staleUploads: null as number | null,
    abortedUploads: 0,
    complete: false,
  };
  const add = (list: IdList, id: string) => {
    list.count += 1;
    if (list.sample.length < limit) list.sample.push(id);
  };

  for (const shard of SHARDS) {
    if (options.signal?.aborted === true) return report;
    // Blobs first, rows second: a row is only ever inserted after its audio is stored, so a row read later
    // than the listing whose audio the listing lacks is checked once more in the store below.
    const listed = [];
    for await (const blob of blobs.list(`${shard}/`)) listed.push(blob);
    const rows = new Map((await records.inShard(shard)).map((row) => [audioKey(row), row.recordId]));
    report.filesScanned += listed.length;
    report.rowsScanned += rows.size;

    const storedKeys = new Set<string>();
    const unreferenced = new Map<string, string>();
    const cutoff = Date.now() - options.orphanMinAgeMs;
    for (const blob of listed) {
      const recordId = recordIdOfKey(blob.key);
      if (recordId === undefined) {
        add(report.strayEntries, blob.key);
        continue;
      }
      storedKeys.add(blob.key);
      if (rows.has(blob.key)) continue;
      if (blob.modifiedAt.getTime() > cutoff) report.recentUnreferencedFiles += 1;
      else unreferenced.set(blob.key, recordId);
    }

    // A row may have been inserted since the rows were read: ask again for just these ids.
    const nowReferenced = await records.existingRecordIds([...unreferenced.values()]);
    for (const [key, recordId] of unreferenced) {
      if (nowReferenced.has(recordId)) continue;
      add(report.orphanFiles, recordId);
      if (options.removeOrphanFiles) {
        await blobs.delete(key);
        report.removedFiles += 1;
      }
    }

    const missing: string[] = [];
    for (const [key, recordId] of rows) {
      if (storedKeys.has(key)) continue;
      if ((await blobs.stat(key)) === undefined) missing.push(recordId);
    }
    for (const recordId of missing) add(report.rowsWithoutFile, recordId);
    if (options.removeRowsWithoutFile && missing.length > 0) {
      report.removedRows += await records.deleteByRecordIds(missing);
    }
    // Long checks must not starve the requests served meanwhile.
    await yieldToEventLoop();
  }
  if (blobs.incompleteUploads !== undefined) {
    const uploads = await blobs.incompleteUploads(options.incompleteUploadMinAgeMs ?? INCOMPLETE_UPLOAD_MIN_AGE_MS, {
      abort: options.removeOrphanFiles,
    });
    report.staleUploads = uploads?.stale ?? null;
    report.abortedUploads = uploads?.aborted ?? 0;
  }
  report.complete = true;
  return report;
}

function idList(): IdList {
  return { count: 0, sample: [] };
}

/** True when the check found nothing to repair. */
export function isConsistent(report: StorageReport): boolean {
  return report.rowsWithoutFile.count === 0 && report.orphanFiles.count === 0;
}

/**
 * Runs `work` unless another process of the deployment is running the same work; resolves false when
 * it is, without running it.
 */
export type RunAlone = (work: () => Promise<void>) => Promise<boolean>;

export interface BackgroundCheck {
  /** Stops the check at the next shard and waits for it. */
  stop(): Promise<void>;
}

/**
 * The start-up form: runs in the background without delaying readiness, removes orphan files older than
 * `orphanMinAgeMs` (left by a crash between the file's rename and its row's insert) and only logs rows
 * whose file is missing, which need a person (or `node dist/check-storage.js --repair`). Of replicas
 * starting together only one checks (`runAlone`): the others would repeat its work and race its deletions.
 */
export function startStorageCheck(
  records: CheckedRecords,
  blobs: BlobStore,
  orphanMinAgeMs: number,
  log: Logger,
  runAlone: RunAlone = (work) => work().then(() => true),
): BackgroundCheck {
  const controller = new AbortController();
  const check = async () => {
    const report = await checkStorage(records, blobs, {
      removeOrphanFiles: true,
      removeRowsWithoutFile: false,
      orphanMinAgeMs,
      signal: controller.signal,
      listLimit: 20,
    });
    logReport(report, log);
  };
  const running = runAlone(check).then(
    (ran) => {
      if (!ran) log.info({ skipped: true }, 'storage check: another process of the service is running it');
    },
    (error: unknown) => {
      if (controller.signal.aborted) return;
      log.warn({ err: error }, 'storage check failed; it runs again at the next start');
    },
  );
  return {
    stop: async () => {
      controller.abort();
      await running;
    },
  };
}

function logReport(report: StorageReport, log: Logger): void {
  if (report.rowsWithoutFile.count > 0) {
    log.error(
      { rowsWithoutFile: report.rowsWithoutFile.count, sample: report.rowsWithoutFile.sample },
      'storage check: records whose MP3 file is missing; to drop them, run `node dist/check-storage.js --repair` ' +
        '(Docker Compose: `docker compose exec api node dist/check-storage.js --repair`; with the embedded ' +
        'PGlite database, stop the service first)',
    );
  }
  log.info(
    {
      complete: report.complete,
      rowsScanned: report.rowsScanned,
      filesScanned: report.filesScanned,
      removedOrphanFiles: report.removedFiles,
      abortedUploads: report.abortedUploads,
      rowsWithoutFile: report.rowsWithoutFile.count,
      strayEntries: report.strayEntries.count,
    },
    'storage check finished',
  );
}
