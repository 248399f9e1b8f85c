import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { createServices } from '../src/container.js';
import { checkStorage } from '../src/services/storage-check.js';
import { recordKey } from '../src/storage/keys.js';
import { S3BlobStore } from '../src/storage/s3-blob-store.js';
import { PREFIX, createUser, parseContentDisposition, recordIdOf, upload, type TestUser } from './kit/client.js';
import { exists } from './kit/disk.js';
import { sendRequest } from './kit/http.js';
import { sha256 } from './kit/process.js';
import { startS3rver, type RunningS3rver } from './kit/s3rver.js';
import { startService, type RunningService } from './kit/service.js';
import { makeWav } from './kit/wav.js';

/**
 * The S3 driver against s3rver, a real S3 HTTP endpoint: the store itself, then the whole service on it
 * (PGlite), in both download modes, and a start-up that must refuse a bucket it cannot use.
 * s3rver implements neither ListMultipartUploads nor AbortMultipartUpload: those are covered at the SDK
 * boundary in test/unit/s3-blob-store.test.ts; here the check only shows that such a store is tolerated.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
let s3: RunningS3rver;

beforeAll(async () => {
  s3 = await startS3rver();
});
afterAll(async () => {
  await s3?.stop();
});

const silent = () =>
  new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
  });

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function uploadOk(service: RunningService, user: TestUser, seconds: number, title?: string): Promise<string> {
  const response = await upload(
    service.url,
    user,
    makeWav({ durationSeconds: seconds }),
    title === undefined ? {} : { title },
  );
  const text = await response.text();
  expect(response.status, text).toBe(200);
  return (JSON.parse(text) as { record_url: string }).record_url;
}

const objectKey = (prefix: string, recordId: string) => `${prefix}${recordKey(recordId, 'mp3')}`;

describe('S3BlobStore against s3rver', () => {
  const prefix = 'store/';
  let folder: string;
  let store: S3BlobStore;

  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), 's3-store-'));
    // Every file a multipart upload; two keys per listing page, so that listings take several.
    store = new S3BlobStore(s3.client, { bucket: s3.bucket, prefix, multipartThresholdBytes: 0, listPageSize: 2 });
  });
  afterAll(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it('puts a 9 MiB file in a multipart upload and streams it back whole and by ranges', async () => {
    const bytes = Buffer.alloc(9 * 1024 ** 2);
    for (let index = 0; index < bytes.length; index += 4) bytes.writeUInt32LE(index, index);
    const path = join(folder, 'large.mp3');
    await writeFile(path, bytes);
    const key = recordKey(randomUUID(), 'mp3');

    const info = await store.put(key, { path });
    expect(info.sizeBytes).toBe(bytes.length);
    expect(sha256(await s3.body(`${prefix}${key}`))).toBe(sha256(bytes));
    const opened = await store.open(key);
    expect(opened).toMatchObject({ sizeBytes: bytes.length, modifiedAt: info.modifiedAt });
    expect(sha256(await readAll(opened?.stream() ?? Readable.from([])))).toBe(sha256(bytes));
    // A reader that does not read holds a few buffers, never the object.
    const unread = opened?.stream() ?? Readable.from([]);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(unread.readableLength).toBeGreaterThan(0);
    expect(unread.readableLength).toBeLessThan(1024 ** 2);
    unread.destroy();
    const range = { start: 8 * 1024 ** 2 - 3, end: 8 * 1024 ** 2 + 4 };
    expect(
      (await readAll(opened?.stream(range) ?? Readable.from([]))).equals(bytes.subarray(range.start, range.end + 1)),
    ).toBe(true);
    await store.delete(key);
    expect(await store.open(key)).toBeUndefined();
    await store.delete(key); // missing is fine
  });

  it('puts a stream, and lists a prefix over several pages with the keys below the store prefix', async () => {
    const shard = 'ab';
    const keys = Array.from({ length: 5 }, () => recordKey(`${shard}${randomUUID().slice(2)}`, 'mp3')).sort();
    for (const key of keys) await store.put(key, Readable.from([Buffer.from(`audio of ${key}`)]));
    await s3.put(`${prefix}${shard}/notes.txt`, 'not a record');

    const listed = [];
    for await (const blob of store.list(`${shard}/`)) listed.push(blob);
    expect(listed.map((blob) => blob.key)).toEqual([...keys, `${shard}/notes.txt`].sort());
    expect(listed.every((blob) => Math.abs(Date.now() - blob.modifiedAt.getTime()) < 60_000)).toBe(true);
    expect((await store.stat(keys[0] ?? ''))?.sizeBytes).toBe(`audio of ${keys[0]}`.length);
  });

  it('tolerates a store that cannot list multipart uploads', async () => {
    expect(await store.incompleteUploads(0, { abort: true })).toBeUndefined();
  });
});

describe('the service on S3, downloads through the service', () => {
  const prefix = 'service/';
  let service: RunningService;
  let running = false;
  let user: TestUser;
  let recordUrl: string;
  let recordId: string;

  beforeAll(async () => {
    // The quota makes a long upload fail at its insert, after its object was stored.
    service = await startService({ env: { ...s3.env(prefix), MAX_BYTES_PER_USER: '60000' } });
    running = true;
    user = await createUser(service.url);
    recordUrl = await uploadOk(service, user, 1.5, 'Morning take');
    recordId = recordIdOf(recordUrl);
  });
  afterAll(async () => {
    if (running) await service?.stop();
    await rm(service?.dataDir ?? '', { recursive: true, force: true });
  });

  it('stores an upload as one object under the prefix and nothing on the local disk but scratch', async () => {
    expect(await s3.keys(prefix)).toEqual([objectKey(prefix, recordId)]);
    expect(await exists(join(service.dataDir, 'records'))).toBe(false);
    expect(await readdir(join(service.dataDir, 'tmp'))).toEqual([]);
    const download = await fetch(recordUrl);
    expect(download.status).toBe(200);
    const bytes = Buffer.from(await download.arrayBuffer());
    expect(bytes.equals(await s3.body(objectKey(prefix, recordId)))).toBe(true);
    // The start-up check ran over the bucket.
    await expect.poll(() => service.logs(), { timeout: 20_000 }).toContain('storage check finished');
    expect(service.logs()).toMatch(/"complete":true[^\n]*"msg":"storage check finished"/);
  });

  it('answers whole, ranged, unsatisfiable and conditional downloads as the local driver does', async () => {
    const object = await s3.body(objectKey(prefix, recordId));
    const size = object.length;
    const whole = await sendRequest(recordUrl);
    expect(whole.status).toBe(200);
    expect(whole.headers).toMatchObject({
      'content-type': 'audio/mpeg',
      'content-length': String(size),
      'accept-ranges': 'bytes',
      'cache-control': 'no-cache',
    });
    expect(parseContentDisposition(whole.headers['content-disposition'] ?? '')).toEqual({
      type: 'inline',
      filename: 'Morning take.mp3',
    });
    const etag = whole.headers.etag ?? '';
    const lastModified = whole.headers['last-modified'] ?? '';
    // Record id, size and the object's Last-Modified: what every replica reads alike.
    expect(etag).toBe(`"${recordId}-${size.toString(36)}-${new Date(lastModified).getTime().toString(36)}"`);

    const range = await sendRequest(recordUrl, { headers: { range: 'bytes=100-299' } });
    expect(range.status).toBe(206);
    expect(range.headers['content-range']).toBe(`bytes 100-299/${size}`);
    expect(range.body.equals(object.subarray(100, 300))).toBe(true);

    const suffix = await sendRequest(recordUrl, { headers: { range: 'bytes=-100' } });
    expect(suffix.status).toBe(206);
    expect(suffix.body.equals(object.subarray(size - 100))).toBe(true);

    const open = await sendRequest(recordUrl, { headers: { range: `bytes=${size - 10}-` } });
    expect(open.status).toBe(206);
    expect(open.body.equals(object.subarray(size - 10))).toBe(true);

    const unsatisfiable = await sendRequest(recordUrl, { headers: { range: `bytes=${size}-` } });
    expect(unsatisfiable.status).toBe(416);
    expect(unsatisfiable.headers['content-range']).toBe(`bytes */${size}`);
    expect(unsatisfiable.headers['content-type']).toMatch(/^application\/problem\+json/);

    expect((await sendRequest(recordUrl, { headers: { 'if-none-match': etag } })).status).toBe(304);
    const notModified = await sendRequest(recordUrl, { headers: { 'if-modified-since': lastModified } });
    expect(notModified.status).toBe(304);
    expect(notModified.body.length).toBe(0);
    const stale = await sendRequest(recordUrl, { headers: { range: 'bytes=0-9', 'if-range': '"another"' } });
    expect(stale.status).toBe(200);
    expect(stale.body.equals(object)).toBe(true);

    const head = await sendRequest(recordUrl, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(size));
    expect(head.body.length).toBe(0);

    // A rename stores a retagged object under the same key: a new validator.
    const renamed = await fetch(`${service.url}${PREFIX}/records/${recordId}?user_id=${user.user_id}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${user.access_token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'Evening take, renamed' }),
    });
    expect(renamed.status, await renamed.text()).toBe(200);
    const after = await sendRequest(recordUrl, { headers: { 'if-none-match': etag } });
    expect(after.status).toBe(200);
    expect(after.headers.etag).not.toBe(etag);
    expect(after.body.equals(await s3.body(objectKey(prefix, recordId)))).toBe(true);
  });

  it('deletes a record’s object after its row, and every object of a deleted account', async () => {
    const other = await createUser(service.url);
    const urls = [await uploadOk(service, other, 0.3), await uploadOk(service, other, 0.3)];
    const [first = '', second = ''] = urls.map(recordIdOf);
    expect(await s3.keys(prefix)).toEqual(
      expect.arrayContaining([objectKey(prefix, first), objectKey(prefix, second)]),
    );

    const deleted = await fetch(`${service.url}${PREFIX}/records/${first}?user_id=${other.user_id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${other.access_token}` },
    });
    expect(deleted.status).toBe(204);
    expect((await fetch(urls[0] ?? '')).status).toBe(404);
    expect(await s3.keys(prefix)).not.toContain(objectKey(prefix, first));
    expect(await s3.keys(prefix)).toContain(objectKey(prefix, second));

    const account = await fetch(`${service.url}${PREFIX}/users/${other.user_id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${other.access_token}` },
    });
    expect(account.status).toBe(204);
    expect(await s3.keys(prefix)).toEqual([objectKey(prefix, recordId)]);
  });

  it('leaves no object behind when the row cannot be inserted', async () => {
    const other = await createUser(service.url);
    const before = await s3.keys(prefix);
    // Admitted (the user stores nothing yet), converted and put, then over the quota at the insert.
    const response = await upload(service.url, other, makeWav({ durationSeconds: 8 }));
    expect(response.status, await response.text()).toBe(413);
    expect(await s3.keys(prefix)).toEqual(before);
  });

  it('checks the bucket against the rows: old orphans removed, young ones and strays kept', async () => {
    const lost = recordIdOf(await uploadOk(service, user, 0.3));
    await service.stop(); // PGlite has one owner: the check runs in this process now
    running = false;

    const source = await s3.body(objectKey(prefix, recordId));
    const oldOrphan = randomUUID();
    const youngOrphan = randomUUID();
    await s3.put(objectKey(prefix, oldOrphan), source);
    await s3.backdate(objectKey(prefix, oldOrphan), 3600);
    await s3.put(objectKey(prefix, youngOrphan), source);
    await s3.put(`${prefix}${recordId.slice(0, 2)}/notes.txt`, 'not a record');
    await s3.remove(objectKey(prefix, lost));

    const services = await createServices(service.config, { logStream: silent() });
    try {
      const options = { removeOrphanFiles: false, removeRowsWithoutFile: false, orphanMinAgeMs: 600_000 };
      const report = await checkStorage(services.records, services.blobs, options);
      expect(report).toMatchObject({
        complete: true,
        rowsScanned: 2,
        filesScanned: 4,
        rowsWithoutFile: { count: 1, sample: [lost] },
        orphanFiles: { count: 1, sample: [oldOrphan] },
        recentUnreferencedFiles: 1,
        strayEntries: { count: 1, sample: [`${recordId.slice(0, 2)}/notes.txt`] },
        // s3rver cannot list multipart uploads.
        staleUploads: null,
        abortedUploads: 0,
      });
      expect(await s3.keys(prefix)).toContain(objectKey(prefix, oldOrphan));

      const repaired = await checkStorage(services.records, services.blobs, {
        ...options,
        removeOrphanFiles: true,
        removeRowsWithoutFile: true,
      });
      expect(repaired).toMatchObject({ removedFiles: 1, removedRows: 1, recentUnreferencedFiles: 1 });
      expect(await s3.keys(prefix)).toEqual(
        [
          objectKey(prefix, recordId),
          objectKey(prefix, youngOrphan),
          `${prefix}${recordId.slice(0, 2)}/notes.txt`,
        ].sort(),
      );
      expect(await services.records.existingRecordIds([lost, recordId])).toEqual(new Set([recordId]));
    } finally {
      await services.close();
    }
  });
});

describe('the service on S3, downloads redirected to the store', () => {
  const prefix = 'redirect/';
  let service: RunningService;

  beforeAll(async () => {
    service = await startService({
      env: { ...s3.env(prefix), S3_DOWNLOAD: 'redirect', S3_PRESIGN_SECONDS: '120', STORAGE_CHECK_ON_START: 'false' },
    });
  });
  afterAll(async () => {
    await service?.stop();
    await rm(service?.dataDir ?? '', { recursive: true, force: true });
  });

  it('answers 302 to a presigned URL that serves the audio with its type and disposition', async () => {
    const user = await createUser(service.url);
    const recordUrl = await uploadOk(service, user, 0.3, 'Café au lait');
    const recordId = recordIdOf(recordUrl);
    const object = await s3.body(objectKey(prefix, recordId));

    const answer = await fetch(recordUrl, { redirect: 'manual' });
    expect(answer.status).toBe(302);
    expect(answer.headers.get('cache-control')).toBe('no-store');
    const location = new URL(answer.headers.get('location') ?? '');
    expect(location.origin).toBe(s3.endpoint);
    expect(location.pathname).toBe(`/${s3.bucket}/${objectKey(prefix, recordId)}`);
    expect(Number(location.searchParams.get('X-Amz-Expires'))).toBe(180);
    // The web page may play audio from the store it is sent to.
    expect(answer.headers.get('content-security-policy')).toMatch(
      new RegExp(`(^|;)media-src 'self' blob: ${s3.endpoint}(;|$)`),
    );
    // The same URL for the next request (within one signing window): a browser can cache what it fetched there.
    const locationNow = async () => (await fetch(recordUrl, { redirect: 'manual' })).headers.get('location');
    const again = await locationNow();
    const dateOf = (url: string | null) => new URL(url ?? '').searchParams.get('X-Amz-Date');
    if (dateOf(again) === location.searchParams.get('X-Amz-Date')) expect(again).toBe(location.toString());
    else expect(await locationNow()).toBe(again); // a window boundary fell between the two requests

    const fromStore = await fetch(location);
    expect(fromStore.status).toBe(200);
    expect(fromStore.headers.get('content-type')).toBe('audio/mpeg');
    expect(fromStore.headers.get('cache-control')).toBe('no-cache');
    expect(parseContentDisposition(fromStore.headers.get('content-disposition') ?? '')).toEqual({
      type: 'inline',
      filename: 'Cafe au lait.mp3',
      filenameStar: 'Café au lait.mp3',
    });
    expect(Buffer.from(await fromStore.arrayBuffer()).equals(object)).toBe(true);
    const ranged = await fetch(location, { headers: { range: 'bytes=10-19' } });
    expect(ranged.status).toBe(206);
    expect(Buffer.from(await ranged.arrayBuffer()).equals(object.subarray(10, 20))).toBe(true);

    // HEAD is answered by the service itself: the presigned URL is signed for GET, and S3 refuses a HEAD there.
    const head = await fetch(recordUrl, { method: 'HEAD', redirect: 'manual' });
    expect(head.status).toBe(200);
    expect(head.headers.get('location')).toBeNull();
    expect(head.headers.get('content-type')).toBe('audio/mpeg');
    expect(Number(head.headers.get('content-length'))).toBe(object.length);

    // A client following redirects just gets the audio; metadata is still answered by the service.
    const followed = await fetch(recordUrl);
    expect(followed.status).toBe(200);
    expect(Buffer.from(await followed.arrayBuffer()).equals(object)).toBe(true);
    const metadata = await fetch(recordUrl, { headers: { accept: 'application/json' } });
    expect(metadata.status).toBe(200);
    expect(((await metadata.json()) as { record_id: string }).record_id).toBe(recordId);
  });

  it('leaves ranges, 416 and conditional requests to the store, which a client meets after the redirect', async () => {
    // (test/download.test.ts checks the proxied answers, by the service itself, with TEST_STORAGE=s3.)
    const user = await createUser(service.url);
    const recordUrl = await uploadOk(service, user, 1.5);
    const object = await s3.body(objectKey(prefix, recordIdOf(recordUrl)));
    const size = object.length;

    // The service answers every audio request with the redirect, whatever its range or validators.
    const plain = await fetch(recordUrl, { redirect: 'manual' });
    const location = plain.headers.get('location') ?? '';
    const requests: Array<Record<string, string>> = [
      { range: 'bytes=0-9' },
      { range: `bytes=${size}-` },
      { 'if-none-match': '*' },
    ];
    for (const headers of requests) {
      const answer = await fetch(recordUrl, { redirect: 'manual', headers });
      expect(answer.status, JSON.stringify(headers)).toBe(302);
      expect(answer.headers.get('location')).toBe(location);
      expect(answer.headers.get('cache-control')).toBe('no-store');
    }

    // A client following it (fetch keeps its Range and validators) gets the store's answers. (s3rver reads
    // a suffix range, bytes=-N, as bytes=0-N, unlike S3: none is sent here.)
    const range = await fetch(recordUrl, { headers: { range: 'bytes=100-1099' } });
    expect(range.status).toBe(206);
    expect(range.headers.get('content-range')).toBe(`bytes 100-1099/${size}`);
    expect(range.headers.get('content-length')).toBe('1000');
    expect(range.headers.get('content-type')).toBe('audio/mpeg');
    expect(Buffer.from(await range.arrayBuffer()).equals(object.subarray(100, 1100))).toBe(true);

    const open = await fetch(recordUrl, { headers: { range: `bytes=${size - 10}-` } });
    expect(open.status).toBe(206);
    expect(open.headers.get('content-range')).toBe(`bytes ${size - 10}-${size - 1}/${size}`);
    expect(Buffer.from(await open.arrayBuffer()).equals(object.subarray(size - 10))).toBe(true);

    const unsatisfiable = await fetch(recordUrl, { headers: { range: `bytes=${size}-` } });
    expect(unsatisfiable.status).toBe(416);
    await unsatisfiable.arrayBuffer();

    const whole = await fetch(recordUrl);
    expect(whole.status).toBe(200);
    expect(Buffer.from(await whole.arrayBuffer()).equals(object)).toBe(true);
    const etag = whole.headers.get('etag') ?? '';
    const lastModified = whole.headers.get('last-modified') ?? '';
    expect(etag).toMatch(/^"[^"]+"$/);
    const conditions: Array<Record<string, string>> = [
      { 'if-none-match': etag },
      { 'if-none-match': '*' },
      { 'if-modified-since': lastModified },
    ];
    for (const headers of conditions) {
      const notModified = await fetch(recordUrl, { headers });
      expect(notModified.status, JSON.stringify(headers)).toBe(304);
      expect((await notModified.arrayBuffer()).byteLength).toBe(0);
    }
    const stale = await fetch(recordUrl, { headers: { 'if-none-match': '"something-else"' } });
    expect(stale.status).toBe(200);
    expect(Buffer.from(await stale.arrayBuffer()).equals(object)).toBe(true);
  });
});

describe('start-up against a bucket it cannot use', () => {
  it('stops the service with an error naming the bucket and what to check', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 's3-start-'));
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          ...s3.env('x/'),
          S3_BUCKET: 'no-such-bucket',
          DATA_DIR: dataDir,
          PORT: '0',
          HOST: '127.0.0.1',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code).toBe(1);
      expect(stderr).toContain('The S3 storage cannot be used (S3_BUCKET=no-such-bucket');
      expect(stderr).toMatch(/NoSuchBucket \(HTTP 404\)/);
      expect(stderr).toContain('Check S3_BUCKET');
      expect(stderr).not.toMatch(/^\s+at /m); // a message, not a stack trace

      // An unknown key, in process: the same error type, another hint. (s3rver checks the key id only, not
      // SigV4 signatures, so a wrong secret would pass here.)
      const config = loadConfig({ ...s3.env('x/'), S3_ACCESS_KEY_ID: 'WRONG', DATA_DIR: dataDir, LOG_LEVEL: 'silent' });
      const error = await createServices(config).then(
        async (services) => services.close(),
        (thrown: unknown) => thrown,
      );
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(
        /InvalidAccessKeyId[\s\S]*Check S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY/,
      );
      // Nothing was left in the bucket by the probes.
      expect(await s3.keys('x/')).toEqual([]);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('readiness on S3', () => {
  it('is ready while the bucket answers, and answers 503 naming the storage once it does not', async () => {
    // A store of its own, stopped half-way; the one the other tests share stays up.
    const own = await startS3rver();
    const service = await startService({ env: { ...own.env('ready/'), LOG_LEVEL: 'warn' } });
    try {
      expect((await fetch(`${service.url}/ready`)).status).toBe(200);
      await own.stop();
      const ready = await fetch(`${service.url}/ready`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { detail: string }).detail).toBe('Not ready: the audio storage does not answer.');
      expect((await fetch(`${service.url}/health`)).status).toBe(200);
    } finally {
      await service.stop();
      await rm(service.dataDir, { recursive: true, force: true });
    }
  });
});
