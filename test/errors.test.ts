import { randomBytes, randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { PREFIX, createUser, openUpload, upload, type TestUser } from './kit/client.js';
import { createTestDatabase, databaseKinds, query, type DatabaseKind } from './kit/database.js';
import { tempFiles } from './kit/disk.js';
import { expectProblem, type ProblemJson } from './kit/expect.js';
import { streamRequest } from './kit/http.js';
import { multipartBody, multipartPartHead, multipartTail, type FormPart } from './kit/multipart.js';
import { logLines, startIsolatedService, startService, type IsolatedService as Service } from './kit/service.js';
import { storedFiles } from './kit/storage.js';
import { makeWav, withFormatTag } from './kit/wav.js';

const MAX_UPLOAD_BYTES = 64 * 1024;
const BOUNDARY = 'test-boundary-7MA4YWxkTrZu0gW';
// Tests where the database does not matter use PostgreSQL when there is one: it starts far faster than a fresh PGlite.
const FASTEST_KIND = databaseKinds.at(-1) ?? 'pglite';

/** A small valid WAV: 0.3 s of 8 kHz mono 16-bit, about 5 KB. */
const smallWav = () => makeWav({ durationSeconds: 0.3, sampleRate: 8000, channels: 1 });

const recordUrl = (service: Service, userId: string, query: Record<string, string> = {}) =>
  `${service.url}${PREFIX}/record/?${new URLSearchParams({ user_id: userId, ...query }).toString()}`;

/** POSTs a hand-written multipart body as `user`. */
function postForm(service: Service, user: TestUser, parts: readonly FormPart[], query: Record<string, string> = {}) {
  return fetch(recordUrl(service, user.user_id, query), {
    method: 'POST',
    headers: {
      authorization: `Bearer ${user.access_token}`,
      'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
    },
    body: multipartBody(parts, BOUNDARY),
  });
}

const wavPart = (data: Buffer, filename = 'recording.wav', contentType = 'audio/wav'): FormPart => ({
  name: 'file',
  filename,
  contentType,
  data,
});

/**
 * Tracks what a service holds: successful uploads are counted, and after a failure the temp folder must be
 * empty and the stored files (and, on PostgreSQL, the rows) must match the successes exactly.
 */
class Ledger {
  succeeded = 0;

  constructor(
    private readonly service: Service,
    private readonly kind: DatabaseKind,
  ) {}

  async expectSuccess(response: Response): Promise<string> {
    const text = await response.text();
    expect({ status: response.status, body: text }).toMatchObject({ status: 200 });
    this.succeeded += 1;
    return (JSON.parse(text) as { record_url: string }).record_url;
  }

  async expectNothingLeft(): Promise<void> {
    // Cleanup after a failed conversion finishes before the answer is sent, so no waiting is needed.
    const disk = await storedFiles(this.service.dataDir);
    expect(disk.temp).toEqual([]);
    expect(disk.records).toHaveLength(this.succeeded);
    // PostgreSQL can be asked while the app runs; PGlite has a single owner (see rowsAfterStop).
    if (this.kind === 'postgres') expect(await this.rows()).toBe(this.succeeded);
  }

  /** Counts rows once the service is stopped, which any database allows. */
  async rowsAfterStop(): Promise<number> {
    await this.service.stop();
    return this.rows();
  }

  private async rows(): Promise<number> {
    const where = { dataDir: this.service.dataDir, databaseUrl: this.service.database.url };
    const [row] = await query<{ count: number }>(where, 'select count(*)::int as count from records');
    return row?.count ?? -1;
  }
}

describe.each(databaseKinds)('errors (%s)', (kind) => {
  let service: Service;
  let ledger: Ledger;
  let alice: TestUser;
  let bob: TestUser;

  beforeAll(async () => {
    service = await startIsolatedService(kind, {
      MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES),
      CONVERT_CONCURRENCY: '2',
      LOG_LEVEL: 'warn',
    });
    ledger = new Ledger(service, kind);
    alice = await createUser(service.url);
    bob = await createUser(service.url);
  });
  afterAll(async () => {
    await service?.cleanup();
  });

  describe('400 for malformed parameters', () => {
    it('username: missing, empty, blank, overlong, with control or invisible characters', async () => {
      const usernames: Array<string | undefined> = [
        undefined,
        '',
        '   ',
        '\t',
        'x'.repeat(65),
        'é'.repeat(65),
        'bad\u0007name',
        'bad\nname',
        'a\u0000b',
        'zero\u200bwidth',
        'x'.repeat(300),
      ];
      for (const username of usernames) {
        const query = username === undefined ? '' : `?username=${encodeURIComponent(username)}`;
        const response = await fetch(`${service.url}${PREFIX}/users/${query}`, { method: 'POST' });
        await expectProblem(response, 400);
      }
      // The limits are the documented ones, not tighter: 64 letters of any script are a valid name.
      const tag = randomUUID().slice(0, 8);
      for (const username of [`${'é'.repeat(56)}${tag}`, `  ${'Ж'.repeat(56)}${tag}  `]) {
        const response = await fetch(`${service.url}${PREFIX}/users/?username=${encodeURIComponent(username)}`, {
          method: 'POST',
        });
        expect(response.status).toBe(200);
      }
    });

    it('user_id and record_id that are not UUIDs, or missing', async () => {
      for (const userId of ['not-a-uuid', `{${alice.user_id}}`, `urn:uuid:${alice.user_id}`, `${alice.user_id}0`, '']) {
        const response = await fetch(
          `${service.url}${PREFIX}/record/?${new URLSearchParams({ user_id: userId }).toString()}`,
          {
            method: 'POST',
            headers: { authorization: `Bearer ${alice.access_token}` },
            body: multipartForm(smallWav()),
          },
        );
        await expectProblem(response, 400);
      }
      const missingUser = await fetch(`${service.url}${PREFIX}/record/`, {
        method: 'POST',
        headers: { authorization: `Bearer ${alice.access_token}` },
        body: multipartForm(smallWav()),
      });
      await expectProblem(missingUser, 400);

      for (const query of [
        `record_id=nope&user_id=${alice.user_id}`,
        `record_id=${randomUUID()}&user_id=nope`,
        `user_id=${alice.user_id}`,
        `record_id=${randomUUID()}`,
        '',
      ]) {
        await expectProblem(await fetch(`${service.url}${PREFIX}/record?${query}`), 400);
      }
      await ledger.expectNothingLeft();
    });

    it('titles: overlong or with control characters, in the query or the form, before or after the file', async () => {
      const overlong = 't'.repeat(201);
      await expectProblem(await postForm(service, alice, [wavPart(smallWav())], { title: overlong }), 400);
      await expectProblem(await postForm(service, alice, [wavPart(smallWav())], { title: 'a\u0001b' }), 400);
      await expectProblem(
        await postForm(service, alice, [{ name: 'title', data: overlong }, wavPart(smallWav())]),
        400,
      );
      // Longer than the form's field limit as well: still a malformed parameter, not a too-large upload.
      await expectProblem(
        await postForm(service, alice, [{ name: 'title', data: 'x'.repeat(10_000) }, wavPart(smallWav())]),
        400,
      );
      // After the file the audio is already converted and stored; it must be removed again.
      await expectProblem(
        await postForm(service, alice, [wavPart(smallWav()), { name: 'title', data: overlong }]),
        400,
      );
      await ledger.expectNothingLeft();

      // 200 characters of any script are a valid title.
      await ledger.expectSuccess(
        await postForm(service, alice, [{ name: 'title', data: 'ü'.repeat(200) }, wavPart(smallWav())]),
      );
      await ledger.expectSuccess(await postForm(service, alice, [wavPart(smallWav())], { title: 'ü'.repeat(200) }));
    });
  });

  describe('401 with one answer for every authentication failure', () => {
    it('missing, wrong, malformed tokens, unknown users and another user’s token all look the same', async () => {
      const attempts: Array<{ name: string; userId: string; headers: Record<string, string>; query?: string }> = [
        { name: 'no token', userId: alice.user_id, headers: {} },
        { name: 'wrong token', userId: alice.user_id, headers: { authorization: `Bearer ${randomUUID()}` } },
        { name: 'wrong token in query', userId: alice.user_id, headers: {}, query: randomUUID() },
        { name: 'malformed token', userId: alice.user_id, headers: { authorization: 'Bearer not-a-token' } },
        { name: 'malformed token in query', userId: alice.user_id, headers: {}, query: 'x' },
        { name: 'empty bearer', userId: alice.user_id, headers: { authorization: 'Bearer ' } },
        { name: 'basic scheme', userId: alice.user_id, headers: { authorization: `Basic ${alice.access_token}` } },
        { name: 'two tokens', userId: alice.user_id, headers: { authorization: `Bearer ${alice.access_token} x` } },
        { name: 'unknown user', userId: randomUUID(), headers: { authorization: `Bearer ${alice.access_token}` } },
        {
          name: 'another user’s token',
          userId: alice.user_id,
          headers: { authorization: `Bearer ${bob.access_token}` },
        },
        { name: 'another user’s token in query', userId: alice.user_id, headers: {}, query: bob.access_token },
      ];
      const bodies = new Map<string, ProblemJson>();
      for (const attempt of attempts) {
        const query: Record<string, string> = attempt.query === undefined ? {} : { access_token: attempt.query };
        const response = await fetch(recordUrl(service, attempt.userId, query), {
          method: 'POST',
          headers: attempt.headers,
          body: multipartForm(smallWav()),
        });
        expect(response.headers.get('www-authenticate'), attempt.name).toMatch(/^Bearer/);
        bodies.set(attempt.name, await expectProblem(response, 401));
      }
      const first = [...bodies.values()][0];
      for (const [name, body] of bodies) expect(body, name).toEqual(first);
      await ledger.expectNothingLeft();
    });
  });

  describe('404 for records that are not there or not yours', () => {
    it('unknown record, another user’s record, and an unknown route', async () => {
      const url = new URL(await ledger.expectSuccess(await upload(service.url, alice, smallWav())));
      const recordId = url.searchParams.get('record_id') ?? '';
      expect((await fetch(url)).status).toBe(200);

      const cases = [
        `record_id=${randomUUID()}&user_id=${alice.user_id}`,
        `record_id=${recordId}&user_id=${bob.user_id}`,
        `record_id=${recordId}&user_id=${randomUUID()}`,
      ];
      const bodies: ProblemJson[] = [];
      for (const query of cases) {
        for (const accept of ['audio/mpeg', 'application/json']) {
          const response = await fetch(`${service.url}${PREFIX}/record?${query}`, { headers: { accept } });
          bodies.push(await expectProblem(response, 404));
        }
      }
      // Another user's record is as absent as one that never existed.
      for (const body of bodies) expect(body).toEqual(bodies[0]);
      await expectProblem(await fetch(`${service.url}${PREFIX}/no-such-route`), 404);
    });
  });

  describe('409 for a taken username', () => {
    it('compares usernames case-insensitively, after trimming', async () => {
      const base = `Case_${randomUUID().slice(0, 8)}`;
      expect((await createRawUser(base)).status).toBe(200);
      for (const variant of [base, base.toLowerCase(), base.toUpperCase(), ` ${base.toLowerCase()} `]) {
        await expectProblem(await createRawUser(variant), 409);
      }
    });

    it('compares non-ASCII usernames case-insensitively too', async () => {
      const base = `Émile_Ωmega_Жук_${randomUUID().slice(0, 8)}`;
      expect((await createRawUser(base)).status).toBe(200);
      await expectProblem(await createRawUser(base.toLowerCase()), 409);
      await expectProblem(await createRawUser(base.toUpperCase()), 409);
    });
  });

  describe('413 for an upload over MAX_UPLOAD_BYTES', () => {
    it('refuses a too-large WAV and keeps nothing of it', async () => {
      const big = makeWav({ durationSeconds: 2, sampleRate: 44100, channels: 1 });
      expect(big.length).toBeGreaterThan(MAX_UPLOAD_BYTES);
      await expectProblem(await upload(service.url, alice, big), 413);
      await ledger.expectNothingLeft();
    });

    it('answers while the body is still arriving, not after it', async () => {
      const request = streamRequest(recordUrl(service, alice.user_id), {
        headers: {
          authorization: `Bearer ${alice.access_token}`,
          'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
        },
      });
      const big = makeWav({ durationSeconds: 3, sampleRate: 44100, channels: 1 });
      await request.write(multipartPartHead({ name: 'file', filename: 'big.wav' }, BOUNDARY));
      // Send well past the limit, but never finish the body: the answer must come anyway.
      await request.write(big.subarray(0, MAX_UPLOAD_BYTES * 2));
      const response = await request.response;
      request.abort();
      await expectProblem(response, 413);
      await ledger.expectNothingLeft();
    });
  });

  describe('400 when there is no file part or no multipart body', () => {
    it('a form without a "file" part', async () => {
      await expectProblem(await postForm(service, alice, [{ name: 'title', data: 'only a title' }]), 400);
      await expectProblem(await postForm(service, alice, [{ ...wavPart(smallWav()), name: 'audio' }]), 400);
      await expectProblem(await postForm(service, alice, []), 400);
      // "file" as a plain field, not a file part.
      await expectProblem(await postForm(service, alice, [{ name: 'file', data: smallWav().toString('latin1') }]), 400);
      await ledger.expectNothingLeft();
    });

    it('bodies that are not multipart', async () => {
      const bodies: Array<{ type?: string; body?: Buffer | string }> = [
        { type: 'application/json', body: JSON.stringify({ file: 'x' }) },
        { type: 'application/json', body: '' },
        { type: 'application/octet-stream', body: smallWav() },
        { type: 'audio/wav', body: smallWav() },
        { type: 'text/plain', body: 'hello' },
        { type: 'application/x-www-form-urlencoded', body: 'file=abc' },
        {},
      ];
      for (const { type, body } of bodies) {
        const response = await fetch(recordUrl(service, alice.user_id), {
          method: 'POST',
          headers: {
            authorization: `Bearer ${alice.access_token}`,
            ...(type === undefined ? {} : { 'content-type': type }),
          },
          ...(body === undefined ? {} : { body }),
        });
        await expectProblem(response, 400);
      }
      await ledger.expectNothingLeft();
    });

    it('broken multipart: no boundary, or a body cut off before its end', async () => {
      const noBoundary = await fetch(recordUrl(service, alice.user_id), {
        method: 'POST',
        headers: { authorization: `Bearer ${alice.access_token}`, 'content-type': 'multipart/form-data' },
        body: multipartBody([wavPart(smallWav())], BOUNDARY),
      });
      await expectProblem(noBoundary, 400);

      const whole = multipartBody([wavPart(smallWav())], BOUNDARY);
      const cut = whole.subarray(0, whole.length - multipartTail(BOUNDARY).length - 2000);
      const truncated = await fetch(recordUrl(service, alice.user_id), {
        method: 'POST',
        headers: {
          authorization: `Bearer ${alice.access_token}`,
          'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
        },
        body: cut,
      });
      await expectProblem(truncated, 400);
      await ledger.expectNothingLeft();
    });
  });

  describe('415 for anything that is not audio the service reads, judged from its bytes', () => {
    it('text, random bytes, RIFF that is not WAVE, an empty file, a cut header; an MP3 named .wav is read', async () => {
      const mp3 = execFileSync('ffmpeg', [
        '-v',
        'error',
        '-f',
        'lavfi',
        '-i',
        'sine=duration=0.3',
        '-c:a',
        'libmp3lame',
        '-f',
        'mp3',
        'pipe:1',
      ]);
      const riffAvi = Buffer.concat([Buffer.from('RIFF\x24\x00\x00\x00AVI LIST', 'latin1'), Buffer.alloc(64)]);
      const dataBeforeFmt = Buffer.concat([
        Buffer.from('RIFF\x24\x10\x00\x00WAVEdata\x00\x10\x00\x00', 'latin1'),
        Buffer.alloc(4096),
      ]);
      const files: Array<[string, Buffer]> = [
        ['text', Buffer.from('This is plainly a text file, not a recording.\n'.repeat(20))],
        ['short text', Buffer.from('hi')],
        ['random bytes', randomBytes(8192)],
        ['RIFF AVI', riffAvi],
        ['RIFX (big-endian RIFF)', Buffer.concat([Buffer.from('RIFX', 'latin1'), smallWav().subarray(4)])],
        ['empty', Buffer.alloc(0)],
        ['header cut inside fmt', smallWav().subarray(0, 30)],
        ['data before fmt', dataBeforeFmt],
      ];
      for (const [name, bytes] of files) {
        const response = await upload(service.url, alice, bytes, { filename: 'recording.wav' });
        const body = await expectProblem(response, 415).catch((error: unknown) => {
          throw new Error(`${name}: ${String(error)}`);
        });
        expect(body.type, name).toBe('/problems/not-a-wav');
      }
      await ledger.expectNothingLeft();

      // Judged from the bytes only: a real WAV, or an MP3, with a misleading name and type is accepted.
      await ledger.expectSuccess(await upload(service.url, alice, mp3, { filename: 'recording.wav' }));
      await ledger.expectSuccess(await postForm(service, alice, [wavPart(smallWav(), 'song.mp3', 'audio/mpeg')]));
      await ledger.expectSuccess(await postForm(service, alice, [wavPart(smallWav(), 'notes.txt', 'text/plain')]));
    });
  });

  describe('422 for a WAV whose audio cannot be used', () => {
    it('unknown codec, undecodable data, no samples, too many channels, a rate out of range', async () => {
      const msAdpcmGarbage = Buffer.from(withFormatTag(smallWav(), 0x0002));
      randomBytes(4000).copy(msAdpcmGarbage, 44);
      const files: Array<[string, Buffer]> = [
        ['unknown codec 0x1234', withFormatTag(smallWav(), 0x1234)],
        ['MS ADPCM without its extra data', msAdpcmGarbage],
        ['zero data bytes', makeWav({ durationSeconds: 0 })],
        ['less than one sample frame', lessThanOneFrame()],
        ['header ends before data', smallWav().subarray(0, 36)],
        ['9 channels', makeWav({ durationSeconds: 0.1, channels: 9, sampleRate: 8000 })],
        ['rate 4000 Hz', makeWav({ durationSeconds: 0.3, sampleRate: 4000, channels: 1 })],
        ['rate 384000 Hz', makeWav({ durationSeconds: 0.02, sampleRate: 384_000, channels: 1 })],
        ['12-bit PCM', withBits(smallWav(), 12)],
      ];
      for (const [name, bytes] of files) {
        const response = await upload(service.url, alice, bytes);
        const body = await expectProblem(response, 422).catch((error: unknown) => {
          throw new Error(`${name}: ${String(error)}`);
        });
        expect(body.type, name).toBe('/problems/undecodable-audio');
        await ledger.expectNothingLeft();
      }
    });
  });

  describe('503 with Retry-After when the conversion queue is full', () => {
    let busy: Service;
    let busyLedger: Ledger;
    let carol: TestUser;

    beforeAll(async () => {
      busy = await startIsolatedService(kind, { CONVERT_CONCURRENCY: '1', CONVERT_QUEUE_SIZE: '0', LOG_LEVEL: 'warn' });
      busyLedger = new Ledger(busy, kind);
      carol = await createUser(busy.url);
    });
    afterAll(async () => {
      await busy?.cleanup();
    });

    const held: Array<{ abort(): void }> = [];
    afterEach(() => {
      // A test that failed half-way must not leave requests open: the service could not stop.
      for (const request of held.splice(0)) request.abort();
    });

    // Enough of the WAV that ffmpeg (which buffers its input before it opens the output) has started.
    const HELD_BYTES = 96 * 1024;
    const slowWav = () => makeWav({ durationSeconds: 3, sampleRate: 22050, channels: 1 });

    /** Starts an upload and sends only the first part of the WAV, holding the conversion slot open. */
    async function holdUpload(wav: Buffer) {
      const request = streamRequest(recordUrl(busy, carol.user_id), {
        headers: {
          authorization: `Bearer ${carol.access_token}`,
          'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
        },
      });
      held.push(request);
      await request.write(
        multipartPartHead({ name: 'file', filename: 'slow.wav', contentType: 'audio/wav' }, BOUNDARY),
      );
      await request.write(wav.subarray(0, HELD_BYTES));
      // ffmpeg opens its output once the header has arrived: then the slot is surely taken.
      await expect.poll(async () => (await tempFiles(busy.dataDir)).length, { timeout: 10_000 }).toBeGreaterThan(0);
      return request;
    }

    it('refuses a second upload before reading its body, and the first still completes', async () => {
      const wav = slowWav();
      const slow = await holdUpload(wav);

      const refused = await upload(busy.url, carol, smallWav());
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      await expectProblem(refused, 503);

      // A body that never finishes is refused all the same: admission comes before the body.
      const unread = streamRequest(recordUrl(busy, carol.user_id), {
        headers: {
          authorization: `Bearer ${carol.access_token}`,
          'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
        },
      });
      held.push(unread);
      await unread.write(multipartPartHead({ name: 'file', filename: 'x.wav' }, BOUNDARY));
      const unreadResponse = await unread.response;
      unread.abort();
      expect(Number(unreadResponse.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      await expectProblem(unreadResponse, 503);

      await slow.end(Buffer.concat([wav.subarray(HELD_BYTES), Buffer.from('\r\n'), multipartTail(BOUNDARY)]));
      const finished = await slow.response;
      expect({ status: finished.status, body: finished.text }).toMatchObject({ status: 200 });
      busyLedger.succeeded += 1;

      // The slot is free again.
      await busyLedger.expectSuccess(await upload(busy.url, carol, smallWav()));
      await busyLedger.expectNothingLeft();
    });

    it('a client that goes away mid-upload leaves nothing and frees its slot', async () => {
      const slow = await holdUpload(slowWav());
      slow.abort();
      await expect.poll(async () => await tempFiles(busy.dataDir), { timeout: 10_000 }).toEqual([]);
      // The slot is freed as the aborted request winds down: until then the service answers 503.
      const response = await vi.waitFor(
        async () => {
          const attempt = await upload(busy.url, carol, smallWav());
          if (attempt.status === 503) {
            await attempt.body?.cancel();
            throw new Error('the slot is still taken');
          }
          return attempt;
        },
        { timeout: 10_000, interval: 100 },
      );
      await busyLedger.expectSuccess(response);
      await busyLedger.expectNothingLeft();
    });

    it('stores a row for every success and none for a failure', async () => {
      // A success and a failure of its own, so that the count means something when this test runs alone.
      await busyLedger.expectSuccess(await upload(busy.url, carol, smallWav()));
      await expectProblem(await upload(busy.url, carol, Buffer.from('not a WAV at all')), 415);
      await busyLedger.expectNothingLeft();
      expect(await busyLedger.rowsAfterStop()).toBe(busyLedger.succeeded);
    });
  });

  it('stores a row for every success and none for a failure', async () => {
    // Successes and failures of its own (one converted and stored before it failed), so that the count means
    // something when this test runs alone; run after the others, it covers theirs too.
    await ledger.expectSuccess(await upload(service.url, alice, smallWav()));
    await expectProblem(await upload(service.url, alice, Buffer.from('not a WAV at all')), 415);
    await expectProblem(
      await postForm(service, alice, [wavPart(smallWav()), { name: 'title', data: 'a\u0001b' }]),
      400,
    );
    await ledger.expectNothingLeft();
    expect(await ledger.rowsAfterStop()).toBe(ledger.succeeded);
  });

  function createRawUser(username: string) {
    return fetch(`${service.url}${PREFIX}/users/?username=${encodeURIComponent(username)}`, { method: 'POST' });
  }
});

function multipartForm(wav: Buffer): FormData {
  const form = new FormData();
  form.append('file', new Blob([wav], { type: 'audio/wav' }), 'recording.wav');
  return form;
}

/** Declares another sample size in the fmt chunk (block size to match), keeping the data as it is. */
function withBits(wav: Buffer, bits: number): Buffer {
  const copy = Buffer.from(wav);
  const at = copy.indexOf('fmt ', 12, 'latin1');
  copy.writeUInt16LE(bits, at + 8 + 14);
  return copy;
}

/** A 16-bit stereo WAV whose data chunk holds a single byte: not even one sample frame. */
function lessThanOneFrame(): Buffer {
  const empty = makeWav({ durationSeconds: 0, channels: 2 });
  const wav = Buffer.concat([empty, Buffer.from([0x7f])]);
  wav.writeUInt32LE(1, wav.length - 5);
  wav.writeUInt32LE(wav.length - 8, 4);
  return wav;
}

describe(`500 for a failure nobody foresaw (${FASTEST_KIND})`, () => {
  it('answers a problem that tells nothing of the cause, and logs the error under the request id', async () => {
    const database = await createTestDatabase(FASTEST_KIND);
    let service = await startService({ databaseUrl: database.url });
    const { dataDir } = service;
    try {
      const user = await createUser(service.url);
      // Something the code relies on breaks underneath it: the column the list of records reads is renamed.
      const rename = 'alter table records rename column title to title_renamed_by_test';
      if (database.url !== undefined) {
        await query({ dataDir, databaseUrl: database.url }, rename);
      } else {
        // PGlite has one owner: change it while the service is stopped.
        await service.stop();
        await query({ dataDir, databaseUrl: undefined }, rename);
        service = await startService({ dataDir });
      }

      const requestId = 'broken-list-500';
      const response = await fetch(`${service.url}${PREFIX}/records?user_id=${user.user_id}`, {
        headers: { authorization: `Bearer ${user.access_token}`, 'x-request-id': requestId },
      });
      expect(response.headers.get('x-request-id')).toBe(requestId);
      const problem = await expectProblem(response, 500);
      // No SQL, no driver, table or column name in the answer (expectProblem rules out stack frames).
      expect(problem.detail).not.toMatch(/select|column|title|records|drizzle|postgres|pglite|query|sql|exist/i);
      expect(JSON.stringify(problem)).not.toMatch(/select|column|records|title_renamed|drizzle|postgres|pglite|sql/i);

      // The log has it all, at error level, under the request's id.
      const errors = logLines(service).filter((line) => line.reqId === requestId && line.level >= 50);
      expect(errors).toHaveLength(1);
      expect(JSON.stringify(errors[0])).toMatch(/title/);
      expect(errors[0]?.err?.stack).toEqual(expect.any(String));
    } finally {
      await service.stop();
      await database.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe(`a client that leaves while queued for a conversion slot (${FASTEST_KIND})`, () => {
  let service: Service;
  beforeAll(async () => {
    service = await startIsolatedService(FASTEST_KIND, {
      CONVERT_CONCURRENCY: '1',
      CONVERT_QUEUE_SIZE: '1',
      // The probes below fail authentication on purpose.
      RATE_LIMIT_AUTH_FAILURES: '0',
    });
  });
  afterAll(async () => {
    await service?.cleanup();
  });

  /**
   * Whether the queue is full, without joining it: a full service answers 503 before authenticating,
   * else the wrong token gets 401.
   */
  const probe = async () => {
    const response = await fetch(`${service.url}${PREFIX}/record/?user_id=${randomUUID()}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${randomUUID()}` },
    });
    await response.body?.cancel();
    return response.status;
  };

  it('is not a 500, frees its place in the queue, and the service carries on', async () => {
    const user = await createUser(service.url);
    const wav = makeWav({ durationSeconds: 3, sampleRate: 22050, channels: 1 });
    // A slow upload holds the only slot…
    const holder = await openUpload(service.url, user);
    await holder.write(wav.subarray(0, 96 * 1024));
    await expect.poll(async () => (await tempFiles(service.dataDir)).length, { timeout: 10_000 }).toBe(1);
    expect(await probe()).toBe(401);

    // …so the next one waits in the queue, which is then full.
    const requestId = 'queued-then-gone';
    const waiting = await openUpload(service.url, user, { headers: { 'x-request-id': requestId } });
    await expect.poll(probe, { timeout: 10_000 }).toBe(503);

    // Its client goes away while it waits.
    waiting.abort();
    await expect(waiting.response).rejects.toThrow();
    // It leaves the queue: the service has room for one waiting upload again.
    await expect.poll(probe, { timeout: 10_000 }).toBe(401);
    const itsLines = logLines(service).filter((line) => line.reqId === requestId);
    expect(itsLines.length).toBeGreaterThan(0);
    expect(itsLines.filter((line) => line.level >= 50 || line.res?.statusCode === 500)).toEqual([]);

    // The upload holding the slot completes, and the next one is converted at once.
    await holder.end(Buffer.concat([wav.subarray(96 * 1024), holder.form.tail]));
    const held = await holder.response;
    expect({ status: held.status, body: held.text }).toMatchObject({ status: 200 });
    expect((await upload(service.url, user, smallWav())).status).toBe(200);
    expect(await tempFiles(service.dataDir)).toEqual([]);
    // Nothing went wrong anywhere: the only error lines are the 503s (Busy) the probes asked for.
    const errors = logLines(service).filter((line) => line.level >= 50 || line.res?.statusCode === 500);
    expect(errors.filter((line) => line.err?.type !== 'Busy')).toEqual([]);
  });
});
