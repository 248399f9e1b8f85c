import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rm, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { currentProcess, mayStillRun } from '../process-owner.js';

// `<uuid>.<pid>.<host>.partial`: the writer is in the name, so a sweep can tell whose files it sees.
const SCRATCH_NAME = /^[0-9a-f-]{36}\.(\d+)\.(.+)\.partial$/;
// No conversion runs this long: an older file is abandoned whoever wrote it (another host's process, or a
// pid that has since been reused by an unrelated process).
const ABANDONED_AFTER_MS = 24 * 3600 * 1000;

/**
 * Local files being written by an encoder (which needs a seekable output) before a store takes them.
 * Every path handed out is removed by `discard` or taken whole by a store's put. Several processes may
 * share the folder (replicas on one volume): each file's name says which process writes it.
 */
export class ScratchDirectory {
  private readonly owner = currentProcess();

  constructor(readonly directory: string) {}

  /**
   * Creates the folder and removes files left by processes that died mid-conversion; files of processes
   * that may still run are left alone.
   */
  async init(): Promise<{ removedFiles: number }> {
    await mkdir(this.directory, { recursive: true });
    let removedFiles = 0;
    for (const name of await readdir(this.directory)) {
      const path = join(this.directory, name);
      if (await this.isAbandoned(name, path)) {
        await rm(path, { force: true });
        removedFiles += 1;
      }
    }
    return { removedFiles };
  }

  newPath(): string {
    return join(this.directory, `${randomUUID()}.${this.owner.pid}.${this.owner.host}.partial`);
  }

  private async isAbandoned(name: string, path: string): Promise<boolean> {
    const match = SCRATCH_NAME.exec(name);
    if (match === null) return true; // not a name any process writes now
    if (!mayStillRun({ pid: Number(match[1]), host: match[2] ?? '' })) return true;
    const info = await stat(path).catch(() => undefined);
    return info !== undefined && Date.now() - info.mtimeMs > ABANDONED_AFTER_MS;
  }

  /** Bytes an unprivileged process can still write on the scratch folder's file system. */
  async freeBytes(): Promise<number> {
    const info = await statfs(this.directory);
    return info.bavail * info.bsize;
  }

  /** Removes a scratch file; one that a store already took, or that was never written, is fine. */
  async discard(path: string): Promise<void> {
    await rm(path, { force: true });
  }
}
