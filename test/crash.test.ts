import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, openUpload, upload, PREFIX, type TestUser } from './kit/client.js';
import { createTestDatabase, databaseKinds, recordIdsInDatabase, type TestDatabase } from './kit/database.js';
import { filesOnDisk } from './kit/disk.js';
import { ffmpegChildren, killHard, sha256, spawnService, type ChildService } from './kit/process.js';
import { sleep } from './kit/stats.js';
import { makeWav } from './kit/wav.js';

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

  const env = {
    // Nothing else writes to this data directory, so any file without a row is an orphan at once.
    STORAGE_ORPHAN_AGE_SECONDS: '0',
    CONVERT_CONCURRENCY: '2',
    // LAME's slowest algorithm, so that a conversion outlasts its upload long enough to be killed in.
    MP3_COMPRESSION_LEVEL: '0',
  };

  async function start(): Promise<ChildService> {
    const started = await spawnService({ dataDir, databaseUrl: database.url, env });
    await started.waitFor(/storage check finished/);
    service = started;
    return started;
  }

  async function uploadAcknowledged(running: ChildService, wav: Buffer): Promise<void> {
    const response = await upload(running.url, user, wav);
    expect(response.status).toBe(200);
    const { record_url: url } = (await response.json()) as { record_url: string };
    const recordId = new URL(url).searchParams.get('record_id') ?? '';
    // Acknowledged from here on, even if the kill comes before the download below.
    acknowledged.set(recordId, '');
    const mp3 = await fetch(`${running.url}${PREFIX}/record?record_id=${recordId}&user_id=${user.user_id}`);
    expect(mp3.status).toBe(200);
    acknowledged.set(recordId, sha256(Buffer.from(await mp3.arrayBuffer())));
  }

  /** The invariants after a restart: no temp files, rows and files match, acknowledged records intact. */
  async function expectConsistent(running: ChildService): Promise<void> {
    const disk = await filesOnDisk(dataDir);
    expect(disk.temp).toEqual([]);
    // Every file has its row: the service knows each one as a record of this user.
    for (const recordId of disk.records) {
      const metadata = await fetch(`${running.url}${PREFIX}/record?record_id=${recordId}&user_id=${user.user_id}`, {
        headers: { accept: 'application/json' },
      });
      expect(metadata.status, `file ${recordId} has no row`).toBe(200);
    }
    // Every acknowledged record downloads, byte for byte as before.
    for (const [recordId, digest] of acknowledged) {
      const mp3 = await fetch(`${running.url}${PREFIX}/record?record_id=${recordId}&user_id=${user.user_id}`);
      expect(mp3.status, `acknowledged record ${recordId} lost`).toBe(200);
      const bytes = Buffer.from(await mp3.arrayBuffer());
      if (digest === '') acknowledged.set(recordId, sha256(bytes));
      else expect(sha256(bytes)).toBe(digest);
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
    await uploadAcknowledged(running, makeWav({ durationSeconds: 0.5 }));
    await uploadAcknowledged(running, makeWav({ durationSeconds: 0.5, sampleRate: 22050, channels: 1 }));
  });
  afterAll(async () => {
    if (service !== undefined) await killHard(service);
    await database.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('kill -9 in the middle of an upload', async () => {
    const running = service ?? (await start());
    const wav = makeWav({ durationSeconds: 4 });
    const request = await openUpload(running.url, user);
    await request.write(wav.subarray(0, wav.length / 2));
    // The server is converting what it got: a temp file exists and the body is still incomplete.
    await expect.poll(async () => (await filesOnDisk(dataDir)).temp, { timeout: 15_000 }).not.toEqual([]);
    await killHard(running);
    await expect(request.response).rejects.toThrow();
    request.abort();

    await expectConsistent(await start());
  });

  it('kill -9 in the middle of a conversion', async () => {
    const running = service ?? (await start());
    // Long enough that the encoder is still busy when the last byte has been sent.
    const wav = makeWav({ durationSeconds: 120, sampleRate: 48000 });
    const request = await openUpload(running.url, user, { sendHead: false });
    const sent = request.end(request.form.wrap(wav));
    await expect.poll(() => ffmpegChildren(running.pid), { timeout: 15_000 }).not.toEqual([]);
    await sent;
    expect(await ffmpegChildren(running.pid)).not.toEqual([]);
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
    const clients = Array.from({ length: 4 }, async (_, client) => {
      for (let round = 0; !stop; round++) {
        try {
          await uploadAcknowledged(running, wavs[(client + round) % wavs.length] ?? wavs[0]!);
        } catch {
          return; // the server died under this request: not acknowledged
        }
      }
    });
    await sleep(1500 + Math.random() * 1500);
    stop = true;
    await killHard(running);
    await Promise.all(clients);

    await expectConsistent(await start());
  });
});
