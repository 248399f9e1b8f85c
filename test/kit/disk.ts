import { access, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** What the service keeps under DATA_DIR: MP3s at records/<first 2 hex of the id>/<id>.mp3, temp files in tmp/. */

export const recordPath = (dataDir: string, recordId: string) =>
  join(dataDir, 'records', recordId.slice(0, 2), `${recordId}.mp3`);

/** Record ids of the files under DATA_DIR/records (sorted), and the names of any files under DATA_DIR/tmp. */
export async function filesOnDisk(dataDir: string): Promise<{ records: string[]; temp: string[] }> {
  const records: string[] = [];
  const recordsDir = join(dataDir, 'records');
  for (const shard of await readdir(recordsDir).catch(() => [])) {
    for (const name of await readdir(join(recordsDir, shard))) records.push(name.replace(/\.mp3$/, ''));
  }
  const temp = await readdir(join(dataDir, 'tmp')).catch(() => []);
  return { records: records.sort(), temp };
}

export async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
