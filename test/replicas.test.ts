import { randomUUID } from 'node:crypto';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, PREFIX, recordIdOf, type TestUser } from './kit/client.js';
import { createTestDatabase, recordIdsInDatabase, type TestDatabase } from './kit/database.js';
import { tempFiles } from './kit/disk.js';
import { sendRequest } from './kit/http.js';
import { findNginx, startNginx, type RunningNginx } from './kit/nginx.js';
import { killHard, sha256, spawnService, type ChildService } from './kit/process.js';
import { startS3rver, type RunningS3rver } from './kit/s3rver.js';
import { sleep } from './kit/stats.js';
import { makeWav } from './kit/wav.js';

/**
 * Three real service processes, each with a data folder of its own, on one PostgreSQL database and one
 * bucket (s3rver), behind a real nginx configured from the deployment's own template (test/kit/nginx.ts):
 * what docker-compose.scale.yml runs, on one machine. Uploads spread over the replicas, every record
 * downloads alike through any of them, the rate limits hold across them, and a replica killed with SIGKILL
 * in the middle of uploads loses no acknowledged record while the others keep serving.
 *
 * Uploads here stay under S3_MULTIPART_THRESHOLD_BYTES (one PutObject each): s3rver implements neither
 * ListMultipartUploads nor AbortMultipartUpload, so the incomplete multipart uploads a kill can leave, and
 * their removal by the storage check, are covered at the SDK boundary in test/unit/s3-blob-store.test.ts
 * and test/unit/s3-storage-check.test.ts.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const nginxBinary = findNginx();
const skipReason =
  process.env.TEST_DATABASE_URL === undefined
    ? 'TEST_DATABASE_URL is not set (replicas share one PostgreSQL database)'
    : nginxBinary === undefined
      ? 'nginx is not installed (apt-get install nginx; .ci/run installs it)'
      : undefined;
if (skipReason !== undefined) {
  // CI installs nginx and sets TEST_DATABASE_URL: there, a missing one is a broken setup, not a skip.
  if (process.env.CI !== undefined) throw new Error(`test/replicas.test.ts cannot run: ${skipReason}`);
  console.warn(`test/replicas.test.ts skipped: ${skipReason}`);
}

const S3_PREFIX = 'records/';
/** How undici reports a connection reset or closed by the other side. */
const CUT = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']);
const USER_CREATIONS = 5;
const AUTH_FAILURES = 4;

/** The settings every replica runs with: those of docker-compose.scale.yml that matter here. */
const replicaEnv = (s3: RunningS3rver): Record<string, string> => ({
  ...s3.env(S3_PREFIX),
  // nginx is the one proxy in front; it replaces X-Forwarded-For with the client's address.
  TRUST_PROXY: '1',
  MAX_CONNECTIONS_PER_ADDRESS: '0',
  RATE_LIMIT_WINDOW_SECONDS: '600',
  RATE_LIMIT_USER_CREATIONS: String(USER_CREATIONS),
  RATE_LIMIT_AUTH_FAILURES: String(AUTH_FAILURES),
  CONVERT_CONCURRENCY: '2',
  // LAME's slowest algorithm: a 30 s recording then converts for long enough to be killed in.
  MP3_COMPRESSION_LEVEL: '0',
  STORAGE_ORPHAN_AGE_SECONDS: '60',
});

interface Replica {
  readonly name: string;
  readonly dataDir: string;
  readonly port: number;
  service: ChildService;
  /** Its processes before a kill: what they logged still names the requests they served. */
  readonly earlierLives: ChildService[];
}

interface Acknowledged {
  readonly recordId: string;
  readonly recordUrl: string;
  /** SHA-256 of the audio as first downloaded through nginx; '' until then. */
  digest: string;
}

/** How an upload through nginx ended. */
type UploadOutcome =
  | { readonly kind: 'stored'; readonly requestId: string; readonly recordUrl: string }
  | { readonly kind: 'bad-gateway'; readonly requestId: string }
  | { readonly kind: 'cut'; readonly requestId: string; readonly error: string };

describe.skipIf(skipReason !== undefined)('three replicas behind nginx, one database, one bucket', () => {
  let database: TestDatabase;
  let databaseUrl: string;
  let s3: RunningS3rver;
  let nginx: RunningNginx;
  const replicas: Replica[] = [];
  let user: TestUser;
  const acknowledged = new Map<string, Acknowledged>();

  /**
   * Starts a replica and waits for its start-up storage check: its own, or, of several replicas starting
   * together, the word that another one runs it (they take turns under an advisory lock).
   */
  async function startReplica(
    replica: Pick<Replica, 'dataDir'> & { port?: number },
    checked = /storage check( finished|: another process of the service is running it)/,
  ): Promise<ChildService> {
    const service = await spawnService({
      dataDir: replica.dataDir,
      databaseUrl,
      env: replicaEnv(s3),
      ...(replica.port === undefined ? {} : { port: replica.port }),
    });
    await service.waitFor(checked);
    return service;
  }

  /**
   * The replicas whose logs name this request id (the service logs every request with it as it arrives).
   * A log line may reach the test a moment after the answer it belongs to: it is waited for a little.
   */
  async function servedBy(requestId: string): Promise<string[]> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const names = replicas
        .filter((replica) =>
          [...replica.earlierLives, replica.service].some((life) => life.output().includes(`"reqId":"${requestId}"`)),
        )
        .map((replica) => replica.name);
      if (names.length > 0 || Date.now() > deadline) return names;
      await sleep(50);
    }
  }

  /** An upload through nginx with a request id of the test's, so that the replica's log tells who served it. */
  async function uploadThroughNginx(wav: Buffer, requestId = randomUUID()): Promise<UploadOutcome> {
    const form = new FormData();
    form.append('file', new Blob([wav], { type: 'audio/wav' }), 'recording.wav');
    try {
      const response = await fetch(`${nginx.url}${PREFIX}/record/?user_id=${user.user_id}`, {
        method: 'POST',
        body: form,
        headers: { authorization: `Bearer ${user.access_token}`, 'x-request-id': requestId },
      });
      const text = await response.text();
      expect(response.headers.get('x-request-id')).toBe(requestId);
      if (response.status === 502) {
        // nginx's own answer for a replica that died under the request: problem+json, not an HTML page.
        expect(response.headers.get('content-type')).toBe('application/problem+json');
        expect(JSON.parse(text)).toMatchObject({ status: 502, title: 'Bad Gateway' });
        return { kind: 'bad-gateway', requestId };
      }
      expect(response.status, text).toBe(200);
      const recordUrl = (JSON.parse(text) as { record_url: string }).record_url;
      acknowledged.set(recordIdOf(recordUrl), { recordId: recordIdOf(recordUrl), recordUrl, digest: '' });
      return { kind: 'stored', requestId, recordUrl };
    } catch (error) {
      // The connection reset or closed under the request or its answer: what a client may see of a replica
      // killed while nginx streams its upload to it, and nothing else (a failed assertion is rethrown).
      const cause: unknown = error instanceof TypeError ? error.cause : undefined;
      const code = typeof cause === 'object' && cause !== null && 'code' in cause ? String(cause.code) : '';
      if (/fetch failed|terminated/.test(error instanceof Error ? error.message : '') && CUT.has(code)) {
        return { kind: 'cut', requestId, error: code };
      }
      throw error;
    }
  }

  /** A direct request to one replica, bypassing nginx. */
  const direct = (replica: Replica, path: string, headers: Record<string, string> = {}) =>
    sendRequest(`${replica.service.url}${path}`, { headers });

  const recordPath = (recordId: string) => `${PREFIX}/record?record_id=${recordId}&user_id=${user.user_id}`;

  beforeAll(async () => {
    database = await createTestDatabase('postgres');
    if (database.url === undefined) throw new Error('no PostgreSQL database');
    databaseUrl = database.url;
    s3 = await startS3rver();
    // Started together, as Compose starts them: their migrations meet under the advisory lock. Each is
    // listed as soon as it runs, so that afterAll stops it even if another one fails to start.
    await Promise.all(
      ['replica-a', 'replica-b', 'replica-c'].map(async (name) => {
        const dataDir = await mkdtemp(join(tmpdir(), `audio-${name}-`));
        const service = await startReplica({ dataDir });
        replicas.push({ name, dataDir, service, port: Number(new URL(service.url).port), earlierLives: [] });
      }),
    );
    replicas.sort((a, b) => a.name.localeCompare(b.name));
    nginx = await startNginx({
      binary: nginxBinary ?? 'nginx',
      servers: replicas.map((replica) => `127.0.0.1:${replica.port}`),
      // The replicas' own defaults, which the proxy's limits follow.
      env: {},
    });
    user = await createUser(nginx.url);
  });

  afterAll(async () => {
    await nginx?.stop();
    for (const replica of replicas) await killHard(replica.service);
    await s3?.stop();
    await database?.drop();
    for (const replica of replicas) await rm(replica.dataDir, { recursive: true, force: true });
  });

  it('runs nginx with the deployment’s directives', () => {
    for (const directive of [
      'least_conn;',
      'proxy_request_buffering off;',
      'proxy_buffering off;',
      'proxy_next_upstream error timeout;',
      'client_max_body_size 2148532224;',
      'proxy_read_timeout 1860s;',
      'proxy_set_header X-Forwarded-For $remote_addr;',
    ]) {
      expect(nginx.config).toContain(directive);
    }
    // POSTs are never sent to a second replica; every value was filled in.
    expect(nginx.config).not.toMatch(/^\s*proxy_next_upstream[^;]*non_idempotent/m);
    expect(nginx.config).not.toMatch(/\$\{NGINX_[A-Z_]+\}/);
  });

  it('spreads uploads over the replicas, and answers each with a record_url through nginx', async () => {
    const wavs = Array.from({ length: 12 }, (_, index) =>
      makeWav({ durationSeconds: 0.4 + (index % 4) * 0.2, sampleRate: index % 2 === 0 ? 44100 : 22050 }),
    );
    const outcomes: UploadOutcome[] = [];
    // Three one after the other, then nine at once.
    for (const wav of wavs.slice(0, 3)) outcomes.push(await uploadThroughNginx(wav));
    outcomes.push(...(await Promise.all(wavs.slice(3).map((wav) => uploadThroughNginx(wav)))));

    const servers = new Set<string>();
    for (const outcome of outcomes) {
      expect(outcome.kind).toBe('stored');
      if (outcome.kind !== 'stored') continue;
      // X-Forwarded-Host and -Proto: the link names nginx, which the client used, not the replica.
      expect(outcome.recordUrl.startsWith(`${nginx.url}${PREFIX}/record?`)).toBe(true);
      const by = await servedBy(outcome.requestId);
      expect(by).toHaveLength(1);
      servers.add(by[0] ?? '');
    }
    expect(servers.size).toBeGreaterThanOrEqual(2);
  });

  it('serves every record alike through nginx and from each replica: bytes, ETag and ranges', async () => {
    expect(acknowledged.size).toBe(12);
    for (const record of acknowledged.values()) {
      const viaNginx = await fetch(record.recordUrl);
      expect(viaNginx.status).toBe(200);
      const audio = Buffer.from(await viaNginx.arrayBuffer());
      record.digest = sha256(audio);
      const etag = viaNginx.headers.get('etag');
      expect(etag).toBeTruthy();

      const ranged = await fetch(record.recordUrl, { headers: { range: 'bytes=100-299' } });
      expect(ranged.status).toBe(206);
      expect(Buffer.from(await ranged.arrayBuffer())).toEqual(audio.subarray(100, 300));

      for (const replica of replicas) {
        const whole = await direct(replica, recordPath(record.recordId));
        expect(whole.status).toBe(200);
        expect(sha256(whole.body)).toBe(record.digest);
        expect(whole.headers.etag).toBe(etag);
        const part = await direct(replica, recordPath(record.recordId), { range: 'bytes=100-299' });
        expect(part.status).toBe(206);
        expect(part.headers['content-range']).toBe(`bytes 100-299/${audio.length}`);
        expect(part.body).toEqual(audio.subarray(100, 300));
        // A conditional request with the ETag another replica gave is answered 304.
        expect((await direct(replica, recordPath(record.recordId), { 'if-none-match': etag ?? '' })).status).toBe(304);
      }
    }
  });

  /** Requests through nginx from one loopback address of the test's own: a client of its own for the limits. */
  function clientAt(address: string) {
    const agent = new Agent({ localAddress: address });
    return {
      send: async (method: string, path: string, headers: Record<string, string> = {}) => {
        const requestId = randomUUID();
        const answer = await sendRequest(`${nginx.url}${path}`, {
          method,
          agent,
          headers: { 'x-request-id': requestId, ...headers },
        });
        return { status: answer.status, headers: answer.headers, by: await servedBy(requestId) };
      },
      close: () => agent.destroy(),
    };
  }

  it('holds the user-creation limit across replicas: the next one is refused whichever replica answers', async () => {
    const client = clientAt('127.0.0.3');
    try {
      const created: string[] = [];
      const refused: string[] = [];
      for (let attempt = 1; attempt <= USER_CREATIONS + 6; attempt++) {
        const answer = await client.send('POST', `${PREFIX}/users/?username=limited_${randomUUID().slice(0, 8)}`);
        expect(answer.by).toHaveLength(1);
        if (attempt <= USER_CREATIONS) {
          expect(answer.status, `creation ${attempt} of ${USER_CREATIONS} allowed`).toBe(200);
          created.push(answer.by[0] ?? '');
        } else {
          expect(answer.status, `creation ${attempt}, past the limit of ${USER_CREATIONS}`).toBe(429);
          expect(Number(answer.headers['retry-after'])).toBeGreaterThan(0);
          refused.push(answer.by[0] ?? '');
        }
      }
      // The allowed ones went to more than one replica (so no replica saw the limit's count alone), and so
      // did the refused ones: the count is the service's, not a replica's.
      expect(new Set(created).size).toBeGreaterThanOrEqual(2);
      expect(new Set(refused).size).toBeGreaterThanOrEqual(2);
    } finally {
      client.close();
    }
    // Counted per client, by the address nginx puts in X-Forwarded-For: another client is not limited.
    const other = clientAt('127.0.0.4');
    try {
      expect((await other.send('POST', `${PREFIX}/users/?username=other_${randomUUID().slice(0, 8)}`)).status).toBe(
        200,
      );
    } finally {
      other.close();
    }
  });

  it('holds the failed-authentication limit across replicas', async () => {
    const client = clientAt('127.0.0.5');
    try {
      const path = `${PREFIX}/records?user_id=${user.user_id}`;
      const wrong = { authorization: `Bearer ${randomUUID()}` };
      const failedAt: string[] = [];
      for (let attempt = 1; attempt <= AUTH_FAILURES; attempt++) {
        const answer = await client.send('GET', path, wrong);
        expect(answer.status, `failure ${attempt} of ${AUTH_FAILURES}`).toBe(401);
        failedAt.push(answer.by[0] ?? '');
      }
      expect(new Set(failedAt).size).toBeGreaterThanOrEqual(2);
      // Each failure is counted before its 401 goes out: the very next request is refused, on any replica.
      const right = { authorization: `Bearer ${user.access_token}` };
      const limitedAt: string[] = [];
      for (let attempt = 0; attempt < 4; attempt++) {
        // Even the right token, from this client, for this account, until the window ends.
        const answer = await client.send('GET', path, right);
        expect(answer.status).toBe(429);
        limitedAt.push(answer.by[0] ?? '');
      }
      expect(new Set(limitedAt).size).toBeGreaterThanOrEqual(2);
    } finally {
      client.close();
    }
  });

  it('loses no acknowledged upload when a replica is killed mid-upload; the others keep serving', async () => {
    const victim = replicas[1];
    const survivors = replicas.filter((replica) => replica !== victim);
    if (victim === undefined) throw new Error('no replica to kill');
    const objectsWithoutRow = async () => {
      const rows = new Set(await recordIdsInDatabase(databaseUrl));
      return (await s3.keys(S3_PREFIX)).filter((key) => !rows.has(recordIdOfKey(key)));
    };

    // Each replica is caught at both bad moments at once: one upload stored in the bucket and waiting to
    // insert its row (held up by a lock the test takes on the table), and one in the middle of its body and
    // conversion. least_conn deals them out one per replica, since each new request finds the others busy.
    const inserts = await holdInserts(databaseUrl);
    let uploads: Array<Promise<UploadOutcome>> = [];
    try {
      const short = makeWav({ durationSeconds: 1 });
      uploads = [short, short, short].map((wav) => uploadThroughNginx(wav));
      await expect.poll(async () => (await objectsWithoutRow()).length, { timeout: 30_000 }).toBe(3);
      const long = makeWav({ durationSeconds: 30, sampleRate: 44100, channels: 2 });
      const longIds = [randomUUID(), randomUUID(), randomUUID()];
      uploads.push(...longIds.map((requestId) => uploadThroughNginx(long, requestId)));
      // Every long upload has reached a replica: one still on its way to nginx at the kill would be passed
      // to a survivor (the victim refuses its connection), and the count per replica below would not hold.
      const reachedAReplica = (requestId: string) =>
        replicas.some((replica) => replica.service.output().includes(`"reqId":"${requestId}"`));
      await expect.poll(() => longIds.every(reachedAReplica), { timeout: 30_000 }).toBe(true);
      // The victim's encoder is writing its temp file: the long upload's body is still coming in.
      await expect.poll(async () => (await tempFiles(victim.dataDir)).length, { timeout: 30_000 }).toBeGreaterThan(0);
      await killHard(victim.service);
      victim.earlierLives.push(victim.service);
    } finally {
      await inserts.release();
    }
    const outcomes = await Promise.all(uploads);
    const served = new Map<string, string[]>();
    for (const outcome of outcomes) served.set(outcome.requestId, await servedBy(outcome.requestId));

    // The victim's two uploads failed, cleanly: nginx's 502 problem, or the connection cut while the body
    // was still being sent. The survivors' four were stored, including those that waited behind the lock.
    for (const replica of replicas) {
      const own = outcomes.filter((outcome) => served.get(outcome.requestId)?.includes(replica.name));
      expect(own.length, `${replica.name} got one upload of each kind`).toBe(2);
      const expected = replica === victim ? ['bad-gateway', 'cut'] : ['stored'];
      for (const outcome of own) expect(expected, JSON.stringify(outcome)).toContain(outcome.kind);
    }
    for (const outcome of outcomes) expect(served.get(outcome.requestId)).toHaveLength(1);
    const cut = outcomes.filter((outcome) => outcome.kind !== 'stored');
    console.info(`the killed replica's uploads ended as: ${cut.map((outcome) => JSON.stringify(outcome)).join(', ')}`);

    // The others keep serving: new uploads through nginx succeed, on the survivors only.
    for (let round = 0; round < 4; round++) {
      const outcome = await uploadThroughNginx(makeWav({ durationSeconds: 0.5 }));
      expect(outcome.kind).toBe('stored');
      expect(survivors.map((replica) => replica.name)).toContain((await servedBy(outcome.requestId))[0]);
    }

    // Every acknowledged record, from before the kill and after, downloads through nginx as it did.
    for (const record of acknowledged.values()) {
      const response = await fetch(record.recordUrl);
      expect(response.status, `acknowledged record ${record.recordId}`).toBe(200);
      const digest = sha256(Buffer.from(await response.arrayBuffer()));
      if (record.digest === '') record.digest = digest;
      else expect(digest).toBe(record.digest);
    }

    // What the kill left: the long upload's temp file, and the short one's object, stored without a row.
    expect((await tempFiles(victim.dataDir)).length).toBeGreaterThan(0);
    expect(await objectsWithoutRow()).toHaveLength(1);
    // Time passes (the orphan age requires it), then the victim starts again on its own data folder.
    for (const key of await s3.keys(S3_PREFIX)) await s3.backdate(key, 120);
    victim.service = await startReplica({ dataDir: victim.dataDir, port: victim.port }, /storage check finished/);

    // Its scratch folder is emptied at start, and its storage check removes the object without a row.
    expect(await tempFiles(victim.dataDir)).toEqual([]);
    expect(victim.service.output()).toMatch(/removed temp files left by an earlier run/);
    expect(victim.service.output()).toContain('"removedOrphanFiles":1');
    expect(await objectsWithoutRow()).toEqual([]);
    const keys = (await s3.keys(S3_PREFIX)).map(recordIdOfKey);
    expect(keys.sort()).toEqual([...(await recordIdsInDatabase(databaseUrl))].sort());
    expect(keys).toEqual(expect.arrayContaining([...acknowledged.keys()]));

    // And it serves again, the records the others stored included.
    for (const record of acknowledged.values()) {
      const whole = await direct(victim, recordPath(record.recordId));
      expect(whole.status).toBe(200);
      expect(sha256(whole.body)).toBe(record.digest);
    }
  }, 180_000);
});

/**
 * Holds `LOCK TABLE records IN SHARE MODE` in a transaction of its own until released: reads go on, and
 * every insert of a record waits, after its audio is already in the bucket.
 */
async function holdInserts(databaseUrl: string): Promise<{ release(): Promise<void> }> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  let release = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  let locked = () => {};
  const lockTaken = new Promise<void>((resolve) => (locked = resolve));
  const transaction = sql.begin(async (tx) => {
    await tx`lock table records in share mode`;
    locked();
    await released;
  });
  await Promise.race([lockTaken, transaction]);
  return {
    release: async () => {
      release();
      await transaction;
      await sql.end();
    },
  };
}

/** The record id in an object key (`records/b8/b88b0965-….mp3`). */
function recordIdOfKey(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1).replace(/\.[a-z0-9]+$/, '');
}

describe('docker-compose.scale.yml', () => {
  it('passes the replicas every setting docker-compose.yml passes the API, and publishes no API port', async () => {
    const single = await readFile(join(ROOT, 'docker-compose.yml'), 'utf8');
    const scaled = await readFile(join(ROOT, 'docker-compose.scale.yml'), 'utf8');
    const settings = (text: string) => {
      const api = /\n {2}api:\n([\s\S]*?)(?=\n {2}\S|\nvolumes:)/.exec(text)?.[1] ?? '';
      const environment = /\n {4}environment:\n((?: {6}.*\n|\s*#.*\n)*)/.exec(`\n${api}\n`)?.[1] ?? '';
      return [...environment.matchAll(/^ {6}([A-Z0-9_]+):/gm)].map((match) => match[1]);
    };
    expect(settings(single).length).toBeGreaterThan(30);
    expect(settings(scaled)).toEqual(expect.arrayContaining(settings(single)));
    const scaledApi = /\n {2}api:\n([\s\S]*?)(?=\n {2}\S)/.exec(scaled)?.[1] ?? '';
    expect(scaledApi).not.toMatch(/\n {4}ports:/);
  });
});
