import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Config } from './config.js';
import type { MigrationReport } from './services/storage-migration.js';
import type { BlobStore } from './storage/blob-store.js';

const DRIVERS = ['local', 's3'] as const;
type Driver = (typeof DRIVERS)[number];
const DEFAULT_CONCURRENCY = 4;
const MAX_CONCURRENCY = 64;
const PROGRESS_EVERY_MS = 10_000;

const USAGE = `Usage: node dist/migrate-storage.js --from local|s3 --to s3|local [--dry-run] [--concurrency N]
                                   [--size-only] [--json]   (or npm run storage:migrate -- …, after npm run build)

Copies the audio of every record from one store to the other: the files under DATA_DIR/records (local) and
the objects under S3_PREFIX in S3_BUCKET (s3), both from the same environment as the service, whatever
STORAGE_DRIVER says. Only the audio of existing rows is copied. A file already at the destination with the
same size (and MD5, where the S3 ETag is one) is left alone, so the command can be run again after an
interruption, or once more after the service has stopped, and then copies only what is new. Every copy is
verified at the destination before it counts. Nothing is deleted and no setting is changed.
  --from, --to       local or s3; they must differ
  --dry-run          compare only, write nothing: counts what would be copied
  --concurrency N    files copied at once (default ${DEFAULT_CONCURRENCY}, at most ${MAX_CONCURRENCY}); each passes through DATA_DIR/tmp
  --size-only        compare sizes, not ETags (for a store whose ETags are not MD5s, e.g. KMS-encrypted)
  --json             print the report as JSON
Exit status: 0 every record's audio is in place at the destination, 1 some could not be copied or are
missing at the source (listed), 2 the migration failed (arguments, settings, a store or the database).
With the embedded PGlite database (no DATABASE_URL), stop the service first: PGlite allows one process.
With PostgreSQL it may run while the service serves: see "Moving existing audio to S3 (or back)" in the README.`;

class UsageError extends Error {
  override name = 'UsageError';
}

/** `node dist/migrate-storage.js --from local --to s3`: copies every record's audio to the other store. */
async function main(): Promise<number> {
  const options = parseOptions();
  if (options === 'help') {
    console.log(USAGE);
    return 0;
  }
  const { from, to } = options;
  // The stores, the database and the settings load only now: a mistyped command is answered at once.
  const [
    { ConfigError, loadConfig, loadConfigFromProcess },
    { openBlobStore },
    { openDatabase },
    { RecordRepository },
    { createLogger },
    { migrateStorage },
    { ScratchDirectory },
  ] = await Promise.all([
    import('./config.js'),
    import('./container.js'),
    import('./db/client.js'),
    import('./db/records.js'),
    import('./logger.js'),
    import('./services/storage-migration.js'),
    import('./storage/scratch.js'),
  ]);
  const base = loadConfigFromProcess();
  // Each store from the service's own settings, as if STORAGE_DRIVER named it.
  const configOf = (driver: Driver): Config => {
    if (driver === base.storage.driver) return base;
    try {
      return loadConfig({ ...process.env, STORAGE_DRIVER: driver });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      throw new ConfigError(
        `The ${driver} store takes the settings the service reads with STORAGE_DRIVER=${driver}.\n${error.message}`,
      );
    }
  };
  const source = configOf(from);
  const destination = configOf(to);
  if (from === 'local' && !existsSync(join(base.dataDir, 'records'))) {
    throw new Error(
      `There are no local files to copy: ${join(base.dataDir, 'records')} does not exist (check DATA_DIR).`,
    );
  }
  if (base.databaseUrl === undefined && !existsSync(join(base.dataDir, 'pglite'))) {
    throw new Error(
      `There is no embedded database in ${base.dataDir} (check DATA_DIR, or set DATABASE_URL for PostgreSQL).`,
    );
  }

  const logger = createLogger(base, process.stderr);
  const scratch = new ScratchDirectory(join(base.dataDir, 'tmp'));
  await scratch.init();
  const opened: Array<{ close(): void }> = [];
  try {
    const fromStore = await openBlobStore(source, scratch, logger, false);
    opened.push(fromStore);
    await checkReadable(fromStore.blobs, describeStore(source));
    // The destination is proven writable (a small object written, read, listed and deleted) before anything.
    const toStore = await openBlobStore(destination, scratch, logger, !options.dryRun);
    opened.push(toStore);
    if (options.dryRun) await checkReadable(toStore.blobs, describeStore(destination));

    const database = await openDatabase({ databaseUrl: base.databaseUrl, dataDir: base.dataDir, poolSize: 2 });
    try {
      let lastProgress = Date.now();
      const report = await migrateStorage(new RecordRepository(database.db), fromStore.blobs, toStore.blobs, scratch, {
        dryRun: options.dryRun,
        concurrency: options.concurrency,
        sizeOnly: options.sizeOnly,
        readBack: to === 'local',
        listLimit: 1000,
        onProgress: (sofar) => {
          if (Date.now() - lastProgress < PROGRESS_EVERY_MS) return;
          lastProgress = Date.now();
          console.error(
            `… ${sofar.rowsScanned} rows: ${sofar.copied.count} ${sofar.dryRun ? 'to copy' : 'copied'} ` +
              `(${formatBytes(sofar.copied.bytes)}), ${sofar.alreadyThere.count} already there, ` +
              `${sofar.missingAtSource.count} missing at the source, ${sofar.failed.count} failed`,
          );
        },
      });
      const stores = { from, to, source: describeStore(source), destination: describeStore(destination) };
      console.log(options.json ? JSON.stringify({ ...stores, ...report }, null, 2) : describe(report, stores));
      if (!report.complete) return 2;
      return report.failed.count > 0 || report.missingAtSource.count > 0 ? 1 : 0;
    } finally {
      await database.close();
    }
  } finally {
    for (const store of opened) store.close();
  }
}

interface Options {
  readonly from: Driver;
  readonly to: Driver;
  readonly dryRun: boolean;
  readonly concurrency: number;
  readonly sizeOnly: boolean;
  readonly json: boolean;
}

function parseOptions(): Options | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        from: { type: 'string' },
        to: { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        concurrency: { type: 'string' },
        'size-only': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  if (values.help) return 'help';
  const from = driverOf('--from', values.from);
  const to = driverOf('--to', values.to);
  if (from === to) throw new UsageError(`--from and --to must name different stores (both are ${from})`);
  const concurrency = values.concurrency ?? String(DEFAULT_CONCURRENCY);
  if (!/^\d+$/.test(concurrency) || Number(concurrency) < 1 || Number(concurrency) > MAX_CONCURRENCY) {
    throw new UsageError(
      `--concurrency takes a number from 1 to ${MAX_CONCURRENCY} (got ${JSON.stringify(concurrency)})`,
    );
  }
  return {
    from,
    to,
    dryRun: values['dry-run'],
    concurrency: Number(concurrency),
    sizeOnly: values['size-only'],
    json: values.json,
  };
}

function driverOf(flag: string, value: string | undefined): Driver {
  if (value === undefined) throw new UsageError(`${flag} is required: local or s3`);
  const driver = DRIVERS.find((name) => name === value);
  if (driver === undefined) throw new UsageError(`${flag} takes local or s3 (got ${JSON.stringify(value)})`);
  return driver;
}

/** Lists the store's first few names, so that a wrong bucket or key stops the run before any copy. */
async function checkReadable(blobs: BlobStore, what: string): Promise<void> {
  const names = blobs.list('')[Symbol.asyncIterator]();
  try {
    await names.next();
  } catch (error) {
    throw new Error(`Cannot read ${what}: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  } finally {
    await names.return?.();
  }
}

function describeStore(config: Config): string {
  const storage = config.storage;
  if (storage.driver === 'local') return `local (${join(config.dataDir, 'records')})`;
  return `s3 (bucket ${storage.bucket}, prefix ${storage.prefix === '' ? '(none)' : storage.prefix}, ${storage.endpoint ?? 'AWS'})`;
}

function describe(report: MigrationReport, stores: { from: Driver; to: Driver; source: string; destination: string }) {
  const lines = [
    `${report.dryRun ? 'Dry run, nothing written: ' : ''}${stores.source} → ${stores.destination}`,
    `Rows scanned: ${report.rowsScanned}`,
    `${report.dryRun ? 'To copy' : 'Copied and verified'}: ${report.copied.count} (${formatBytes(report.copied.bytes)})`,
    `Already there: ${report.alreadyThere.count}`,
  ];
  if (!report.dryRun) {
    const inPlace = report.copied.count + report.alreadyThere.count;
    const bySize = inPlace - report.checksumVerified;
    lines.push(
      `Compared by MD5: ${report.checksumVerified} of ${inPlace}${bySize > 0 ? ` (${bySize} by size alone)` : ''}`,
    );
  }
  if (report.onlyAtDestination.count > 0) {
    lines.push(`At the destination but not at the source (left alone): ${report.onlyAtDestination.count}`);
    lines.push(...report.onlyAtDestination.sample.map((id) => `  ${id}`));
  }
  lines.push(`Missing at the source: ${report.missingAtSource.count}`);
  lines.push(...report.missingAtSource.sample.map((id) => `  ${id}`));
  lines.push(`Failed: ${report.failed.count}`);
  lines.push(...report.failed.sample.map((failure) => `  ${failure.recordId}: ${failure.error}`));
  if (!report.complete) lines.push(`Stopped early: ${report.stoppedBecause ?? 'unknown reason'}`);

  lines.push('');
  if (report.dryRun) {
    lines.push(`Next: run it without --dry-run to copy.`);
  } else if (report.complete && report.failed.count === 0) {
    lines.push(
      `Every record's audio${report.missingAtSource.count > 0 ? ' that exists' : ''} is in ${stores.to}. Next: if ` +
        `the service kept serving meanwhile, stop it (every replica) and run this once more to copy what arrived ` +
        `since; then set STORAGE_DRIVER=${stores.to} and start it. The ${stores.from} files are left as they ` +
        `were: remove them by hand once the service runs well on ${stores.to}.`,
    );
  } else {
    lines.push('Next: run it again to retry what failed; what is in place is not copied again.');
  }
  if (report.missingAtSource.count > 0) {
    lines.push(
      'Rows missing at the source have no audio in either store: `check-storage` reports them and ' +
        '`check-storage --repair` deletes those rows.',
    );
  }
  return lines.join('\n');
}

function formatBytes(bytes: number): string {
  if (bytes < 1024 ** 2) return `${bytes} bytes`;
  const units = ['MiB', 'GiB', 'TiB'];
  let value = bytes / 1024 ** 2;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}, ${bytes} bytes`;
}

main().then(
  (status) => {
    process.exitCode = status;
  },
  (error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    console.error(error instanceof UsageError ? `${message}\n\n${USAGE}` : message);
    process.exitCode = 2;
  },
);
