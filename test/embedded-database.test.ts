import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql, type SQL } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type DatabaseHandle } from '../src/db/client.js';

describe('the embedded database (PGlite)', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'audio-embedded-'));
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  const open = (folder: string): Promise<DatabaseHandle> =>
    openDatabase({ databaseUrl: undefined, dataDir: folder, poolSize: 1 });
  // PGlite's results: drizzle types them as whatever the driver returns.
  const rowsOf = async (handle: DatabaseHandle, query: SQL) => {
    const result: unknown = await handle.db.execute(query);
    return (result as { rows: Array<Record<string, unknown>> }).rows;
  };
  const setting = async (handle: DatabaseHandle, name: string) =>
    (await rowsOf(handle, sql`select current_setting(${name}) as value`))[0]?.['value'];

  it('is created on first use, sized for this service, and keeps its rows across a reopen', async () => {
    const first = await open(dataDir);
    try {
      expect(await setting(first, 'shared_buffers')).toBe('8MB');
      await first.migrate();
      await first.db.execute(
        sql`insert into users (id_, username, access_token_hash) values (gen_random_uuid(), 'kept', 'f00d')`,
      );
    } finally {
      await first.close();
    }
    const again = await open(dataDir);
    try {
      expect(await setting(again, 'shared_buffers')).toBe('8MB');
      expect(await rowsOf(again, sql`select username from users`)).toEqual([{ username: 'kept' }]);
    } finally {
      await again.close();
    }
  });

  it('says where and why it could not be created, and leaves no lock behind', async () => {
    // A file where initdb wants a folder: the database cannot be made there.
    const blocked = join(dataDir, 'blocked');
    await mkdir(join(blocked, 'pglite'), { recursive: true });
    await writeFile(join(blocked, 'pglite', 'global'), 'in the way');
    await expect(open(blocked)).rejects.toThrow(
      /^Could not create the embedded database in .*blocked\/pglite: file system error, errno \d+$/,
    );
    expect(await readdir(blocked)).toEqual(['pglite']);
  });
});
