import { close, fstat, open, read } from 'node:fs';
import { promisify } from 'node:util';
import { LRUCache } from 'lru-cache';

const openDescriptor = promisify(open);
const statDescriptor = promisify(fstat);
const readDescriptor = promisify(read);

/** How long a file stays open for new requests after it was opened: the staleness of its bytes. */
const KEEP_OPEN_MS = 5_000;
const MAX_OPEN_FILES = 1_000;

/** A file opened and stated once; its descriptor closes when it is retired and no one uses it any more. */
export interface OpenFile {
  readonly fd: number;
  readonly sizeBytes: number;
  readonly modifiedAt: Date;
}

interface SharedFile extends OpenFile {
  users: number;
  retired: boolean;
}

/**
 * Descriptors of stored files shared by the requests for them for a few seconds, as nginx's open_file_cache:
 * a player seeking through a record sends many Range requests, and each would otherwise open, stat and
 * close the file (three trips to libuv's thread pool, most of a range request's cost).
 *
 * Stored files never change in place (a rename or a put moves a new file over the key), so a descriptor
 * keeps reading the bytes its size and time were stated for, even once the file is replaced or unlinked.
 * A file is retired when this process replaces or deletes its key (`forget`), `KEEP_OPEN_MS` after it was
 * opened, when the cache is full, and at `close`; its descriptor closes once the last request reading it
 * lets go. A change made by another process is thus seen within `KEEP_OPEN_MS`.
 *
 * The reference count is hand-written: lru-cache bounds the entries and expires them, but a descriptor
 * must outlive its entry while a download still reads it.
 */
export class OpenFiles {
  private readonly files: LRUCache<string, SharedFile>;
  // Counts every forget, so that a file opened while its key was replaced or deleted is not kept.
  private changes = 0;

  constructor(keepOpenMs = KEEP_OPEN_MS, maxFiles = MAX_OPEN_FILES) {
    this.files = new LRUCache<string, SharedFile>({
      max: maxFiles,
      ttl: keepOpenMs,
      // Expired entries are dropped on time rather than at their next lookup, so that their descriptors close.
      ttlAutopurge: true,
      dispose: (file) => this.retire(file),
    });
  }

  /**
   * The file at `path`, kept under `key`, for one user who must `release` it exactly once; undefined when
   * there is no such file.
   */
  async acquire(key: string, path: string): Promise<OpenFile | undefined> {
    const kept = this.files.get(key);
    if (kept !== undefined) {
      kept.users += 1;
      return kept;
    }
    const changesBefore = this.changes;
    let fd: number;
    try {
      fd = await openDescriptor(path, 'r');
    } catch (error) {
      if (error instanceof Error && 'code' in error && error.code === 'ENOENT') return undefined;
      throw error;
    }
    let info;
    try {
      info = await statDescriptor(fd);
    } catch (error) {
      close(fd, () => {});
      throw error;
    }
    const keep = this.changes === changesBefore;
    const file: SharedFile = { fd, sizeBytes: info.size, modifiedAt: info.mtime, users: 1, retired: !keep };
    // A request that opened the same key meanwhile is replaced (and its file retired); both stay correct.
    if (keep) this.files.set(key, file);
    return file;
  }

  release(file: OpenFile): void {
    const shared = file as SharedFile;
    shared.users -= 1;
    if (shared.users === 0 && shared.retired) close(shared.fd, () => {});
  }

  /** The file under `key` is being replaced or deleted by this process: later requests open it anew. */
  forget(key: string): void {
    this.changes += 1;
    this.files.delete(key);
  }

  /** Retires every file; those still being read close when their requests let go. */
  close(): void {
    this.files.clear();
  }

  private retire(file: SharedFile): void {
    file.retired = true;
    if (file.users === 0) close(file.fd, () => {});
  }
}

/**
 * `length` bytes of `file` from `position` (positional, so requests sharing the descriptor do not interfere),
 * read into the start of `buffer` when one is given.
 */
export async function readAt(
  file: Pick<OpenFile, 'fd'>,
  position: number,
  length: number,
  buffer: Buffer = Buffer.allocUnsafe(length),
): Promise<Buffer> {
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await readDescriptor(file.fd, buffer, filled, length - filled, position + filled);
    // Stored files never shrink; a short file here is damage, not a race.
    if (bytesRead === 0) throw new Error(`the stored file ended ${length - filled} bytes early`);
    filled += bytesRead;
  }
  return buffer.length === length ? buffer : buffer.subarray(0, length);
}
