import { readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import contentDisposition from 'content-disposition';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createUser, openUpload, recordIdOf, upload, type TestUser } from './kit/client.js';
import { databaseKinds, query } from './kit/database.js';
import { tempFiles } from './kit/disk.js';
import { expectNoTempFiles, expectProblem } from './kit/expect.js';
import { startIsolatedService, type IsolatedService as Service } from './kit/service.js';
import { isStored, onS3, recordKeyOf, storedFiles } from './kit/storage.js';
import { makeWav } from './kit/wav.js';

interface RecordJson {
  record_url: string;
  record_id: string;
  user_id: string;
  title: string | null;
  original_filename: string | null;
  created_at: string;
  duration_seconds: number;
  size_bytes: number;
  sample_rate: number;
  channels: number;
  bitrate_kbps: number;
}

interface PageJson {
  records: RecordJson[];
  next_cursor: string | null;
}

const PREFIXES = ['/api/v1', '/api_v1'] as const;
const QUOTA_TYPE = '/problems/quota-exceeded';
// Constant bitrate makes sizes predictable (quota tests) and files large enough to outlast socket buffers.
const ENCODING = { MP3_BITRATE_KBPS: '320' };
const clip = (seconds = 0.2) => makeWav({ durationSeconds: seconds });

interface CallOptions {
  readonly method?: string;
  readonly token?: string;
  readonly tokenInQuery?: boolean;
  readonly query?: Record<string, string>;
  readonly body?: unknown;
  readonly prefix?: string;
}

/** One API call as a client makes it: the token as a Bearer header unless asked for in the query. */
async function call(service: Service, path: string, options: CallOptions = {}): Promise<Response> {
  const query = new URLSearchParams(options.query);
  if (options.token !== undefined && options.tokenInQuery === true) query.set('access_token', options.token);
  const headers: Record<string, string> = {};
  if (options.token !== undefined && options.tokenInQuery !== true) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const search = query.toString();
  return fetch(`${service.url}${options.prefix ?? '/api/v1'}${path}${search === '' ? '' : `?${search}`}`, {
    method: options.method ?? 'GET',
    headers,
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
}

async function json<T>(response: Response, status = 200): Promise<T> {
  const text = await response.text();
  if (response.status !== status) throw new Error(`expected ${status}, got ${response.status}: ${text}`);
  return JSON.parse(text) as T;
}

/** Uploads a clip and answers its record id. */
async function addRecord(
  service: Service,
  user: TestUser,
  options: { title?: string; seconds?: number; filename?: string; prefix?: string } = {},
): Promise<string> {
  const response = await upload(service.url, user, clip(options.seconds), options);
  const { record_url: url } = await json<{ record_url: string }>(response);
  return recordIdOf(url);
}

function listPage(service: Service, user: TestUser, query: Record<string, string> = {}, prefix?: string) {
  return call(service, '/records', {
    token: user.access_token,
    query: { user_id: user.user_id, ...query },
    ...(prefix === undefined ? {} : { prefix }),
  });
}

/** Every record of the user, following next_cursor to the end. */
async function listAll(service: Service, user: TestUser, query: Record<string, string> = {}): Promise<RecordJson[]> {
  const all: RecordJson[] = [];
  let cursor: string | null = null;
  do {
    const page: PageJson = await json<PageJson>(
      await listPage(service, user, { ...query, ...(cursor === null ? {} : { cursor }) }),
    );
    all.push(...page.records);
    cursor = page.next_cursor;
  } while (cursor !== null);
  return all;
}

/** Whether the record's MP3 is stored: its file under <dataDir>/records, or its object on S3. */
const hasAudio = (service: Service, recordId: string) => isStored(service.dataDir, recordKeyOf(recordId));

/** Every stored MP3, by record id. */
async function storedRecordIds(service: Service): Promise<string[]> {
  return (await storedFiles(service.dataDir)).records;
}

/** Files this process has open whose path was unlinked (Linux shows them as "<path> (deleted)"). */
async function openDeletedFiles(): Promise<string[]> {
  const targets: string[] = [];
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target.endsWith(' (deleted)')) targets.push(target);
  }
  return targets;
}

describe.each(databaseKinds)('managing records and accounts (%s)', (kind) => {
  let service: Service;

  beforeAll(async () => {
    service = await startIsolatedService(kind, ENCODING);
  });
  afterAll(async () => {
    await service.cleanup();
  });

  it('pages through records newest first, with no duplicate or skip while records are added and deleted', async () => {
    const user = await createUser(service.url);
    const original: string[] = [];
    for (let index = 0; index < 7; index++) original.push(await addRecord(service, user, { title: `take ${index}` }));
    const newestFirst = [...original].reverse();

    const first = await json<PageJson>(await listPage(service, user, { limit: '3' }));
    expect(first.records.map((record) => record.record_id)).toEqual(newestFirst.slice(0, 3));
    expect(first.next_cursor).toMatch(/^[\w-]+$/);

    // Between pages: two new uploads, one already-seen record deleted, one not-yet-seen record deleted.
    const added = [await addRecord(service, user), await addRecord(service, user)];
    const seenAndDeleted = newestFirst[1] ?? '';
    const unseenAndDeleted = newestFirst[4] ?? '';
    for (const recordId of [seenAndDeleted, unseenAndDeleted]) {
      const response = await call(service, `/records/${recordId}`, {
        method: 'DELETE',
        token: user.access_token,
        query: { user_id: user.user_id },
      });
      expect(response.status).toBe(204);
    }

    const second = await json<PageJson>(await listPage(service, user, { limit: '3', cursor: first.next_cursor ?? '' }));
    expect(second.records.map((record) => record.record_id)).toEqual([newestFirst[3], newestFirst[5], newestFirst[6]]);
    expect(second.next_cursor).toBeNull();
    const seen = [...first.records, ...second.records].map((record) => record.record_id);
    expect(new Set(seen).size).toBe(seen.length);
    for (const recordId of added) expect(seen).not.toContain(recordId);

    // A fresh listing shows the new records first, and the dates never go up.
    const everything = await listAll(service, user, { limit: '2' });
    expect(everything.map((record) => record.record_id)).toEqual(
      [...added.reverse(), ...newestFirst].filter((id) => id !== seenAndDeleted && id !== unseenAndDeleted),
    );
    const dates = everything.map((record) => Date.parse(record.created_at));
    expect([...dates].sort((a, b) => b - a)).toEqual(dates);
  });

  it('describes each record fully, in the list and alone', async () => {
    const user = await createUser(service.url);
    const recordId = await addRecord(service, user, { title: 'Interview', filename: 'interview.wav' });
    const [listed] = (await json<PageJson>(await listPage(service, user))).records;
    const alone = await json<RecordJson>(
      await call(service, `/records/${recordId}`, { token: user.access_token, query: { user_id: user.user_id } }),
    );
    expect(alone).toEqual(listed);
    expect(alone).toMatchObject({
      record_url: `${service.url}/api/v1/record?record_id=${recordId}&user_id=${user.user_id}`,
      record_id: recordId,
      user_id: user.user_id,
      title: 'Interview',
      original_filename: 'interview.wav',
      sample_rate: 44100,
      channels: 2,
    });
    expect(alone.duration_seconds).toBeCloseTo(0.2, 2);
    expect(alone.size_bytes).toBeGreaterThan(0);
    expect(alone.bitrate_kbps).toBeGreaterThanOrEqual(320);
    expect(Date.now() - Date.parse(alone.created_at)).toBeLessThan(60_000);

    const missing = await call(service, `/records/${crypto.randomUUID()}`, {
      token: user.access_token,
      query: { user_id: user.user_id },
    });
    expect((await expectProblem(missing, 404)).detail).toBe('No such record for this user.');
    const malformed = await call(service, '/records/not-a-uuid', {
      token: user.access_token,
      query: { user_id: user.user_id },
    });
    await expectProblem(malformed, 400);
  });

  it('refuses page sizes outside 1–200 and cursors it did not give out', async () => {
    const user = await createUser(service.url);
    await addRecord(service, user);
    for (const limit of ['0', '201', '-1', 'many', '1.5']) {
      await expectProblem(await listPage(service, user, { limit }), 400);
    }
    for (const limit of ['1', '200']) {
      expect((await json<PageJson>(await listPage(service, user, { limit }))).records).toHaveLength(1);
    }
    const forged = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    for (const cursor of [
      'garbage!',
      forged({ a: 1 }),
      forged(['2026-02-30T00:00:00.000000Z', 1]),
      forged(['2026-01-01T00:00:00.000000Z', -1]),
      forged(['yesterday', 1]),
    ]) {
      expect((await expectProblem(await listPage(service, user, { cursor }), 400)).detail).toMatch(/cursor/);
    }
    // A well-formed cursor from the past lists what is older than it: nothing.
    const old = await json<PageJson>(
      await listPage(service, user, { cursor: forged(['2000-01-01T00:00:00.000000Z', 1]) }),
    );
    expect(old).toEqual({ records: [], next_cursor: null });
  });

  it('filters by a case-insensitive substring of the title, LIKE wildcards taken literally', async () => {
    const user = await createUser(service.url);
    const titles = ['Morning interview', 'evening INTERVIEW', '100% done', 'under_score', 'back\\slash', 'plain'];
    const ids = new Map<string, string>();
    for (const title of titles) ids.set(title, await addRecord(service, user, { title }));
    const titlesFor = async (q: string, limit = '50') =>
      (await listAll(service, user, { q, limit })).map((record) => record.title);

    expect(await titlesFor('interview')).toEqual(['evening INTERVIEW', 'Morning interview']);
    expect(await titlesFor('InTeRvIeW', '1')).toEqual(['evening INTERVIEW', 'Morning interview']);
    expect(await titlesFor('%')).toEqual(['100% done']);
    expect(await titlesFor('_')).toEqual(['under_score']);
    expect(await titlesFor('\\')).toEqual(['back\\slash']);
    expect(await titlesFor('nothing like it')).toEqual([]);
    expect(await titlesFor('')).toHaveLength(titles.length);
  });

  it('renames a record, and the download is named after the new title', async () => {
    const user = await createUser(service.url);
    const recordId = await addRecord(service, user, { title: 'draft', filename: 'memo.wav' });
    const rename = (title: unknown) =>
      call(service, `/records/${recordId}`, {
        method: 'PATCH',
        token: user.access_token,
        query: { user_id: user.user_id },
        body: { title },
      });
    const downloadName = async (url: string) => {
      const response = await fetch(url);
      expect(response.status).toBe(200);
      await response.arrayBuffer();
      return contentDisposition.parse(response.headers.get('content-disposition') ?? '').parameters;
    };

    const renamed = await json<RecordJson>(await rename('  Интервью — final  '));
    expect(renamed.title).toBe('Интервью — final');
    expect(renamed.record_id).toBe(recordId);
    expect((await downloadName(renamed.record_url)).filename).toBe('Интервью — final.mp3');

    const cleared = await json<RecordJson>(await rename(null));
    expect(cleared.title).toBeNull();
    expect((await downloadName(cleared.record_url)).filename).toBe('memo.mp3');
    expect((await json<RecordJson>(await rename('again'))).title).toBe('again');
    expect((await json<RecordJson>(await rename('   '))).title).toBeNull();

    await expectProblem(await rename('x'.repeat(201)), 400);
    await expectProblem(await rename('bell\u0007'), 400);
    const noBody = await call(service, `/records/${recordId}`, {
      method: 'PATCH',
      token: user.access_token,
      query: { user_id: user.user_id },
    });
    await expectProblem(noBody, 400);
    const unknown = await call(service, `/records/${crypto.randomUUID()}`, {
      method: 'PATCH',
      token: user.access_token,
      query: { user_id: user.user_id },
      body: { title: 'nope' },
    });
    await expectProblem(unknown, 404);
  });

  it('deletes a record: its row, its URL and its file', async () => {
    const user = await createUser(service.url);
    const keep = await addRecord(service, user);
    const recordId = await addRecord(service, user);
    const { record_url: url } = await json<RecordJson>(
      await call(service, `/records/${recordId}`, { token: user.access_token, query: { user_id: user.user_id } }),
    );
    expect(await hasAudio(service, recordId)).toBe(true);

    const remove = () =>
      call(service, `/records/${recordId}`, {
        method: 'DELETE',
        token: user.access_token,
        query: { user_id: user.user_id },
      });
    const deleted = await remove();
    expect(deleted.status).toBe(204);
    expect(await deleted.text()).toBe('');

    expect(await hasAudio(service, recordId)).toBe(false);
    await expectProblem(await fetch(url), 404);
    await expectProblem(
      await call(service, `/records/${recordId}`, { token: user.access_token, query: { user_id: user.user_id } }),
      404,
    );
    await expectProblem(await remove(), 404);
    expect((await listAll(service, user)).map((record) => record.record_id)).toEqual([keep]);
    expect(await hasAudio(service, keep)).toBe(true);
  });

  it('lets a download that started before the delete finish with the whole, unchanged file', async () => {
    const user = await createUser(service.url);
    // 200 s at 320 kbit/s: an 8 MB MP3, more than the socket buffers hold, so the server is still reading it.
    const response = await upload(
      service.url,
      user,
      makeWav({ durationSeconds: 200, sampleRate: 32000, channels: 1, bitsPerSample: 8 }),
    );
    const { record_url: url } = await json<{ record_url: string }>(response);
    const recordId = new URL(url).searchParams.get('record_id') ?? '';
    const expected = Buffer.from(await (await fetch(url)).arrayBuffer());
    expect(expected.length).toBeGreaterThan(7_000_000);

    const download = await fetch(url);
    expect(download.status).toBe(200);
    expect(Number(download.headers.get('content-length'))).toBe(expected.length);
    const reader = download.body?.getReader();
    if (reader === undefined) throw new Error('no body');
    const chunks: Uint8Array[] = [];
    const firstChunk = await reader.read();
    if (firstChunk.value instanceof Uint8Array) chunks.push(firstChunk.value);

    const deleted = await call(service, `/records/${recordId}`, {
      method: 'DELETE',
      token: user.access_token,
      query: { user_id: user.user_id },
    });
    expect(deleted.status).toBe(204);
    expect(await hasAudio(service, recordId)).toBe(false);
    if (process.platform === 'linux' && !onS3) {
      // The server (in this process) still reads the unlinked file through the handle it opened. (On S3 the
      // store holds the object's bytes for a GET under way: s3rver in another process, its file unlinked.)
      expect(await openDeletedFiles()).toContainEqual(expect.stringContaining(`${recordId}.mp3`));
    }
    await expectProblem(await fetch(url), 404);

    for (let next = await reader.read(); !next.done; next = await reader.read()) {
      if (next.value instanceof Uint8Array) chunks.push(next.value);
    }
    expect(Buffer.concat(chunks).equals(expected)).toBe(true);
  });

  it('rotates the token: the old one stops at once, the new one works', async () => {
    const user = await createUser(service.url);
    const me = (token: string, tokenInQuery = false) => call(service, '/users/me', { token, tokenInQuery });
    const rotate = (token: string, tokenInQuery = false) =>
      call(service, `/users/${user.user_id}/token`, { method: 'POST', token, tokenInQuery });

    const rotated = await json<{ user_id: string; access_token: string }>(await rotate(user.access_token));
    expect(rotated.user_id).toBe(user.user_id);
    expect(rotated.access_token).toMatch(/^[0-9a-f-]{36}$/);
    expect(rotated.access_token).not.toBe(user.access_token);

    await expectProblem(await me(user.access_token), 401);
    await expectProblem(await rotate(user.access_token), 401);
    await expectProblem(await upload(service.url, user, clip()), 401);
    const renewed = { ...user, access_token: rotated.access_token };
    expect((await json<{ user_id: string }>(await me(renewed.access_token, true))).user_id).toBe(user.user_id);
    expect((await upload(service.url, renewed, clip(), { tokenInQuery: true })).status).toBe(200);

    // Two rotations racing with the same token: exactly one wins, and only its token works.
    const race = await Promise.all([rotate(renewed.access_token, true), rotate(renewed.access_token)]);
    const statuses = race.map((response) => response.status).sort();
    expect(statuses).toEqual([200, 401]);
    const winner = race.find((response) => response.status === 200);
    if (winner === undefined) throw new Error('no rotation won');
    const { access_token: final } = await json<{ access_token: string }>(winner);
    expect((await me(final)).status).toBe(200);
    await expectProblem(await me(renewed.access_token), 401);
  });

  it('tells the token’s owner who they are and what they store', async () => {
    const user = await createUser(service.url, `me_${Date.now()}`);
    const empty = await json<Record<string, unknown>>(await call(service, '/users/me', { token: user.access_token }));
    expect(empty).toMatchObject({ user_id: user.user_id, record_count: 0, total_bytes: 0 });
    expect(empty.username).toMatch(/^me_\d+$/);
    expect(Date.now() - Date.parse(String(empty.created_at))).toBeLessThan(60_000);

    await addRecord(service, user);
    await addRecord(service, user, { seconds: 0.4 });
    const sizes = (await listAll(service, user)).reduce((total, record) => total + record.size_bytes, 0);
    const me = await json<Record<string, unknown>>(
      await call(service, '/users/me', { token: user.access_token, tokenInQuery: true }),
    );
    expect(me).toMatchObject({ user_id: user.user_id, record_count: 2, total_bytes: sizes });

    const noToken = await expectProblem(await call(service, '/users/me'), 401);
    const wrongToken = await expectProblem(await call(service, '/users/me', { token: crypto.randomUUID() }), 401);
    const garbage = await expectProblem(await call(service, '/users/me', { token: 'x' }), 401);
    expect(new Set([noToken.detail, wrongToken.detail, garbage.detail]).size).toBe(1);
  });

  it('deletes a user with every record and file, and nothing of anyone else', async () => {
    const name = `leaving_${Date.now()}`;
    const user = await createUser(service.url, name);
    const other = await createUser(service.url);
    const ids = [await addRecord(service, user), await addRecord(service, user), await addRecord(service, user)];
    const otherId = await addRecord(service, other);
    const urls = (await listAll(service, user)).map((record) => record.record_url);
    for (const recordId of ids) expect(await hasAudio(service, recordId)).toBe(true);

    const deleted = await call(service, `/users/${user.user_id}`, { method: 'DELETE', token: user.access_token });
    expect(deleted.status).toBe(204);

    const stored = await storedRecordIds(service);
    for (const recordId of ids) expect(stored).not.toContain(recordId);
    expect(stored).toContain(otherId);
    for (const url of urls) await expectProblem(await fetch(url), 404);
    await expectProblem(await call(service, '/users/me', { token: user.access_token }), 401);
    await expectProblem(
      await call(service, `/users/${user.user_id}`, { method: 'DELETE', token: user.access_token }),
      401,
    );
    expect((await json<PageJson>(await listPage(service, other))).records).toHaveLength(1);
    // The name is free again.
    await createUser(service.url, name);
  });

  it('answers 401 to an upload whose user was deleted while it converted, and keeps nothing of it', async () => {
    const user = await createUser(service.url);
    const filesBefore = await storedRecordIds(service);
    const logsBefore = service.logs().length;
    const wav = clip(2);
    const uploading = await openUpload(service.url, user);
    await uploading.write(wav.subarray(0, wav.length / 2));
    // Authenticated and converting: the encoder's temp file exists while the rest of the body is awaited.
    await expect.poll(async () => (await tempFiles(service.dataDir)).length, { timeout: 15_000 }).toBe(1);

    const deleted = await call(service, `/users/${user.user_id}`, { method: 'DELETE', token: user.access_token });
    expect(deleted.status).toBe(204);
    await uploading.end(Buffer.concat([wav.subarray(wav.length / 2), uploading.form.tail]));
    const answer = await uploading.response;
    const refusal = await expectProblem(answer, 401);
    expect(answer.headers['www-authenticate']).toBe('Bearer');
    // The same answer as any other authentication failure.
    expect(refusal).toEqual(await expectProblem(await call(service, '/users/me', { token: user.access_token }), 401));

    // The MP3 it converted is gone again, nothing is left in tmp/, and no row points at the deleted user.
    await expectNoTempFiles(service.dataDir);
    expect(await storedRecordIds(service)).toEqual(filesBefore);
    if (kind === 'postgres') {
      const rows = await query<{ count: number }>(
        { dataDir: service.dataDir, databaseUrl: service.database.url },
        `select count(*)::int as count from records where user_id = '${user.user_id}'`,
      );
      expect(rows).toEqual([{ count: 0 }]);
    }
    // Without the fix the insert's foreign-key failure was a 500: nothing of the kind was logged.
    expect(service.logs().slice(logsBefore)).not.toMatch(/"statusCode":500|"level":50/);
  });

  it('answers another user’s token with the same 401, and another user’s record with the same 404', async () => {
    const owner = await createUser(service.url);
    const intruder = await createUser(service.url);
    const recordId = await addRecord(service, owner, { title: 'private' });
    const asIntruder = { token: intruder.access_token, query: { user_id: owner.user_id } };
    const wrongToken = await expectProblem(
      await call(service, '/records', { token: crypto.randomUUID(), query: { user_id: owner.user_id } }),
      401,
    );

    const withOwnersId = [
      call(service, '/records', asIntruder),
      call(service, `/records/${recordId}`, asIntruder),
      call(service, `/records/${recordId}`, { ...asIntruder, method: 'PATCH', body: { title: 'mine now' } }),
      call(service, `/records/${recordId}`, { ...asIntruder, method: 'DELETE' }),
      call(service, `/users/${owner.user_id}/token`, { method: 'POST', token: intruder.access_token }),
      call(service, `/users/${owner.user_id}`, { method: 'DELETE', token: intruder.access_token }),
    ];
    for (const response of await Promise.all(withOwnersId)) {
      const refused = await expectProblem(response, 401);
      expect(refused).toEqual(wrongToken);
      expect(response.headers.get('www-authenticate')).toBe('Bearer');
    }

    const ownRecords = { token: intruder.access_token, query: { user_id: intruder.user_id } };
    const missing = await expectProblem(await call(service, `/records/${crypto.randomUUID()}`, ownRecords), 404);
    const othersRecord = [
      call(service, `/records/${recordId}`, ownRecords),
      call(service, `/records/${recordId}`, { ...ownRecords, method: 'PATCH', body: { title: 'mine now' } }),
      call(service, `/records/${recordId}`, { ...ownRecords, method: 'DELETE' }),
    ];
    for (const response of await Promise.all(othersRecord)) expect(await expectProblem(response, 404)).toEqual(missing);
    expect((await json<PageJson>(await listPage(service, intruder))).records).toEqual([]);

    // Nothing happened to the owner's record.
    const intact = await json<RecordJson>(
      await call(service, `/records/${recordId}`, { token: owner.access_token, query: { user_id: owner.user_id } }),
    );
    expect(intact.title).toBe('private');
    expect(await hasAudio(service, recordId)).toBe(true);
    expect((await call(service, '/users/me', { token: owner.access_token })).status).toBe(200);
  });

  it('serves every new route under both prefixes, with record URLs in the prefix used', async () => {
    for (const prefix of PREFIXES) {
      const user = await createUser(service.url);
      const auth = { token: user.access_token, query: { user_id: user.user_id }, prefix };
      const recordId = await addRecord(service, user, { prefix });
      const page = await json<PageJson>(await listPage(service, user, {}, prefix));
      expect(page.records[0]?.record_url).toBe(
        `${service.url}${prefix}/record?record_id=${recordId}&user_id=${user.user_id}`,
      );
      expect((await call(service, `/records/${recordId}`, auth)).status).toBe(200);
      const patched = await json<RecordJson>(
        await call(service, `/records/${recordId}`, { ...auth, method: 'PATCH', body: { title: prefix } }),
      );
      expect(patched.record_url).toContain(`${prefix}/record?`);
      const me = await json<{ record_count: number }>(await call(service, '/users/me', auth));
      expect(me.record_count).toBe(1);
      expect((await call(service, `/records/${recordId}`, { ...auth, method: 'DELETE' })).status).toBe(204);
      const rotated = await json<{ access_token: string }>(
        await call(service, `/users/${user.user_id}/token`, { method: 'POST', token: user.access_token, prefix }),
      );
      const deleted = await call(service, `/users/${user.user_id}`, {
        method: 'DELETE',
        token: rotated.access_token,
        prefix,
      });
      expect(deleted.status).toBe(204);
    }
  });

  it('documents every new route in the OpenAPI document, with examples', async () => {
    const document = await json<{
      paths: Record<string, Record<string, { summary?: string; description?: string; security?: unknown[] }>>;
    }>(await fetch(`${service.url}/openapi.json`));
    const routes = [
      ['get', '/api/v1/records'],
      ['get', '/api/v1/records/{record_id}'],
      ['patch', '/api/v1/records/{record_id}'],
      ['delete', '/api/v1/records/{record_id}'],
      ['get', '/api/v1/users/me'],
      ['post', '/api/v1/users/{user_id}/token'],
      ['delete', '/api/v1/users/{user_id}'],
    ] as const;
    for (const [method, path] of routes) {
      const operation = document.paths[path]?.[method];
      expect(operation, `${method} ${path}`).toBeDefined();
      expect(operation?.summary).toBeTruthy();
      expect(operation?.description).toBeTruthy();
      expect(operation?.security).toHaveLength(2);
    }
    const text = JSON.stringify(document);
    for (const example of ['next_cursor', 'Interview, final cut', 'total_bytes']) expect(text).toContain(example);
    expect(Object.keys(document.paths).some((path) => path.startsWith('/api_v1'))).toBe(false);
  });
});

describe.each(databaseKinds)('storage quotas (%s)', (kind) => {
  let service: Service;
  let bytesService: Service | undefined;

  beforeAll(async () => {
    service = await startIsolatedService(kind, { ...ENCODING, MAX_RECORDS_PER_USER: '2' });
  });
  afterAll(async () => {
    await service.cleanup();
    await bytesService?.cleanup();
  });

  const expectQuotaRefusal = async (response: Response) => {
    const refusal = await expectProblem(response, 413);
    expect(refusal.type).toBe(QUOTA_TYPE);
    return refusal;
  };
  const notAWav = Buffer.from('this is not a WAV, and it is never converted'.repeat(100));

  it('refuses the upload past MAX_RECORDS_PER_USER before reading it, leaving nothing behind', async () => {
    const user = await createUser(service.url);
    const other = await createUser(service.url);
    const first = await addRecord(service, user);
    const second = await addRecord(service, user);

    // A body that is not a WAV would answer 415 if it were read: the quota answers first.
    const refusal = await expectQuotaRefusal(await upload(service.url, user, notAWav));
    expect(refusal.detail).toMatch(/2 records/);
    await expectQuotaRefusal(await upload(service.url, user, clip()));
    expect((await listAll(service, user)).length).toBe(2);
    expect(await storedRecordIds(service)).toEqual([first, second].sort());
    expect(await readdir(join(service.dataDir, 'tmp'))).toEqual([]);

    // Quotas are per user, and deleting makes room again.
    await addRecord(service, other);
    const deleted = await call(service, `/records/${first}`, {
      method: 'DELETE',
      token: user.access_token,
      query: { user_id: user.user_id },
    });
    expect(deleted.status).toBe(204);
    await addRecord(service, user);
  });

  it('lets concurrent uploads together stay within MAX_RECORDS_PER_USER', async () => {
    const user = await createUser(service.url);
    const filesBefore = (await storedRecordIds(service)).length;
    const responses = await Promise.all([1, 2, 3, 4].map(() => upload(service.url, user, clip())));
    const statuses = responses.map((response) => response.status).sort();
    expect(statuses).toEqual([200, 200, 413, 413]);
    for (const response of responses) if (response.status === 413) await expectQuotaRefusal(response);
    expect((await listAll(service, user)).length).toBe(2);
    expect(await storedRecordIds(service)).toHaveLength(filesBefore + 2);
    expect(await readdir(join(service.dataDir, 'tmp'))).toEqual([]);
  });

  it('enforces MAX_BYTES_PER_USER on the stored MP3 bytes', async () => {
    // The MP3 of a 0.2 s clip, measured with the same (deterministic) encoding and no byte quota.
    const probe = await createUser(service.url);
    await addRecord(service, probe);
    const clipBytes = (await listAll(service, probe))[0]?.size_bytes ?? 0;
    expect(clipBytes).toBeGreaterThan(0);

    // Room for exactly one clip.
    bytesService = await startIsolatedService(kind, { ...ENCODING, MAX_BYTES_PER_USER: String(clipBytes) });
    const user = await createUser(bytesService.url);
    const kept = await addRecord(bytesService, user);

    // Full: refused before the body is read (a non-WAV gets the quota answer, not 415).
    const full = await expectQuotaRefusal(await upload(bytesService.url, user, notAWav));
    expect(full.detail).toContain(`${clipBytes} bytes`);
    await expectQuotaRefusal(await upload(bytesService.url, user, clip()));

    // Not full, but the converted recording does not fit: refused after conversion, its file removed.
    const other = await createUser(bytesService.url);
    const tooBig = await expectQuotaRefusal(await upload(bytesService.url, other, clip(0.5)));
    expect(tooBig.detail).toMatch(/do not fit/);
    expect(await listAll(bytesService, other)).toEqual([]);
    expect(await storedRecordIds(bytesService)).toEqual([kept]);
    expect(await readdir(join(bytesService.dataDir, 'tmp'))).toEqual([]);
    const me = await json<{ record_count: number; total_bytes: number }>(
      await call(bytesService, '/users/me', { token: user.access_token }),
    );
    expect(me).toMatchObject({ record_count: 1, total_bytes: clipBytes });
  });

  it('reads the quotas from the environment: unset is unlimited, nonsense is refused', () => {
    expect(loadConfig({}).quota).toEqual({ maxBytesPerUser: undefined, maxRecordsPerUser: undefined });
    expect(loadConfig({ MAX_BYTES_PER_USER: '1048576', MAX_RECORDS_PER_USER: '10' }).quota).toEqual({
      maxBytesPerUser: 1048576,
      maxRecordsPerUser: 10,
    });
    expect(() => loadConfig({ MAX_RECORDS_PER_USER: '0' })).toThrow(/MAX_RECORDS_PER_USER/);
    expect(() => loadConfig({ MAX_BYTES_PER_USER: 'lots' })).toThrow(/MAX_BYTES_PER_USER/);
  });
});
