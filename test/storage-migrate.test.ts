import { randomUUID } from 'node:crypto';
import { copyFile, cp, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordKey } from '../src/storage/keys.js';
import { PREFIX, createUser, recordIdOf, type TestUser } from './kit/client.js';
import { createTestDatabase, databaseKinds, query, type TestDatabase } from './kit/database.js';
import { exists } from './kit/disk.js';
import { runMigrateStorage } from './kit/process.js';
import { startS3rver, type RunningS3rver } from './kit/s3rver.js';
import { startService, type RunningService } from './kit/service.js';
import { makeWav } from './kit/wav.js';

/**
 * `migrate-storage` as an operator runs it (a child process), between a real local folder and s3rver, on
 * the database of a real service: local → s3, runs that resume, rows without audio, the service on the
 * bucket, and s3 → local into a fresh data directory.
 */

const FORMATS = ['mp3', 'opus', 'flac'] as const;

interface StoredRecord {
  readonly recordId: string;
  readonly format: string;
  readonly url: string;
  /** What the service answered for it before the migration. */
  readonly bytes: Buffer;
}

interface JsonReport {
  rowsScanned: number;
  copied: { count: number; bytes: number; sample: string[] };
  alreadyThere: { count: number };
  checksumVerified: number;
  onlyAtDestination: { count: number; sample: string[] };
  missingAtSource: { count: number; sample: string[] };
  failed: { count: number; sample: Array<{ recordId: string; error: string }> };
  complete: boolean;
}

let s3: RunningS3rver;

beforeAll(async () => {
  s3 = await startS3rver();
});
afterAll(async () => {
  await s3?.stop();
});

async function uploadAs(service: RunningService, user: TestUser, format: string): Promise<StoredRecord> {
  const form = new FormData();
  form.append('format', format);
  form.append('file', new Blob([makeWav({ durationSeconds: 0.4 })]), 'take.wav');
  const response = await fetch(`${service.url}${PREFIX}/record/?user_id=${user.user_id}`, {
    method: 'POST',
    body: form,
    headers: { authorization: `Bearer ${user.access_token}` },
  });
  const text = await response.text();
  expect(response.status, text).toBe(200);
  const url = (JSON.parse(text) as { record_url: string }).record_url;
  const download = await fetch(url);
  expect(download.status).toBe(200);
  return { recordId: recordIdOf(url), format, url, bytes: Buffer.from(await download.arrayBuffer()) };
}

/** Downloads every record from a running service and compares it with what was stored first. */
async function expectServed(service: RunningService, records: readonly StoredRecord[]): Promise<void> {
  for (const record of records) {
    const url = new URL(record.url);
    const response = await fetch(`${service.url}${url.pathname}${url.search}`);
    expect(response.status, record.format).toBe(200);
    expect(Buffer.from(await response.arrayBuffer()).equals(record.bytes), record.format).toBe(true);
  }
}

describe('migrate-storage arguments', () => {
  it('refuses bad arguments with the usage and exit status 2, and shows the usage on --help', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'audio-migrate-args-'));
    try {
      const run = (args: string[]) => runMigrateStorage({ dataDir }, args);
      const [same, unknown, missingValue, missingFlag, extra, concurrency, help] = await Promise.all([
        run(['--from', 'local', '--to', 'local']),
        run(['--from', 'local', '--to', 'ftp']),
        run(['--from', 'local', '--to']),
        run(['--from', 's3']),
        run(['--from', 'local', '--to', 's3', 'now']),
        run(['--from', 'local', '--to', 's3', '--concurrency', '0']),
        run(['--help']),
      ]);
      const refused = { same, unknown, missingValue, missingFlag, extra, concurrency };
      for (const [name, result] of Object.entries(refused)) {
        expect(result.code, `${name}: ${result.stderr}`).toBe(2);
        expect(result.stderr, name).toContain('Usage: node dist/migrate-storage.js --from local|s3 --to s3|local');
        expect(result.stdout, name).toBe('');
      }
      expect(same.stderr).toContain('--from and --to must name different stores (both are local)');
      expect(unknown.stderr).toContain('--to takes local or s3 (got "ftp")');
      expect(missingValue.stderr).toMatch(/--to.*argument missing/);
      expect(missingFlag.stderr).toContain('--to is required');
      expect(extra.stderr).toMatch(/Unexpected argument 'now'/);
      expect(concurrency.stderr).toContain('--concurrency takes a number from 1 to 64');
      expect(help.code).toBe(0);
      expect(help.stdout).toContain('stop the service first: PGlite allows one process');
      // Nothing was opened, let alone created.
      expect(await readdir(dataDir)).toEqual([]);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('fails with exit status 2 when the bucket cannot be reached, before touching the database', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'audio-migrate-down-'));
    try {
      await mkdir(join(dataDir, 'records'));
      await mkdir(join(dataDir, 'pglite'));
      // A port nobody listens on: the store's write probe fails with a hint at the setting.
      const env = { ...s3.env('down/'), STORAGE_DRIVER: 'local', S3_ENDPOINT: 'http://127.0.0.1:9' };
      const result = await runMigrateStorage({ dataDir, env }, ['--from', 'local', '--to', 's3']);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toContain('The S3 storage cannot be used');
      expect(result.stderr).toContain('Check S3_ENDPOINT');
      expect(await readdir(join(dataDir, 'pglite'))).toEqual([]);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe.each(databaseKinds)('migrate-storage (%s)', (kind) => {
  const prefix = `migrate-${kind}/`;
  let database: TestDatabase;
  let dataDir: string;
  let freshDir: string;
  let user: TestUser;
  const records: StoredRecord[] = [];

  const localPath = (dir: string, record: StoredRecord) =>
    join(dir, 'records', record.recordId.slice(0, 2), `${record.recordId}.${record.format}`);
  const objectOf = (record: StoredRecord) => `${prefix}${recordKey(record.recordId, record.format)}`;
  // The deployment as it runs before the move: STORAGE_DRIVER=local, the bucket's settings beside it.
  const toS3 = (args: string[]) =>
    runMigrateStorage({ dataDir, databaseUrl: database.url, env: { ...s3.env(prefix), STORAGE_DRIVER: 'local' } }, [
      '--from',
      'local',
      '--to',
      's3',
      ...args,
    ]);
  const toS3Json = async (args: string[] = []) => {
    const result = await toS3(['--json', ...args]);
    return { code: result.code, stderr: result.stderr, report: JSON.parse(result.stdout || '{}') as JsonReport };
  };

  beforeAll(async () => {
    database = await createTestDatabase(kind);
    dataDir = await mkdtemp(join(tmpdir(), 'audio-migrate-'));
    freshDir = await mkdtemp(join(tmpdir(), 'audio-migrate-fresh-'));
    const service = await startService({ dataDir, databaseUrl: database.url });
    try {
      user = await createUser(service.url);
      for (const format of FORMATS) records.push(await uploadAs(service, user, format));
      if (kind === 'pglite') {
        // PGlite has one owner: the tool says so instead of opening the database under the service.
        const refused = await toS3([]);
        expect(refused.code, refused.stderr).toBe(2);
        expect(refused.stderr).toContain('is in use by process');
      }
    } finally {
      await service.stop();
    }
  });
  afterAll(async () => {
    await database?.drop();
    await rm(dataDir, { recursive: true, force: true });
    await rm(freshDir, { recursive: true, force: true });
  });

  it('copies every record’s audio to the bucket, verified, and nothing else', async () => {
    // A file without a row (an orphan), and objects in the bucket that are no record's.
    const first = records[0] as StoredRecord;
    const orphan = { ...first, recordId: randomUUID() };
    await mkdir(join(localPath(dataDir, orphan), '..'), { recursive: true });
    await copyFile(localPath(dataDir, first), localPath(dataDir, orphan));
    await s3.put(`${prefix}ab/notes.txt`, 'not a record');
    await s3.put(`${prefix}readme`, 'neither');
    const strays = [`${prefix}ab/notes.txt`, `${prefix}readme`];

    const dry = await toS3Json(['--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.report).toMatchObject({ rowsScanned: 3, copied: { count: 3 }, alreadyThere: { count: 0 } });
    expect(await s3.keys(prefix)).toEqual(strays.sort());

    const { code, stderr, report } = await toS3Json();
    expect(code, stderr).toBe(0);
    const total = records.reduce((sum, record) => sum + record.bytes.length, 0);
    expect(report).toMatchObject({
      complete: true,
      rowsScanned: 3,
      copied: { count: 3, bytes: total },
      alreadyThere: { count: 0 },
      checksumVerified: 3,
      missingAtSource: { count: 0 },
      failed: { count: 0 },
    });
    expect(report.copied.sample.sort()).toEqual(records.map((record) => record.recordId).sort());
    expect(await s3.keys(prefix)).toEqual([...records.map(objectOf), ...strays].sort());
    for (const record of records) {
      const local = await readFile(localPath(dataDir, record));
      expect(local.equals(record.bytes), record.format).toBe(true);
      expect((await s3.body(objectOf(record))).equals(local), record.format).toBe(true);
    }
    // The source is as it was, the orphan included; no scratch file is left.
    expect(await exists(localPath(dataDir, orphan))).toBe(true);
    expect(await readdir(join(dataDir, 'tmp'))).toEqual([]);
  });

  it('copies nothing on a second run: everything is already there', async () => {
    const again = await toS3([]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('Copied and verified: 0 (0 bytes)');
    expect(again.stdout).toContain('Already there: 3');
    expect(again.stdout).toContain('Compared by MD5: 3 of 3');
    expect(again.stdout).toContain('set STORAGE_DRIVER=s3 and start it');
  });

  it('resumes an interrupted run: an object of the wrong size, the wrong bytes or none is copied again', async () => {
    const [short, flipped, absent] = records as [StoredRecord, StoredRecord, StoredRecord];
    await s3.put(objectOf(short), short.bytes.subarray(0, 100));
    const corrupt = Buffer.from(flipped.bytes);
    corrupt[corrupt.length - 1] = (corrupt.at(-1) ?? 0) ^ 0xff;
    await s3.put(objectOf(flipped), corrupt);
    await s3.remove(objectOf(absent));

    const { code, stderr, report } = await toS3Json(['--concurrency', '1']);
    expect(code, stderr).toBe(0);
    expect(report).toMatchObject({ copied: { count: 3 }, alreadyThere: { count: 0 }, checksumVerified: 3 });
    for (const record of records) expect((await s3.body(objectOf(record))).equals(record.bytes)).toBe(true);
  });

  it('reports rows whose audio is missing at the source (exit status 1), and never builds a key but from a row', async () => {
    const [, elsewhere, missing] = records as [StoredRecord, StoredRecord, StoredRecord];
    // One row's audio only in the bucket (in place, nothing to copy), another's in neither store.
    await rename(localPath(dataDir, elsewhere), join(dataDir, 'elsewhere'));
    await rename(localPath(dataDir, missing), join(dataDir, 'missing'));
    await s3.remove(objectOf(missing));
    // A row no upload makes: a format that is no file extension. Its key is never built.
    const hostile = randomUUID();
    const where = { dataDir, databaseUrl: database.url };
    await query(
      where,
      `insert into records (user_id, record_id, size_bytes, duration_ms, sample_rate, channels, bitrate, format)
       values ('${user.user_id}', '${hostile}', 10, 1000, 48000, 1, 64000, '../../../tmp/x')`,
    );
    try {
      const result = await toS3([]);
      expect(result.code, result.stderr).toBe(1);
      expect(result.stdout).toContain('Already there: 1\n');
      expect(result.stdout).toContain(
        `At the destination but not at the source (left alone): 1\n  ${elsewhere.recordId}\n`,
      );
      expect(result.stdout).toContain(`Missing at the source: 1\n  ${missing.recordId}\n`);
      expect(result.stdout).toMatch(new RegExp(`Failed: 1\\n  ${hostile}: Not an extension`));
      expect(result.stdout).toContain('`check-storage --repair` deletes those rows');
      expect(result.stdout).toContain('Next: run it again to retry what failed');
      expect(await s3.keys(prefix)).not.toContain(objectOf(missing));
    } finally {
      await query(where, `delete from records where record_id = '${hostile}'`);
      await rename(join(dataDir, 'elsewhere'), localPath(dataDir, elsewhere));
      await rename(join(dataDir, 'missing'), localPath(dataDir, missing));
      await s3.put(objectOf(missing), missing.bytes);
    }
  });

  it('after the switch to STORAGE_DRIVER=s3 the service serves every record from the bucket', async () => {
    const service = await startService({ dataDir, databaseUrl: database.url, env: s3.env(prefix) });
    try {
      await expectServed(service, records);
    } finally {
      await service.stop();
    }
  });

  it('copies back from the bucket into a fresh DATA_DIR, and the local service serves it', async () => {
    // PGlite lives in DATA_DIR: the fresh folder gets the database, not the audio.
    if (kind === 'pglite') await cp(join(dataDir, 'pglite'), join(freshDir, 'pglite'), { recursive: true });
    const back = (args: string[]) =>
      runMigrateStorage({ dataDir: freshDir, databaseUrl: database.url, env: s3.env(prefix) }, [
        '--from',
        's3',
        '--to',
        'local',
        '--json',
        ...args,
      ]);
    const first = await back([]);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ copied: { count: 3 }, checksumVerified: 3, failed: { count: 0 } });
    for (const record of records) expect((await readFile(localPath(freshDir, record))).equals(record.bytes)).toBe(true);
    // The strays stay in the bucket and out of the folder.
    expect((await readdir(join(freshDir, 'records'))).sort()).toEqual(
      [...new Set(records.map((record) => record.recordId.slice(0, 2)))].sort(),
    );

    // The local file is read back against the object's ETag: in place, nothing copied.
    const second = await back([]);
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({
      copied: { count: 0 },
      alreadyThere: { count: 3 },
      checksumVerified: 3,
    });

    // A local file cut short is copied again.
    const record = records[2] as StoredRecord;
    await writeFile(localPath(freshDir, record), record.bytes.subarray(0, 10));
    const third = await back([]);
    expect(JSON.parse(third.stdout)).toMatchObject({ copied: { count: 1, sample: [record.recordId] } });

    const service = await startService({ dataDir: freshDir, databaseUrl: database.url });
    try {
      await expectServed(service, records);
    } finally {
      await service.stop();
    }
  });
});
