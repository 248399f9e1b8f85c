import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createServices } from '../src/container.js';
import { checkStorage, isConsistent } from '../src/services/storage-check.js';
import { createUser, recordIdOf, upload } from './kit/client.js';
import { createTestDatabase, databaseKinds, type TestDatabase } from './kit/database.js';
import { runCheckStorage } from './kit/process.js';
import { startService } from './kit/service.js';
import {
  copyServiceData,
  isStored,
  readStored,
  recordKeyOf,
  removeObjects,
  removeStored,
  storageEnv,
  storedFiles,
  writeStored,
} from './kit/storage.js';
import { makeWav } from './kit/wav.js';

/** Plants a copy of a real MP3 (the record `sourceId`'s) under a record id that has no row, `ageSeconds` old. */
async function plantOrphan(dataDir: string, sourceId: string, ageSeconds: number): Promise<string> {
  const recordId = crypto.randomUUID();
  await writeStored(dataDir, recordKeyOf(recordId), await readStored(dataDir, recordKeyOf(sourceId)), ageSeconds);
  return recordId;
}

/** Whether the record's MP3 is stored. */
const hasAudio = (dataDir: string, recordId: string) => isStored(dataDir, recordKeyOf(recordId));

interface JsonReport {
  rowsScanned: number;
  filesScanned: number;
  rowsWithoutFile: { count: number; sample: string[] };
  orphanFiles: { count: number; sample: string[] };
  recentUnreferencedFiles: number;
  strayEntries: { count: number; sample: string[] };
  removedFiles: number;
  removedRows: number;
  complete: boolean;
}

describe.each(databaseKinds)('check-storage (%s)', (kind) => {
  /** Three records of one user, made once; each test works on a copy of its own. */
  let template: { database: TestDatabase; dataDir: string };
  const recordIds: string[] = [];
  let database: TestDatabase;
  let dataDir: string;

  beforeAll(async () => {
    template = { database: await createTestDatabase(kind), dataDir: await mkdtemp(join(tmpdir(), 'audio-check-')) };
    const service = await startService({ dataDir: template.dataDir, databaseUrl: template.database.url });
    try {
      const user = await createUser(service.url);
      for (let index = 0; index < 3; index++) {
        const response = await upload(service.url, user, makeWav({ durationSeconds: 0.3 }));
        expect(response.status).toBe(200);
        recordIds.push(recordIdOf(((await response.json()) as { record_url: string }).record_url));
      }
    } finally {
      await service.stop();
    }
  });
  beforeEach(async () => {
    // The service is stopped: PGlite's files and the template database are not in use.
    database = await createTestDatabase(kind, template.database);
    dataDir = await mkdtemp(join(tmpdir(), 'audio-check-'));
    await copyServiceData(template.dataDir, dataDir);
  });
  afterEach(async () => {
    await database.drop();
    await removeObjects(dataDir);
    await rm(dataDir, { recursive: true, force: true });
  });
  afterAll(async () => {
    await template.database.drop();
    await removeObjects(template.dataDir);
    await rm(template.dataDir, { recursive: true, force: true });
  });

  const cli = (args: string[]) =>
    runCheckStorage({ dataDir, databaseUrl: database.url, env: storageEnv(dataDir) }, args);
  const stray = (recordId: string) => `${recordId.slice(0, 2)}/notes.txt`;

  it('reports rows without files and old orphan files, and --repair fixes exactly those', async () => {
    const [kept = '', lost = ''] = recordIds;
    const oldOrphan = await plantOrphan(dataDir, kept, 3600);
    const recentOrphan = await plantOrphan(dataDir, kept, 0);
    await writeStored(dataDir, stray(kept), 'not a record');
    await removeStored(dataDir, recordKeyOf(lost));

    // The command itself, as an operator runs it: report only, exit status 1.
    const before = await cli(['--json']);
    expect(before.code, before.stderr).toBe(1);
    const report = JSON.parse(before.stdout) as JsonReport;
    expect(report).toMatchObject({
      complete: true,
      rowsScanned: 3,
      filesScanned: 5,
      rowsWithoutFile: { count: 1, sample: [lost] },
      orphanFiles: { count: 1, sample: [oldOrphan] },
      recentUnreferencedFiles: 1,
      strayEntries: { count: 1 },
      removedFiles: 0,
      removedRows: 0,
    });
    // Reporting changes nothing.
    expect(await hasAudio(dataDir, oldOrphan)).toBe(true);

    // Repair, in process (the same function the command runs).
    const services = await createServices(
      loadConfig({
        ...storageEnv(dataDir),
        DATA_DIR: dataDir,
        LOG_LEVEL: 'silent',
        ...(database.url === undefined ? {} : { DATABASE_URL: database.url }),
      }),
    );
    try {
      const repository = services.records;
      const storage = services.blobs;
      const repair = { removeOrphanFiles: true, removeRowsWithoutFile: true, orphanMinAgeMs: 600_000 };
      const repaired = await checkStorage(repository, storage, repair);
      expect(repaired).toMatchObject({ removedRows: 1, removedFiles: 1, recentUnreferencedFiles: 1 });
      expect(await hasAudio(dataDir, oldOrphan)).toBe(false);
      // A file too young to judge may belong to an upload still inserting its row: never touched.
      expect(await hasAudio(dataDir, recentOrphan)).toBe(true);
      expect(await isStored(dataDir, stray(kept))).toBe(true);
      expect(await repository.existingRecordIds([lost, kept])).toEqual(new Set([kept]));

      const after = await checkStorage(repository, storage, { ...repair, removeOrphanFiles: false });
      expect(after).toMatchObject({ rowsScanned: 2, rowsWithoutFile: { count: 0 }, orphanFiles: { count: 0 } });
      expect(isConsistent(after)).toBe(true);

      // With no minimum age the young orphan goes too.
      await checkStorage(repository, storage, { ...repair, orphanMinAgeMs: 0 });
      expect(await hasAudio(dataDir, recentOrphan)).toBe(false);
    } finally {
      await services.close();
    }
    await removeStored(dataDir, stray(kept));

    // The command's repair: exit status 0 and a readable summary.
    const another = await plantOrphan(dataDir, kept, 3600);
    const fixed = await cli(['--repair']);
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(fixed.stdout).toContain('Scanned 2 rows and 3 files.');
    expect(fixed.stdout).toContain(`Files without a row: 1 (1 files deleted)\n  ${another}`);
    expect(await hasAudio(dataDir, another)).toBe(false);
  });

  it('at start-up removes old orphan files in the background and logs rows without files', async () => {
    const remaining = (await storedFiles(dataDir)).records;
    const [source = ''] = remaining;
    const third = recordIds[2] ?? '';
    expect(remaining).toContain(third);
    const oldOrphan = await plantOrphan(dataDir, source, 3600);
    const recentOrphan = await plantOrphan(dataDir, source, 0);
    await removeStored(dataDir, recordKeyOf(third));

    const service = await startService({ dataDir, databaseUrl: database.url });
    try {
      await expect.poll(() => service.logs(), { timeout: 20_000 }).toContain('storage check finished');
      expect(await hasAudio(dataDir, oldOrphan)).toBe(false);
      expect(await hasAudio(dataDir, recentOrphan)).toBe(true);
      // The row stays (a person decides), but it is logged by id.
      expect(service.logs()).toMatch(new RegExp(`records whose MP3 file is missing.*${third}|${third}.*missing`));
      const finished = service
        .logs()
        .split('\n')
        .find((line) => line.includes('storage check finished'));
      expect(JSON.parse(finished ?? '{}')).toMatchObject({ removedOrphanFiles: 1, rowsWithoutFile: 1, complete: true });
    } finally {
      await service.stop();
    }
  });
});
