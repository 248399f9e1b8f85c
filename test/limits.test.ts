import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, openUpload, upload, PREFIX, type TestUser } from './kit/client.js';
import { expectNoTempFiles as expectNoTempFilesIn, expectProblem } from './kit/expect.js';
import { rawHttp, sendSlowly } from './kit/http.js';
import { multipartBody } from './kit/multipart.js';
import { ffmpegDescendants } from './kit/process.js';
import { startIsolatedService, type IsolatedService as Service } from './kit/service.js';
import { makeWav } from './kit/wav.js';

const expectNoTempFiles = (service: Service) => expectNoTempFilesIn(service.dataDir);

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
    await expectProblem(await create('a'.repeat(65)), 400);
    expect((await create('b'.repeat(5000))).status).toBe(400);
  });

  it('request line and headers: 431 problem+json past 16 KiB', async () => {
    const port = Number(new URL(service.url).port);
    const longQuery = await rawHttp(
      port,
      `GET ${PREFIX}/record?record_id=${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    );
    await expectProblem(longQuery, 431);
    const bigHeader = await rawHttp(port, `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`);
    await expectProblem(bigHeader, 431);
    // Within the limit, a long but valid query is judged by the route: 400, not a crash.
    const query = await fetch(`${service.url}${PREFIX}/record?record_id=${'a'.repeat(8000)}&user_id=x`);
    expect(query.status).toBe(400);
  });

  it('multipart: a field over 4 KiB is cut by the parser and, not being the title, ignored', async () => {
    const boundary = 'limitsboundary';
    const wav = makeWav({ durationSeconds: 0.1, sampleRate: 8000, channels: 1 });
    const response = await post(
      multipartBody(
        [
          { name: 'note', data: 'n'.repeat(5000) },
          { name: 'file', filename: 'a.wav', data: wav },
        ],
        boundary,
      ),
      boundary,
    );
    expect(response.status, await response.clone().text()).toBe(200);
    await expectNoTempFiles(service);
  });

  it('multipart: more than 16 parts or 8 fields is 413; a second "file" part is 400', async () => {
    const wav = makeWav({ durationSeconds: 0.1, sampleRate: 8000, channels: 1 });
    const boundary = 'limitsboundary';
    const cases = [
      Array.from({ length: 17 }, (_, i) => ({ name: `p${i}`, filename: `x${i}.bin`, data: 'x' })),
      Array.from({ length: 9 }, (_, i) => ({ name: `f${i}`, data: 'v' })),
    ];
    for (const parts of cases) {
      const response = await post(multipartBody(parts, boundary), boundary);
      expect(response.status, await response.clone().text()).toBe(413);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }
    // One recording per upload: a form with two is malformed, not too large (issue 9).
    const twoFiles = [
      { name: 'file', filename: 'a.wav', data: wav },
      { name: 'file', filename: 'b.wav', data: wav },
    ];
    const response = await post(multipartBody(twoFiles, boundary), boundary);
    expect(response.status, await response.clone().text()).toBe(400);
    await expectNoTempFiles(service);
  });

  it('upload bytes: 413 while the body is still streaming', async () => {
    // 44.1 kHz stereo: the 64 KiB limit comes after 0.37 s of audio, long before the 2 s one.
    const wav = makeWav({ durationSeconds: 1, unknownDataSize: true });
    const request = await openUpload(service.url, user);
    await request.write(wav.subarray(0, 44));
    // Up to 1 MiB of audio, slowly; the limit is 64 KiB.
    const audio = Buffer.concat(Array.from({ length: 128 }, () => wav.subarray(44, 44 + 8192)));
    const sent = await sendSlowly(request, audio, { bytes: 8192, pauseMs: 10 });
    request.abort();
    const answer = request.answer ?? (await request.response);
    const problem = await expectProblem(answer, 413);
    // The byte limit answered, not the duration limit.
    expect(problem.type).not.toBe('/problems/too-long');
    expect(problem.detail).toMatch(/65536 bytes/);
    expect(sent).toBeLessThan(512 * 1024);
    await expectNoTempFiles(service);
  });

  it('duration: judged from the header before converting, and counted during conversion', async () => {
    // Declared: 3 s of 8 kHz mono, over the 2 s limit; only the header is sent, the answer comes anyway.
    const declared = makeWav({ durationSeconds: 3, sampleRate: 8000, channels: 1 });
    const request = await openUpload(service.url, user);
    await request.write(declared.subarray(0, 44));
    const early = await request.response;
    request.abort();
    expect(early.status).toBe(413);
    expect(JSON.parse(early.text)).toMatchObject({ type: '/problems/too-long' });

    // Unknown size (a streaming writer, sending as it records): the limit is enforced as the audio arrives.
    const streamed = makeWav({ durationSeconds: 3, sampleRate: 8000, channels: 1, unknownDataSize: true });
    const recording = await openUpload(service.url, user);
    await recording.write(streamed.subarray(0, 44));
    await sendSlowly(recording, streamed.subarray(44), { bytes: 4000, pauseMs: 20 });
    const cut = await recording.response;
    recording.abort();
    expect(cut.status).toBe(413);
    expect(JSON.parse(cut.text)).toMatchObject({ type: '/problems/too-long' });
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
    const stalled = await openUpload(service.url, user);
    await stalled.write(wav.subarray(0, wav.length / 2));
    const stalledAt = Date.now();
    // It holds the only slot once its encoder runs (the service runs in this process); one queued behind it
    // for longer than the idle timeout is not idling: waiting for a slot is not.
    await expect.poll(() => ffmpegDescendants(process.pid, { conversionsOnly: true })).toHaveLength(1);
    const queued = upload(service.url, user, makeWav({ durationSeconds: 0.5, sampleRate: 8000, channels: 1 }));

    const cut = await stalled.response;
    const cutAfter = Date.now() - stalledAt;
    expect(cut.status).toBe(408);
    expect(cut.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(cut.headers.connection).toBe('close');
    expect(cutAfter).toBeGreaterThanOrEqual(900);
    expect(cutAfter).toBeLessThan(8000);
    stalled.abort();

    const next = await queued;
    expect(next.status, await next.clone().text()).toBe(200);
    await expectNoTempFiles(service);
  });

  // The body's deadline (CONVERT_TIMEOUT_SECONDS from admission) ends a trickle that never idles: 408.
  it('a trickle that never stops long enough to idle is bounded by the conversion wall time', async () => {
    const wav = makeWav({ durationSeconds: 1, sampleRate: 8000, channels: 1 });
    const startedAt = Date.now();
    const trickle = await openUpload(service.url, user);
    await trickle.write(wav.subarray(0, 200));
    // 100 bytes every 300 ms: never idle for 1 s, and 16 KB would take ~50 s.
    await sendSlowly(trickle, wav.subarray(200), { bytes: 100, pauseMs: 300 });
    const answer = await trickle.response;
    trickle.abort();
    expect(answer.status).toBe(408);
    expect(answer.text).toMatch(/within 3 seconds/);
    expect(Date.now() - startedAt).toBeLessThan(10_000);
    await expectNoTempFiles(service);
    // The slot is free again.
    expect((await upload(service.url, user, makeWav({ durationSeconds: 0.3, sampleRate: 8000 }))).status).toBe(200);
  });
});
