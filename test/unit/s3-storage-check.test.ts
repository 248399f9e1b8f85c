import { describe, expect, it } from 'vitest';
import { checkStorage, type StorageCheckOptions } from '../../src/services/storage-check.js';
import type { IncompleteUploads } from '../../src/storage/blob-store.js';
import { FakeDatabase, FakeRecordRepository, InMemoryBlobStore } from '../services/fakes.js';

/** A store with unfinished uploads, as an object store has; it records how the check asked about them. */
class StoreWithUploads extends InMemoryBlobStore {
  readonly asked: { olderThanMs: number; abort: boolean }[] = [];

  constructor(private readonly answer: IncompleteUploads | undefined) {
    super();
  }

  async incompleteUploads(olderThanMs: number, options: { abort: boolean }): Promise<IncompleteUploads | undefined> {
    this.asked.push({ olderThanMs, abort: options.abort });
    return this.answer === undefined ? undefined : { ...this.answer, aborted: options.abort ? this.answer.aborted : 0 };
  }
}

const check = (blobs: InMemoryBlobStore, options: Partial<StorageCheckOptions> = {}) =>
  checkStorage(new FakeRecordRepository(new FakeDatabase()), blobs, {
    removeOrphanFiles: false,
    removeRowsWithoutFile: false,
    orphanMinAgeMs: 600_000,
    ...options,
  });

describe('the storage check and unfinished uploads', () => {
  it('reports stale uploads, and aborts those a day old only when it repairs', async () => {
    const blobs = new StoreWithUploads({ stale: 2, aborted: 2 });
    expect(await check(blobs)).toMatchObject({ complete: true, staleUploads: 2, abortedUploads: 0 });
    expect(await check(blobs, { removeOrphanFiles: true })).toMatchObject({ staleUploads: 2, abortedUploads: 2 });
    expect(blobs.asked).toEqual([
      { olderThanMs: 24 * 3600_000, abort: false },
      { olderThanMs: 24 * 3600_000, abort: true },
    ]);
    await check(blobs, { removeOrphanFiles: true, incompleteUploadMinAgeMs: 1000 });
    expect(blobs.asked.at(-1)).toEqual({ olderThanMs: 1000, abort: true });
  });

  it('says nothing of uploads where the store cannot list them or has none', async () => {
    expect(await check(new StoreWithUploads(undefined), { removeOrphanFiles: true })).toMatchObject({
      staleUploads: null,
      abortedUploads: 0,
    });
    expect(await check(new InMemoryBlobStore(), { removeOrphanFiles: true })).toMatchObject({
      staleUploads: null,
      abortedUploads: 0,
    });
  });

  it('does not look at uploads when it was stopped before the end', async () => {
    const blobs = new StoreWithUploads({ stale: 1, aborted: 1 });
    const controller = new AbortController();
    controller.abort();
    expect(await check(blobs, { removeOrphanFiles: true, signal: controller.signal })).toMatchObject({
      complete: false,
      staleUploads: null,
    });
    expect(blobs.asked).toEqual([]);
  });
});
