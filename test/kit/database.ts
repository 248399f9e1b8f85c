import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import postgres from 'postgres';

export type DatabaseKind = 'pglite' | 'postgres';

/**
 * The databases the tests that run on each kind run on: PGlite always, the real PostgreSQL too when
 * TEST_DATABASE_URL names one (CI sets it); `TEST_DATABASES=postgres` (or `pglite`, comma-separated)
 * narrows that down. Tests that need no particular engine keep the one they name.
 */
export const databaseKinds: DatabaseKind[] = chooseKinds(process.env.TEST_DATABASES, process.env.TEST_DATABASE_URL);

function chooseKinds(wanted: string | undefined, postgresUrl: string | undefined): DatabaseKind[] {
  const available: DatabaseKind[] = postgresUrl ? ['pglite', 'postgres'] : ['pglite'];
  if (wanted === undefined || wanted.trim() === '') return available;
  const names = new Set(wanted.split(',').map((name) => name.trim()));
  for (const name of names) {
    if (name !== 'pglite' && name !== 'postgres') {
      throw new Error(`TEST_DATABASES lists pglite and/or postgres, not ${JSON.stringify(name)}`);
    }
    if (name === 'postgres' && !postgresUrl) throw new Error('TEST_DATABASES=postgres needs TEST_DATABASE_URL');
  }
  return available.filter((kind) => names.has(kind));
}

export interface TestDatabase {
  readonly kind: DatabaseKind;
  /** The PostgreSQL database's URL; undefined for PGlite, which lives in the service's data directory. */
  readonly url: string | undefined;
  drop(): Promise<void>;
}

/**
 * A fresh, empty PostgreSQL database for one test file (or a copy of `template`, which must have no
 * connections), or nothing for PGlite.
 */
export async function createTestDatabase(kind: DatabaseKind, template?: TestDatabase): Promise<TestDatabase> {
  const adminUrl = process.env.TEST_DATABASE_URL;
  if (kind === 'pglite' || adminUrl === undefined) return { kind: 'pglite', url: undefined, drop: async () => {} };
  const name = `audio_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  const templateName = template?.url === undefined ? undefined : new URL(template.url).pathname.slice(1);
  await withSql(adminUrl, (sql) =>
    sql.unsafe(`create database ${name}${templateName === undefined ? '' : ` template ${templateName}`}`),
  );
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    kind: 'postgres',
    url: url.toString(),
    drop: () => withSql(adminUrl, (sql) => sql.unsafe(`drop database if exists ${name} with (force)`)).then(() => {}),
  };
}

/** Runs `work` on a one-connection postgres.js client, closed afterwards. */
export async function withSql<T>(url: string, work: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return await work(sql);
  } finally {
    await sql.end();
  }
}

/**
 * Runs one statement on the service's database: PostgreSQL at any time, PGlite only while the service is
 * stopped (it has a single owner, the service).
 */
export async function query<Row extends Record<string, unknown>>(
  where: { readonly dataDir: string; readonly databaseUrl: string | undefined },
  text: string,
): Promise<Row[]> {
  if (where.databaseUrl !== undefined) {
    return withSql(where.databaseUrl, async (sql) => [...(await sql.unsafe<Row[]>(text))]);
  }
  const database = await PGlite.create(join(where.dataDir, 'pglite'));
  try {
    return (await database.query<Row>(text)).rows;
  } finally {
    await database.close();
  }
}

/** Record ids in the records table, read directly (PostgreSQL only; PGlite belongs to the service). */
export async function recordIdsInDatabase(databaseUrl: string): Promise<string[]> {
  return withSql(databaseUrl, async (sql) => {
    const rows = await sql<Array<{ record_id: string }>>`select record_id from records order by record_id`;
    return rows.map((row) => row.record_id);
  });
}
