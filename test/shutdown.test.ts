import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createUser, openUpload, PREFIX } from './kit/client.js';
import { createTestDatabase, databaseKinds, type TestDatabase } from './kit/database.js';
import { tempFiles } from './kit/disk.js';
import { killHard, spawnService, type ChildService } from './kit/process.js';
import { removeObjects, storageEnv } from './kit/storage.js';
import { makeWav } from './kit/wav.js';

/**
 * SIGTERM while uploads are in flight: they finish and are stored, new connections are refused, a request
 * on a connection opened earlier gets a problem+json 503, and the process exits 0.
 */
describe.each(databaseKinds)('graceful shutdown (%s)', (kind) => {
  let database: TestDatabase;
  let dataDir: string;
  /** Every service a test started, killed afterwards whatever happened. */
  const started: ChildService[] = [];

  async function start(env: Record<string, string> = {}): Promise<ChildService> {
    const service = await spawnService({ dataDir, databaseUrl: database.url, env: { ...storageEnv(dataDir), ...env } });
    started.push(service);
    return service;
  }

  beforeAll(async () => {
    database = await createTestDatabase(kind);
    dataDir = await mkdtemp(join(tmpdir(), 'audio-shutdown-'));
  });
  afterEach(async () => {
    for (const service of started.splice(0)) await killHard(service);
  });
  afterAll(async () => {
    await database.drop();
    await removeObjects(dataDir);
    await rm(dataDir, { recursive: true, force: true });
  });

  const tempCount = async () => (await tempFiles(dataDir)).length;

  it('lets in-flight uploads finish, refuses new work and exits 0', async () => {
    const running = await start({ SHUTDOWN_GRACE_SECONDS: '30' });
    const user = await createUser(running.url);
    const port = Number(new URL(running.url).port);

    const wav = makeWav({ durationSeconds: 2 });
    const uploads = await Promise.all(Array.from({ length: 2 }, () => openUpload(running.url, user)));
    for (const upload of uploads) await upload.write(wav.subarray(0, wav.length / 3));
    await expect.poll(tempCount, { timeout: 15_000 }).toBe(2);

    // A client connected before the signal, that sends its request only afterwards.
    const early = connect(port, '127.0.0.1');
    await new Promise((resolve) => early.once('connect', resolve));
    let earlyAnswer = '';
    early.on('data', (chunk: Buffer) => (earlyAnswer += chunk.toString()));
    const earlyClosed = new Promise((resolve) => early.once('close', resolve));

    process.kill(running.pid, 'SIGTERM');
    await running.waitFor(/shutting down/);

    // New connections: refused, as the listening socket is closed at once.
    await expect
      .poll(() =>
        fetch(`${running.url}/health`).then(
          () => 'answered',
          () => 'refused',
        ),
      )
      .toBe('refused');
    // A request on an existing connection: 503 problem+json, and the connection is closed.
    early.write(`POST ${PREFIX}/users/?username=late HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`);
    await earlyClosed;
    expect(earlyAnswer).toMatch(/^HTTP\/1\.1 503 /);
    expect(earlyAnswer).toMatch(/content-type: application\/problem\+json/i);
    expect(earlyAnswer).toMatch(/retry-after: \d+/i);

    // The uploads in flight finish normally, after all that, and are stored.
    for (const upload of uploads) await upload.end(Buffer.concat([wav.subarray(wav.length / 3), upload.form.tail]));
    const answers = await Promise.all(uploads.map((upload) => upload.response));
    for (const answer of answers) expect(answer.status, answer.text).toBe(200);
    expect(await running.exited).toEqual({ code: 0, signal: null });
    expect(await tempFiles(dataDir)).toEqual([]);

    // Their records were committed before the database was closed: they download after a restart.
    const restarted = await start();
    for (const answer of answers) {
      const { record_url: url } = JSON.parse(answer.text) as { record_url: string };
      const download = await fetch(url.replace(/^http:\/\/127\.0\.0\.1:\d+/, restarted.url));
      expect(download.status).toBe(200);
      expect(download.headers.get('content-type')).toBe('audio/mpeg');
    }
    expect(await fetch(`${restarted.url}/health`).then((response) => response.status)).toBe(200);
  });

  it('cuts what is still running when the grace time is over, and exits 1', async () => {
    const running = await start({ SHUTDOWN_GRACE_SECONDS: '1' });
    const user = await createUser(running.url);
    const request = await openUpload(running.url, user);
    const wav = makeWav({ durationSeconds: 2 });
    await request.write(wav.subarray(0, wav.length / 2));
    await expect.poll(tempCount, { timeout: 15_000 }).toBe(1);
    const signalledAt = Date.now();
    process.kill(running.pid, 'SIGTERM');
    expect(await running.exited).toEqual({ code: 1, signal: null });
    expect(Date.now() - signalledAt).toBeLessThan(5000);
    await expect(request.response).rejects.toThrow();
    request.abort();
    // The start-up sweep removes the temp file of the upload that was cut.
    await start();
    expect(await tempFiles(dataDir)).toEqual([]);
  });
});
