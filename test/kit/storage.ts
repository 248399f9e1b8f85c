import { randomUUID } from 'node:crypto';
import { cp, mkdir, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { inject } from 'vitest';
import { recordKey } from '../../src/storage/keys.js';
import { exists, tempFiles } from './disk.js';
import { testStorage } from './s3-global-setup.js';
import { connectS3rver, type S3rverBucket } from './s3rver.js';

/**
 * Where the services the kit starts keep their audio, and how a test looks into it whatever the driver:
 * files under DATA_DIR/records (TEST_STORAGE=local, the default), or objects in the run's s3rver bucket
 * under a prefix of the service's own (TEST_STORAGE=s3). Every helper takes the service's data directory,
 * which names its storage either way; the scratch folder DATA_DIR/tmp is on the local disk with both.
 * Keys are relative to the store: `<first 2 hex of the id>/<id>.<extension>` (see recordKeyOf).
 */

/** True when the services run on S3: for the few checks that are about the local disk itself. */
export const onS3 = testStorage === 's3';

type Store = { readonly driver: 'local' } | { readonly driver: 's3'; readonly prefix: string };

/** The store of each data directory a service was given: a restart on the same directory finds the same. */
const stores = new Map<string, Store>();
let bucket: S3rverBucket | undefined;

function s3(): S3rverBucket {
  if (bucket !== undefined) return bucket;
  const address = inject('s3rver');
  if (address === null) {
    throw new Error('TEST_STORAGE=s3 needs the s3rver of vitest.config.ts’s globalSetup (test/kit/s3-global-setup.ts)');
  }
  bucket = connectS3rver(address);
  return bucket;
}

function storeOf(dataDir: string): Store {
  const store = stores.get(resolve(dataDir));
  if (store !== undefined) return store;
  if (!onS3) return { driver: 'local' };
  throw new Error(`no service was started on ${dataDir}: its S3 prefix is unknown`);
}

/**
 * The storage settings of a service on `dataDir`: none with TEST_STORAGE=local; with s3, the run's bucket
 * and a fresh prefix (`t-<random>/`) the first time, the same one for every later start on it.
 * `driver` pins one driver whatever TEST_STORAGE says (a test that sets STORAGE_DRIVER itself).
 */
export function storageEnv(dataDir: string, driver: 'local' | 's3' = testStorage): Record<string, string> {
  const key = resolve(dataDir);
  let store = stores.get(key);
  if (store === undefined || store.driver !== driver) {
    store = driver === 'local' ? { driver } : { driver, prefix: newPrefix() };
    stores.set(key, store);
  }
  return store.driver === 'local' ? {} : s3().env(store.prefix);
}

/** A prefix no other service of the run has: every test's objects are its own. */
const newPrefix = () => `t-${randomUUID().slice(0, 13)}/`;

/** The key of a record's MP3. */
export const recordKeyOf = (recordId: string) => recordKey(recordId, 'mp3');

const localPath = (dataDir: string, key: string) => join(dataDir, 'records', ...key.split('/'));

/**
 * Record ids of the stored MP3s (sorted; other names in the shards as they are), and the names of any
 * files in the scratch folder DATA_DIR/tmp.
 */
export async function storedFiles(dataDir: string): Promise<{ records: string[]; temp: string[] }> {
  const records: string[] = [];
  const store = storeOf(dataDir);
  if (store.driver === 'local') {
    const recordsDir = join(dataDir, 'records');
    for (const shard of await readdir(recordsDir).catch(() => [])) {
      for (const name of await readdir(join(recordsDir, shard))) records.push(name.replace(/\.mp3$/, ''));
    }
  } else {
    // As the folders would show: the entries of each shard (a deeper key shows as its folder, once).
    const entries = new Set<string>();
    for (const key of await s3().keys(store.prefix)) {
      const [shard, name] = key.slice(store.prefix.length).split('/');
      if (shard !== undefined && name !== undefined) entries.add(`${shard}/${name}`);
    }
    for (const entry of entries) records.push(entry.slice(entry.indexOf('/') + 1).replace(/\.mp3$/, ''));
  }
  return { records: records.sort(), temp: await tempFiles(dataDir) };
}

export async function isStored(dataDir: string, key: string): Promise<boolean> {
  const store = storeOf(dataDir);
  if (store.driver === 'local') return exists(localPath(dataDir, key));
  return (await s3().keys(`${store.prefix}${key}`)).includes(`${store.prefix}${key}`);
}

export async function readStored(dataDir: string, key: string): Promise<Buffer> {
  const store = storeOf(dataDir);
  return store.driver === 'local' ? readFile(localPath(dataDir, key)) : s3().body(`${store.prefix}${key}`);
}

/** Stores `bytes` under `key` behind the service's back, `ageSeconds` old. */
export async function writeStored(dataDir: string, key: string, bytes: Buffer | string, ageSeconds = 0): Promise<void> {
  const store = storeOf(dataDir);
  if (store.driver === 'local') {
    const path = localPath(dataDir, key);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, bytes);
  } else {
    await s3().put(`${store.prefix}${key}`, Buffer.from(bytes));
  }
  if (ageSeconds !== 0) await ageStored(dataDir, key, ageSeconds);
}

/** Removes a stored file behind the service's back; a missing one is an error, as for rm. */
export async function removeStored(dataDir: string, key: string): Promise<void> {
  const store = storeOf(dataDir);
  if (store.driver === 'local') return rm(localPath(dataDir, key));
  if (!(await isStored(dataDir, key))) throw new Error(`nothing is stored under ${store.prefix}${key}`);
  await s3().remove(`${store.prefix}${key}`);
}

/** Makes a stored file look `seconds` old (its modification time, an object's Last-Modified). */
export async function ageStored(dataDir: string, key: string, seconds: number): Promise<void> {
  const store = storeOf(dataDir);
  if (store.driver === 's3') return s3().backdate(`${store.prefix}${key}`, seconds);
  const when = new Date(Date.now() - seconds * 1000);
  await utimes(localPath(dataDir, key), when, when);
}

/**
 * Copies a stopped service's data directory (embedded database, scratch and local audio, timestamps kept)
 * to `to`, and on S3 its objects to a prefix of `to`'s own.
 */
export async function copyServiceData(from: string, to: string): Promise<void> {
  await cp(from, to, { recursive: true, preserveTimestamps: true });
  const store = storeOf(from);
  if (store.driver === 'local') return;
  const prefix = newPrefix();
  stores.set(resolve(to), { driver: 's3', prefix });
  for (const key of await s3().keys(store.prefix)) {
    await s3().put(`${prefix}${key.slice(store.prefix.length)}`, await s3().body(key));
  }
}

/** Removes a service's objects on S3 (its data directory, local audio included, is the caller's to remove). */
export async function removeObjects(dataDir: string): Promise<void> {
  const store = stores.get(resolve(dataDir));
  if (store?.driver !== 's3') return;
  for (const key of await s3().keys(store.prefix)) await s3().remove(key);
  stores.delete(resolve(dataDir));
}
