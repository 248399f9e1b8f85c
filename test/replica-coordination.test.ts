import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import postgres from 'postgres';
import { EXCLUSIVE_TASK_LOCK_KEYS, openDatabase, type DatabaseHandle } from '../src/db/client.js';
import { SharedHitCounters } from '../src/db/hit-counters.js';
import { hashToken } from '../src/services/tokens.js';
import { createUser, PREFIX } from './kit/client.js';
import { createTestDatabase, databaseKinds, withSql, type TestDatabase } from './kit/database.js';
import { isStored, recordKeyOf, writeStored } from './kit/storage.js';
import { startService, type RunningService } from './kit/service.js';

describe.each(databaseKinds)('counters in the database (%s)', (kind) => {
  let database: TestDatabase;
  let dataDir: string;
  const handles: DatabaseHandle[] = [];
  beforeAll(async () => {
    database = await createTestDatabase(kind);
    dataDir = await mkdtemp(join(tmpdir(), 'audio-counters-'));
    // Two handles stand for two replicas; PGlite has one owner, so it gets one.
    for (let index = 0; index < (kind === 'postgres' ? 2 : 1); index++) {
      const handle = await openDatabase({ databaseUrl: database.url, dataDir, poolSize: 8 });
      if (index === 0) await handle.migrate();
      handles.push(handle);
    }
  });
  afterAll(async () => {
    for (const handle of handles) await handle.close();
    await database.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('counts every one of many concurrent hits exactly once, from every handle', async () => {
    const counters = handles.map((handle) => new SharedHitCounters(handle.db));
    const counts = await Promise.all(
      Array.from({ length: 60 }, (_, index) => counters[index % counters.length]!.hit('concurrent', 60_000)),
    );
    expect(counts.map((count) => count.hits).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 60 }, (_, index) => index + 1),
    );
    for (const count of counts) expect(count.resetInMs).toBeGreaterThan(50_000);
    for (const each of counters) expect((await each.peek('concurrent'))?.hits).toBe(60);
    expect(await counters[0]!.peek('never-hit')).toBeUndefined();
  });

  it('starts a new window when the last one ended, by the database clock', async () => {
    const counters = new SharedHitCounters(handles[0]!.db);
    await counters.hit('short', 300);
    expect((await counters.hit('short', 300)).hits).toBe(2);
    await sleep(400);
    expect(await counters.peek('short')).toBeUndefined();
    const fresh = await counters.hit('short', 300);
    expect(fresh.hits).toBe(1);
    expect(fresh.resetInMs).toBeGreaterThan(200);
    expect(fresh.resetInMs).toBeLessThanOrEqual(300);
  });
});

// Two processes of the service on one PostgreSQL database: the limits hold for the pair as for one.
describe.skipIf(!databaseKinds.includes('postgres'))('limits shared by replicas', () => {
  let database: TestDatabase;
  const replicas: RunningService[] = [];
  beforeAll(async () => {
    database = await createTestDatabase('postgres');
    for (let index = 0; index < 2; index++) {
      replicas.push(
        await startService({
          databaseUrl: database.url,
          env: { RATE_LIMIT_AUTH_FAILURES: '4', RATE_LIMIT_USER_CREATIONS: '5', LOG_LEVEL: 'warn' },
        }),
      );
    }
  });
  afterAll(async () => {
    for (const replica of replicas) {
      await replica.stop();
      await rm(replica.dataDir, { recursive: true, force: true });
    }
    await database.drop();
  });

  it('refuses the creation after the limit whichever replica answers, and not before', async () => {
    for (let index = 0; index < 5; index++) await createUser(replicas[index % 2]!.url);
    for (const replica of replicas) {
      const refused = await fetch(`${replica.url}${PREFIX}/users/?username=one_too_many`, { method: 'POST' });
      expect(refused.status).toBe(429);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    }
  });

  it('locks an account out after the failures counted on all replicas together', async () => {
    const [first, second] = replicas as [RunningService, RunningService];
    // The creation limit above is spent for this address; this user is made directly in the database.
    const user = await createUserDirectly(database);
    const list = (replica: RunningService, token: string) =>
      fetch(`${replica.url}${PREFIX}/records?user_id=${user.user_id}`, {
        headers: { authorization: `Bearer ${token}` },
      });
    expect((await list(first, user.access_token)).status).toBe(200);
    for (let attempt = 0; attempt < 3; attempt++) {
      expect((await list(replicas[attempt % 2]!, crypto.randomUUID())).status).toBe(401);
    }
    // Three failures of four: the right token still works on both.
    expect((await list(first, user.access_token)).status).toBe(200);
    expect((await list(second, user.access_token)).status).toBe(200);
    expect((await list(second, crypto.randomUUID())).status).toBe(401);
    for (const replica of replicas) expect((await list(replica, user.access_token)).status).toBe(429);
  });
});

/** A user written straight into the table, with the service's own token hashing. */
async function createUserDirectly(database: TestDatabase): Promise<{ user_id: string; access_token: string }> {
  const user = { user_id: randomUUID(), access_token: randomUUID() };
  const username = `direct_${user.user_id.slice(0, 8)}`;
  await withSql(
    database.url ?? '',
    (sql) =>
      sql`insert into users (id_, username, access_token_hash) values (${user.user_id}, ${username}, ${hashToken(user.access_token)})`,
  );
  return user;
}

describe.skipIf(!databaseKinds.includes('postgres'))('the start-up storage check, with several replicas', () => {
  it('is skipped while another process holds its lock, and runs once the lock is free', async () => {
    const database = await createTestDatabase('postgres');
    const dataDir = await mkdtemp(join(tmpdir(), 'audio-check-lock-'));
    const lockHolder = postgres(database.url ?? '', { max: 1, onnotice: () => {} });
    try {
      // Migrated by a first start, with one old orphan file planted afterwards.
      await (await startService({ dataDir, databaseUrl: database.url })).stop();
      const orphan = recordKeyOf(randomUUID());
      await writeStored(dataDir, orphan, 'not a row', 3600);

      await lockHolder`select pg_advisory_lock(${EXCLUSIVE_TASK_LOCK_KEYS['storage-check']})`;
      const blocked = await startService({ dataDir, databaseUrl: database.url });
      await expect.poll(() => blocked.logs(), { timeout: 20_000 }).toContain('running it');
      await blocked.stop();
      expect(blocked.logs()).not.toContain('storage check finished');
      expect(await isStored(dataDir, orphan)).toBe(true);

      await lockHolder`select pg_advisory_unlock(${EXCLUSIVE_TASK_LOCK_KEYS['storage-check']})`;
      const free = await startService({ dataDir, databaseUrl: database.url });
      await expect.poll(() => free.logs(), { timeout: 20_000 }).toContain('storage check finished');
      await free.stop();
      expect(await isStored(dataDir, orphan)).toBe(false);
    } finally {
      await lockHolder.end();
      await database.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
