import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from './config.js';
import { openDatabase, type DatabaseHandle } from './db/client.js';
import { RecordRepository } from './db/records.js';
import { UserRepository } from './db/users.js';
import { createLogger } from './logger.js';
import { Converter } from './media/converter.js';
import { checkFfmpeg, findExecutable } from './media/ffmpeg-check.js';
import { ConversionLimiter } from './media/limiter.js';

import { Transcoder } from './media/transcoder.js';
import { AccountService } from './services/accounts.js';
import { Quota } from './services/quota.js';
import { RecordingService } from './services/recordings.js';
import { UploadCaps } from './services/upload-caps.js';
import type { BlobStore } from './storage/blob-store.js';
import { LocalBlobStore } from './storage/local-blob-store.js';
import { ScratchDirectory } from './storage/scratch.js';

/** Everything the entry points use, built from one Config. */
const FILE_JOB_QUEUE_SIZE = 64;

export interface Services {
  readonly config: Config;
  /** pino, typed as the web framework takes it. */
  readonly logger: FastifyBaseLogger;
  readonly database: DatabaseHandle;
  readonly records: RecordRepository;
  readonly blobs: BlobStore;
  readonly scratch: ScratchDirectory;
  readonly accounts: AccountService;
  readonly recordings: RecordingService;
  /** Resolves with ffmpeg's version once it is known to run with the needed encoder; checked once. */
  converterReady(): Promise<string>;
  /** Closes the database. */
  close(): Promise<void>;
}

export interface ServiceOptions {
  /** Where logs go (tests capture them); stdout by default. */
  readonly logStream?: NodeJS.WritableStream;
  /** Apply pending migrations (default); a report-only tool leaves the schema alone. */
  readonly migrate?: boolean;
  /** Most database connections; by default enough for every conversion slot twice. */
  readonly poolSize?: number;
}

/**
 * The one place that builds repositories, storage, media and services from a Config, for the server,
 * the command-line tools, the benchmarks and the tests alike. Opens the database and (unless told not to)
 * applies pending migrations; nothing is read from the environment here, so tests can build many side by side.
 */
export async function createServices(config: Config, options: ServiceOptions = {}): Promise<Services> {
  const logger = createLogger(config, options.logStream);
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolSize: options.poolSize ?? Math.max(10, config.convertConcurrency * 2),
  });
  try {
    if (options.migrate !== false) await database.migrate();
  } catch (error) {
    await database.close();
    throw error;
  }

  const users = new UserRepository(database.db);
  const records = new RecordRepository(database.db);
  const scratch = new ScratchDirectory(join(config.dataDir, 'tmp'));
  const blobs = new LocalBlobStore(join(config.dataDir, 'records'), scratch);
  await blobs.init();
  const converter = new Converter(
    new Transcoder({
      ffmpegPath: config.ffmpegPath,
      timeoutMs: config.convertTimeoutMs,
      maxMemoryBytes: config.ffmpegMaxMemoryBytes,
      prlimitPath: findExecutable('prlimit'),
    }),
    { mp3: config.encoding, loudnessTargetLufs: config.loudnessTargetLufs },
    { maxDurationSeconds: config.maxDurationSeconds },
  );
  const quota = new Quota({ maxRecords: config.quota.maxRecordsPerUser, maxBytes: config.quota.maxBytesPerUser });
  let converterCheck: Promise<string> | undefined;

  return {
    config,
    logger,
    database,
    records,
    blobs,
    scratch,
    accounts: new AccountService(users, records, blobs),
    recordings: new RecordingService({
      records,
      blobs,
      scratch,
      converter,
      limiter: new ConversionLimiter(config.convertConcurrency, config.convertQueueSize),
      // Tag rewrites and old records' peaks are short ffmpeg runs: as many at once as conversions, many queued.
      fileJobs: new ConversionLimiter(config.convertConcurrency, FILE_JOB_QUEUE_SIZE),
      quota,
      caps: new UploadCaps({ perUser: config.maxUploadsPerUser, perAddress: config.maxUploadsPerAddress }),
      minFreeDiskBytes: config.minFreeDiskBytes,
      freeDiskBytes: async () => Math.min(await scratch.freeBytes(), await blobs.freeBytes()),
    }),
    converterReady: () => (converterCheck ??= checkFfmpeg(config.ffmpegPath)),
    close: () => database.close(),
  };
}
