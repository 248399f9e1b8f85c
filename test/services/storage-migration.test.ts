import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoredAudioRow } from '../../src/db/records.js';
import { migrateStorage, type MigrationOptions } from '../../src/services/storage-migration.js';
import type { BlobInfo, OpenedBlob } from '../../src/storage/blob-store.js';
import { recordKey } from '../../src/storage/keys.js';
import { ScratchDirectory } from '../../src/storage/scratch.js';
import { InMemoryBlobStore } from './fakes.js';

const id = (n: number) => `${String(n).padStart(8, '0')}-0000-4000-8000-000000000000`;
const key = (n: number) => recordKey(id(n), 'mp3');
const md5 = (bytes: Buffer) => createHash('md5').update(bytes).digest('hex');
const OLD = new Date('2026-01-01T00:00:00Z');
const NEW = new Date('2026-02-01T00:00:00Z');

/** An object store's stand-in: it states each blob's MD5, or a wrong one for the keys in `lies`. */
class StatingStore extends InMemoryBlobStore {
  readonly lies = new Set<string>();

  private md5Of(key: string): string | undefined {
    const blob = this.blobs.get(key);
    if (blob === undefined) return undefined;
    return this.lies.has(key) ? md5(Buffer.from('something else')) : md5(blob.bytes);
  }

  override async stat(key: string): Promise<BlobInfo | undefined> {
    const info = await super.stat(key);
    return info === undefined ? undefined : { ...info, md5: this.md5Of(key) };
  }

  override async open(key: string): Promise<OpenedBlob | undefined> {
    const opened = await super.open(key);
    return opened === undefined ? undefined : { ...opened, md5: this.md5Of(key) };
  }
}

/** The records table: rows 1…count, in id order. */
function table(count: number, format = 'mp3') {
  const rows: StoredAudioRow[] = Array.from({ length: count }, (_, index) => ({
    id: index + 1,
    recordId: id(index + 1),
    format,
  }));
  const pages: number[] = [];
  return {
    rows,
    pages,
    audioAfter: async (after: number, limit: number) => {
      pages.push(after);
      return rows.filter((row) => row.id > after).slice(0, limit);
    },
  };
}

let folder: string;
let scratch: ScratchDirectory;

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'migration-'));
  scratch = new ScratchDirectory(folder);
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

const options = (more: Partial<MigrationOptions> = {}): MigrationOptions => ({
  dryRun: false,
  concurrency: 3,
  sizeOnly: false,
  readBack: false,
  pageSize: 2,
  ...more,
});

describe('migrateStorage', () => {
  it('copies the audio of every row, page by page, and nothing without a row', async () => {
    const records = table(5);
    const from = new InMemoryBlobStore();
    const to = new StatingStore();
    for (let n = 1; n <= 5; n++) from.seed(key(n), OLD, Buffer.from(`audio ${n}`));
    from.seed(key(9), OLD); // an orphan

    const report = await migrateStorage(records, from, to, scratch, options());
    expect(report).toMatchObject({
      rowsScanned: 5,
      copied: { count: 5, bytes: 5 * 'audio n'.length },
      alreadyThere: { count: 0 },
      checksumVerified: 5,
      failed: { count: 0 },
      complete: true,
    });
    expect(records.pages).toEqual([0, 2, 4]);
    expect([...to.blobs.keys()].sort()).toEqual([1, 2, 3, 4, 5].map(key));
    expect(to.blobs.get(key(3))?.bytes.toString()).toBe('audio 3');
    expect(await readdir(folder)).toEqual([]);

    const again = await migrateStorage(records, from, to, scratch, options());
    expect(again).toMatchObject({ copied: { count: 0 }, alreadyThere: { count: 5 }, checksumVerified: 5 });
  });

  it('writes nothing in a dry run', async () => {
    const from = new InMemoryBlobStore();
    const to = new StatingStore();
    from.seed(key(1), OLD, Buffer.from('abc'));
    from.seed(key(2), OLD, Buffer.from('abcd'));
    to.seed(key(2), OLD, Buffer.from('abcd'));
    const report = await migrateStorage(table(3), from, to, scratch, options({ dryRun: true }));
    expect(report).toMatchObject({
      dryRun: true,
      copied: { count: 1, bytes: 3, sample: [id(1)] },
      alreadyThere: { count: 1 },
      missingAtSource: { count: 1, sample: [id(3)] },
    });
    expect(to.blobs.has(key(1))).toBe(false);
  });

  it('by sizes alone, copies again a source newer than its copy', async () => {
    const from = new InMemoryBlobStore();
    const to = new InMemoryBlobStore();
    from.seed(key(1), NEW, Buffer.from('renamed'));
    to.seed(key(1), OLD, Buffer.from('origin!'));
    from.seed(key(2), OLD, Buffer.from('same'));
    to.seed(key(2), NEW, Buffer.from('same'));
    const report = await migrateStorage(table(2), from, to, scratch, options());
    expect(report).toMatchObject({ copied: { count: 1, sample: [id(1)] }, alreadyThere: { count: 1 } });
    expect(report.checksumVerified).toBe(0);
    expect(to.blobs.get(key(1))?.bytes.toString()).toBe('renamed');
  });

  it('fails a copy whose MD5 differs at either end, and stops when every copy fails', async () => {
    // A download that does not match the source's MD5 is never put.
    const source = new StatingStore();
    const local = new InMemoryBlobStore();
    source.seed(key(1), OLD, Buffer.from('bytes'));
    source.lies.add(key(1));
    const corrupt = await migrateStorage(table(1), source, local, scratch, options());
    expect(corrupt.failed.sample).toEqual([
      { recordId: id(1), error: expect.stringMatching(/the source states/) as unknown },
    ]);
    expect(local.blobs.size).toBe(0);

    // Upload after upload whose MD5 the store contradicts: the store is broken, the run stops.
    const from = new InMemoryBlobStore();
    const broken = new StatingStore();
    for (let n = 1; n <= 10; n++) {
      from.seed(key(n), OLD, Buffer.from(`audio ${n}`));
      broken.lies.add(key(n));
    }
    const report = await migrateStorage(
      table(10),
      from,
      broken,
      scratch,
      options({ concurrency: 1, maxConsecutiveFailures: 3 }),
    );
    expect(report).toMatchObject({ rowsScanned: 3, failed: { count: 3 }, complete: false });
    expect(report.stoppedBecause).toMatch(/^3 records in a row failed; the last: .* at the destination, not the/);
    expect(await readdir(folder)).toEqual([]);
  });

  it('ends with the database’s error', async () => {
    const failing = {
      audioAfter: async () => {
        throw new Error('connection lost');
      },
    };
    await expect(
      migrateStorage(failing, new InMemoryBlobStore(), new InMemoryBlobStore(), scratch, options()),
    ).rejects.toThrow('connection lost');
  });
});
