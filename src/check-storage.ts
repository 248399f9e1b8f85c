import { parseArgs } from 'node:util';
import { loadConfigFromProcess, MIN_ORPHAN_AGE_SECONDS } from './config.js';
import { createServices } from './container.js';
import { checkStorage, isConsistent, type StorageReport } from './services/storage-check.js';

const USAGE = `Usage: node dist/check-storage.js [--repair] [--min-age SECONDS] [--json]   (or npm run check-storage -- …)

Compares the records table with the stored audio: the files under DATA_DIR/records, or the objects under
S3_PREFIX in S3_BUCKET with STORAGE_DRIVER=s3 (same environment as the service).
  --repair         delete orphan files and the rows whose file is missing (and, in an object store,
                   abort uploads left unfinished for more than a day)
  --min-age N      files younger than N seconds are never orphans (default STORAGE_ORPHAN_AGE_SECONDS,
                   at least ${MIN_ORPHAN_AGE_SECONDS}: a younger file may be an upload about to insert its row)
  --json           print the report as JSON
Exit status: 0 consistent (or repaired), 1 problems found and not repaired, 2 the check failed.
With the embedded PGlite database (no DATABASE_URL), stop the service first: PGlite allows one process.`;

/** `node dist/check-storage.js`: reports, and with --repair fixes, rows without files and files without rows. */
async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      repair: { type: 'boolean', default: false },
      'min-age': { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const config = loadConfigFromProcess();
  const minAge = values['min-age'];
  if (minAge !== undefined && (!/^\d+$/.test(minAge) || Number(minAge) < MIN_ORPHAN_AGE_SECONDS)) {
    throw new Error(`--min-age takes a number of seconds, at least ${MIN_ORPHAN_AGE_SECONDS}`);
  }
  const orphanMinAgeMs = minAge === undefined ? config.storageCheck.orphanMinAgeMs : Number(minAge) * 1000;

  // A report changes nothing, the schema included; the service migrates at its start.
  const services = await createServices(config, { migrate: false, poolSize: 2, probeStorage: values.repair });
  try {
    const report = await checkStorage(services.records, services.blobs, {
      removeOrphanFiles: values.repair,
      removeRowsWithoutFile: values.repair,
      orphanMinAgeMs,
      listLimit: 1000,
    });
    console.log(values.json ? JSON.stringify(report, null, 2) : describe(report, values.repair));
    return isConsistent(report) || values.repair ? 0 : 1;
  } finally {
    await services.close();
  }
}

function describe(report: StorageReport, repaired: boolean): string {
  const lines = [
    `Scanned ${report.rowsScanned} rows and ${report.filesScanned} files.`,
    `Rows without a file: ${report.rowsWithoutFile.count}${repaired ? ` (${report.removedRows} rows deleted)` : ''}`,
    ...report.rowsWithoutFile.sample.map((id) => `  ${id}`),
    `Files without a row: ${report.orphanFiles.count}${repaired ? ` (${report.removedFiles} files deleted)` : ''}`,
    ...report.orphanFiles.sample.map((id) => `  ${id}`),
  ];
  if (report.staleUploads !== null && report.staleUploads > 0) {
    lines.push(
      `Unfinished uploads older than a day: ${report.staleUploads}${repaired ? ` (${report.abortedUploads} aborted)` : ''}`,
    );
  }
  if (report.recentUnreferencedFiles > 0) {
    lines.push(`Files without a row yet, too recent to judge: ${report.recentUnreferencedFiles}`);
  }
  if (report.strayEntries.count > 0) {
    lines.push(`Unexpected names under records/ (left alone): ${report.strayEntries.count}`);
    lines.push(...report.strayEntries.sample.map((name) => `  ${name}`));
  }
  return lines.join('\n');
}

main().then(
  (status) => {
    process.exitCode = status;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 2;
  },
);
