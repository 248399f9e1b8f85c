import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { join } from 'node:path';

export interface StoredFile {
  readonly sizeBytes: number;
  readonly modifiedAt: Date;
}

/** An open stored file: its size and date are those of the bytes it streams, even if it is deleted meanwhile. */
export interface OpenedFile extends StoredFile {
  /** Streams the file, or one byte range of it, and closes it at the end. */
  stream(range?: ByteRange): Readable;
  /** Closes the file when it is not streamed. */
  close(): Promise<void>;
}

export interface ByteRange {
  readonly start: number;
  /** Inclusive, as in HTTP ranges. */
  readonly end: number;
}

/** One entry of a fan-out folder of `records/`. */
export interface StoredEntry {
  /** Path relative to `records/`. */
  readonly name: string;
  /** The record the file belongs to, or undefined for a name the service never writes. */
  readonly recordId: string | undefined;
  readonly modifiedAt: Date;
}

const SHARD = /^[0-9a-f]{2}$/;
const RECORD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * MP3 files on the local disk, named by record id only. New files are written in `tmp/` and moved into
 * `records/` by an atomic rename on the same file system, so a reader never sees a partial file.
 */
export class LocalStorage {
  private readonly recordsDir: string;
  private readonly tempDir: string;

  constructor(root: string) {
    this.recordsDir = join(root, 'records');
    this.tempDir = join(root, 'tmp');
  }

  /** Creates the folders and removes temp files left by a process that died mid-conversion. */
  async init(): Promise<{ removedTempFiles: number }> {
    await mkdir(this.recordsDir, { recursive: true });
    await mkdir(this.tempDir, { recursive: true });
    const leftovers = await readdir(this.tempDir);
    await Promise.all(leftovers.map((name) => rm(join(this.tempDir, name), { force: true })));
    return { removedTempFiles: leftovers.length };
  }

  /** A fresh path for a file being written; pass it to `commit` or `discard`. */
  tempPath(): string {
    return join(this.tempDir, `${randomUUID()}.partial`);
  }

  /** Makes the temp file durable and moves it to its final place. */
  async commit(tempPath: string, recordId: string): Promise<StoredFile> {
    const finalPath = this.pathOf(recordId);
    const file = await open(tempPath, 'r+');
    try {
      await file.sync();
    } finally {
      await file.close();
    }
    const shard = join(finalPath, '..');
    await mkdir(shard, { recursive: true });
    await rename(tempPath, finalPath);
    await syncDirectory(shard);
    const stored = await this.stat(recordId);
    if (stored === undefined) throw new Error(`File for record ${recordId} vanished right after its rename`);
    return stored;
  }

  async discard(tempPath: string): Promise<void> {
    await rm(tempPath, { force: true });
  }

  async remove(recordId: string): Promise<void> {
    await rm(this.pathOf(recordId), { force: true });
  }

  async stat(recordId: string): Promise<StoredFile | undefined> {
    try {
      const info = await stat(this.pathOf(recordId));
      return { sizeBytes: info.size, modifiedAt: info.mtime };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** Opens the file for reading, or answers undefined when there is none. */
  async open(recordId: string): Promise<OpenedFile | undefined> {
    let file;
    try {
      file = await open(this.pathOf(recordId), 'r');
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
    const info = await file.stat();
    return {
      sizeBytes: info.size,
      modifiedAt: info.mtime,
      stream: (range) => file.createReadStream({ ...range, autoClose: true }),
      close: () => file.close(),
    };
  }

  /**
   * The entries of one fan-out folder (`shard` is two hex digits); an absent folder is empty. Entries whose
   * name is not `<record id>.mp3` in the right folder come back without a record id.
   */
  async listShard(shard: string): Promise<StoredEntry[]> {
    if (!SHARD.test(shard)) throw new Error(`Not a shard: ${JSON.stringify(shard)}`);
    const directory = join(this.recordsDir, shard);
    let names: string[];
    try {
      names = await readdir(directory);
    } catch (error) {
      if (isNotFound(error)) return [];
      throw error;
    }
    const entries = await Promise.all(
      names.map(async (name): Promise<StoredEntry | undefined> => {
        let info;
        try {
          info = await stat(join(directory, name));
        } catch (error) {
          if (isNotFound(error)) return undefined; // removed meanwhile
          throw error;
        }
        const recordId = name.endsWith('.mp3') ? name.slice(0, -4) : '';
        const valid = info.isFile() && RECORD_ID.test(recordId) && recordId.startsWith(shard);
        return { name: join(shard, name), recordId: valid ? recordId : undefined, modifiedAt: info.mtime };
      }),
    );
    return entries.filter((entry) => entry !== undefined);
  }

  /** Names in `records/` that are not fan-out folders: nothing the service writes. */
  async unexpectedTopLevelEntries(): Promise<string[]> {
    let names;
    try {
      names = await readdir(this.recordsDir, { withFileTypes: true });
    } catch (error) {
      if (isNotFound(error)) return [];
      throw error;
    }
    return names.filter((entry) => !entry.isDirectory() || !SHARD.test(entry.name)).map((entry) => entry.name);
  }

  private pathOf(recordId: string): string {
    // Record ids are generated by the service, but a path is only ever built from a checked UUID.
    if (!RECORD_ID.test(recordId)) throw new Error(`Not a record id: ${JSON.stringify(recordId)}`);
    // Two hex digits of fan-out keep directories small at millions of records.
    return join(this.recordsDir, recordId.slice(0, 2), `${recordId}.mp3`);
  }
}

async function syncDirectory(path: string): Promise<void> {
  const directory = await open(path, 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

function isNotFound(error: unknown): boolean {
  return error instanceof Error && 'code' in error && error.code === 'ENOENT';
}
