import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import postgres from 'postgres';
import { createServices } from '../../src/container.js';
import { buildApp } from '../../src/http/app.js';
import { loadConfig, type Config } from '../../src/config.js';

export type DatabaseKind = 'pglite' | 'postgres';

/** PGlite always; the real PostgreSQL too when TEST_DATABASE_URL names one (CI sets it). */
export const databaseKinds: DatabaseKind[] = process.env.TEST_DATABASE_URL ? ['pglite', 'postgres'] : ['pglite'];

export interface TestDatabase {
  readonly url: string | undefined;
  drop(): Promise<void>;
}

/** A fresh, empty PostgreSQL database for one test file, or nothing for PGlite (it lives in the data dir). */
export async function createTestDatabase(kind: DatabaseKind): Promise<TestDatabase> {
  const adminUrl = process.env.TEST_DATABASE_URL;
  if (kind === 'pglite' || adminUrl === undefined) return { url: undefined, drop: async () => {} };
  const name = `audio_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const cleanup = postgres(adminUrl, { max: 1, onnotice: () => {} });
      await cleanup.unsafe(`drop database if exists ${name} with (force)`);
      await cleanup.end();
    },
  };
}

export interface RunningService {
  readonly app: FastifyInstance;
  readonly config: Config;
  /** e.g. http://127.0.0.1:41234 */
  readonly url: string;
  readonly dataDir: string;
  /** Every log line written so far, as text. */
  logs(): string;
  /** Stops the server, keeping its data and database. */
  stop(): Promise<void>;
}

export interface TestServiceOptions {
  /** Extra environment, as the service would read it. */
  readonly env?: Record<string, string>;
  /** Reuse a data directory and database (for restart tests). */
  readonly dataDir?: string;
  readonly databaseUrl?: string;
}

/** Starts the real app on an ephemeral port with its own data directory. */
export async function startService(options: TestServiceOptions = {}): Promise<RunningService> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'audio-test-')));
  const config = loadConfig({
    LOG_LEVEL: 'info',
    CONVERT_CONCURRENCY: '2',
    ...options.env,
    DATA_DIR: dataDir,
    ...(options.databaseUrl === undefined ? {} : { DATABASE_URL: options.databaseUrl }),
    PORT: '0',
    HOST: '127.0.0.1',
  });
  let logText = '';
  const logStream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logText += chunk.toString();
      callback();
    },
  });
  const app = await buildApp(await createServices(config, { logStream }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return {
    app,
    config,
    url: `http://127.0.0.1:${address.port}`,
    dataDir,
    logs: () => logText,
    stop: () => app.close(),
  };
}

/** A service on a fresh database of the given kind, and a cleanup that removes everything it made. */
export async function startIsolatedService(
  kind: DatabaseKind,
  env: Record<string, string> = {},
): Promise<RunningService & { database: TestDatabase; cleanup(): Promise<void> }> {
  const database = await createTestDatabase(kind);
  const service = await startService({ env, ...(database.url === undefined ? {} : { databaseUrl: database.url }) });
  return {
    ...service,
    database,
    cleanup: async () => {
      await service.stop();
      await database.drop();
      await rm(service.dataDir, { recursive: true, force: true });
    },
  };
}
