import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Local files being written by an encoder (which needs a seekable output) before a store takes them.
 * Every path handed out is removed by `discard` or taken whole by a store's put.
 */
export class ScratchDirectory {
  constructor(readonly directory: string) {}

  /** Creates the folder and removes files left by a process that died mid-conversion. */
  async init(): Promise<{ removedFiles: number }> {
    await mkdir(this.directory, { recursive: true });
    const leftovers = await readdir(this.directory);
    await Promise.all(leftovers.map((name) => rm(join(this.directory, name), { force: true })));
    return { removedFiles: leftovers.length };
  }

  newPath(): string {
    return join(this.directory, `${randomUUID()}.partial`);
  }

  /** Removes a scratch file; one that a store already took, or that was never written, is fine. */
  async discard(path: string): Promise<void> {
    await rm(path, { force: true });
  }
}
