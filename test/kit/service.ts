import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { createServices } from '../../src/container.js';
import { buildApp } from '../../src/http/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createTestDatabase, type DatabaseKind, type TestDatabase } from './database.js';
import { removeObjects, storageEnv } from './storage.js';

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
  /**
   * Extra environment, as the service would read it. Unless it sets STORAGE_DRIVER, the service stores its
   * audio as TEST_STORAGE says (storage.ts): on S3, under a prefix of this data directory's own.
   */
  readonly env?: Record<string, string>;
  /** Reuse a data directory (and its storage) and database (for restart tests). */
  readonly dataDir?: string;
  readonly databaseUrl?: string | undefined;
}

/** Starts the real app on an ephemeral port with its own data directory. */
export async function startService(options: TestServiceOptions = {}): Promise<RunningService> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'audio-test-')));
  const config = loadConfig({
    LOG_LEVEL: 'info',
    CONVERT_CONCURRENCY: '2',
    ...storageOf(dataDir, options.env?.STORAGE_DRIVER),
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

/** The storage settings to add: TEST_STORAGE's, unless the test chose a driver (its settings are its own). */
function storageOf(dataDir: string, driver: string | undefined): Record<string, string> {
  if (driver === undefined) return storageEnv(dataDir);
  // Noted, so that the kit's storage helpers look at the disk for this data directory.
  if (driver === 'local') storageEnv(dataDir, 'local');
  return {};
}

export interface IsolatedService extends RunningService {
  readonly database: TestDatabase;
  /** Stops the service and removes its database and data directory. */
  cleanup(): Promise<void>;
}

/**
 * A service on a fresh database of the given kind (and storage, see startService), and a cleanup that
 * removes everything it made.
 */
export async function startIsolatedService(
  kind: DatabaseKind,
  env: Record<string, string> = {},
): Promise<IsolatedService> {
  const database = await createTestDatabase(kind);
  const service = await startService({ env, databaseUrl: database.url });
  return {
    ...service,
    database,
    cleanup: async () => {
      await service.stop();
      await database.drop();
      if (env.STORAGE_DRIVER === undefined) await removeObjects(service.dataDir);
      await rm(service.dataDir, { recursive: true, force: true });
    },
  };
}

/** The parsed JSON log lines (pino) written so far. */
export function logLines(service: Pick<RunningService, 'logs'>): LogLine[] {
  return service
    .logs()
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as LogLine);
}

export interface LogLine {
  readonly level: number;
  readonly msg?: string;
  readonly reqId?: string;
  /** An error, as pino serializes it: `type` is its class name (Busy, Unavailable…). */
  readonly err?: {
    readonly message?: string;
    readonly stack?: string;
    readonly type?: string;
  };
  readonly res?: { readonly statusCode?: number };
  readonly [key: string]: unknown;
}
