import { readdir, rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PREFIX, createUser, parseContentDisposition, recordIdOf, upload, type TestUser } from './kit/client.js';
import { databaseKinds } from './kit/database.js';
import { filesOnDisk, recordPath } from './kit/disk.js';
import { expectProblem } from './kit/expect.js';
import { sendRequest } from './kit/http.js';
import { logLines, startIsolatedService, type IsolatedService } from './kit/service.js';
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
    const before = (await filesOnDisk(service.dataDir)).records;
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
    expect((await filesOnDisk(service.dataDir)).records).toEqual(before);
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
    await rm(recordPath(service.dataDir, recordId));

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
