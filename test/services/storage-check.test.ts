import { describe, expect, it, vi } from 'vitest';
import {
  checkStorage,
  isConsistent,
  startStorageCheck,
  type StorageCheckOptions,
} from '../../src/services/storage-check.js';
import { recordKey } from '../../src/storage/keys.js';
import { FakeDatabase, FakeRecordRepository, InMemoryBlobStore, RecordingLogger } from './fakes.js';

const USER_ID = '11111111-1111-4111-8111-111111111111';
const MINUTE = 60_000;
const NOW = Date.now();
const OLD = new Date(NOW - 60 * MINUTE);
const RECENT = new Date(NOW - 1000);

/** Record ids spread over several shards, so that the check has to look in more than one. */
const id = (shard: string, n: number) => `${shard}${String(n).padStart(6, '0')}-0000-4000-8000-000000000000`;
const key = (recordId: string) => recordKey(recordId, 'mp3');

function setup() {
  const db = new FakeDatabase();
  db.addUser(USER_ID);
  const records = new FakeRecordRepository(db);
  const blobs = new InMemoryBlobStore(db.journal);
  const check = (options: Partial<StorageCheckOptions> = {}) =>
    checkStorage(records, blobs, {
      removeOrphanFiles: false,
      removeRowsWithoutFile: false,
      orphanMinAgeMs: 10 * MINUTE,
      ...options,
    });
  return { db, records, blobs, check };
}

/** A record with both its row and its audio. */
function consistent(context: ReturnType<typeof setup>, recordId: string) {
  context.db.addRecord(USER_ID, recordId);
  context.blobs.seed(key(recordId), OLD);
}

describe('checkStorage', () => {
  it('finds nothing wrong in a consistent store, across every shard', async () => {
    const context = setup();
    for (const recordId of [id('00', 1), id('7f', 2), id('ff', 3)]) consistent(context, recordId);
    const report = await context.check({ removeOrphanFiles: true, removeRowsWithoutFile: true });
    expect(report).toMatchObject({
      filesScanned: 3,
      rowsScanned: 3,
      rowsWithoutFile: { count: 0, sample: [] },
      orphanFiles: { count: 0, sample: [] },
      recentUnreferencedFiles: 0,
      strayEntries: { count: 0, sample: [] },
      removedFiles: 0,
      removedRows: 0,
      complete: true,
    });
    expect(isConsistent(report)).toBe(true);
    expect(context.blobs.blobs.size).toBe(3);
  });

  it('reports old orphan files, and removes them only when asked', async () => {
    const context = setup();
    consistent(context, id('10', 1));
    context.blobs.seed(key(id('20', 2)), OLD);
    context.blobs.seed(key(id('ff', 3)), OLD);

    const reportOnly = await context.check();
    expect(reportOnly.orphanFiles).toEqual({ count: 2, sample: [id('20', 2), id('ff', 3)] });
    expect(reportOnly.removedFiles).toBe(0);
    expect(isConsistent(reportOnly)).toBe(false);
    expect(context.blobs.blobs.size).toBe(3);

    const repaired = await context.check({ removeOrphanFiles: true });
    expect(repaired.orphanFiles.count).toBe(2);
    expect(repaired.removedFiles).toBe(2);
    expect([...context.blobs.blobs.keys()]).toEqual([key(id('10', 1))]);
    expect(isConsistent(await context.check())).toBe(true);
  });

  it('counts recent files without a row but neither calls them orphans nor removes them', async () => {
    const context = setup();
    context.blobs.seed(key(id('30', 1)), RECENT);
    const report = await context.check({ removeOrphanFiles: true });
    expect(report.recentUnreferencedFiles).toBe(1);
    expect(report.orphanFiles.count).toBe(0);
    expect(report.removedFiles).toBe(0);
    expect(context.blobs.blobs.has(key(id('30', 1)))).toBe(true);
  });

  it('the minimum age decides what is recent', async () => {
    const context = setup();
    context.blobs.seed(key(id('30', 1)), new Date(NOW - 5 * MINUTE));
    expect((await context.check({ orphanMinAgeMs: 10 * MINUTE })).orphanFiles.count).toBe(0);
    expect((await context.check({ orphanMinAgeMs: 1 * MINUTE })).orphanFiles.count).toBe(1);
  });

  it('does not call a file orphan when its row was inserted after the rows were read', async () => {
    const context = setup();
    const late = id('40', 1);
    context.blobs.seed(key(late), OLD);
    context.records.afterInShard = (shard) => {
      if (shard === '40') context.db.addRecord(USER_ID, late);
    };
    const report = await context.check({ removeOrphanFiles: true });
    expect(report.orphanFiles.count).toBe(0);
    expect(report.removedFiles).toBe(0);
    expect(context.blobs.blobs.has(key(late))).toBe(true);
  });

  it('reports rows whose audio is missing, and removes them only when asked', async () => {
    const context = setup();
    consistent(context, id('50', 1));
    context.db.addRecord(USER_ID, id('60', 2));
    context.db.addRecord(USER_ID, id('60', 3));

    const reportOnly = await context.check();
    expect(reportOnly.rowsWithoutFile).toEqual({ count: 2, sample: [id('60', 2), id('60', 3)] });
    expect(reportOnly.removedRows).toBe(0);
    expect(context.db.records).toHaveLength(3);

    const repaired = await context.check({ removeRowsWithoutFile: true });
    expect(repaired.removedRows).toBe(2);
    expect(context.db.records.map((row) => row.recordId)).toEqual([id('50', 1)]);
  });

  it('does not report a row whose audio appeared after the listing', async () => {
    const context = setup();
    const racing = id('70', 1);
    context.db.addRecord(USER_ID, racing);
    // The upload stores its audio between the listing and the rows being read.
    context.records.afterInShard = (shard) => {
      if (shard === '70') context.blobs.seed(key(racing), RECENT);
    };
    const report = await context.check({ removeRowsWithoutFile: true });
    expect(report.rowsWithoutFile.count).toBe(0);
    expect(context.db.records).toHaveLength(1);
  });

  it('reports names the service never writes, and never deletes them', async () => {
    const context = setup();
    const strays = [
      '3f/readme.txt',
      `3f/${id('3f', 1)}.mp3/`,
      `3f/${id('3f', 2)}.mp3.1234.copying`,
      `ab/${id('3f', 3)}.mp3`, // in the wrong shard
      `3f/${id('3f', 4).toUpperCase()}.mp3`,
    ];
    for (const name of strays) context.blobs.seed(name, OLD);
    const report = await context.check({ removeOrphanFiles: true, removeRowsWithoutFile: true });
    expect(report.strayEntries.count).toBe(strays.length);
    expect([...report.strayEntries.sample].sort()).toEqual([...strays].sort());
    expect(report.orphanFiles.count).toBe(0);
    expect(report.removedFiles).toBe(0);
    expect(context.blobs.blobs.size).toBe(strays.length);
    expect(context.db.journal.filter((line) => line.startsWith('blob.delete'))).toEqual([]);
    // Strays alone are not an inconsistency to repair.
    expect(isConsistent(report)).toBe(true);
  });

  it('keeps at most listLimit ids per list but counts them all', async () => {
    const context = setup();
    for (let n = 0; n < 5; n++) context.blobs.seed(key(id('80', n)), OLD);
    const report = await context.check({ listLimit: 2 });
    expect(report.orphanFiles.count).toBe(5);
    expect(report.orphanFiles.sample).toEqual([id('80', 0), id('80', 1)]);
  });

  it('stops early with complete=false when aborted before it starts', async () => {
    const context = setup();
    context.blobs.seed(key(id('00', 1)), OLD);
    const controller = new AbortController();
    controller.abort();
    const report = await context.check({ removeOrphanFiles: true, signal: controller.signal });
    expect(report.complete).toBe(false);
    expect(report.filesScanned).toBe(0);
    expect(context.blobs.blobs.size).toBe(1);
  });

  it('stops at the next shard when aborted midway', async () => {
    const context = setup();
    context.blobs.seed(key(id('00', 1)), OLD);
    context.blobs.seed(key(id('01', 2)), OLD);
    context.blobs.seed(key(id('ff', 3)), OLD);
    const controller = new AbortController();
    const shardsRead: string[] = [];
    context.records.afterInShard = (shard) => {
      shardsRead.push(shard);
      if (shard === '00') controller.abort();
    };
    const report = await context.check({ removeOrphanFiles: true, signal: controller.signal });
    expect(report.complete).toBe(false);
    expect(shardsRead).toEqual(['00']);
    // The shard under way is finished; later ones are not touched.
    expect(report.filesScanned).toBe(1);
    expect(report.removedFiles).toBe(1);
    expect([...context.blobs.blobs.keys()].sort()).toEqual([key(id('01', 2)), key(id('ff', 3))]);
  });
});

describe('startStorageCheck', () => {
  it('removes old orphans, logs rows without audio as an error, and reports when done', async () => {
    const context = setup();
    context.blobs.seed(key(id('90', 1)), OLD);
    context.db.addRecord(USER_ID, id('91', 2));
    const log = new RecordingLogger();
    const background = startStorageCheck(context.records, context.blobs, 10 * MINUTE, log);
    // stop() would abort between shards; wait for the check to finish on its own instead.
    await vi.waitFor(() => expect(log.at('info')).toHaveLength(1));
    await background.stop();
    expect(context.blobs.blobs.size).toBe(0);
    expect(context.db.records).toHaveLength(1); // only logged, never removed at start-up
    expect(log.at('error')).toHaveLength(1);
    expect(log.at('error')[0]?.details).toEqual({ rowsWithoutFile: 1, sample: [id('91', 2)] });
    expect(log.at('info')[0]?.details).toMatchObject({ complete: true, removedOrphanFiles: 1, rowsWithoutFile: 1 });
  });

  it('leaves everything alone while another process runs the check', async () => {
    const context = setup();
    context.blobs.seed(key(id('90', 1)), OLD);
    const log = new RecordingLogger();
    const background = startStorageCheck(context.records, context.blobs, 10 * MINUTE, log, async () => false);
    await background.stop();
    expect(context.blobs.blobs.size).toBe(1);
    expect(log.at('info').map((line) => line.details)).toEqual([{ skipped: true }]);
  });

  it('stop() ends a running check without logging a failure', async () => {
    const context = setup();
    const log = new RecordingLogger();
    const background = startStorageCheck(context.records, context.blobs, 10 * MINUTE, log);
    await background.stop();
    expect(log.at('warn')).toEqual([]);
    expect(log.at('info')[0]?.details).toMatchObject({ complete: false });
  });
});
