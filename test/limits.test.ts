import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, upload, PREFIX, type TestUser } from './helpers/client.js';
import { multipartAround, openUpload, sleep, writeChunk, type Answer } from './helpers/multipart.js';
import { rawHttp } from './helpers/raw-http.js';
import { startIsolatedService } from './helpers/service.js';
import { makeWav } from './helpers/wav.js';

type Service = Awaited<ReturnType<typeof startIsolatedService>>;

const expectProblem = (answer: { status: number; headers: Record<string, unknown> }, status: number) => {
  expect(answer.status).toBe(status);
  expect(String(answer.headers['content-type'])).toMatch(/^application\/problem\+json/);
};

async function expectNoTempFiles(service: Service): Promise<void> {
  await expect.poll(() => readdir(join(service.dataDir, 'tmp')), { timeout: 10_000 }).toEqual([]);
}

/** Multipart by hand, for bodies no form library would build. */
function form(boundary: string, parts: Array<{ name: string; filename?: string; body: Buffer | string }>): Buffer {
  return Buffer.concat([
    ...parts.flatMap((part) => [
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"` +
          `${part.filename === undefined ? '' : `; filename="${part.filename}"`}\r\n\r\n`,
      ),
      Buffer.from(part.body),
      Buffer.from('\r\n'),
    ]),
    Buffer.from(`--${boundary}--\r\n`),
  ]);
}

describe('size and count limits', () => {
  let service: Service;
  let user: TestUser;
  const post = (body: Buffer, boundary: string) =>
    fetch(`${service.url}${PREFIX}/record/?user_id=${user.user_id}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${user.access_token}`,
        'content-type': `multipart/form-data; boundary=${boundary}`,
      },
      body,
    });

  beforeAll(async () => {
    service = await startIsolatedService('pglite', { MAX_UPLOAD_BYTES: '65536', MAX_DURATION_SECONDS: '2' });
    user = await createUser(service.url);
  });
  afterAll(async () => {
    await service.cleanup();
  });

  it('username: 64 characters after trimming, no more', async () => {
    const create = (name: string) =>
      fetch(`${service.url}${PREFIX}/users/?username=${encodeURIComponent(name)}`, { method: 'POST' });
    expect((await create(`  ${'ü'.repeat(64)}  `)).status).toBe(200);
    const long = await create('a'.repeat(65));
    expectProblem({ status: long.status, headers: { 'content-type': long.headers.get('content-type') } }, 400);
    expect((await create('b'.repeat(5000))).status).toBe(400);
  });

  it('request line and headers: 431 problem+json past 16 KiB', async () => {
    const port = Number(new URL(service.url).port);
    const longQuery = await rawHttp(
      port,
      `GET ${PREFIX}/record?record_id=${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    );
    expectProblem(longQuery, 431);
    const bigHeader = await rawHttp(port, `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`);
    expectProblem(bigHeader, 431);
    // Within the limit, a long but valid query is judged by the route: 400, not a crash.
    const query = await fetch(`${service.url}${PREFIX}/record?record_id=${'a'.repeat(8000)}&user_id=x`);
    expect(query.status).toBe(400);
  });

  it('multipart: a field over 4 KiB is cut by the parser and, not being the title, ignored', async () => {
    const boundary = 'limitsboundary';
    const wav = makeWav({ durationSeconds: 0.1, sampleRate: 8000, channels: 1 });
    const response = await post(
      form(boundary, [
        { name: 'note', body: 'n'.repeat(5000) },
        { name: 'file', filename: 'a.wav', body: wav },
      ]),
      boundary,
    );
    expect(response.status, await response.clone().text()).toBe(200);
    await expectNoTempFiles(service);
  });

  it('multipart: more than 16 parts, 8 fields or 1 file is 413', async () => {
    const wav = makeWav({ durationSeconds: 0.1, sampleRate: 8000, channels: 1 });
    const boundary = 'limitsboundary';
    const cases = [
      Array.from({ length: 17 }, (_, i) => ({ name: `p${i}`, filename: `x${i}.bin`, body: 'x' })),
      Array.from({ length: 9 }, (_, i) => ({ name: `f${i}`, body: 'v' })),
      [
        { name: 'file', filename: 'a.wav', body: wav },
        { name: 'file', filename: 'b.wav', body: wav },
      ],
    ];
    for (const parts of cases) {
      const response = await post(form(boundary, parts), boundary);
      expect(response.status, await response.clone().text()).toBe(413);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }
    await expectNoTempFiles(service);
  });

  it('upload bytes: 413 while the body is still streaming', async () => {
    const wav = makeWav({ durationSeconds: 1, sampleRate: 8000, channels: 1, unknownDataSize: true });
    const body = multipartAround();
    const { req, answer } = openUpload(
      `${service.url}${PREFIX}/record/?user_id=${user.user_id}`,
      user.access_token,
      body.contentType,
    );
    let answered: Answer | undefined;
    answer.then(
      (value) => (answered = value),
      () => {},
    );
    await writeChunk(req, Buffer.concat([body.head, wav.subarray(0, 44)]));
    let sent = 0;
    // Up to 1 MiB of audio, slowly; the limit is 64 KiB.
    while (answered === undefined && sent < 1024 * 1024) {
      await writeChunk(req, wav.subarray(44, 44 + 8192)).catch(() => {});
      sent += 8192;
      await sleep(10);
    }
    req.destroy();
    expect(answered?.status).toBe(413);
    expect(answered?.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(sent).toBeLessThan(512 * 1024);
    await expectNoTempFiles(service);
  });

  it('duration: judged from the header before converting, and counted during conversion', async () => {
    // Declared: 3 s of 8 kHz mono, over the 2 s limit; only the header is sent, the answer comes anyway.
    const declared = makeWav({ durationSeconds: 3, sampleRate: 8000, channels: 1 });
    const body = multipartAround();
    const { req, answer } = openUpload(
      `${service.url}${PREFIX}/record/?user_id=${user.user_id}`,
      user.access_token,
      body.contentType,
    );
    await writeChunk(req, Buffer.concat([body.head, declared.subarray(0, 44)]));
    const early = await answer;
    req.destroy();
    expect(early.status).toBe(413);
    expect(JSON.parse(early.body)).toMatchObject({ type: '/problems/too-long' });

    // Unknown size (a streaming writer, sending as it records): the limit is enforced as the audio arrives.
    const streamed = makeWav({ durationSeconds: 3, sampleRate: 8000, channels: 1, unknownDataSize: true });
    const live = multipartAround();
    const recording = openUpload(
      `${service.url}${PREFIX}/record/?user_id=${user.user_id}`,
      user.access_token,
      live.contentType,
    );
    let stopped = false;
    recording.answer.then(
      () => (stopped = true),
      () => {},
    );
    await writeChunk(recording.req, Buffer.concat([live.head, streamed.subarray(0, 44)]));
    for (let offset = 44; offset < streamed.length && !stopped; offset += 4000) {
      await writeChunk(recording.req, streamed.subarray(offset, offset + 4000)).catch(() => {});
      await sleep(20);
    }
    const cut = await recording.answer;
    recording.req.destroy();
    expect(cut.status).toBe(413);
    expect(JSON.parse(cut.body)).toMatchObject({ type: '/problems/too-long' });
    await expectNoTempFiles(service);
    // Under the limit still works.
    expect((await upload(service.url, user, makeWav({ durationSeconds: 1.5, sampleRate: 8000 }))).status).toBe(200);
  });
});

describe('duration limit, body in one piece', () => {
  let service: Service;
  let user: TestUser;
  beforeAll(async () => {
    service = await startIsolatedService('pglite', { MAX_DURATION_SECONDS: '2' });
    user = await createUser(service.url);
  });
  afterAll(async () => {
    await service.cleanup();
  });

  // With an unknown data size the first chunk read counts too: a short over-long WAV may arrive in one.
  it('an over-long WAV of unknown size that arrives in one chunk is refused', async () => {
    const streamed = makeWav({ durationSeconds: 3, sampleRate: 8000, channels: 1, unknownDataSize: true });
    const response = await upload(service.url, user, streamed);
    expect(response.status).toBe(413);
  });
});

describe('slow clients and wall time', () => {
  let service: Service;
  let user: TestUser;

  beforeAll(async () => {
    service = await startIsolatedService('pglite', {
      UPLOAD_IDLE_TIMEOUT_SECONDS: '1',
      CONVERT_TIMEOUT_SECONDS: '3',
      CONVERT_CONCURRENCY: '1',
    });
    user = await createUser(service.url);
  });
  afterAll(async () => {
    await service.cleanup();
  });

  it('an upload that stops sending is cut with 408 and frees its slot for the one queued behind it', async () => {
    const wav = makeWav({ durationSeconds: 1, sampleRate: 8000, channels: 1 });
    const body = multipartAround();
    const stalled = openUpload(
      `${service.url}${PREFIX}/record/?user_id=${user.user_id}`,
      user.access_token,
      body.contentType,
    );
    await writeChunk(stalled.req, Buffer.concat([body.head, wav.subarray(0, wav.length / 2)]));
    const stalledAt = Date.now();
    // Queued behind it for longer than the idle timeout: waiting for a slot is not idling.
    await sleep(200);
    const queued = upload(service.url, user, makeWav({ durationSeconds: 0.5, sampleRate: 8000, channels: 1 }));

    const cut = await stalled.answer;
    const cutAfter = Date.now() - stalledAt;
    expect(cut.status).toBe(408);
    expect(cut.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(cut.headers.connection).toBe('close');
    expect(cutAfter).toBeGreaterThanOrEqual(900);
    expect(cutAfter).toBeLessThan(8000);
    stalled.req.destroy();

    const next = await queued;
    expect(next.status, await next.clone().text()).toBe(200);
    await expectNoTempFiles(service);
  });

  // When the wall-time timer kills ffmpeg while the upload still trickles in, the answer is the timeout's 422.
  it('a trickle that never stops long enough to idle is bounded by the conversion wall time', async () => {
    const wav = makeWav({ durationSeconds: 1, sampleRate: 8000, channels: 1 });
    const body = multipartAround();
    const trickle = openUpload(
      `${service.url}${PREFIX}/record/?user_id=${user.user_id}`,
      user.access_token,
      body.contentType,
    );
    let answered = false;
    trickle.answer.then(
      () => (answered = true),
      () => {},
    );
    const startedAt = Date.now();
    await writeChunk(trickle.req, Buffer.concat([body.head, wav.subarray(0, 200)]));
    // 100 bytes every 300 ms: never idle for 1 s, and 16 KB would take ~50 s.
    for (let offset = 200; offset < wav.length && !answered; offset += 100) {
      await writeChunk(trickle.req, wav.subarray(offset, offset + 100)).catch(() => {});
      await sleep(300);
    }
    const answer = await trickle.answer;
    trickle.req.destroy();
    expect(answer.status).toBe(422);
    expect(answer.body).toMatch(/longer than 3 seconds/);
    expect(Date.now() - startedAt).toBeLessThan(10_000);
    await expectNoTempFiles(service);
    // The slot is free again.
    expect((await upload(service.url, user, makeWav({ durationSeconds: 0.3, sampleRate: 8000 }))).status).toBe(200);
  });
});
