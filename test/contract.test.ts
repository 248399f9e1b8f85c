import { execFile } from 'node:child_process';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PREFIX, createUser, upload, type TestUser } from './kit/client.js';
import { createTestDatabase, databaseKinds } from './kit/database.js';
import { rawHttp, sendRequest } from './kit/http.js';
import { logLines, startIsolatedService, startService, type IsolatedService } from './kit/service.js';
import { onS3 } from './kit/storage.js';
import { decodeMp3, makeWav } from './kit/wav.js';

const run = promisify(execFile);
// Tests where the database does not matter use PostgreSQL when there is one: it starts far faster than a fresh PGlite.
const FASTEST_KIND = databaseKinds.at(-1) ?? 'pglite';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface CurlResponse {
  readonly status: number;
  readonly headers: Map<string, string>;
  readonly body: Buffer;
  json<T>(): T;
}

/**
 * Runs the real curl with exactly the given arguments (as the seed writes them), only adding flags that
 * shape curl's own output (--silent, --include), never the request.
 */
async function curl(args: string[], cwd?: string): Promise<CurlResponse> {
  const { stdout } = await run('curl', ['--silent', '--show-error', '--include', ...args], {
    encoding: 'buffer',
    maxBuffer: 64 * 1024 * 1024,
    ...(cwd === undefined ? {} : { cwd }),
  });
  let rest = stdout;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end === -1) throw new Error(`curl printed no headers: ${rest.toString()}`);
    const lines = rest.subarray(0, end).toString('latin1').split('\r\n');
    rest = rest.subarray(end + 4);
    const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(lines[0] ?? '')?.[1]);
    if (status >= 100 && status < 200) continue; // 100 Continue before the real answer
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const body = rest;
    return { status, headers, body, json: <T>() => JSON.parse(body.toString()) as T };
  }
}

describe.each(databaseKinds)('the seed’s own examples, sent verbatim with curl (%s)', (kind) => {
  let service: IsolatedService;
  let workDir: string;
  let host: string;
  const wav = makeWav({ durationSeconds: 6 }); // about 1 MB, like the seed's file_example_WAV_1MG.wav

  beforeAll(async () => {
    service = await startIsolatedService(kind);
    host = new URL(service.url).host;
    workDir = await mkdtemp(join(tmpdir(), 'contract-'));
    await writeFile(join(workDir, 'file_example_WAV_1MG.wav'), wav);
  });
  afterAll(async () => {
    await service?.cleanup();
    await rm(workDir, { recursive: true, force: true });
  });

  it('runs the three "Примеры работы" commands: create a user, upload, read the record', async () => {
    // curl -X 'POST' 'http://localhost:8000/api_v1/users/?username=john_doe' -H 'accept: application/json' -d ''
    const created = await curl([
      '-X',
      'POST',
      `http://${host}/api_v1/users/?username=john_doe`,
      '-H',
      'accept: application/json',
      '-d',
      '',
    ]);
    expect(created.status, created.body.toString()).toBe(200);
    expect(created.headers.get('content-type')).toMatch(/^application\/json/);
    const user = created.json<TestUser>();
    expect(Object.keys(user).sort()).toEqual(['access_token', 'user_id']);
    expect(user.user_id).toMatch(UUID);
    expect(user.access_token).toMatch(UUID);

    const uploaded = await curl(
      [
        '-X',
        'POST',
        `http://${host}/api_v1/record/?access_token=${user.access_token}&user_id=${user.user_id}`,
        '-H',
        'accept: application/json',
        '-H',
        'Content-Type: multipart/form-data',
        '-F',
        'file=@file_example_WAV_1MG.wav;type=audio/wav',
      ],
      workDir,
    );
    expect(uploaded.status, uploaded.body.toString()).toBe(200);
    const { record_url: recordUrl } = uploaded.json<{ record_url: string }>();
    expect(recordUrl).toMatch(
      new RegExp(`^http://${host}/api_v1/record\\?record_id=[0-9a-f-]{36}&user_id=${user.user_id}$`),
    );
    const recordId = new URL(recordUrl).searchParams.get('record_id') ?? '';

    // curl -X 'GET' 'http://localhost:8000/api_v1/record?record_id=…&user_id=…' -H 'accept: application/json'
    const read = await curl([
      '-X',
      'GET',
      `http://${host}/api_v1/record?record_id=${recordId}&user_id=${user.user_id}`,
      '-H',
      'accept: application/json',
    ]);
    expect(read.status).toBe(200);
    expect(read.headers.get('content-type')).toMatch(/^application\/json/);
    expect(read.json<{ record_url: string; original_filename: string }>()).toMatchObject({
      record_url: recordUrl,
      original_filename: 'file_example_WAV_1MG.wav',
    });

    // And what the record_url is for: curl without an Accept preference gets the MP3.
    const mp3 = await curl([recordUrl]);
    expect(mp3.status).toBe(200);
    expect(mp3.headers.get('content-type')).toBe('audio/mpeg');
    expect(Math.abs(decodeMp3(mp3.body).seconds - 6)).toBeLessThan(0.01);
  });

  it('answers the "API Endpoints" HTTP blocks, including POST with a JSON type and no body', async () => {
    // POST /api/v1/users/?username=… with Content-Type: application/json, Accept: application/json, no body.
    const created = await curl([
      '-X',
      'POST',
      `http://${host}/api/v1/users/?username=jane_doe`,
      '-H',
      'Content-Type: application/json',
      '-H',
      'Accept: application/json',
    ]);
    expect(created.status, created.body.toString()).toBe(200);
    const user = created.json<TestUser>();
    expect(user.user_id).toMatch(UUID);

    // The same block written byte for byte, with an explicit empty body.
    const raw = await rawHttp(
      service.url,
      `POST /api/v1/users/?username=jack_doe HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\n` +
        'Accept: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
    );
    expect(raw.status, raw.raw).toBe(200);
    expect(JSON.parse(raw.text)).toMatchObject({ user_id: expect.stringMatching(UUID) as unknown });

    const uploaded = await curl(
      [
        '-X',
        'POST',
        `http://${host}/api/v1/record/?access_token=${user.access_token}&user_id=${user.user_id}`,
        '-H',
        'Content-Type: multipart/form-data',
        '-H',
        'Accept: application/json',
        '-F',
        'file=@file_example_WAV_1MG.wav;type=audio/wav',
      ],
      workDir,
    );
    expect(uploaded.status, uploaded.body.toString()).toBe(200);
    const { record_url: recordUrl } = uploaded.json<{ record_url: string }>();
    // The prefix the request used, not the seed's inconsistent /api_v1.
    expect(recordUrl.startsWith(`http://${host}/api/v1/record?record_id=`)).toBe(true);

    const read = await curl([
      '-X',
      'GET',
      `http://${host}${new URL(recordUrl).pathname}${new URL(recordUrl).search}`,
      '-H',
      'Accept: application/json',
    ]);
    expect(read.status).toBe(200);
    expect(read.json<{ record_url: string }>().record_url).toBe(recordUrl);
  });

  it('answers a malformed JSON body with 400, not 500', async () => {
    const response = await curl([
      '-X',
      'POST',
      `http://${host}/api/v1/users/?username=broken_json`,
      '-H',
      'Content-Type: application/json',
      '-d',
      '{not json',
    ]);
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });

  it('takes the token from Authorization: Bearer and from the query', async () => {
    const user = await createUser(service.url);
    const viaHeader = await upload(service.url, user, makeWav({ durationSeconds: 0.2 }));
    expect(viaHeader.status).toBe(200);
    const viaQuery = await upload(service.url, user, makeWav({ durationSeconds: 0.2 }), { tokenInQuery: true });
    expect(viaQuery.status).toBe(200);
    const bearerCurl = await curl(
      [
        '-H',
        `Authorization: Bearer ${user.access_token}`,
        '-F',
        'file=@file_example_WAV_1MG.wav;type=audio/wav',
        `http://${host}/api/v1/record/?user_id=${user.user_id}`,
      ],
      workDir,
    );
    expect(bearerCurl.status).toBe(200);
    const none = await upload(service.url, { ...user, access_token: '' }, makeWav({ durationSeconds: 0.2 }), {
      tokenInQuery: true,
    });
    expect(none.status).toBe(401);
  });
});

describe('record_url: where the links point', () => {
  let service: IsolatedService | undefined;
  afterAll(async () => {
    await service?.cleanup();
  });

  async function linkFor(target: IsolatedService, headers: Record<string, string>, prefix = PREFIX): Promise<string> {
    const user = await createUser(target.url);
    const form = new FormData();
    form.append('file', new Blob([makeWav({ durationSeconds: 0.1 })]), 'a.wav');
    const body = new Response(form);
    const response = await sendRequest(`${target.url}${prefix}/record/?user_id=${user.user_id}`, {
      method: 'POST',
      headers: {
        ...headers,
        authorization: `Bearer ${user.access_token}`,
        'content-type': body.headers.get('content-type') ?? '',
      },
      body: Buffer.from(await body.arrayBuffer()),
    });
    expect(response.status, response.text).toBe(200);
    return (JSON.parse(response.text) as { record_url: string }).record_url;
  }

  it('is built from the Host header, ignoring X-Forwarded-* unless TRUST_PROXY is set', async () => {
    service = await startIsolatedService(FASTEST_KIND);
    const port = new URL(service.url).port;
    expect(await linkFor(service, { host: 'audio.internal:8080' })).toMatch(
      /^http:\/\/audio\.internal:8080\/api\/v1\/record\?record_id=[0-9a-f-]{36}&user_id=[0-9a-f-]{36}$/,
    );
    expect(await linkFor(service, { host: `127.0.0.1:${port}` }, '/api_v1')).toMatch(
      new RegExp(`^http://127\\.0\\.0\\.1:${port}/api_v1/record\\?`),
    );
    const proxied = await linkFor(service, {
      host: `127.0.0.1:${port}`,
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'evil.example',
    });
    expect(proxied.startsWith(`http://127.0.0.1:${port}/api/v1/record?`)).toBe(true);
  });

  it('never uses a malformed or missing Host', async () => {
    service ??= await startIsolatedService(FASTEST_KIND);
    const port = new URL(service.url).port;
    for (const host of ['evil.example/phish?x=', 'a b', 'x@evil.example']) {
      const link = await linkFor(service, { host });
      expect(link.startsWith(`http://127.0.0.1:${port}/api/v1/record?`), `${host} → ${link}`).toBe(true);
    }

    // HTTP/1.0 needs no Host: the JSON answer's record_url must still be a real address.
    const record = await linkFor(service, {});
    const recordUrl = new URL(record);
    const response = await rawHttp(
      service.url,
      `GET ${recordUrl.pathname}${recordUrl.search} HTTP/1.0\r\nAccept: application/json\r\n\r\n`,
    );
    expect(response.status, response.raw).toBe(200);
    const metadata = JSON.parse(response.text) as { record_url: string };
    expect(metadata.record_url).toBe(record.replace(/^http:\/\/[^/]+/, `http://127.0.0.1:${port}`));
    expect(metadata.record_url).not.toContain('0.0.0.0');
  });

  it('uses PUBLIC_URL when set, whatever the request says', async () => {
    const configured = await startIsolatedService(FASTEST_KIND, { PUBLIC_URL: 'https://audio.example.com' });
    try {
      for (const prefix of ['/api/v1', '/api_v1']) {
        const link = await linkFor(configured, { host: 'other.example', 'x-forwarded-host': 'x.example' }, prefix);
        expect(link).toMatch(new RegExp(`^https://audio\\.example\\.com${prefix}/record\\?record_id=[0-9a-f-]{36}&`));
      }
    } finally {
      await configured.cleanup();
    }
  });

  it('keeps the path of a PUBLIC_URL, without doubling slashes', async () => {
    const withPath = await startIsolatedService(FASTEST_KIND, { PUBLIC_URL: 'https://example.org/audio/' });
    try {
      expect(await linkFor(withPath, {})).toMatch(/^https:\/\/example\.org\/audio\/api\/v1\/record\?/);
    } finally {
      await withPath.cleanup();
    }
  });

  it('follows X-Forwarded-Proto and X-Forwarded-Host when TRUST_PROXY=true', async () => {
    const proxied = await startIsolatedService(FASTEST_KIND, { TRUST_PROXY: 'true' });
    try {
      const port = new URL(proxied.url).port;
      expect(
        await linkFor(proxied, {
          host: `127.0.0.1:${port}`,
          'x-forwarded-proto': 'https',
          'x-forwarded-host': 'audio.example.org',
        }),
      ).toMatch(/^https:\/\/audio\.example\.org\/api\/v1\/record\?/);
      // Without the headers, the Host still counts.
      expect(await linkFor(proxied, { host: 'direct.example:9000' })).toMatch(/^http:\/\/direct\.example:9000\//);
      // A forwarded scheme other than http(s) is not echoed into links.
      expect(
        await linkFor(proxied, {
          host: 'a.example',
          'x-forwarded-proto': 'javascript',
          'x-forwarded-host': 'b.example',
        }),
      ).toMatch(/^http:\/\/b\.example\//);
    } finally {
      await proxied.cleanup();
    }
  });
});

describe('health, readiness and documentation', () => {
  let service: IsolatedService;
  beforeAll(async () => {
    service = await startIsolatedService(FASTEST_KIND);
  });
  afterAll(async () => {
    await service?.cleanup();
  });

  it('answers GET /health and GET /ready with 200', async () => {
    const health = await fetch(`${service.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${service.url}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
  });

  it('answers /ready with a 503 problem when ffmpeg cannot be run, while /health stays 200', async () => {
    const broken = await startIsolatedService(FASTEST_KIND, { FFMPEG_PATH: '/nonexistent' });
    try {
      const ready = await fetch(`${broken.url}/ready`);
      expect(ready.status).toBe(503);
      expect(ready.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(ready.headers.get('retry-after')).toMatch(/^\d+$/);
      const problem = (await ready.json()) as { status: number; detail: string };
      expect(problem.status).toBe(503);
      expect(problem.detail).toMatch(/ffmpeg/);
      expect((await fetch(`${broken.url}/health`)).status).toBe(200);
    } finally {
      await broken.cleanup();
    }
  });

  // The local store's folder; on S3, test/s3-storage.test.ts stops a bucket's server under a running service.
  it.skipIf(onS3)('answers /ready with a 503 problem naming the storage when the audio folder is gone', async () => {
    const gone = await startIsolatedService(FASTEST_KIND);
    try {
      expect((await fetch(`${gone.url}/ready`)).status).toBe(200);
      await rename(join(gone.dataDir, 'records'), join(gone.dataDir, 'records-moved'));
      const ready = await fetch(`${gone.url}/ready`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { detail: string }).detail).toBe('Not ready: the audio storage does not answer.');
    } finally {
      await gone.cleanup();
    }
  });

  it('serves Swagger UI at /docs', async () => {
    const response = await fetch(`${service.url}/docs`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await response.text();
    expect(html).toMatch(/swagger-ui/i);
    // The page's script and the document it loads are served too.
    const scripts = [...html.matchAll(/src="([^"]+\.js)"/g)].map((match) => match[1] ?? '');
    expect(scripts.length).toBeGreaterThan(0);
    for (const script of scripts) {
      const asset = await fetch(new URL(script, response.url));
      expect(asset.status, script).toBe(200);
    }
  });

  it('serves a valid OpenAPI 3 document at /openapi.json listing /api/v1 only, multipart body included', async () => {
    const response = await fetch(`${service.url}/openapi.json`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    const document = (await response.json()) as OpenApiDocument;
    expect(document.openapi).toMatch(/^3\.\d+\.\d+$/);
    expect(document.info.title).toBeTruthy();
    expect(document.info.version).toBeTruthy();

    const paths = Object.keys(document.paths);
    for (const path of ['/api/v1/users/', '/api/v1/record/', '/api/v1/record', '/health', '/ready']) {
      expect(paths, path).toContain(path);
    }
    expect(paths.filter((path) => path.startsWith('/api_v1'))).toEqual([]);
    expect(paths).not.toContain('/openapi.json');

    const methods = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
    for (const [path, item] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        if (!methods.includes(method)) continue;
        expect(Object.keys(operation.responses ?? {}).length, `${method} ${path}`).toBeGreaterThan(0);
        for (const parameter of operation.parameters ?? []) {
          expect(['query', 'header', 'path', 'cookie']).toContain(parameter.in);
          expect(parameter.name).toBeTruthy();
          if (parameter.in === 'path') expect(parameter.required).toBe(true);
        }
      }
    }
    // Every operation says what it answers: a success, a 401 where it takes a token, a schema for every
    // body, and every error as problem details (through a $ref or inline; a $ref must resolve).
    const operations = Object.entries(document.paths).flatMap(([path, item]) =>
      Object.entries(item)
        .filter(([method]) => methods.includes(method))
        .map(([method, operation]) => ({ where: `${method} ${path}`, path, method, operation })),
    );
    expect(operations.length).toBeGreaterThanOrEqual(12);
    let problemResponses = 0;
    for (const { where, path, method, operation } of operations) {
      const responses = Object.entries(operation.responses ?? {});
      expect(
        responses.some(([status]) => /^[23]\d\d$/.test(status)),
        where,
      ).toBe(true);
      if ((operation.security ?? []).length > 0) expect(Object.keys(operation.responses ?? {}), where).toContain('401');
      for (const [status, response] of responses) {
        for (const [type, media] of Object.entries(response.content ?? {})) {
          const schema = resolveRef(document, media.schema);
          expect(schema, `${where} ${status} ${type}`).toBeDefined();
          if (Number(status) >= 400) {
            expect(schema, `${where} ${status} ${type}`).toMatchObject({
              required: expect.arrayContaining(['type', 'title', 'status', 'detail']) as unknown,
            });
            problemResponses += 1;
          }
        }
      }
      // What the document describes is what the service serves, under both prefixes.
      const url = path.replace(/\{(\w+)\}/g, ':$1');
      const served = [url, url.replace(/^\/api\/v1\//, '/api_v1/')];
      for (const route of served) {
        expect(service.app.hasRoute({ method: method.toUpperCase(), url: route }), route).toBe(true);
      }
    }
    expect(problemResponses).toBeGreaterThan(20);

    const uploadOperation = document.paths['/api/v1/record/']?.post;
    const multipart = uploadOperation?.requestBody?.content?.['multipart/form-data']?.schema;
    expect(multipart?.required).toContain('file');
    expect(multipart?.properties?.file).toMatchObject({ type: 'string', format: 'binary' });
    expect(uploadOperation?.security).toEqual(expect.arrayContaining([{ bearer: [] }]));
    expect(Object.keys(uploadOperation?.responses ?? {})).toEqual(expect.arrayContaining(['200', '401', '415']));

    const download = document.paths['/api/v1/record']?.get;
    expect(Object.keys(download?.responses?.['200']?.content ?? {}).sort()).toEqual(['application/json', 'audio/mpeg']);
    const createUserParameters = document.paths['/api/v1/users/']?.post?.parameters ?? [];
    expect(createUserParameters).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'username' })]));
  });
});

interface OpenApiOperation {
  parameters?: Array<{ in: string; name: string; required?: boolean }>;
  requestBody?: {
    content?: Record<string, { schema?: { required?: string[]; properties?: Record<string, unknown> } }>;
  };
  responses?: Record<string, { content?: Record<string, { schema?: unknown }> }>;
  security?: unknown[];
}

/** The schema itself, or what its local `$ref` points at (undefined when it points nowhere). */
function resolveRef(document: OpenApiDocument, schema: unknown): unknown {
  const ref = (schema as { $ref?: unknown } | undefined)?.$ref;
  if (typeof ref !== 'string') return schema;
  if (!ref.startsWith('#/')) return undefined;
  let node: unknown = document;
  for (const segment of ref.slice(2).split('/')) {
    node = (node as Record<string, unknown> | undefined)?.[segment.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return node;
}

interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, OpenApiOperation>>;
}

describe.each(databaseKinds)('restart on the same data (%s)', (kind) => {
  it('still serves every record byte for byte, and the token still works', async () => {
    const database = await createTestDatabase(kind);
    const first = await startService(database.url === undefined ? {} : { databaseUrl: database.url });
    const { dataDir } = first;
    let second: Awaited<ReturnType<typeof startService>> | undefined;
    try {
      const username = `restart_${kind}`;
      const user = await createUser(first.url, username);
      const response = await upload(first.url, user, makeWav({ durationSeconds: 0.8 }), { title: 'before restart' });
      expect(response.status).toBe(200);
      const { record_url: recordUrl } = (await response.json()) as { record_url: string };
      const before = await fetch(recordUrl);
      const bytes = Buffer.from(await before.arrayBuffer());
      const etag = before.headers.get('etag');
      const metadata = (await (await fetch(recordUrl, { headers: { accept: 'application/json' } })).json()) as Record<
        string,
        unknown
      >;
      await first.stop();

      second = await startService({ dataDir, ...(database.url === undefined ? {} : { databaseUrl: database.url }) });
      const moved = new URL(recordUrl);
      const again = `${second.url}${moved.pathname}${moved.search}`;
      const after = await fetch(again);
      expect(after.status).toBe(200);
      expect(after.headers.get('etag')).toBe(etag);
      expect(Buffer.from(await after.arrayBuffer()).equals(bytes)).toBe(true);
      const metadataAfter = (await (await fetch(again, { headers: { accept: 'application/json' } })).json()) as {
        record_url: string;
      };
      // Only the links' host differs: the restarted service listens on another port.
      const links = { record_url: recordUrl, peaks_url: metadata.peaks_url, share_url: metadata.share_url };
      expect({ ...metadataAfter, ...links }).toEqual(metadata);
      expect(metadataAfter.record_url).toBe(again);

      expect((await upload(second.url, user, makeWav({ durationSeconds: 0.2 }))).status).toBe(200);
      // The username is still taken.
      const taken = await fetch(`${second.url}${PREFIX}/users/?username=${username.toUpperCase()}`, { method: 'POST' });
      expect(taken.status).toBe(409);
    } finally {
      await second?.stop();
      await database.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe.each(databaseKinds)('concurrent uploads (%s)', (kind) => {
  let service: IsolatedService;
  beforeAll(async () => {
    service = await startIsolatedService(kind, { CONVERT_CONCURRENCY: '2' });
  });
  afterAll(async () => {
    await service?.cleanup();
  });

  it('converts six uploads at once into six distinct, complete records', async () => {
    const users = await Promise.all([createUser(service.url), createUser(service.url)]);
    const durations = [0.5, 0.7, 0.9, 1.1, 1.3, 1.5];
    const responses = await Promise.all(
      durations.map((seconds, index) =>
        upload(service.url, users[index % 2] as TestUser, makeWav({ durationSeconds: seconds }), {
          filename: `take-${index}.wav`,
        }),
      ),
    );
    const bodies = await Promise.all(responses.map(async (response) => [response.status, await response.text()]));
    expect(bodies.map(([status]) => status)).toEqual(durations.map(() => 200));
    const urls = bodies.map(([, text]) => (JSON.parse(String(text)) as { record_url: string }).record_url);
    expect(new Set(urls).size).toBe(durations.length);

    for (const [index, url] of urls.entries()) {
      const download = await fetch(url);
      expect(download.status).toBe(200);
      const decoded = decodeMp3(Buffer.from(await download.arrayBuffer()));
      expect(Math.abs(decoded.seconds - (durations[index] ?? 0))).toBeLessThan(0.01);
      const metadata = (await (await fetch(url, { headers: { accept: 'application/json' } })).json()) as {
        original_filename: string;
        user_id: string;
      };
      expect(metadata.original_filename).toBe(`take-${index}.wav`);
      expect(metadata.user_id).toBe(users[index % 2]?.user_id);
    }
  });
});

/**
 * Waits until the request's closing log line ("request completed", written just after its answer went
 * out) is there; requests are sent one after the other, so every earlier line is there too.
 */
async function expectCompletionLogged(service: IsolatedService, requestId: string | null | undefined): Promise<void> {
  expect(requestId).toEqual(expect.any(String));
  await expect
    .poll(() => logLines(service).some((line) => line.reqId === requestId && line.msg === 'request completed'))
    .toBe(true);
}

describe('logs', () => {
  let service: IsolatedService;
  beforeAll(async () => {
    service = await startIsolatedService(FASTEST_KIND);
    // Let start-up lines (the converter check, and the storage check, which on S3 lists 256 shard prefixes
    // and may finish seconds later) land before the window the tests look at.
    expect((await fetch(`${service.url}/ready`)).status).toBe(200);
    await vi.waitFor(
      () => {
        if (!service.logs().includes('storage check finished')) throw new Error('the storage check still runs');
      },
      { timeout: 30_000, interval: 100 },
    );
  });
  afterAll(async () => {
    await service?.cleanup();
  });

  it('never contain the access token, from the query or the Authorization header', async () => {
    const start = service.logs().length;
    const user = await createUser(service.url);
    const token = user.access_token;
    const base = `${service.url}${PREFIX}`;
    const wav = makeWav({ durationSeconds: 0.2 });

    expect((await upload(service.url, user, wav, { tokenInQuery: true })).status).toBe(200);
    const bearer = await upload(service.url, user, wav);
    expect(bearer.status).toBe(200);
    const { record_url: recordUrl } = (await bearer.json()) as { record_url: string };
    // Failures log more: a wrong user, a bad parameter, an unknown route, a download with a stray token.
    const wrongUser = { ...user, user_id: crypto.randomUUID() };
    expect((await upload(service.url, wrongUser, wav, { tokenInQuery: true })).status).toBe(401);
    expect((await upload(service.url, wrongUser, wav)).status).toBe(401);
    const variants = [
      `${base}/record/?user_id=nope&access_token=${token}`,
      `${base}/record/?user_id=${user.user_id}&access%5Ftoken=${token}`,
      `${base}/record/?access_token=x&access_token=${token}&user_id=${user.user_id}`,
      `${base}/nowhere?access_token=${token}`,
      `${recordUrl}&access_token=${token}`,
    ];
    for (const url of variants) {
      await fetch(url, { method: url.startsWith(recordUrl) ? 'GET' : 'POST' });
      await fetch(url.replace(/access(_|%5F)token=/, 'x=1&access$1token='), {
        headers: { authorization: `Bearer ${token}` },
      });
    }
    await fetch(`${base}/record/?user_id=${user.user_id}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' },
      body: 'not multipart',
    });
    const last = await curl([
      '-X',
      'POST',
      `${base}/record/?access_token=${token}&user_id=${user.user_id}`,
      '-F',
      'file=@/dev/null',
    ]);
    await expectCompletionLogged(service, last.headers.get('x-request-id'));

    const logs = service.logs().slice(start);
    expect(logs.length).toBeGreaterThan(0);
    expect(logs).toContain('[redacted]'); // the query token was there, and was blanked
    expect(logs).not.toContain(token);
    expect(logs.toLowerCase()).not.toContain(token.replace(/-/g, ''));
  });

  it('tag every line with the request id and echo it in x-request-id', async () => {
    const start = service.logs().length;
    const user = await createUser(service.url);
    const generated = await upload(service.url, user, makeWav({ durationSeconds: 0.2 }));
    expect(generated.status).toBe(200);
    const generatedId = generated.headers.get('x-request-id') ?? '';
    expect(generatedId).toMatch(UUID);

    const mine = 'client-req.42_a';
    const echoed = await fetch(
      `${service.url}${PREFIX}/record?record_id=${crypto.randomUUID()}&user_id=${user.user_id}`,
      {
        headers: { 'x-request-id': mine },
      },
    );
    expect(echoed.status).toBe(404);
    expect(echoed.headers.get('x-request-id')).toBe(mine);

    for (const invalid of ['has spaces in it', 'x'.repeat(65), 'inject\\"quote']) {
      const response = await fetch(`${service.url}/health`, { headers: { 'x-request-id': invalid } });
      expect(response.headers.get('x-request-id')).toMatch(UUID);
    }
    let lastId: string | null = null;
    for (const path of ['/health', '/ready', '/docs', '/openapi.json', '/nowhere', `${PREFIX}/users/?username=`]) {
      const response = await fetch(`${service.url}${path}`, { method: path.includes('users') ? 'POST' : 'GET' });
      lastId = response.headers.get('x-request-id');
      expect(lastId, path).toMatch(UUID);
    }
    await expectCompletionLogged(service, lastId);

    const lines = service
      .logs()
      .slice(start)
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as { reqId?: string; msg?: string });
    expect(lines.length).toBeGreaterThan(4);
    expect(lines.filter((line) => typeof line.reqId !== 'string')).toEqual([]);
    expect(lines.some((line) => line.reqId === generatedId)).toBe(true);
    expect(lines.some((line) => line.reqId === mine)).toBe(true);
  });
});
