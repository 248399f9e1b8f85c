import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, openUpload, recordIdOf, upload, PREFIX, type TestUser } from './kit/client.js';
import { createTestDatabase, databaseKinds, recordIdsInDatabase, type TestDatabase } from './kit/database.js';
import { ffmpegDescendants, killHard, sha256, spawnService, type ChildService } from './kit/process.js';
import { sleep } from './kit/stats.js';
import { ageStored, recordKeyOf, removeObjects, storageEnv, storedFiles } from './kit/storage.js';
import { makeWav, wavDurationSeconds } from './kit/wav.js';

/**
 * What a request cut by the kill looks like to fetch: the connection failed or the body broke off. Only
 * that is swallowed; anything else (a failed assertion, a wrong status) is a real failure.
 */
function cutByTheKill(error: unknown): undefined {
  if (error instanceof TypeError && /fetch failed|terminated/.test(error.message)) return undefined;
  throw error;
}

/**
 * kill -9 of the real process at the worst moments, then a restart on the same data directory and
 * database: nothing half-made survives, and everything acknowledged before the kill is intact.
 */
describe.each(databaseKinds)('crash and restart (%s)', (kind) => {
  let database: TestDatabase;
  let dataDir: string;
  let service: ChildService | undefined;
  let user: TestUser;
  /** record id → SHA-256 of its MP3 ('' if the kill came before it was downloaded), for every 200. */
  const acknowledged = new Map<string, string>();
  /** record id → the length of the WAV it was made of, in seconds. */
  const uploadedSeconds = new Map<string, number>();

  const env = {
    // The smallest orphan age allowed; start() ages every stored file past it, as time would.
    STORAGE_ORPHAN_AGE_SECONDS: '60',
    CONVERT_CONCURRENCY: '2',
    // LAME's slowest algorithm, so that a conversion outlasts its upload long enough to be killed in.
    MP3_COMPRESSION_LEVEL: '0',
  };

  async function start(): Promise<ChildService> {
    // The same storage at every start (on S3, the data directory's prefix).
    const storage = storageEnv(dataDir);
    // Nothing else writes to this data directory: a file without a row left by the kill is an orphan, and
    // once it is older than the minimum age the start-up check must remove it.
    for (const recordId of (await storedFiles(dataDir)).records) {
      await ageStored(dataDir, recordKeyOf(recordId), 120);
    }
    const started = await spawnService({ dataDir, databaseUrl: database.url, env: { ...storage, ...env } });
    await started.waitFor(/storage check finished/);
    service = started;
    return started;
  }

  /**
   * Uploads and downloads `wav`; answers the record id once the upload is acknowledged (200 with its URL),
   * or undefined when the kill cut the upload before that.
   */
  async function uploadAcknowledged(running: ChildService, wav: Buffer): Promise<string | undefined> {
    const response = await upload(running.url, user, wav).catch(cutByTheKill);
    if (response === undefined) return undefined;
    expect(response.status).toBe(200);
    const body = await response.text().catch(cutByTheKill);
    if (body === undefined) return undefined;
    const recordId = recordIdOf((JSON.parse(body) as { record_url: string }).record_url);
    // Acknowledged from here on, even if the kill comes before the download below.
    acknowledged.set(recordId, '');
    uploadedSeconds.set(recordId, wavDurationSeconds(wav));
    const mp3 = await fetch(`${running.url}${PREFIX}/record?record_id=${recordId}&user_id=${user.user_id}`).catch(
      cutByTheKill,
    );
    if (mp3 === undefined) return recordId;
    expect(mp3.status).toBe(200);
    const bytes = await mp3.arrayBuffer().catch(cutByTheKill);
    if (bytes !== undefined) acknowledged.set(recordId, sha256(Buffer.from(bytes)));
    return recordId;
  }

  /** The invariants after a restart: no temp files, rows and files match, acknowledged records intact. */
  async function expectConsistent(running: ChildService): Promise<void> {
    const disk = await storedFiles(dataDir);
    expect(disk.temp).toEqual([]);
    // Every file has its row: the service knows each one as a record of this user.
    for (const recordId of disk.records) {
      const metadata = await fetch(`${running.url}${PREFIX}/record?record_id=${recordId}&user_id=${user.user_id}`, {
        headers: { accept: 'application/json' },
      });
      expect(metadata.status, `file ${recordId} has no row`).toBe(200);
    }
    // Every acknowledged record downloads, byte for byte as before, and is as long as what was uploaded.
    for (const [recordId, digest] of acknowledged) {
      const url = `${running.url}${PREFIX}/record?record_id=${recordId}&user_id=${user.user_id}`;
      const mp3 = await fetch(url);
      expect(mp3.status, `acknowledged record ${recordId} lost`).toBe(200);
      const bytes = Buffer.from(await mp3.arrayBuffer());
      if (digest === '') acknowledged.set(recordId, sha256(bytes));
      else expect(sha256(bytes)).toBe(digest);
      const metadata = (await (await fetch(url, { headers: { accept: 'application/json' } })).json()) as {
        duration_seconds: number;
        size_bytes: number;
      };
      expect(metadata.size_bytes).toBe(bytes.length);
      expect(metadata.duration_seconds).toBeCloseTo(uploadedSeconds.get(recordId) ?? -1, 2);
    }
    expect(disk.records).toEqual(expect.arrayContaining([...acknowledged.keys()]));
    if (database.url !== undefined) {
      // Rows and files are the same set, read straight from the database.
      expect(await recordIdsInDatabase(database.url)).toEqual(disk.records);
    }
  }

  beforeAll(async () => {
    database = await createTestDatabase(kind);
    dataDir = await mkdtemp(join(tmpdir(), 'audio-crash-'));
    const running = await start();
    user = await createUser(running.url);
    expect(await uploadAcknowledged(running, makeWav({ durationSeconds: 0.5 }))).toBeDefined();
    expect(
      await uploadAcknowledged(running, makeWav({ durationSeconds: 0.5, sampleRate: 22050, channels: 1 })),
    ).toBeDefined();
  });
  afterAll(async () => {
    if (service !== undefined) await killHard(service);
    await database.drop();
    await removeObjects(dataDir);
    await rm(dataDir, { recursive: true, force: true });
  });

  it('kill -9 in the middle of an upload', async () => {
    const running = service ?? (await start());
    const wav = makeWav({ durationSeconds: 4 });
    const request = await openUpload(running.url, user);
    await request.write(wav.subarray(0, wav.length / 2));
    // The server is converting what it got: a temp file exists and the body is still incomplete.
    await expect.poll(async () => (await storedFiles(dataDir)).temp, { timeout: 15_000 }).not.toEqual([]);
    await killHard(running);
    await expect(request.response).rejects.toThrow();
    request.abort();

    await expectConsistent(await start());
  });

  it('kill -9 in the middle of a conversion', async () => {
    const running = service ?? (await start());
    // Long enough, and normalised (loudnorm works at 192 kHz: several times the encoder's plain work), that the
    // encoder is still busy when the last byte has been sent, even when a loaded machine sends slowly.
    const wav = makeWav({ durationSeconds: 120, sampleRate: 48000 });
    const request = await openUpload(running.url, user, { sendHead: false, fields: { normalize: 'true' } });
    const sent = request.end(request.form.wrap(wav));
    await expect
      .poll(() => ffmpegDescendants(running.pid, { conversionsOnly: true }), { timeout: 15_000 })
      .not.toEqual([]);
    await sent;
    expect(await ffmpegDescendants(running.pid, { conversionsOnly: true })).not.toEqual([]);
    expect(request.answer).toBeUndefined();
    await killHard(running);
    request.abort();

    await expectConsistent(await start());
  });

  it('kill -9 at a random moment of a burst of uploads', async () => {
    const running = service ?? (await start());
    const wavs = [
      makeWav({ durationSeconds: 0.4 }),
      makeWav({ durationSeconds: 0.6, sampleRate: 8000, channels: 1, bitsPerSample: 8 }),
      makeWav({ durationSeconds: 0.5, encoding: 'float', sampleRate: 48000 }),
    ];
    let stop = false;
    const acknowledgedInBurst: string[] = [];
    const clients = Promise.all(
      Array.from({ length: 4 }, async (_, client) => {
        for (let round = 0; !stop; round++) {
          const recordId = await uploadAcknowledged(running, wavs[(client + round) % wavs.length] ?? wavs[0]!);
          if (recordId === undefined) return; // the server died under this request: not acknowledged
          acknowledgedInBurst.push(recordId);
        }
      }),
    );
    // A failure (not a cut request) surfaces when the clients are awaited below, not as an unhandled rejection.
    clients.catch(() => {});
    // Some uploads of the burst are through, then the kill comes at a random moment of it.
    await expect.poll(() => acknowledgedInBurst.length, { timeout: 30_000 }).toBeGreaterThan(0);
    await sleep(Math.random() * 1500);
    stop = true;
    await killHard(running);
    await clients;

    expect(acknowledgedInBurst.length).toBeGreaterThan(0);
    for (const recordId of acknowledgedInBurst) expect(acknowledged.has(recordId)).toBe(true);
    // …and every one of them survives the restart, as long as it was uploaded (checked in expectConsistent).
    await expectConsistent(await start());
  });
});
