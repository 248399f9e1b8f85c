import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import { ConfigError, type Config, type S3Config } from './config.js';
import { openDatabase, type DatabaseHandle } from './db/client.js';
import { SharedHitCounters } from './db/hit-counters.js';
import { RecordRepository } from './db/records.js';
import { UserRepository } from './db/users.js';
import { createLogger } from './logger.js';
import { Converter } from './media/converter.js';
import { checkFfmpeg, findExecutable } from './media/ffmpeg-check.js';
import { ConversionLimiter } from './media/limiter.js';

import { ProcessLauncher } from './media/launcher.js';
import { Transcoder } from './media/transcoder.js';
import { AccountService } from './services/accounts.js';
import { LocalHitCounters, type HitCounters } from './services/hit-counters.js';
import { Quota } from './services/quota.js';
import { RecordLinkCache } from './services/record-link-cache.js';
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
  /** Rate limits' and failed authentications' counts: in PostgreSQL, shared by replicas; in memory with PGlite. */
  readonly hitCounters: HitCounters;
  readonly accounts: AccountService;
  readonly recordings: RecordingService;
  /** Resolves with ffmpeg's version once it is known to run with the needed encoder; checked once. */
  converterReady(): Promise<string>;
  /** Starts the process that starts the encoders (media/launcher.ts) now rather than at the first upload. */
  startConverter(): void;
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
  /**
   * Prove an object store writable before anything else (default): a wrong bucket or key stops the
   * process with a clear error. A report-only tool, which writes nothing, skips it.
   */
  readonly probeStorage?: boolean;
}

/**
 * The one place that builds repositories, storage, media and services from a Config, for the server,
 * the command-line tools, the benchmarks and the tests alike. Opens the database and (unless told not to)
 * applies pending migrations; nothing is read from the environment here, so tests can build many side by side.
 */
export async function createServices(config: Config, options: ServiceOptions = {}): Promise<Services> {
  const logger = createLogger(config, options.logStream);
  const scratch = new ScratchDirectory(join(config.dataDir, 'tmp'));
  const storage = await openBlobStore(config, scratch, logger, options.probeStorage !== false);
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolSize: options.poolSize ?? Math.max(10, config.convertConcurrency * 2),
  }).catch((error: unknown) => {
    storage.close();
    throw error;
  });
  try {
    if (options.migrate !== false) await database.migrate();
  } catch (error) {
    await database.close();
    storage.close();
    throw error;
  }

  const users = new UserRepository(database.db);
  const records = new RecordRepository(database.db);
  const { blobs } = storage;
  const launcher = new ProcessLauncher();
  const converter = new Converter(
    new Transcoder({
      ffmpegPath: config.ffmpegPath,
      timeoutMs: config.convertTimeoutMs,
      maxMemoryBytes: config.ffmpegMaxMemoryBytes,
      prlimitPath: findExecutable('prlimit'),
      launcher,
    }),
    { mp3: config.encoding, loudnessTargetLufs: config.loudnessTargetLufs },
    { maxDurationSeconds: config.maxDurationSeconds },
  );
  const quota = new Quota({ maxRecords: config.quota.maxRecordsPerUser, maxBytes: config.quota.maxBytesPerUser });
  let converterCheck: Promise<string> | undefined;
  const linkCache = new RecordLinkCache();

  return {
    config,
    logger,
    database,
    records,
    blobs,
    scratch,
    hitCounters: database.kind === 'postgres' ? new SharedHitCounters(database.db) : new LocalHitCounters(),
    accounts: new AccountService(users, records, blobs, linkCache),
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
      freeDiskBytes: storage.freeDiskBytes,
      redirectDownloadsSeconds:
        config.storage.driver === 's3' && config.storage.download === 'redirect'
          ? config.storage.presignSeconds
          : undefined,
      linkCache,
    }),
    converterReady: () => (converterCheck ??= checkFfmpeg(config.ffmpegPath)),
    startConverter: () => launcher.start(),
    close: async () => {
      launcher.close();
      await database.close();
      storage.close();
    },
  };
}

interface OpenedStore {
  readonly blobs: BlobStore;
  /** The free space uploads need: the scratch folder's, and the local store's where audio is on this disk. */
  readonly freeDiskBytes: () => Promise<number>;
  close(): void;
}

/**
 * The blob store `config.storage` names (the local folder, created if absent, or the bucket), proven
 * writable first when `probe` is set; the storage migration opens both stores this way.
 */
export async function openBlobStore(
  config: Config,
  scratch: ScratchDirectory,
  logger: FastifyBaseLogger,
  probe: boolean,
): Promise<OpenedStore> {
  if (config.storage.driver === 'local') {
    const blobs = new LocalBlobStore(join(config.dataDir, 'records'), scratch);
    await blobs.init();
    return {
      blobs,
      freeDiskBytes: async () => Math.min(await scratch.freeBytes(), await blobs.freeBytes()),
      close: () => blobs.close(),
    };
  }
  const s3 = config.storage;
  // Loaded only for this driver: the AWS SDK is about 40 MB of resident memory that a local deployment never uses.
  const { createS3Client, S3BlobStore, StorageUnusable } = await import('./storage/s3-blob-store.js');
  const client = createS3Client({
    ...s3,
    // Each proxied download holds one connection to the store: never make a download wait for one.
    maxSockets: config.maxConnections + 4 * config.convertConcurrency,
    idleTimeoutMs: config.responseIdleTimeoutMs + 60_000,
    log: logger.child({ component: 's3' }),
  });
  const blobs = new S3BlobStore(client, s3);
  if (probe) {
    try {
      await blobs.checkWritable();
    } catch (error) {
      client.destroy();
      if (!(error instanceof StorageUnusable)) throw error;
      const message = `The S3 storage cannot be used (${describeBucket(s3)}): ${error.message}${hintFor(error.code)}`;
      throw new ConfigError(message, { cause: error });
    }
  }
  return { blobs, freeDiskBytes: () => scratch.freeBytes(), close: () => client.destroy() };
}

function describeBucket(s3: S3Config): string {
  return `S3_BUCKET=${s3.bucket}, S3_ENDPOINT=${s3.endpoint ?? '(AWS)'}, S3_REGION=${s3.region}, S3_PREFIX=${s3.prefix === '' ? '(none)' : s3.prefix}`;
}

/** Which settings to look at, by the store's error code. */
function hintFor(code: string): string {
  if (code === 'NoSuchBucket') return '\nCheck S3_BUCKET: the bucket must exist (the service does not create it).';
  if (
    ['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'Forbidden', 'CredentialsProviderError'].includes(
      code,
    )
  ) {
    return '\nCheck S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, and that the key may read, write, list and delete under S3_PREFIX.';
  }
  if (['PermanentRedirect', 'AuthorizationHeaderMalformed', 'IllegalLocationConstraintException'].includes(code)) {
    return "\nCheck S3_REGION: it must be the bucket's region.";
  }
  if (['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'TimeoutError', 'ECONNRESET'].includes(code)) {
    return '\nCheck S3_ENDPOINT (and S3_FORCE_PATH_STYLE): the store cannot be reached.';
  }
  return '';
}
