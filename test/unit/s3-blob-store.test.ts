import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { recordKey } from '../../src/storage/keys.js';
import { createS3Client, S3BlobStore, StorageUnusable } from '../../src/storage/s3-blob-store.js';

/**
 * The S3 store at the SDK boundary: a real S3Client (its serialisers, parsers and lib-storage's Upload)
 * whose HTTP handler is a fake store answering canned S3 XML. This covers what s3rver does not implement
 * (ListMultipartUploads, AbortMultipartUpload) and failures a real server will not produce on demand.
 */

interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
}

interface Answer {
  readonly status: number;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
}

interface FakeHttpRequest {
  readonly method: string;
  readonly path: string;
  readonly query?: Record<string, string | string[] | null>;
  readonly headers: Record<string, string>;
  readonly body?: unknown;
}

async function bodyBytes(body: unknown): Promise<Buffer> {
  if (body === undefined || body === null) return Buffer.alloc(0);
  if (typeof body === 'string') return Buffer.from(body);
  if (body instanceof Uint8Array) return Buffer.from(body);
  if (body instanceof Readable) {
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(Buffer.from(chunk as Uint8Array));
    return Buffer.concat(chunks);
  }
  throw new Error(`unexpected request body ${typeof body}`);
}

/** A client whose every request is answered by `answer`; `seen` lists the requests in order. */
function fakeStore(answer: (request: SeenRequest) => Answer): { client: S3Client; seen: SeenRequest[] } {
  const seen: SeenRequest[] = [];
  const handler = {
    handle: async (request: FakeHttpRequest) => {
      const query = Object.fromEntries(
        Object.entries(request.query ?? {}).map(([name, value]) => [
          name,
          Array.isArray(value) ? value.join(',') : (value ?? ''),
        ]),
      );
      const headers = Object.fromEntries(
        Object.entries(request.headers).map(([name, value]) => [name.toLowerCase(), value]),
      );
      const seenRequest = {
        method: request.method,
        path: request.path,
        query,
        headers,
        body: await bodyBytes(request.body),
      };
      seen.push(seenRequest);
      const reply = answer(seenRequest);
      const body = Buffer.from(reply.body ?? '');
      return {
        response: {
          statusCode: reply.status,
          headers: { 'content-length': String(body.length), ...reply.headers },
          body: Readable.from([body]),
        },
      };
    },
    updateHttpClientConfig: () => {},
    httpHandlerConfigs: () => ({}),
  };
  const client = new S3Client({
    endpoint: 'http://store.test',
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'key', secretAccessKey: 'secret' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
    logger: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
    requestHandler: handler,
  });
  return { client, seen };
}

const xml = (body: string): Answer => ({ status: 200, headers: { 'content-type': 'application/xml' }, body });
const s3Error = (status: number, code: string, message = code): Answer => ({
  status,
  headers: { 'content-type': 'application/xml' },
  body: `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`,
});
const LAST_MODIFIED = 'Wed, 02 Dec 2026 10:00:00 GMT';
const headAnswer = (size: number): Answer => ({
  status: 200,
  headers: { 'content-length': String(size), 'last-modified': LAST_MODIFIED, etag: '"abc"' },
});

const id = (n: number) =>
  `${n.toString(16).padStart(2, '0')}${'0'.repeat(6)}-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
const key = (n: number) => recordKey(id(n), 'mp3');
const upload = (objectKey: string, uploadId: string, initiated: Date) =>
  `<Upload><Key>${objectKey}</Key><UploadId>${uploadId}</UploadId><Initiated>${initiated.toISOString()}</Initiated></Upload>`;

let folder: string;
beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 's3-unit-'));
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('createS3Client', () => {
  it('computes and validates checksums only where an operation requires them', async () => {
    const client = createS3Client({
      endpoint: 'http://127.0.0.1:9',
      region: 'garage',
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
      forcePathStyle: true,
      maxSockets: 100,
      idleTimeoutMs: 120_000,
      log: { warn: () => {} },
    });
    try {
      expect(await client.config.requestChecksumCalculation()).toBe('WHEN_REQUIRED');
      expect(await client.config.responseChecksumValidation()).toBe('WHEN_REQUIRED');
      expect(await client.config.region()).toBe('garage');
      expect(client.config.forcePathStyle).toBe(true);
    } finally {
      client.destroy();
    }
  });
});

describe('S3BlobStore at the SDK boundary', () => {
  it('refuses a prefix without its trailing slash and keys the service never writes', async () => {
    const { client } = fakeStore(() => ({ status: 500 }));
    expect(() => new S3BlobStore(client, { bucket: 'b', prefix: 'audio', multipartThresholdBytes: 0 })).toThrow(
      /slash/,
    );
    const store = new S3BlobStore(client, { bucket: 'b', prefix: 'audio/', multipartThresholdBytes: 0 });
    await expect(store.stat('../etc/passwd')).rejects.toThrow(/Not a blob key/);
    await expect(store.delete('notes.txt')).rejects.toThrow(/Not a blob key/);
  });

  it('puts a file up to the threshold in one PutObject with its length, retrying a 503 with the whole file', async () => {
    const path = join(folder, 'small.mp3');
    const bytes = Buffer.from('ID3 small file bytes');
    await writeFile(path, bytes);
    let puts = 0;
    const { client, seen } = fakeStore((request) => {
      if (request.method === 'PUT')
        return ++puts === 1 ? s3Error(503, 'SlowDown') : { status: 200, headers: { etag: '"x"' } };
      if (request.method === 'HEAD') return headAnswer(bytes.length);
      return { status: 500 };
    });
    const store = new S3BlobStore(client, {
      bucket: 'bucket',
      prefix: 'audio/',
      multipartThresholdBytes: bytes.length,
    });
    const info = await store.put(key(1), { path });
    expect(info).toEqual({ sizeBytes: bytes.length, modifiedAt: new Date(LAST_MODIFIED) });
    const putRequests = seen.filter((request) => request.method === 'PUT');
    expect(putRequests).toHaveLength(2);
    for (const request of putRequests) {
      expect(request.path).toBe(`/bucket/audio/${key(1)}`);
      expect(request.headers['content-length']).toBe(String(bytes.length));
      expect(request.body.equals(bytes)).toBe(true);
      // No aws-chunked body and no trailing checksum: what many S3-compatible servers refuse.
      expect(request.headers['content-encoding'] ?? '').not.toMatch(/aws-chunked/);
      expect(Object.keys(request.headers).filter((name) => name.startsWith('x-amz-checksum'))).toEqual([]);
    }
  });

  it('does not retry a PutObject the store refuses for good', async () => {
    const path = join(folder, 'denied.mp3');
    await writeFile(path, 'bytes');
    const { client, seen } = fakeStore(() => s3Error(403, 'AccessDenied'));
    const store = new S3BlobStore(client, { bucket: 'bucket', prefix: '', multipartThresholdBytes: 1024 });
    await expect(store.put(key(2), { path })).rejects.toMatchObject({ name: 'AccessDenied' });
    expect(seen).toHaveLength(1);
  });

  it('puts a larger file as a multipart upload and aborts it when a part fails', async () => {
    const path = join(folder, 'large.mp3');
    await writeFile(path, Buffer.alloc(9 * 1024 ** 2, 1)); // two parts of at most 8 MiB
    const { client, seen } = fakeStore((request) => {
      if (request.method === 'POST' && 'uploads' in request.query) {
        return xml(
          `<InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>${key(3)}</Key><UploadId>up-1</UploadId></InitiateMultipartUploadResult>`,
        );
      }
      if (request.method === 'PUT' && request.query.partNumber === '1')
        return { status: 200, headers: { etag: '"p1"' } };
      if (request.method === 'PUT') return s3Error(500, 'InternalError');
      if (request.method === 'DELETE' && request.query.uploadId === 'up-1') return { status: 204 };
      return s3Error(400, 'Unexpected');
    });
    const store = new S3BlobStore(client, { bucket: 'bucket', prefix: '', multipartThresholdBytes: 1024 ** 2 });
    await expect(store.put(key(3), { path })).rejects.toMatchObject({ name: 'InternalError' });
    const parts = seen.filter((request) => request.method === 'PUT');
    expect(parts.map((request) => request.query.partNumber).sort()).toEqual(['1', '2']);
    expect(parts.find((request) => request.query.partNumber === '1')?.body.length).toBe(8 * 1024 ** 2);
    // The parts are not left behind, and nothing completed the upload.
    expect(seen.filter((request) => request.method === 'DELETE')).toMatchObject([
      { path: `/bucket/${key(3)}`, query: { uploadId: 'up-1' } },
    ]);
    expect(seen.some((request) => request.method === 'POST' && 'uploadId' in request.query)).toBe(false);
  });

  it('lists every page of a prefix, keys below the store prefix, an undated object as new', async () => {
    const { client, seen } = fakeStore((request) => {
      const page =
        request.query['continuation-token'] === undefined
          ? `<Contents><Key>audio/01/${id(1)}.mp3</Key><LastModified>2026-12-01T00:00:00.000Z</LastModified></Contents>
             <IsTruncated>true</IsTruncated><NextContinuationToken>next+page</NextContinuationToken>`
          : `<Contents><Key>audio/01/${id(1).replace(/0$/, '1')}.mp3</Key></Contents><IsTruncated>false</IsTruncated>`;
      return xml(`<ListBucketResult>${page}</ListBucketResult>`);
    });
    const store = new S3BlobStore(client, {
      bucket: 'bucket',
      prefix: 'audio/',
      multipartThresholdBytes: 0,
      listPageSize: 1,
    });
    const before = Date.now();
    const listed = [];
    for await (const blob of store.list('01/')) listed.push(blob);
    expect(listed.map((blob) => blob.key)).toEqual([`01/${id(1)}.mp3`, `01/${id(1).replace(/0$/, '1')}.mp3`]);
    expect(listed[0]?.modifiedAt.toISOString()).toBe('2026-12-01T00:00:00.000Z');
    expect(listed[1]?.modifiedAt.getTime()).toBeGreaterThanOrEqual(before);
    expect(seen.map((request) => request.query)).toMatchObject([
      { 'list-type': '2', prefix: 'audio/01/', 'max-keys': '1' },
      { 'list-type': '2', prefix: 'audio/01/', 'continuation-token': 'next+page' },
    ]);
  });

  it('streams a range with GetObject, held to the opened version by If-Match, and fails on a short answer', async () => {
    const object = Buffer.from('0123456789');
    const { client, seen } = fakeStore((request) => {
      if (request.method === 'HEAD') return headAnswer(object.length);
      const [, start, end] = /bytes=(\d+)-(\d+)/.exec(request.headers.range ?? '') ?? [];
      if (start === undefined) return { status: 200, body: object.subarray(0, 4) }; // shorter than the head said
      return {
        status: 206,
        headers: { 'content-range': `bytes ${start}-${end}/${object.length}` },
        body: object.subarray(Number(start), Number(end) + 1),
      };
    });
    const store = new S3BlobStore(client, { bucket: 'bucket', prefix: '', multipartThresholdBytes: 0 });
    const opened = await store.open(key(4));
    expect(opened).toMatchObject({ sizeBytes: 10, modifiedAt: new Date(LAST_MODIFIED) });
    const chunks: Buffer[] = [];
    for await (const chunk of opened?.stream({ start: 2, end: 5 }) ?? []) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('2345');
    expect(seen[1]?.headers).toMatchObject({ range: 'bytes=2-5', 'if-match': '"abc"' });

    const whole = opened?.stream();
    await expect(async () => {
      for await (const chunk of whole ?? []) void chunk;
    }).rejects.toThrow(/answered 4 bytes, not 10/);
  });

  it('answers undefined for a missing object and ignores a delete of one', async () => {
    const { client } = fakeStore((request) =>
      request.method === 'HEAD' ? { status: 404 } : s3Error(404, 'NoSuchKey'),
    );
    const store = new S3BlobStore(client, { bucket: 'bucket', prefix: '', multipartThresholdBytes: 0 });
    expect(await store.open(key(5))).toBeUndefined();
    expect(await store.stat(key(5))).toBeUndefined();
    await expect(store.delete(key(5))).resolves.toBeUndefined();
  });

  it('states an MD5 only where the ETag is one: single-part, not KMS or customer-key encrypted', async () => {
    const md5 = '0123456789ABCDEF0123456789abcdef';
    const heads: Record<string, Record<string, string>> = {
      plain: { etag: `"${md5}"` },
      aes: { etag: `"${md5}"`, 'x-amz-server-side-encryption': 'AES256' },
      multipart: { etag: `"${md5}-3"` },
      kms: { etag: `"${md5}"`, 'x-amz-server-side-encryption': 'aws:kms' },
      customer: { etag: `"${md5}"`, 'x-amz-server-side-encryption-customer-algorithm': 'AES256' },
      weird: { etag: '"abc"' },
    };
    const names = Object.keys(heads);
    const { client } = fakeStore((request) => {
      const name = names[Number(/^\/bucket\/([0-9a-f]{2})/.exec(request.path)?.[1] ?? '0') - 1] ?? '';
      return { status: 200, headers: { 'content-length': '10', 'last-modified': LAST_MODIFIED, ...heads[name] } };
    });
    const store = new S3BlobStore(client, { bucket: 'bucket', prefix: '', multipartThresholdBytes: 0 });
    const stated = async (n: number) => [(await store.stat(key(n)))?.md5, (await store.open(key(n)))?.md5];
    expect(await stated(1)).toEqual([md5.toLowerCase(), md5.toLowerCase()]);
    expect(await stated(2)).toEqual([md5.toLowerCase(), md5.toLowerCase()]);
    for (let n = 3; n <= names.length; n++) expect(await stated(n), names[n - 1]).toEqual([undefined, undefined]);
  });

  it('finds stale multipart uploads of its own keys over every page, and aborts them when told', async () => {
    const now = Date.now();
    const old = new Date(now - 2 * 3600_000);
    const recent = new Date(now - 60_000);
    const { client, seen } = fakeStore((request) => {
      if (request.method === 'GET' && request.query['key-marker'] === undefined) {
        return xml(`<ListMultipartUploadsResult>
          ${upload(`audio/${key(6)}`, 'stale-1', old)}
          ${upload(`audio/${key(7)}`, 'fresh', recent)}
          ${upload('audio/someone-else/file.bin', 'foreign', old)}
          <IsTruncated>true</IsTruncated><NextKeyMarker>audio/${key(7)}</NextKeyMarker><NextUploadIdMarker>fresh</NextUploadIdMarker>
        </ListMultipartUploadsResult>`);
      }
      if (request.method === 'GET') {
        return xml(`<ListMultipartUploadsResult>
          ${upload(`audio/${key(8)}`, 'stale-2', old)}
          ${upload(`audio/${key(9)}`, 'finished-meanwhile', old)}
          <IsTruncated>false</IsTruncated></ListMultipartUploadsResult>`);
      }
      if (request.query.uploadId === 'finished-meanwhile') return s3Error(404, 'NoSuchUpload');
      return { status: 204 };
    });
    const store = new S3BlobStore(client, { bucket: 'bucket', prefix: 'audio/', multipartThresholdBytes: 0 });

    expect(await store.incompleteUploads(3600_000, { abort: false })).toEqual({ stale: 3, aborted: 0 });
    expect(seen.filter((request) => request.method === 'DELETE')).toEqual([]);
    expect(seen[0]?.query).toMatchObject({ uploads: '', prefix: 'audio/' });
    expect(seen[1]?.query).toMatchObject({ 'key-marker': `audio/${key(7)}`, 'upload-id-marker': 'fresh' });

    seen.length = 0;
    expect(await store.incompleteUploads(3600_000, { abort: true })).toEqual({ stale: 3, aborted: 2 });
    expect(
      seen.filter((request) => request.method === 'DELETE').map((request) => [request.path, request.query.uploadId]),
    ).toEqual([
      [`/bucket/audio/${key(6)}`, 'stale-1'],
      [`/bucket/audio/${key(8)}`, 'stale-2'],
      [`/bucket/audio/${key(9)}`, 'finished-meanwhile'],
    ]);
  });

  it('says so when the store cannot list multipart uploads (as s3rver cannot)', async () => {
    const { client } = fakeStore(() => s3Error(501, 'NotImplemented'));
    const store = new S3BlobStore(client, { bucket: 'bucket', prefix: '', multipartThresholdBytes: 0 });
    expect(await store.incompleteUploads(0, { abort: true })).toBeUndefined();
    const { client: failing } = fakeStore(() => s3Error(403, 'AccessDenied'));
    const denied = new S3BlobStore(failing, { bucket: 'bucket', prefix: '', multipartThresholdBytes: 0 });
    await expect(denied.incompleteUploads(0, { abort: true })).rejects.toMatchObject({ name: 'AccessDenied' });
  });

  it('probes a bucket by writing, reading, listing and deleting one object, naming what failed', async () => {
    let written: Buffer | undefined;
    const { client, seen } = fakeStore((request) => {
      if (request.method === 'PUT') {
        written = request.body;
        return { status: 200 };
      }
      if (request.method === 'GET' && 'list-type' in request.query) return xml('<ListBucketResult></ListBucketResult>');
      if (request.method === 'GET') return { status: 200, body: written };
      return { status: 204 };
    });
    const store = new S3BlobStore(client, { bucket: 'bucket', prefix: 'audio/', multipartThresholdBytes: 0 });
    await store.checkWritable();
    expect(seen.map((request) => request.method)).toEqual(['PUT', 'GET', 'GET', 'DELETE']);
    expect(seen[0]?.path).toMatch(/^\/bucket\/audio\/write-check-[0-9a-f-]{36}$/);
    expect(seen[3]?.path).toBe(seen[0]?.path);

    const { client: missing } = fakeStore(() => s3Error(404, 'NoSuchBucket', 'The specified bucket does not exist'));
    const error = await new S3BlobStore(missing, { bucket: 'nope', prefix: '', multipartThresholdBytes: 0 })
      .checkWritable()
      .catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(StorageUnusable);
    expect(error).toMatchObject({ code: 'NoSuchBucket' });
    expect(String((error as Error).message)).toMatch(
      /cannot write write-check-\S+ in bucket "nope": NoSuchBucket \(HTTP 404\): The specified bucket does not exist/,
    );

    // A read that fails still deletes the probe object.
    const { client: unreadable, seen: unreadableSeen } = fakeStore((request) =>
      request.method === 'GET' ? s3Error(403, 'AccessDenied') : { status: request.method === 'PUT' ? 200 : 204 },
    );
    await expect(
      new S3BlobStore(unreadable, { bucket: 'b', prefix: '', multipartThresholdBytes: 0 }).checkWritable(),
    ).rejects.toMatchObject({ code: 'AccessDenied' });
    expect(unreadableSeen.map((request) => request.method)).toEqual(['PUT', 'GET', 'DELETE']);
  });

  it('presigns GetObject with the response headers, the same URL within half its lifetime', async () => {
    const { client } = fakeStore(() => ({ status: 500 }));
    const store = new S3BlobStore(client, { bucket: 'bucket', prefix: 'audio/', multipartThresholdBytes: 0 });
    const response = {
      contentType: 'audio/mpeg',
      contentDisposition: `inline; filename="Take 1.mp3"`,
      expiresInSeconds: 300,
    };
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-12-02T10:00:10Z'));
    const first = new URL(await store.presignedUrl(key(10), response));
    expect(first.pathname).toBe(`/bucket/audio/${key(10)}`);
    expect(first.searchParams.get('response-content-type')).toBe('audio/mpeg');
    expect(first.searchParams.get('response-content-disposition')).toBe('inline; filename="Take 1.mp3"');
    expect(first.searchParams.get('response-cache-control')).toBe('no-cache');
    expect(first.searchParams.get('X-Amz-Date')).toBe('20261202T100000Z');
    expect(first.searchParams.get('X-Amz-Expires')).toBe('450');

    vi.setSystemTime(new Date('2026-12-02T10:02:29Z'));
    expect((await store.presignedUrl(key(10), response)) === first.toString()).toBe(true);
    vi.setSystemTime(new Date('2026-12-02T10:02:30Z'));
    const next = new URL(await store.presignedUrl(key(10), response));
    expect(next.searchParams.get('X-Amz-Date')).toBe('20261202T100230Z');
  });
});
