import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, openUpload, upload, PREFIX, type TestUser } from './kit/client.js';
import { recordIdsInDatabase } from './kit/database.js';
import { sha256 } from './kit/process.js';
import { startIsolatedService, type IsolatedService } from './kit/service.js';
import { sleep } from './kit/stats.js';
import { storedFiles } from './kit/storage.js';
import { makeWav } from './kit/wav.js';

/**
 * Stops the shared PostgreSQL for about 10 s while requests run. It disturbs every other test using that
 * server, so it only runs when asked: RUN_DB_OUTAGE_TEST=1 (and TEST_DATABASE_URL). PostgreSQL is always
 * started again, whatever happens.
 */
const enabled = process.env.RUN_DB_OUTAGE_TEST === '1' && process.env.TEST_DATABASE_URL !== undefined;
const OUTAGE_MS = 10_000;
// How long the service keeps a record looked up by its link (src/services/record-link-cache.ts), and a little.
const LINK_MEMORY_MS = 5_250;

function pgctl(action: 'stop' | 'start'): void {
  const version = readdirSync('/etc/postgresql')[0] ?? '';
  execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', action], { stdio: 'inherit' });
}

interface Observation {
  readonly what: string;
  /** When the request was sent (Date.now()). */
  readonly at: number;
  readonly status: number | 'error';
  readonly ms: number;
  readonly contentType: string | null;
}

describe.runIf(enabled)('PostgreSQL outage', () => {
  let service: IsolatedService;
  let user: TestUser;
  const acknowledged = new Map<string, string>();
  /** When the last acknowledged record's link was last answered from the database. */
  let lookedUpAt = 0;

  beforeAll(async () => {
    // Local storage whatever TEST_STORAGE says: CI runs this test alone, after the suite.
    service = await startIsolatedService('postgres', { STORAGE_DRIVER: 'local' });
    user = await createUser(service.url);
  });
  afterAll(async () => {
    await service?.cleanup();
  });

  async function observe(what: string, request: () => Promise<Response>): Promise<Observation> {
    const started = performance.now();
    const at = Date.now();
    try {
      const response = await request();
      await response.arrayBuffer();
      return {
        what,
        at,
        status: response.status,
        ms: performance.now() - started,
        contentType: response.headers.get('content-type'),
      };
    } catch {
      return { what, at, status: 'error', ms: performance.now() - started, contentType: null };
    }
  }

  async function uploadAcknowledged(): Promise<void> {
    const response = await upload(service.url, user, makeWav({ durationSeconds: 0.3 }));
    if (response.status !== 200) return;
    const { record_url: url } = (await response.json()) as { record_url: string };
    const mp3 = await fetch(url);
    expect(mp3.status).toBe(200);
    acknowledged.set(url, sha256(Buffer.from(await mp3.arrayBuffer())));
    lookedUpAt = Date.now();
  }

  it('answers 503 fast while PostgreSQL is down, recovers by itself and loses nothing', async () => {
    await uploadAcknowledged();

    // An upload that is authenticated before the outage and whose conversion ends during it.
    const wav = makeWav({ durationSeconds: 1 });
    const inFlight = await openUpload(service.url, user);
    await inFlight.write(wav.subarray(0, wav.length / 2));

    const during: Observation[] = [];
    let stopped = false;
    try {
      pgctl('stop');
      stopped = true;
      const outageEnds = Date.now() + OUTAGE_MS;
      await inFlight.end(Buffer.concat([wav.subarray(wav.length / 2), inFlight.form.tail]));
      const inFlightAnswer = await inFlight.response;
      expect(inFlightAnswer.status).toBe(503);

      // Steady traffic of every kind during the rest of the outage.
      while (Date.now() < outageEnds) {
        const rounds = await Promise.all([
          observe('ready', () => fetch(`${service.url}/ready`)),
          observe('create user', () =>
            fetch(`${service.url}${PREFIX}/users/?username=outage_${Date.now()}_${Math.random()}`, {
              method: 'POST',
            }),
          ),
          observe('upload', () => upload(service.url, user, makeWav({ durationSeconds: 0.2 }))),
          observe('download', () => fetch([...acknowledged.keys()].at(-1) ?? '')),
        ]);
        during.push(...rounds);
        await sleep(250);
      }
    } finally {
      if (stopped) pgctl('start');
    }

    expect(during.length).toBeGreaterThan(8);
    // A record looked up by its link in the last 5 s is answered from memory (README, "Several replicas"),
    // so it may still play for those seconds; after them its download is refused like everything else.
    const fromMemory = (observation: Observation) =>
      observation.what === 'download' && observation.status === 200 && observation.at < lookedUpAt + LINK_MEMORY_MS;
    expect(during.filter((o) => o.what === 'download' && o.at > lookedUpAt + LINK_MEMORY_MS).length).toBeGreaterThan(2);
    for (const observation of during.filter((o) => !fromMemory(o))) {
      expect(observation.status, observation.what).toBe(503);
      expect(observation.ms, observation.what).toBeLessThan(5000);
      expect(observation.contentType).toMatch(/^application\/problem\+json/);
    }
    // The upload converted while the database was down left no file behind.
    const disk = await storedFiles(service.dataDir);
    expect(disk.temp).toEqual([]);

    // Recovery without a restart.
    await expect
      .poll(() => fetch(`${service.url}/ready`).then((response) => response.status), { timeout: 30_000 })
      .toBe(200);
    await uploadAcknowledged();
    expect(acknowledged.size).toBe(2);
    for (const [url, digest] of acknowledged) {
      const mp3 = await fetch(url);
      expect(mp3.status).toBe(200);
      expect(sha256(Buffer.from(await mp3.arrayBuffer()))).toBe(digest);
    }
    const after = await storedFiles(service.dataDir);
    expect(await recordIdsInDatabase(service.database.url ?? '')).toEqual(after.records);
    console.log(
      `outage: ${during.length} requests, slowest ${Math.round(Math.max(...during.map((o) => o.ms)))} ms, ` +
        `all 503 problem+json`,
    );
  });
});
