import { randomUUID } from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { currentProcess, mayStillRun, type ProcessOwner } from '../process-owner.js';
import { openPgliteClient } from './pglite.js';
import * as schema from './schema.js';

/** One typed handle for both drivers: repositories never know which one they talk to. */
export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface DatabaseHandle {
  readonly db: Database;
  readonly kind: 'postgres' | 'pglite';
  /** Applies pending migrations; safe when several instances start at once. */
  migrate(): Promise<void>;
  /**
   * Runs `work` while no other process runs the same `task` on this database (a PostgreSQL advisory lock
   * held by a session of its own); false, without running it, when another one does. PGlite has one
   * process, so there it always runs.
   */
  runAlone(task: ExclusiveTask, work: () => Promise<void>): Promise<boolean>;
  /** Resolves when the database answers a trivial query. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** PostgreSQL connection string; unset opens the embedded PGlite database in `dataDir`. */
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly poolSize: number;
}

const migrationsFolder = fileURLToPath(new URL('../../drizzle', import.meta.url));
// Advisory lock keys: any constants work, as long as every instance of this service uses the same.
const MIGRATION_LOCK_KEY = 0x617564696f;
export const EXCLUSIVE_TASK_LOCK_KEYS = { 'storage-check': MIGRATION_LOCK_KEY + 1 } as const;
type ExclusiveTask = keyof typeof EXCLUSIVE_TASK_LOCK_KEYS;

export async function openDatabase(options: DatabaseOptions): Promise<DatabaseHandle> {
  return options.databaseUrl === undefined
    ? openPglite(join(options.dataDir, 'pglite'))
    : openPostgres(options.databaseUrl, options.poolSize);
}

async function openPglite(directory: string): Promise<DatabaseHandle> {
  await mkdir(directory, { recursive: true });
  const releaseLock = await lockExclusively(`${directory}.lock`);
  let client: PGlite;
  try {
    client = await openPgliteClient(directory);
  } catch (error) {
    await releaseLock();
    throw error;
  }
  const db = drizzlePglite({ client, schema });
  return {
    db,
    kind: 'pglite',
    // PGlite is one connection owned by this process, so nothing can race with it.
    migrate: () => migratePglite(db, { migrationsFolder }),
    runAlone: (_task, work) => work().then(() => true),
    ping: async () => {
      await client.query('select 1');
    },
    close: async () => {
      try {
        await client.close();
      } finally {
        await releaseLock();
      }
    },
  };
}

class DatabaseInUseError extends Error {
  override name = 'DatabaseInUseError';
}

// Lock files this process holds. Process-wide on purpose: a second open of the same folder from this
// process must fail like one from another process, and a lock holding our own pid is otherwise taken
// for a leftover of an earlier life (pid 1 in a restarted container).
const heldLocks = new Set<string>();

interface LockContent extends ProcessOwner {
  /** Tells this holder's lock from a later one, so that a release never removes someone else's. */
  readonly token: string;
}

/**
 * PGlite is one process's database: a second process opening the same folder (a migration or a storage
 * repair while the service runs) corrupts it. A lock file holding the owner's host and pid keeps the
 * second one out; a lock left by a process that no longer runs is taken over. The file appears whole
 * (written aside, then hard-linked into place), so nobody ever reads a half-written lock.
 */
async function lockExclusively(path: string): Promise<() => Promise<void>> {
  if (heldLocks.has(path)) throw inUse(path, currentProcess());
  const mine: LockContent = { ...currentProcess(), token: randomUUID() };
  for (let attempt = 0; attempt < 2; attempt++) {
    if (await placeLock(path, mine)) {
      heldLocks.add(path);
      return async () => {
        heldLocks.delete(path);
        if ((await readLock(path))?.token === mine.token) await rm(path, { force: true });
      };
    }
    const owner = await readLock(path);
    if (owner !== undefined && mayStillRun(owner)) throw inUse(path, owner);
    // The owner is gone. Of two processes taking over at once, the second may remove the first's new
    // lock; both then fail the check below and neither opens the database.
    await rm(path, { force: true });
  }
  throw new DatabaseInUseError(`Could not lock the embedded database: ${path} keeps reappearing.`);
}

/** Creates the lock file with `content`, atomically; false when one exists already. */
async function placeLock(path: string, content: LockContent): Promise<boolean> {
  const draft = `${path}.${content.pid}.${content.token}`;
  await writeFile(draft, JSON.stringify(content));
  try {
    await link(draft, path);
  } catch (error) {
    if (error instanceof Error && 'code' in error && error.code === 'EEXIST') return false;
    throw error;
  } finally {
    await rm(draft, { force: true });
  }
  return (await readLock(path))?.token === content.token;
}

function inUse(path: string, owner: ProcessOwner): DatabaseInUseError {
  return new DatabaseInUseError(
    `The embedded database ${path.replace(/\.lock$/, '')} is in use by process ${owner.pid} on ${owner.host}. ` +
      'Stop it first, or use DATABASE_URL (PostgreSQL) to run several processes. If that process is gone ' +
      `(another machine or container that shared this folder), delete ${path}.`,
  );
}

async function readLock(path: string): Promise<LockContent | undefined> {
  try {
    const parsed: unknown = JSON.parse(await readFile(path, 'utf8'));
    if (typeof parsed !== 'object' || parsed === null) return undefined;
    const host: unknown = Reflect.get(parsed, 'host');
    const pid: unknown = Reflect.get(parsed, 'pid');
    const token: unknown = Reflect.get(parsed, 'token');
    return typeof host === 'string' && typeof pid === 'number' && typeof token === 'string'
      ? { host, pid, token }
      : undefined;
  } catch {
    return undefined; // unreadable: a lock nobody can be holding
  }
}

function openPostgres(url: string, poolSize: number): DatabaseHandle {
  const connectionOptions = {
    // Fail fast while PostgreSQL is unreachable, so that requests answer 503 instead of hanging: a
    // connection attempt caught by the server's shutdown was seen to wait the whole timeout, and a
    // request must not take more than 5 s in all.
    connect_timeout: 2,
    // postgres.js waits (0.5–1) × min(3^failures / 100, 20) s before reconnecting, so a few seconds into an
    // outage queries sat for seconds waiting for the next attempt. Retry within half a second.
    backoff: (failures: number) => Math.min(0.05 * failures, 0.5),
    idle_timeout: 60,
    onnotice: () => {},
  } as const;
  const client = postgres(url, { ...connectionOptions, max: poolSize });
  const db = drizzlePostgres({ client, schema });
  return {
    db,
    kind: 'postgres',
    migrate: async () => {
      // A session-level advisory lock needs a single connection for lock, migration and unlock.
      const session = postgres(url, { ...connectionOptions, max: 1 });
      try {
        await session`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
        await migratePostgres(drizzlePostgres({ client: session }), { migrationsFolder });
        await session`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
      } finally {
        await session.end();
      }
    },
    runAlone: async (task, work) => {
      // The session holds the lock; if it breaks, PostgreSQL releases it and another process may begin.
      const session = postgres(url, { ...connectionOptions, max: 1 });
      try {
        const key = EXCLUSIVE_TASK_LOCK_KEYS[task];
        const [row] = await session<[{ locked: boolean }]>`select pg_try_advisory_lock(${key}) as locked`;
        if (row?.locked !== true) return false;
        await work();
        return true;
      } finally {
        // Ending the session releases the lock.
        await session.end();
      }
    },
    ping: async () => {
      await db.execute(sql`select 1`);
    },
    close: () => client.end({ timeout: 5 }),
  };
}
