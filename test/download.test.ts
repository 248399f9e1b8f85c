import { randomBytes } from 'node:crypto';
import { readdir, readlink, rename, truncate, writeFile } from 'node:fs/promises';
import { get, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PREFIX, createUser, parseContentDisposition, recordIdOf, upload, type TestUser } from './kit/client.js';
import { databaseKinds } from './kit/database.js';
import { expectProblem } from './kit/expect.js';
import { sendRequest } from './kit/http.js';
import { logLines, startIsolatedService, type IsolatedService } from './kit/service.js';
import { onS3, recordKeyOf, removeStored, storedFiles } from './kit/storage.js';
import { decodeMp3, makeWav } from './kit/wav.js';

const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8';

describe.each(databaseKinds)('GET record: the MP3 and its HTTP semantics (%s)', (kind) => {
  let service: IsolatedService;
  let user: TestUser;
  /** A 1.5 s stereo recording, uploaded once with a title and a file name. */
  let recordUrl: string;
  let full: Buffer;

  async function uploadOk(options: Parameters<typeof upload>[3], seconds = 0.3): Promise<string> {
    const response = await upload(service.url, user, makeWav({ durationSeconds: seconds }), options);
    const text = await response.text();
    expect(response.status, text).toBe(200);
    return (JSON.parse(text) as { record_url: string }).record_url;
  }

  beforeAll(async () => {
    service = await startIsolatedService(kind);
    user = await createUser(service.url);
    recordUrl = await uploadOk({ title: 'Morning take', filename: 'take-1.wav' }, 1.5);
    const response = await fetch(recordUrl);
    expect(response.status).toBe(200);
    full = Buffer.from(await response.arrayBuffer());
  });
  afterAll(async () => {
    await service?.cleanup();
  });

  it('answers the MP3 with its type, length, validators and disposition', async () => {
    const response = await fetch(recordUrl);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('audio/mpeg');
    expect(response.headers.get('content-length')).toBe(String(full.length));
    expect(response.headers.get('accept-ranges')).toBe('bytes');
    expect(response.headers.get('etag')).toMatch(/^"[^"]+"$/); // strong: no W/ prefix
    const lastModified = response.headers.get('last-modified');
    expect(lastModified).not.toBeNull();
    expect(new Date(lastModified ?? '').toUTCString()).toBe(lastModified);
    expect(Date.now() - new Date(lastModified ?? '').getTime()).toBeLessThan(10 * 60_000);
    // The answer depends on Accept, so caches must key on it.
    expect(response.headers.get('vary') ?? '').toMatch(/accept/i);
    expect(parseContentDisposition(response.headers.get('content-disposition') ?? '')).toEqual({
      type: 'inline',
      filename: 'Morning take.mp3',
    });
    const body = Buffer.from(await response.arrayBuffer());
    expect(body.equals(full)).toBe(true);
    const decoded = decodeMp3(body);
    expect(Math.abs(decoded.seconds - 1.5)).toBeLessThan(0.01);
  });

  it('names the download after the original file when there is no title', async () => {
    for (const [filename, expected] of [
      ['interview.wav', 'interview.mp3'],
      ['LOUD.WAV', 'LOUD.mp3'],
      ['field recording.wave', 'field recording.mp3'],
      ['no-extension', 'no-extension.mp3'],
    ] as const) {
      const url = await uploadOk({ filename });
      const response = await fetch(url, { method: 'HEAD' });
      expect(response.status).toBe(200);
      expect(parseContentDisposition(response.headers.get('content-disposition') ?? '')).toEqual({
        type: 'inline',
        filename: expected,
      });
    }
  });

  it('gives non-ASCII titles an RFC 6266 filename* and an ASCII-only fallback', async () => {
    for (const title of ['Запись №1', 'Café au lait', '会議 2024']) {
      const url = await uploadOk({ title });
      const response = await sendRequest(url, { method: 'HEAD' });
      expect(response.status).toBe(200);
      const header = response.headers['content-disposition'] ?? '';
      // Header bytes arrive as latin1: any non-ASCII byte would be mojibake for some client.
      expect(header).toMatch(/^[\x20-\x7e]+$/);
      const parsed = parseContentDisposition(header);
      expect(parsed.type).toBe('inline');
      expect(parsed.filenameStar).toBe(`${title}.mp3`);
      expect(parsed.filename).toMatch(/^[\x20-\x7e]+\.mp3$/);
      expect(parsed.filename).not.toMatch(/[\\/"?*:<>|]/);
    }
  });

  it('keeps quotes and slashes in titles from breaking the header or making a path', async () => {
    const quoted = await uploadOk({ title: 'She said "hi"; bye' });
    let response = await fetch(quoted, { method: 'HEAD' });
    expect(parseContentDisposition(response.headers.get('content-disposition') ?? '')).toMatchObject({
      type: 'inline',
      filename: 'She said "hi"; bye.mp3',
    });

    const slashed = await uploadOk({ title: '../../etc/passwd\\x' });
    response = await fetch(slashed, { method: 'HEAD' });
    const parsed = parseContentDisposition(response.headers.get('content-disposition') ?? '');
    expect(parsed.filename).toBe('.._.._etc_passwd_x.mp3');

    const alreadyMp3 = await uploadOk({ title: 'song.mp3' });
    response = await fetch(alreadyMp3, { method: 'HEAD' });
    expect(parseContentDisposition(response.headers.get('content-disposition') ?? '').filename).toBe('song.mp3');
  });

  it('refuses titles with CR/LF or other control characters at upload, leaving nothing behind', async () => {
    const before = (await storedFiles(service.dataDir)).records;
    for (const title of ['line\r\nX-Injected: 1', 'bell\u0007', 'tab\there']) {
      const asField = await upload(service.url, user, makeWav({ durationSeconds: 0.1 }), { title });
      expect(asField.status).toBe(400);
      expect(asField.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      const query = new URLSearchParams({ user_id: user.user_id, title });
      const form = new FormData();
      form.append('file', new Blob([makeWav({ durationSeconds: 0.1 })]), 'a.wav');
      const asQuery = await fetch(`${service.url}${PREFIX}/record/?${query.toString()}`, {
        method: 'POST',
        body: form,
        headers: { authorization: `Bearer ${user.access_token}` },
      });
      expect(asQuery.status).toBe(400);
      expect(((await asQuery.json()) as { detail: string }).detail).toMatch(/title/);
    }
    expect((await storedFiles(service.dataDir)).records).toEqual(before);
  });

  it('serves a single range as 206 with exactly those bytes', async () => {
    const response = await fetch(recordUrl, { headers: { range: 'bytes=100-1099' } });
    expect(response.status).toBe(206);
    expect(response.headers.get('content-range')).toBe(`bytes 100-1099/${full.length}`);
    expect(response.headers.get('content-length')).toBe('1000');
    expect(response.headers.get('content-type')).toBe('audio/mpeg');
    expect(Buffer.from(await response.arrayBuffer()).equals(full.subarray(100, 1100))).toBe(true);

    const open = await fetch(recordUrl, { headers: { range: `bytes=${full.length - 10}-` } });
    expect(open.status).toBe(206);
    expect(open.headers.get('content-range')).toBe(`bytes ${full.length - 10}-${full.length - 1}/${full.length}`);
    expect(Buffer.from(await open.arrayBuffer()).equals(full.subarray(full.length - 10))).toBe(true);

    // An end past the file is clipped, not refused.
    const clipped = await fetch(recordUrl, { headers: { range: `bytes=0-${full.length * 2}` } });
    expect(clipped.status).toBe(206);
    expect(clipped.headers.get('content-range')).toBe(`bytes 0-${full.length - 1}/${full.length}`);
    expect(Buffer.from(await clipped.arrayBuffer()).equals(full)).toBe(true);
  });

  it('serves a suffix range (the last N bytes)', async () => {
    const response = await fetch(recordUrl, { headers: { range: 'bytes=-100' } });
    expect(response.status).toBe(206);
    expect(response.headers.get('content-range')).toBe(`bytes ${full.length - 100}-${full.length - 1}/${full.length}`);
    expect(Buffer.from(await response.arrayBuffer()).equals(full.subarray(full.length - 100))).toBe(true);
  });

  it('answers 416 with Content-Range: bytes */size for an unsatisfiable range', async () => {
    const response = await fetch(recordUrl, { headers: { range: `bytes=${full.length}-` } });
    expect(response.status).toBe(416);
    expect(response.headers.get('content-range')).toBe(`bytes */${full.length}`);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await response.json()).toMatchObject({ status: 416 });
  });

  it('answers multiple ranges, and malformed ones, with the whole file', async () => {
    for (const range of ['bytes=0-9,200-299', 'bytes=abc', 'items=0-5']) {
      const response = await fetch(recordUrl, { headers: { range } });
      expect(response.status, range).toBe(200);
      expect(response.headers.get('content-range'), range).toBeNull();
      expect(Buffer.from(await response.arrayBuffer()).equals(full), range).toBe(true);
    }
  });

  it('answers 304 to a matching If-None-Match, and 200 to another', async () => {
    const etag = (await fetch(recordUrl, { method: 'HEAD' })).headers.get('etag') ?? '';
    for (const ifNoneMatch of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
      const response = await fetch(recordUrl, { headers: { 'if-none-match': ifNoneMatch } });
      expect(response.status, ifNoneMatch).toBe(304);
      expect(response.headers.get('etag')).toBe(etag);
      expect((await response.arrayBuffer()).byteLength).toBe(0);
    }
    const stale = await fetch(recordUrl, { headers: { 'if-none-match': '"something-else"' } });
    expect(stale.status).toBe(200);
    expect(Buffer.from(await stale.arrayBuffer()).equals(full)).toBe(true);
  });

  it('answers If-Modified-Since, which If-None-Match overrides', async () => {
    const lastModified = (await fetch(recordUrl, { method: 'HEAD' })).headers.get('last-modified') ?? '';
    const since = await fetch(recordUrl, { headers: { 'if-modified-since': lastModified } });
    expect(since.status).toBe(304);
    const older = await fetch(recordUrl, { headers: { 'if-modified-since': 'Thu, 01 Jan 2015 00:00:00 GMT' } });
    expect(older.status).toBe(200);
    const overridden = await fetch(recordUrl, {
      headers: { 'if-modified-since': lastModified, 'if-none-match': '"something-else"' },
    });
    expect(overridden.status).toBe(200);
  });

  it('honours If-Range: a matching validator gives the range, a stale one the whole file', async () => {
    const head = await fetch(recordUrl, { method: 'HEAD' });
    const etag = head.headers.get('etag') ?? '';
    const lastModified = head.headers.get('last-modified') ?? '';

    for (const ifRange of [etag, lastModified]) {
      const response = await fetch(recordUrl, { headers: { range: 'bytes=0-99', 'if-range': ifRange } });
      expect(response.status, ifRange).toBe(206);
      expect(Buffer.from(await response.arrayBuffer()).equals(full.subarray(0, 100))).toBe(true);
    }
    for (const ifRange of ['"stale-etag"', `W/${etag}`, 'Thu, 01 Jan 2015 00:00:00 GMT']) {
      const response = await fetch(recordUrl, { headers: { range: 'bytes=0-99', 'if-range': ifRange } });
      expect(response.status, ifRange).toBe(200);
      expect(Buffer.from(await response.arrayBuffer()).equals(full)).toBe(true);
    }
  });

  it('answers HEAD with the headers of GET and no body', async () => {
    const response = await sendRequest(recordUrl, { method: 'HEAD' });
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe('audio/mpeg');
    expect(response.headers['content-length']).toBe(String(full.length));
    expect(response.headers['accept-ranges']).toBe('bytes');
    expect(response.headers.etag).toMatch(/^"/);
    expect(response.body.length).toBe(0);

    const ranged = await sendRequest(recordUrl, { method: 'HEAD', headers: { range: 'bytes=0-9' } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers['content-length']).toBe('10');
  });

  it('does not leak file descriptors on HEAD, 304, 416 or aborted downloads', async () => {
    const etag = (await fetch(recordUrl, { method: 'HEAD' })).headers.get('etag') ?? '';
    const before = (await readdir('/proc/self/fd')).length;
    for (let round = 0; round < 15; round++) {
      await sendRequest(recordUrl, { method: 'HEAD' });
      await sendRequest(recordUrl, { headers: { 'if-none-match': etag } });
      await sendRequest(recordUrl, { headers: { range: `bytes=${full.length + 5}-` } });
    }
    // Descriptors are closed as the answers finish, perhaps just after the client has them: wait for that.
    await expect.poll(async () => (await readdir('/proc/self/fd')).length - before).toBeLessThan(10);
  });

  it('answers JSON metadata when Accept prefers application/json', async () => {
    for (const accept of ['application/json', 'application/json, audio/mpeg;q=0.5']) {
      const response = await fetch(recordUrl, { headers: { accept } });
      expect(response.status, accept).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      expect(response.headers.get('vary') ?? '').toMatch(/accept/i);
      const metadata = (await response.json()) as Record<string, unknown>;
      const query = new URL(recordUrl).searchParams;
      expect(metadata).toEqual({
        record_url: recordUrl,
        record_id: query.get('record_id'),
        user_id: user.user_id,
        title: 'Morning take',
        original_filename: 'take-1.wav',
        created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/) as unknown,
        duration_seconds: expect.closeTo(1.5, 1) as unknown,
        size_bytes: full.length,
        sample_rate: 44100,
        channels: 2,
        bitrate_kbps: expect.any(Number) as unknown,
        format: 'mp3',
        mime_type: 'audio/mpeg',
        source_format: 'wav',
        peaks_url: recordUrl.replace('/record?', '/record/peaks?'),
        // The web app's page, at the service's root whichever API prefix the request used.
        share_url: `${service.url}/listen?record_id=${query.get('record_id')}&user_id=${user.user_id}`,
      });
      expect(Math.abs(new Date(metadata.created_at as string).getTime() - Date.now())).toBeLessThan(10 * 60_000);
      expect(metadata.bitrate_kbps).toBeGreaterThan(32);
      expect(metadata.bitrate_kbps).toBeLessThan(321);
    }
  });

  it('answers audio to browsers, curl and clients that prefer audio', async () => {
    for (const accept of [BROWSER_ACCEPT, '*/*', 'audio/*', 'audio/mpeg, application/json;q=0.9', undefined]) {
      const response = await sendRequest(recordUrl, accept === undefined ? {} : { headers: { accept } });
      expect(response.status, String(accept)).toBe(200);
      expect(response.headers['content-type'], String(accept)).toBe('audio/mpeg');
      expect(response.body.equals(full)).toBe(true);
    }
  });

  it('answers 404 problem+json for an unknown record and for another user’s', async () => {
    const query = new URL(recordUrl).searchParams;
    const other = await createUser(service.url);
    const cases = [
      new URLSearchParams({ record_id: crypto.randomUUID(), user_id: user.user_id }),
      new URLSearchParams({ record_id: query.get('record_id') ?? '', user_id: other.user_id }),
    ];
    for (const params of cases) {
      for (const accept of ['audio/mpeg', 'application/json']) {
        const response = await fetch(`${service.url}${PREFIX}/record?${params.toString()}`, { headers: { accept } });
        expect(response.status).toBe(404);
        expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        expect(await response.json()).toMatchObject({ status: 404, title: 'Not Found', type: 'about:blank' });
      }
    }
  });

  it('answers 404 for a record whose file is missing, and logs that its row has no file', async () => {
    const url = await uploadOk({ title: 'soon without its file' });
    const recordId = recordIdOf(url);
    await removeStored(service.dataDir, recordKeyOf(recordId));

    const requestId = `missing-file-${kind}`;
    const response = await fetch(url, { headers: { 'x-request-id': requestId } });
    const problem = await expectProblem(response, 404);
    // To the client it is as absent as a record that never was.
    const unknown = `${service.url}${PREFIX}/record?record_id=${crypto.randomUUID()}&user_id=${user.user_id}`;
    expect(problem).toEqual(await expectProblem(await fetch(unknown), 404));
    // To the operator it is an inconsistency: an error, under the request's id, naming the record.
    const errors = logLines(service).filter((line) => line.reqId === requestId && line.level >= 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ recordId, msg: expect.stringMatching(/row.*(without|no).*file/i) as unknown });
  });

  // Link lookups are kept in memory for a few seconds (RecordLinkCache): this process's own changes must show at once.
  it('answers 404 right after a delete, though the link was just served from memory', async () => {
    const url = await uploadOk({ title: 'about to go' });
    const recordId = recordIdOf(url);
    const peaksUrl = url.replace('/record?', '/record/peaks?');
    expect((await fetch(url, { headers: { range: 'bytes=0-9' } })).status).toBe(206);
    expect((await fetch(url, { headers: { accept: 'application/json' } })).status).toBe(200);
    expect((await fetch(peaksUrl)).status).toBe(200);

    const deleted = await fetch(`${service.url}${PREFIX}/records/${recordId}?user_id=${user.user_id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${user.access_token}` },
    });
    expect(deleted.status).toBe(204);
    await expectProblem(await fetch(url, { headers: { range: 'bytes=0-9' } }), 404);
    await expectProblem(await fetch(url, { headers: { accept: 'application/json' } }), 404);
    await expectProblem(await fetch(peaksUrl), 404);
  });

  it('names the download and the metadata after the new title right after a rename', async () => {
    const url = await uploadOk({ title: 'First name' });
    const before = await fetch(url, { method: 'HEAD' });
    expect(parseContentDisposition(before.headers.get('content-disposition') ?? '').filename).toBe('First name.mp3');
    const renamed = await fetch(`${service.url}${PREFIX}/records/${recordIdOf(url)}?user_id=${user.user_id}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${user.access_token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'Second name' }),
    });
    expect(renamed.status).toBe(200);

    const after = await fetch(url, { method: 'HEAD' });
    expect(parseContentDisposition(after.headers.get('content-disposition') ?? '').filename).toBe('Second name.mp3');
    expect(after.headers.get('etag')).not.toBe(before.headers.get('etag'));
    const metadata = (await (await fetch(url, { headers: { accept: 'application/json' } })).json()) as {
      title: string;
    };
    expect(metadata.title).toBe('Second name');
  });

  it('answers 400 for ids that are not UUIDs', async () => {
    const cases: Array<Record<string, string>> = [
      { record_id: 'nope', user_id: user.user_id },
      { record_id: crypto.randomUUID() },
      { record_id: `{${crypto.randomUUID()}}`, user_id: user.user_id },
    ];
    for (const params of cases) {
      const response = await fetch(`${service.url}${PREFIX}/record?${new URLSearchParams(params).toString()}`);
      expect(response.status).toBe(400);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }
  });

  it('accepts uppercase UUIDs', async () => {
    const query = new URL(recordUrl).searchParams;
    const upper = new URLSearchParams({
      record_id: (query.get('record_id') ?? '').toUpperCase(),
      user_id: user.user_id.toUpperCase(),
    });
    const response = await fetch(`${service.url}${PREFIX}/record?${upper.toString()}`);
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer()).equals(full)).toBe(true);
    const json = await fetch(`${service.url}/api_v1/record?${upper.toString()}`, {
      headers: { accept: 'application/json' },
    });
    expect(((await json.json()) as { record_url: string }).record_url).toBe(recordUrl.replace('/api/v1/', '/api_v1/'));
  });
});

/** Stored files this process holds open under `dataDir`, or of one record (a deleted one ends in " (deleted)"). */
async function openStoredFiles(dataDir: string, recordId?: string): Promise<string[]> {
  const records = join(dataDir, 'records', ...(recordId === undefined ? [] : recordKeyOf(recordId).split('/')));
  const targets = await Promise.all(
    (await readdir('/proc/self/fd')).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')),
  );
  return targets.filter((target) => target.startsWith(records));
}

/** Puts other bytes under a record's key as another replica's rename would: a new file moved into place. */
async function replaceStored(dataDir: string, recordId: string, bytes: Buffer): Promise<void> {
  const path = join(dataDir, 'records', ...recordKeyOf(recordId).split('/'));
  await writeFile(`${path}.new`, bytes);
  await rename(`${path}.new`, path);
}

// Longer than the few seconds a local store keeps a file open after opening it.
const OPEN_FILE_WAIT = { timeout: 12_000, interval: 250 };

// The local store keeps files open for a few seconds, shared by the requests for them: these are about the
// disk (what is open, what a rename or unlink does to it), so they run with local storage only.
describe.skipIf(onS3).each(databaseKinds)('GET record from files kept open (%s)', (kind) => {
  let service: IsolatedService;
  let user: TestUser;

  beforeAll(async () => {
    service = await startIsolatedService(kind);
    user = await createUser(service.url);
  });
  afterAll(async () => {
    await service?.cleanup();
  });

  /** A record whose stored bytes are `bytes` (random, so that any misplaced byte shows). */
  async function recordWith(bytes: Buffer, title = 'kept open'): Promise<{ url: string; recordId: string }> {
    const response = await upload(service.url, user, makeWav({ durationSeconds: 0.1 }), { title });
    expect(response.status).toBe(200);
    const url = ((await response.json()) as { record_url: string }).record_url;
    const recordId = recordIdOf(url);
    await replaceStored(service.dataDir, recordId, bytes);
    return { url, recordId };
  }

  const deleteRecord = (recordId: string) =>
    fetch(`${service.url}${PREFIX}/records/${recordId}?user_id=${user.user_id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${user.access_token}` },
    });

  it('serves ranges at the edges, small and large, the same from a new and from a kept file', async () => {
    const size = 1024 * 1024 + 3;
    const bytes = randomBytes(size);
    const { url, recordId } = await recordWith(bytes);
    const cases: Array<[range: string, start: number, end: number]> = [
      ['bytes=0-0', 0, 0],
      [`bytes=${size - 1}-${size - 1}`, size - 1, size - 1],
      [`bytes=${size - 1}-`, size - 1, size - 1],
      ['bytes=-1', size - 1, size - 1],
      [`bytes=0-${512 * 1024 - 1}`, 0, 512 * 1024 - 1],
      [`bytes=0-${512 * 1024}`, 0, 512 * 1024],
      [`bytes=1000-${1000 + 256 * 1024 - 1}`, 1000, 1000 + 256 * 1024 - 1],
      [`bytes=${size - 300_000}-${size + 5}`, size - 300_000, size - 1],
      ['bytes=0-', 0, size - 1],
      [`bytes=-${size + 10}`, 0, size - 1],
    ];
    for (const round of ['first', 'kept']) {
      for (const [range, start, end] of cases) {
        const response = await sendRequest(url, { headers: { range } });
        expect(response.status, `${round} ${range}`).toBe(206);
        expect(response.headers['content-range'], range).toBe(`bytes ${start}-${end}/${size}`);
        expect(response.headers['content-length'], range).toBe(String(end - start + 1));
        expect(response.headers['content-type'], range).toBe('audio/mpeg');
        expect(response.body.equals(bytes.subarray(start, end + 1)), `${round} ${range}`).toBe(true);
        const head = await sendRequest(url, { method: 'HEAD', headers: { range } });
        expect(head.status, range).toBe(206);
        expect(head.headers['content-length'], range).toBe(String(end - start + 1));
        expect(head.body.length).toBe(0);
      }
      const whole = await sendRequest(url);
      expect(whole.status).toBe(200);
      expect(whole.body.equals(bytes)).toBe(true);
      const unsatisfiable = await sendRequest(url, { headers: { range: `bytes=${size}-` } });
      expect(unsatisfiable.status).toBe(416);
      expect(unsatisfiable.headers['content-range']).toBe(`bytes */${size}`);
    }
    // All those answers shared one descriptor.
    expect(await openStoredFiles(service.dataDir, recordId)).toHaveLength(1);
  });

  it('answers HEAD and 304 from a kept file without closing it under the next request', async () => {
    const bytes = randomBytes(300_000);
    const { url, recordId } = await recordWith(bytes);
    const first = await sendRequest(url, { headers: { range: 'bytes=0-99' } });
    expect(first.status).toBe(206);
    const etag = first.headers.etag ?? '';
    const lastModified = first.headers['last-modified'] ?? '';
    for (let round = 0; round < 5; round++) {
      const head = await sendRequest(url, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers.etag).toBe(etag);
      expect(head.headers['content-length']).toBe(String(bytes.length));
      const notModified = await sendRequest(url, { headers: { 'if-none-match': etag } });
      expect(notModified.status).toBe(304);
      expect(notModified.headers.etag).toBe(etag);
      expect(notModified.body.length).toBe(0);
      const since = await sendRequest(url, { headers: { 'if-modified-since': lastModified, range: 'bytes=5-9' } });
      expect(since.status).toBe(304);
      const ranged = await sendRequest(url, { headers: { range: 'bytes=200000-200099', 'if-range': etag } });
      expect(ranged.status).toBe(206);
      expect(ranged.body.equals(bytes.subarray(200_000, 200_100))).toBe(true);
    }
    expect(await openStoredFiles(service.dataDir, recordId)).toHaveLength(1);
  });

  it('finishes a download whose record is deleted meanwhile, answers 404 after, and closes the file', async () => {
    // Far more than loopback's socket buffers hold, so the answer is still being read from the file.
    const bytes = randomBytes(24 * 1024 * 1024);
    const { url, recordId } = await recordWith(bytes);
    expect((await sendRequest(url, { headers: { range: 'bytes=0-9' } })).status).toBe(206); // now kept open
    const download = await new Promise<IncomingMessage>((resolve, reject) => get(url, resolve).on('error', reject));
    download.pause();
    expect(download.statusCode).toBe(200);

    expect((await deleteRecord(recordId)).status).toBe(204);
    expect(await openStoredFiles(service.dataDir, recordId)).toEqual([expect.stringMatching(/ \(deleted\)$/)]);
    await expectProblem(await fetch(url, { headers: { range: 'bytes=0-9' } }), 404);
    expect((await fetch(url, { method: 'HEAD' })).status).toBe(404);

    const chunks: Buffer[] = [];
    for await (const chunk of download) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
    // Closed as the download ends, not a few seconds later: the delete let go of it.
    await expect.poll(() => openStoredFiles(service.dataDir, recordId), { timeout: 2_000 }).toEqual([]);
  });

  it('serves many downloads at once, slow and fast readers alike, each exactly its own bytes', async () => {
    // The chunks' buffers are reused between downloads: one handed on while a slow client's socket still
    // held it would show as another file's bytes.
    const files = [randomBytes(5 * 1024 * 1024 + 1), randomBytes(3 * 1024 * 1024), randomBytes(7 * 1024 * 1024 - 1)];
    const records = await Promise.all(files.map((bytes, index) => recordWith(bytes, `many ${index}`)));
    const download = (url: string, slow: boolean, range?: string) =>
      new Promise<Buffer>((resolve, reject) => {
        get(url, { headers: range === undefined ? {} : { range } }, (response) => {
          const chunks: Buffer[] = [];
          let sincePause = 0;
          response.on('data', (chunk: Buffer) => {
            chunks.push(chunk);
            sincePause += chunk.length;
            if (slow && sincePause >= 512 * 1024) {
              sincePause = 0;
              response.pause();
              setTimeout(() => response.resume(), 10);
            }
          });
          response.on('end', () => resolve(Buffer.concat(chunks)));
          response.on('error', reject);
        }).on('error', reject);
      });
    for (let round = 0; round < 2; round++) {
      const downloads = records.flatMap(({ url }, index) => [
        download(url, true).then((body) => ({ body, expected: files[index]! })),
        download(url, false).then((body) => ({ body, expected: files[index]! })),
        download(url, index % 2 === 0, 'bytes=700000-').then((body) => ({
          body,
          expected: files[index]!.subarray(700_000),
        })),
      ]);
      for (const [index, { body, expected }] of (await Promise.all(downloads)).entries()) {
        expect(body.length, `round ${round}, download ${index}`).toBe(expected.length);
        expect(body.equals(expected), `round ${round}, download ${index}`).toBe(true);
      }
    }
  });

  it('keeps serving a kept file after a client cuts its download off, never another file’s bytes', async () => {
    // Players abort media requests all the time. The cut download must not close the descriptor the
    // other requests share: its number would then be reused for the next file opened.
    const bytes = randomBytes(8 * 1024 * 1024);
    const { url, recordId } = await recordWith(bytes);
    for (let round = 0; round < 3; round++) {
      expect((await sendRequest(url, { headers: { range: 'bytes=0-9' } })).status).toBe(206); // kept open
      const download = await new Promise<IncomingMessage>((resolve, reject) => get(url, resolve).on('error', reject));
      expect(download.statusCode).toBe(200);
      await new Promise((resolve) => download.once('data', resolve));
      download.destroy();
      await new Promise((resolve) => setTimeout(resolve, 100));

      const other = randomBytes(700_000);
      const next = await recordWith(other, `other ${round}`);
      expect((await sendRequest(next.url)).body.equals(other)).toBe(true);
      for (const [start, end] of [
        [0, 99],
        [1_000_000, 1_000_000 + 600_000],
        [bytes.length - 10, bytes.length - 1],
      ] as const) {
        const ranged = await sendRequest(url, { headers: { range: `bytes=${start}-${end}` } });
        expect(ranged.status, `round ${round}, ${start}-${end}`).toBe(206);
        expect(ranged.body.equals(bytes.subarray(start, end + 1)), `round ${round}, ${start}-${end}`).toBe(true);
      }
    }
    expect(await openStoredFiles(service.dataDir, recordId)).toHaveLength(1);
  });

  it('answers a file damaged behind its back with a plain 500, none of the file’s headers on it', async () => {
    const bytes = randomBytes(300_000);
    const { url, recordId } = await recordWith(bytes);
    expect((await sendRequest(url, { headers: { range: 'bytes=0-9' } })).status).toBe(206); // kept open
    // Cut in place (the same inode): the kept descriptor sees a file shorter than it was stated to be.
    await truncate(join(service.dataDir, 'records', ...recordKeyOf(recordId).split('/')), 1_000);
    const damaged = await sendRequest(url, { headers: { range: 'bytes=200000-200099' } });
    expect(damaged.status).toBe(500);
    expect(damaged.headers['content-type']).toMatch(/^application\/problem\+json/);
    for (const header of ['etag', 'last-modified', 'content-disposition', 'accept-ranges', 'content-range']) {
      expect(damaged.headers[header], header).toBeUndefined();
    }
  });

  it('serves the bytes it opened, with their own ETag, until it reopens a file changed behind its back', async () => {
    // As another replica's rename or delete would: this process is not told, and must never answer a 500.
    const before = randomBytes(100_000);
    const after = randomBytes(120_000);
    const { url, recordId } = await recordWith(before);
    const first = await sendRequest(url);
    expect(first.body.equals(before)).toBe(true);

    await replaceStored(service.dataDir, recordId, after);
    const meanwhile = await sendRequest(url, { headers: { range: 'bytes=0-' } });
    expect(meanwhile.status).toBe(206);
    // Old bytes go with the old validators: a cache never pairs one file's ETag with another's bytes.
    if (meanwhile.headers.etag === first.headers.etag) {
      expect(meanwhile.headers['content-range']).toBe(`bytes 0-${before.length - 1}/${before.length}`);
      expect(meanwhile.body.equals(before)).toBe(true);
    } else {
      expect(meanwhile.body.equals(after)).toBe(true);
    }
    await expect
      .poll(async () => (await sendRequest(url)).headers['content-length'], OPEN_FILE_WAIT)
      .toBe(String(after.length));
    const reopened = await sendRequest(url);
    expect(reopened.headers.etag).not.toBe(first.headers.etag);
    expect(reopened.body.equals(after)).toBe(true);

    await removeStored(service.dataDir, recordKeyOf(recordId));
    const gone = await sendRequest(url, { headers: { range: 'bytes=10-19' } });
    expect([206, 404]).toContain(gone.status);
    if (gone.status === 206) expect(gone.body.equals(after.subarray(10, 20))).toBe(true);
    await expect.poll(async () => (await sendRequest(url)).status, OPEN_FILE_WAIT).toBe(404);
  });

  it('closes kept files a few seconds after opening them, and every one at shutdown', async () => {
    await expect.poll(() => openStoredFiles(service.dataDir), OPEN_FILE_WAIT).toEqual([]);
    const records = [];
    for (let index = 0; index < 12; index++) records.push(await recordWith(randomBytes(10_000 + index)));
    await Promise.all(records.map(({ url }) => sendRequest(url, { headers: { range: 'bytes=0-99' } })));
    expect(await openStoredFiles(service.dataDir)).toHaveLength(records.length);
    await expect.poll(() => openStoredFiles(service.dataDir), OPEN_FILE_WAIT).toEqual([]);

    const other = await startIsolatedService(kind);
    try {
      const owner = await createUser(other.url);
      for (let index = 0; index < 3; index++) {
        const response = await upload(other.url, owner, makeWav({ durationSeconds: 0.1 }));
        const url = ((await response.json()) as { record_url: string }).record_url;
        expect((await sendRequest(url, { method: 'HEAD' })).status).toBe(200);
      }
      expect(await openStoredFiles(other.dataDir)).toHaveLength(3);
      await other.stop();
      expect(await openStoredFiles(other.dataDir)).toEqual([]);
    } finally {
      await other.cleanup();
    }
  }, 60_000);
});
