import { constants, createWriteStream } from 'node:fs';
import { access, copyFile, mkdir, open, readdir, rename, rm, stat, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { finished, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BlobInfo, BlobStore, ListedBlob, LocalFile, OpenedBlob } from './blob-store.js';
import { ChunkPool, FileRangeStream } from './file-range-stream.js';
import { isRecordKey } from './keys.js';
import { OpenFiles, readAt } from './open-files.js';
import type { ScratchDirectory } from './scratch.js';

/** Chunk buffers kept for the next downloads (8 MiB): a download whose client keeps up uses about one. */
const KEPT_CHUNKS = 32;

/**
 * Blobs as files under one folder, a key's path below it. A put makes the file durable (fsync) and moves it
 * into place by an atomic rename on the same file system, then syncs the folder, so a reader never sees a
 * partial file and a crash never leaves a renamed file that is not on disk.
 */
export class LocalBlobStore implements BlobStore {
  private readonly openFiles = new OpenFiles();
  private readonly chunkPool = new ChunkPool(KEPT_CHUNKS);

  constructor(
    private readonly root: string,
    private readonly scratch: ScratchDirectory,
  ) {}

  async init(): Promise<void> {
    await mkdir(this.root, { recursive: true });
  }

  async ping(): Promise<void> {
    await access(this.root, constants.R_OK | constants.W_OK);
  }

  /** Bytes an unprivileged process can still write where the blobs live. */
  async freeBytes(): Promise<number> {
    const info = await statfs(this.root);
    return info.bavail * info.bsize;
  }

  async put(key: string, source: LocalFile | Readable): Promise<BlobInfo> {
    const finalPath = this.pathOf(key);
    try {
      if (source instanceof Readable) {
        const scratchPath = this.scratch.newPath();
        try {
          await pipeline(source, createWriteStream(scratchPath));
          return await this.moveIntoPlace(scratchPath, finalPath);
        } finally {
          await this.scratch.discard(scratchPath);
        }
      }
      return await this.moveIntoPlace(source.path, finalPath);
    } finally {
      // After the move: a request opening the key from now on must find the new file, not a kept old one.
      this.openFiles.forget(key);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await rm(this.pathOf(key), { force: true });
    } finally {
      this.openFiles.forget(key);
    }
  }

  /** Closes the files kept open; those still being read close when their downloads end. */
  close(): void {
    this.openFiles.close();
  }

  async stat(key: string): Promise<BlobInfo | undefined> {
    try {
      const info = await stat(this.pathOf(key));
      return { sizeBytes: info.size, modifiedAt: info.mtime };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /**
   * The file, shared with other requests for it for a few seconds (see OpenFiles): a player's range
   * requests then cost one positional read each instead of an open, a stat, reads and a close. Streams and
   * reads are positional, so they never disturb one another on the shared descriptor.
   */
  async open(key: string): Promise<OpenedBlob | undefined> {
    const file = await this.openFiles.acquire(key, this.pathOf(key));
    if (file === undefined) return undefined;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.openFiles.release(file);
    };
    return {
      sizeBytes: file.sizeBytes,
      modifiedAt: file.modifiedAt,
      stream: (range, destination) => {
        const stream = new FileRangeStream(
          file,
          range?.start ?? 0,
          range === undefined ? file.sizeBytes : range.end + 1,
          destination === undefined ? undefined : { destination, pool: this.chunkPool },
        );
        finished(stream, release);
        return stream;
      },
      read: async (range) => {
        try {
          return await readAt(file, range.start, range.end - range.start + 1);
        } finally {
          release();
        }
      },
      close: async () => release(),
    };
  }

  /** Lists the folder the prefix names (keys are one folder deep); an absent folder is empty. */
  async *list(prefix: string): AsyncIterable<ListedBlob> {
    const slash = prefix.lastIndexOf('/');
    const folder = prefix.slice(0, slash + 1);
    const namePrefix = prefix.slice(slash + 1);
    if (folder.split('/').some((segment) => segment === '..' || segment === '.')) {
      throw new Error(`Not a listable prefix: ${JSON.stringify(prefix)}`);
    }
    const directory = join(this.root, folder);
    let names: string[];
    try {
      names = await readdir(directory);
    } catch (error) {
      if (isNotFound(error)) return;
      throw error;
    }
    for (const name of names.filter((entry) => entry.startsWith(namePrefix)).sort()) {
      let info;
      try {
        info = await stat(join(directory, name));
      } catch (error) {
        if (isNotFound(error)) continue; // removed meanwhile
        throw error;
      }
      // A folder is never a blob: its trailing slash keeps it from passing for one, so it is listed as a stray.
      yield { key: `${folder}${name}${info.isFile() ? '' : '/'}`, modifiedAt: info.mtime };
    }
  }

  private async moveIntoPlace(sourcePath: string, finalPath: string): Promise<BlobInfo> {
    const file = await open(sourcePath, 'r+');
    try {
      await file.sync();
    } finally {
      await file.close();
    }
    const folder = dirname(finalPath);
    await mkdir(folder, { recursive: true });
    try {
      await rename(sourcePath, finalPath);
    } catch (error) {
      // A scratch folder on another file system (a separate volume) cannot be renamed from: copy instead.
      if (!(error instanceof Error && 'code' in error && error.code === 'EXDEV')) throw error;
      const copying = `${finalPath}.${process.pid}.copying`;
      try {
        await copyFile(sourcePath, copying);
        await syncFile(copying);
        await rename(copying, finalPath);
      } finally {
        await rm(copying, { force: true });
      }
    }
    await syncFile(folder);
    const info = await stat(finalPath);
    return { sizeBytes: info.size, modifiedAt: info.mtime };
  }

  private pathOf(key: string): string {
    if (!isRecordKey(key)) throw new Error(`Not a blob key: ${JSON.stringify(key)}`);
    return join(this.root, key);
  }
}

async function syncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function isNotFound(error: unknown): boolean {
  return error instanceof Error && 'code' in error && error.code === 'ENOENT';
}
