import { access, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The scratch folder DATA_DIR/tmp, on the local disk whatever the storage driver (audio is under
 * DATA_DIR/records or in a bucket: see storage.ts).
 */

/** Names of the files in DATA_DIR/tmp (none if it does not exist). */
export async function tempFiles(dataDir: string): Promise<string[]> {
  return readdir(join(dataDir, 'tmp')).catch(() => []);
}

export async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
