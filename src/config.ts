import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Type, type Static } from 'typebox';
import { Value } from 'typebox/value';

/**
 * Audio without a row is only deleted once it is at least this old: an upload stores its audio a moment
 * before it inserts the row, and a younger orphan may be one of those.
 */
export const MIN_ORPHAN_AGE_SECONDS = 60;

const Integer = (options: { minimum: number; maximum?: number; default?: number }) => Type.Integer(options);

/** The environment the service reads, with its defaults. `.env.example` documents each variable. */
const EnvSchema = Type.Object({
  PORT: Integer({ minimum: 0, maximum: 65535, default: 8000 }),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0' }),
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  DATA_DIR: Type.String({ minLength: 1, default: './data' }),
  PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://[^/?#]+(/[^?#]*)?$' })),
  // false, true (every hop: only when nothing but the proxy can reach the service), a hop count, or
  // comma-separated addresses and CIDRs of the proxies.
  TRUST_PROXY: Type.String({
    pattern: '^(false|true|\\d{1,2}|[0-9a-fA-F.:/]+(\\s*,\\s*[0-9a-fA-F.:/]+)*)$',
    default: 'false',
  }),
  LOG_LEVEL: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { default: 'info' }),
  MAX_UPLOAD_BYTES: Integer({ minimum: 1024, default: 2 * 1024 ** 3 }),
  MAX_DURATION_SECONDS: Integer({ minimum: 1, default: 6 * 3600 }),
  MP3_VBR_QUALITY: Integer({ minimum: 0, maximum: 9, default: 2 }),
  MP3_BITRATE_KBPS: Type.Optional(Integer({ minimum: 8, maximum: 320 })),
  MP3_COMPRESSION_LEVEL: Type.Optional(Integer({ minimum: 0, maximum: 9 })),
  LOUDNESS_TARGET_LUFS: Type.Number({ minimum: -70, maximum: -5, default: -16 }),
  CONVERT_CONCURRENCY: Integer({ minimum: 1, maximum: 256, default: availableParallelism() }),
  CONVERT_QUEUE_SIZE: Integer({ minimum: 0, maximum: 10_000, default: 16 }),
  CONVERT_TIMEOUT_SECONDS: Integer({ minimum: 1, default: 1800 }),
  UPLOAD_IDLE_TIMEOUT_SECONDS: Integer({ minimum: 1, default: 30 }),
  UPLOAD_MIN_BYTES_PER_SECOND: Integer({ minimum: 0, default: 1024 }),
  UPLOAD_RATE_WINDOW_SECONDS: Integer({ minimum: 1, default: 30 }),
  MAX_UPLOADS_PER_USER: Type.Optional(Integer({ minimum: 1 })),
  MAX_UPLOADS_PER_ADDRESS: Type.Optional(Integer({ minimum: 1 })),
  REQUEST_BODY_TIMEOUT_SECONDS: Integer({ minimum: 1, default: 30 }),
  RESPONSE_IDLE_TIMEOUT_SECONDS: Integer({ minimum: 1, default: 60 }),
  MAX_CONNECTIONS: Integer({ minimum: 1, default: 10_000 }),
  MAX_CONNECTIONS_PER_ADDRESS: Integer({ minimum: 0, default: 256 }),
  MIN_FREE_DISK_BYTES: Integer({ minimum: 0, default: 1024 ** 3 }),
  FFMPEG_MAX_MEMORY_BYTES: Integer({ minimum: 256 * 1024 ** 2, default: 1024 ** 3 }),
  SHUTDOWN_GRACE_SECONDS: Integer({ minimum: 0, default: 30 }),
  FFMPEG_PATH: Type.String({ minLength: 1, default: 'ffmpeg' }),
  // The web app at `/`, built by `npm run build` into dist/web unless WEB_DIR names another build.
  WEB_APP: Type.Boolean({ default: true }),
  WEB_DIR: Type.Optional(Type.String({ minLength: 1 })),
  STORAGE_CHECK_ON_START: Type.Boolean({ default: true }),
  STORAGE_ORPHAN_AGE_SECONDS: Integer({ minimum: MIN_ORPHAN_AGE_SECONDS, default: 600 }),
  CORS_ORIGINS: Type.Optional(Type.String({ pattern: '^(\\*|https?://[^/?#,\\s]+(,\\s*https?://[^/?#,\\s]+)*)$' })),
  RATE_LIMIT_WINDOW_SECONDS: Integer({ minimum: 1, default: 60 }),
  RATE_LIMIT_AUTH_FAILURES: Integer({ minimum: 0, default: 100 }),
  RATE_LIMIT_USER_CREATIONS: Integer({ minimum: 0, default: 600 }),
  MAX_BYTES_PER_USER: Type.Optional(Integer({ minimum: 1 })),
  MAX_RECORDS_PER_USER: Type.Optional(Integer({ minimum: 1 })),
  STORAGE_DRIVER: Type.Enum(['local', 's3'], { default: 'local' }),
  S3_ENDPOINT: Type.Optional(Type.String({ pattern: '^https?://[^/?#\\s]+(/[^?#\\s]*)?$' })),
  S3_REGION: Type.Optional(Type.String({ minLength: 1 })),
  S3_BUCKET: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' })),
  // Keys go under it; a trailing slash is added when missing.
  S3_PREFIX: Type.String({ pattern: '^([^/\\s][^\\s]*)?$', default: '' }),
  S3_ACCESS_KEY_ID: Type.Optional(Type.String({ minLength: 1 })),
  S3_SECRET_ACCESS_KEY: Type.Optional(Type.String({ minLength: 1 })),
  S3_FORCE_PATH_STYLE: Type.Boolean({ default: false }),
  S3_DOWNLOAD: Type.Enum(['proxy', 'redirect'], { default: 'proxy' }),
  // A single PutObject up to this size (at most 5 GiB, S3's limit), a multipart upload above it.
  S3_MULTIPART_THRESHOLD_BYTES: Integer({ minimum: 0, maximum: 5 * 1024 ** 3, default: 64 * 1024 ** 2 }),
  // A presigned URL is valid for between this and 1.5 times this (SigV4 allows 7 days in all).
  S3_PRESIGN_SECONDS: Integer({ minimum: 10, maximum: 4 * 24 * 3600, default: 300 }),
});

type Env = Static<typeof EnvSchema>;

export interface EncodingConfig {
  /** LAME VBR quality (0 best … 9 smallest); ignored when `bitrateKbps` is set. */
  readonly vbrQuality: number;
  /** Constant bitrate in kbit/s; unset means VBR. */
  readonly bitrateKbps: number | undefined;
  /** LAME algorithm quality (0 slowest/best … 9 fastest); unset keeps LAME's default. */
  readonly compressionLevel: number | undefined;
}

interface QuotaConfig {
  /** Most MP3 bytes one user may store; unset means unlimited. */
  readonly maxBytesPerUser: number | undefined;
  /** Most records one user may keep; unset means unlimited. */
  readonly maxRecordsPerUser: number | undefined;
}

export interface Config {
  readonly port: number;
  readonly host: string;
  /** PostgreSQL connection string; unset selects the embedded PGlite database under `dataDir`. */
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly publicUrl: string | undefined;
  /** Fastify's trustProxy: false, true, a hop count, or the proxies' addresses and CIDRs. */
  readonly trustProxy: boolean | number | string;
  readonly logLevel: string;
  readonly maxUploadBytes: number;
  readonly maxDurationSeconds: number;
  readonly encoding: EncodingConfig;
  /** What `normalize=true` aims at (EBU R128 integrated loudness). */
  readonly loudnessTargetLufs: number;
  readonly convertConcurrency: number;
  readonly convertQueueSize: number;
  readonly convertTimeoutMs: number;
  readonly uploadIdleTimeoutMs: number;
  readonly uploadMinBytesPerSecond: number;
  readonly uploadRateWindowMs: number;
  /** Uploads one user, and one client address, may have converting or queued at once. */
  readonly maxUploadsPerUser: number;
  readonly maxUploadsPerAddress: number;
  /** How long a request other than an upload may take to send its body. */
  readonly requestBodyTimeoutMs: number;
  /** How long a response (a download) may wait for its client to read. */
  readonly responseIdleTimeoutMs: number;
  readonly maxConnections: number;
  /** 0: no per-address cap. */
  readonly maxConnectionsPerAddress: number;
  readonly minFreeDiskBytes: number;
  readonly ffmpegMaxMemoryBytes: number;
  readonly shutdownGraceMs: number;
  readonly ffmpegPath: string;
  /** The built web app served at `/`; undefined: the API only. */
  readonly webDir: string | undefined;
  readonly storageCheck: StorageCheckConfig;
  /** Origins allowed to call the API from a browser; empty means CORS is off. */
  readonly corsOrigins: readonly string[];
  readonly rateLimit: RateLimitConfig;
  readonly quota: QuotaConfig;
  /** Where finished audio lives: files under `dataDir/records`, or an S3-compatible bucket. */
  readonly storage: StorageConfig;
}

type StorageConfig = { readonly driver: 'local' } | ({ readonly driver: 's3' } & S3Config);

export interface S3Config {
  /** Unset for AWS S3 itself. */
  readonly endpoint: string | undefined;
  readonly region: string;
  readonly bucket: string;
  /** Empty, or ends with a slash. */
  readonly prefix: string;
  /** Both set, or neither (the SDK's own chain then: AWS_* variables, a shared profile, an instance role). */
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string } | undefined;
  readonly forcePathStyle: boolean;
  /** Stream downloads through the service, or answer 302 to a presigned URL of the object store. */
  readonly download: 'proxy' | 'redirect';
  readonly multipartThresholdBytes: number;
  readonly presignSeconds: number;
}

interface StorageCheckConfig {
  /** Compare rows with files in the background at start-up, removing old orphan files. */
  readonly onStart: boolean;
  /** Files younger than this are never called orphans: their upload may still be inserting its row. */
  readonly orphanMinAgeMs: number;
}

interface RateLimitConfig {
  readonly windowMs: number;
  /** Failed authentications one client may make per window before it gets 429; 0 turns this off. */
  readonly authFailures: number;
  /** Users one client may create per window; 0 turns this off. */
  readonly userCreations: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** The configuration of an entry point: `.env` in the working folder (if any) under the process environment. */
export function loadConfigFromProcess(): Config {
  if (existsSync('.env')) process.loadEnvFile('.env');
  return loadConfig(process.env);
}

/** Reads and validates the environment once; every problem is reported together, by variable name. */
export function loadConfig(environment: NodeJS.ProcessEnv = process.env): Config {
  const known = Object.fromEntries(
    Object.keys(EnvSchema.properties)
      .filter((name) => environment[name] !== undefined && environment[name] !== '')
      .map((name) => [name, environment[name]]),
  );
  const candidate = Value.Convert(EnvSchema, Value.Default(EnvSchema, known));
  if (!Value.Check(EnvSchema, candidate)) {
    const problems = new Map<string, string>();
    for (const error of Value.Errors(EnvSchema, candidate)) {
      const variable = error.instancePath.replace(/^\//, '') || 'environment';
      problems.set(variable, `  ${variable}: ${error.message} (got ${JSON.stringify(known[variable] ?? null)})`);
    }
    throw new ConfigError(`Invalid configuration:\n${[...problems.values()].join('\n')}`);
  }
  const missing = storageProblems(candidate);
  if (missing.length > 0) throw new ConfigError(`Invalid configuration:\n${missing.join('\n')}`);
  return configFromEnv(candidate);
}

/** What the chosen storage driver needs and the schema alone cannot say. */
function storageProblems(env: Env): string[] {
  if (env.STORAGE_DRIVER !== 's3') return [];
  const problems: string[] = [];
  for (const name of ['S3_BUCKET', 'S3_REGION'] as const) {
    if (env[name] === undefined) problems.push(`  ${name}: required when STORAGE_DRIVER=s3`);
  }
  if ((env.S3_ACCESS_KEY_ID === undefined) !== (env.S3_SECRET_ACCESS_KEY === undefined)) {
    const [given, absent] =
      env.S3_ACCESS_KEY_ID === undefined
        ? ['S3_SECRET_ACCESS_KEY', 'S3_ACCESS_KEY_ID']
        : ['S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY'];
    problems.push(`  ${absent}: required with ${given} (set both, or neither to use the AWS SDK's own credentials)`);
  }
  if (env.S3_PREFIX.split('/').some((segment, index, all) => segment === '' && index < all.length - 1)) {
    problems.push(`  S3_PREFIX: no empty segments (got ${JSON.stringify(env.S3_PREFIX)})`);
  }
  return problems;
}

function storageConfigOf(env: Env): StorageConfig {
  if (env.STORAGE_DRIVER === 'local') return Object.freeze({ driver: 'local' });
  const { S3_ACCESS_KEY_ID: accessKeyId, S3_SECRET_ACCESS_KEY: secretAccessKey } = env;
  return Object.freeze({
    driver: 's3',
    endpoint: env.S3_ENDPOINT?.replace(/\/+$/, ''),
    region: env.S3_REGION ?? '',
    bucket: env.S3_BUCKET ?? '',
    prefix: env.S3_PREFIX === '' || env.S3_PREFIX.endsWith('/') ? env.S3_PREFIX : `${env.S3_PREFIX}/`,
    credentials:
      accessKeyId === undefined || secretAccessKey === undefined
        ? undefined
        : Object.freeze({ accessKeyId, secretAccessKey }),
    forcePathStyle: env.S3_FORCE_PATH_STYLE,
    download: env.S3_DOWNLOAD,
    multipartThresholdBytes: env.S3_MULTIPART_THRESHOLD_BYTES,
    presignSeconds: env.S3_PRESIGN_SECONDS,
  });
}

function configFromEnv(env: Env): Config {
  return Object.freeze({
    port: env.PORT,
    host: env.HOST,
    databaseUrl: env.DATABASE_URL,
    dataDir: resolve(env.DATA_DIR),
    publicUrl: env.PUBLIC_URL?.replace(/\/+$/, ''),
    trustProxy: trustProxyOf(env.TRUST_PROXY),
    logLevel: env.LOG_LEVEL,
    maxUploadBytes: env.MAX_UPLOAD_BYTES,
    maxDurationSeconds: env.MAX_DURATION_SECONDS,
    encoding: Object.freeze({
      vbrQuality: env.MP3_VBR_QUALITY,
      bitrateKbps: env.MP3_BITRATE_KBPS,
      compressionLevel: env.MP3_COMPRESSION_LEVEL,
    }),
    loudnessTargetLufs: env.LOUDNESS_TARGET_LUFS,
    convertConcurrency: env.CONVERT_CONCURRENCY,
    convertQueueSize: env.CONVERT_QUEUE_SIZE,
    convertTimeoutMs: env.CONVERT_TIMEOUT_SECONDS * 1000,
    uploadIdleTimeoutMs: env.UPLOAD_IDLE_TIMEOUT_SECONDS * 1000,
    uploadMinBytesPerSecond: env.UPLOAD_MIN_BYTES_PER_SECOND,
    uploadRateWindowMs: env.UPLOAD_RATE_WINDOW_SECONDS * 1000,
    // By default one client may fill every slot and queue place, but no more.
    maxUploadsPerUser: env.MAX_UPLOADS_PER_USER ?? env.CONVERT_CONCURRENCY + env.CONVERT_QUEUE_SIZE,
    maxUploadsPerAddress: env.MAX_UPLOADS_PER_ADDRESS ?? env.CONVERT_CONCURRENCY + env.CONVERT_QUEUE_SIZE,
    requestBodyTimeoutMs: env.REQUEST_BODY_TIMEOUT_SECONDS * 1000,
    responseIdleTimeoutMs: env.RESPONSE_IDLE_TIMEOUT_SECONDS * 1000,
    maxConnections: env.MAX_CONNECTIONS,
    maxConnectionsPerAddress: env.MAX_CONNECTIONS_PER_ADDRESS,
    minFreeDiskBytes: env.MIN_FREE_DISK_BYTES,
    ffmpegMaxMemoryBytes: env.FFMPEG_MAX_MEMORY_BYTES,
    shutdownGraceMs: env.SHUTDOWN_GRACE_SECONDS * 1000,
    ffmpegPath: env.FFMPEG_PATH,
    webDir: env.WEB_APP ? resolve(env.WEB_DIR ?? BUILT_WEB_DIR) : undefined,
    storageCheck: Object.freeze({
      onStart: env.STORAGE_CHECK_ON_START,
      orphanMinAgeMs: env.STORAGE_ORPHAN_AGE_SECONDS * 1000,
    }),
    corsOrigins: Object.freeze(
      (env.CORS_ORIGINS ?? '')
        .split(',')
        .map((origin) => origin.trim())
        .filter((origin) => origin !== ''),
    ),
    rateLimit: Object.freeze({
      windowMs: env.RATE_LIMIT_WINDOW_SECONDS * 1000,
      authFailures: env.RATE_LIMIT_AUTH_FAILURES,
      userCreations: env.RATE_LIMIT_USER_CREATIONS,
    }),
    quota: Object.freeze({ maxBytesPerUser: env.MAX_BYTES_PER_USER, maxRecordsPerUser: env.MAX_RECORDS_PER_USER }),
    storage: storageConfigOf(env),
  });
}

// `npm run build` puts it beside the compiled service; this module runs from `src/` or `dist/`, one level down.
const BUILT_WEB_DIR = fileURLToPath(new URL('../dist/web', import.meta.url));

function trustProxyOf(value: string): boolean | number | string {
  if (value === 'false') return false;
  if (value === 'true') return true;
  if (/^\d+$/.test(value)) return Number(value);
  return value
    .split(',')
    .map((address) => address.trim())
    .join(',');
}
