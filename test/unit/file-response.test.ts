import { Readable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendFile } from '../../src/http/file-response.js';
import type { ByteRange, OpenedBlob } from '../../src/storage/blob-store.js';

const CONTENT = Buffer.from('0123456789abcdefghij'); // 20 bytes
const MODIFIED_AT = new Date('2026-03-04T05:06:07.890Z');
const LAST_MODIFIED = 'Wed, 04 Mar 2026 05:06:07 GMT';
const ETAG = '"rec-1"';

/** An OpenedBlob over a Buffer that remembers whether it was closed or streamed. */
function memoryBlob(bytes: Buffer, closeFailure?: Error) {
  const state = { closed: 0, streamedRanges: [] as Array<ByteRange | undefined> };
  const blob: OpenedBlob = {
    sizeBytes: bytes.length,
    modifiedAt: MODIFIED_AT,
    stream: (range) => {
      state.streamedRanges.push(range);
      return Readable.from([range === undefined ? bytes : bytes.subarray(range.start, range.end + 1)]);
    },
    close: async () => {
      state.closed += 1;
      if (closeFailure !== undefined) throw closeFailure;
    },
  };
  return { blob, state };
}

let app: FastifyInstance;
let lastBlob: ReturnType<typeof memoryBlob>['state'];

beforeAll(async () => {
  app = Fastify({ logger: false });
  app.route<{ Querystring: { name?: string; failClose?: string } }>({
    method: ['GET', 'HEAD'],
    url: '/file',
    handler: (request, reply) => {
      const { blob, state } = memoryBlob(
        CONTENT,
        request.query.failClose === undefined ? undefined : new Error('EBADF: close failed'),
      );
      lastBlob = state;
      return sendFile(request, reply, {
        file: blob,
        contentType: 'audio/mpeg',
        etag: ETAG,
        downloadName: request.query.name ?? 'recording.mp3',
      });
    },
  });
  await app.ready();
});

afterAll(async () => {
  await app.close();
});

const get = (headers: Record<string, string> = {}, name?: string) =>
  app.inject({ method: 'GET', url: '/file', query: name === undefined ? {} : { name }, headers });

describe('sendFile: whole file and ranges', () => {
  it('200 with the whole file and its validators', async () => {
    const response = await get();
    expect(response.statusCode).toBe(200);
    expect(response.rawPayload).toEqual(CONTENT);
    expect(response.headers['content-length']).toBe('20');
    expect(response.headers['content-type']).toBe('audio/mpeg');
    expect(response.headers['accept-ranges']).toBe('bytes');
    expect(response.headers.etag).toBe(ETAG);
    expect(response.headers['last-modified']).toBe(LAST_MODIFIED);
    expect(response.headers['cache-control']).toBe('no-cache');
    expect(response.headers['content-range']).toBeUndefined();
  });

  it('206 for one range', async () => {
    const response = await get({ range: 'bytes=2-5' });
    expect(response.statusCode).toBe(206);
    expect(response.payload).toBe('2345');
    expect(response.headers['content-range']).toBe('bytes 2-5/20');
    expect(response.headers['content-length']).toBe('4');
    expect(lastBlob.streamedRanges).toEqual([{ start: 2, end: 5 }]);
  });

  it('206 for a suffix range', async () => {
    const response = await get({ range: 'bytes=-3' });
    expect(response.statusCode).toBe(206);
    expect(response.payload).toBe('hij');
    expect(response.headers['content-range']).toBe('bytes 17-19/20');
  });

  it('206 for an open-ended range', async () => {
    const response = await get({ range: 'bytes=15-' });
    expect(response.statusCode).toBe(206);
    expect(response.payload).toBe('fghij');
    expect(response.headers['content-range']).toBe('bytes 15-19/20');
  });

  it('206 up to the end for a range past the end', async () => {
    const response = await get({ range: 'bytes=18-1000' });
    expect(response.statusCode).toBe(206);
    expect(response.payload).toBe('ij');
    expect(response.headers['content-range']).toBe('bytes 18-19/20');
  });

  it('206 for the last byte and the first byte', async () => {
    expect((await get({ range: 'bytes=19-19' })).payload).toBe('j');
    expect((await get({ range: 'bytes=0-0' })).payload).toBe('0');
  });

  it('416 problem+json with bytes */N for an unsatisfiable range, closing the file', async () => {
    const response = await get({ range: 'bytes=20-30' });
    expect(response.statusCode).toBe(416);
    expect(response.headers['content-range']).toBe('bytes */20');
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.json()).toEqual({
      type: 'about:blank',
      title: 'Range Not Satisfiable',
      status: 416,
      detail: 'The file has 20 bytes.',
    });
    expect(lastBlob.closed).toBe(1);
    expect(lastBlob.streamedRanges).toEqual([]);
  });

  // RFC 9110 §14.1.3: a suffix range longer than the file selects the whole file ("bytes=-1000" of a 20-byte
  // file is bytes 0-19, answered 206); range-parser alone would call it unsatisfiable.
  it('a suffix range longer than the file selects the whole file (RFC 9110 §14.1.3)', async () => {
    const response = await get({ range: 'bytes=-1000' });
    expect(response.statusCode).toBe(206);
    expect(response.headers['content-range']).toBe('bytes 0-19/20');
    expect(response.rawPayload).toEqual(CONTENT);
  });

  it('several ranges get the whole file', async () => {
    const response = await get({ range: 'bytes=0-1,5-6' });
    expect(response.statusCode).toBe(200);
    expect(response.rawPayload).toEqual(CONTENT);
    expect(response.headers['content-range']).toBeUndefined();
  });

  it('overlapping or adjacent ranges are combined into one', async () => {
    const response = await get({ range: 'bytes=0-3,4-6,2-5' });
    expect(response.statusCode).toBe(206);
    expect(response.headers['content-range']).toBe('bytes 0-6/20');
    expect(response.payload).toBe('0123456');
  });

  it.each(['bytes', 'bytes=abc', 'bytes=1-x', 'bytes=1', 'items=0-5', 'garbage'])(
    'ignores the malformed or foreign Range %j',
    async (range) => {
      const response = await get({ range });
      expect(response.statusCode).toBe(200);
      expect(response.rawPayload).toEqual(CONTENT);
    },
  );

  it('honours a Range whose If-Range is the current ETag or Last-Modified', async () => {
    for (const ifRange of [ETAG, LAST_MODIFIED]) {
      const response = await get({ range: 'bytes=0-1', 'if-range': ifRange });
      expect(response.statusCode, ifRange).toBe(206);
      expect(response.payload).toBe('01');
    }
  });

  it.each(['"other"', `W/${ETAG}`, 'Wed, 04 Mar 2026 05:06:06 GMT', 'not a validator'])(
    'sends the whole file when If-Range is %j (stale or weak)',
    async (ifRange) => {
      const response = await get({ range: 'bytes=0-1', 'if-range': ifRange });
      expect(response.statusCode).toBe(200);
      expect(response.rawPayload).toEqual(CONTENT);
    },
  );

  it('a stale If-Range also bypasses an unsatisfiable range', async () => {
    const response = await get({ range: 'bytes=100-', 'if-range': '"other"' });
    expect(response.statusCode).toBe(200);
  });
});

describe('sendFile: conditional requests', () => {
  it.each([ETAG, `W/${ETAG}`, `"a", ${ETAG}`, `"a",W/${ETAG} , "b"`, '*', ' * '])(
    'If-None-Match %j → 304 without a body, closing the file',
    async (ifNoneMatch) => {
      const response = await get({ 'if-none-match': ifNoneMatch });
      expect(response.statusCode).toBe(304);
      expect(response.payload).toBe('');
      expect(response.headers.etag).toBe(ETAG);
      expect(lastBlob.closed).toBe(1);
      expect(lastBlob.streamedRanges).toEqual([]);
    },
  );

  it.each(['"other"', '"rec-1', 'rec-1', '"rec-10"', 'W/"other"'])('If-None-Match %j → 200', async (ifNoneMatch) => {
    const response = await get({ 'if-none-match': ifNoneMatch });
    expect(response.statusCode).toBe(200);
    expect(response.rawPayload).toEqual(CONTENT);
  });

  it.each([
    ['equal to Last-Modified', LAST_MODIFIED, 304],
    ['newer', 'Thu, 05 Mar 2026 00:00:00 GMT', 304],
    ['older by a second', 'Wed, 04 Mar 2026 05:06:06 GMT', 200],
    ['garbage', 'yesterday-ish', 200],
    ['empty', '', 200],
  ])('If-Modified-Since %s → %i', async (_name, since, status) => {
    const response = await get({ 'if-modified-since': since });
    expect(response.statusCode).toBe(status);
  });

  it('If-None-Match wins over If-Modified-Since', async () => {
    const response = await get({ 'if-none-match': '"other"', 'if-modified-since': 'Thu, 05 Mar 2026 00:00:00 GMT' });
    expect(response.statusCode).toBe(200);
    const cached = await get({ 'if-none-match': ETAG, 'if-modified-since': 'Thu, 01 Jan 1970 00:00:00 GMT' });
    expect(cached.statusCode).toBe(304);
  });

  it('a request with Cache-Control: no-cache is still answered 304 (fetch adds it)', async () => {
    const response = await get({ 'if-none-match': ETAG, 'cache-control': 'no-cache' });
    expect(response.statusCode).toBe(304);
  });

  it('a fresh cache wins over a Range', async () => {
    const response = await get({ 'if-none-match': ETAG, range: 'bytes=0-1' });
    expect(response.statusCode).toBe(304);
  });
});

describe('sendFile: HEAD and closing', () => {
  it('HEAD answers without a body, and never reads the file', async () => {
    const response = await app.inject({ method: 'HEAD', url: '/file' });
    expect(response.statusCode).toBe(200);
    expect(response.payload).toBe('');
    expect(response.headers.etag).toBe(ETAG);
    expect(response.headers['accept-ranges']).toBe('bytes');
    expect(lastBlob.streamedRanges).toEqual([]);
    expect(lastBlob.closed).toBe(1);
  });

  it('HEAD with a Range answers 206 with its Content-Range', async () => {
    const response = await app.inject({ method: 'HEAD', url: '/file', headers: { range: 'bytes=2-5' } });
    expect(response.statusCode).toBe(206);
    expect(response.headers['content-range']).toBe('bytes 2-5/20');
    expect(lastBlob.streamedRanges).toEqual([]);
  });

  // The route lists HEAD itself, as the download route does: Fastify's automatic HEAD route would announce
  // Content-Length: 0 for sendFile's empty HEAD payload.
  it('HEAD announces the Content-Length a GET would send', async () => {
    const full = await app.inject({ method: 'HEAD', url: '/file' });
    expect(full.headers['content-length']).toBe('20');
    const range = await app.inject({ method: 'HEAD', url: '/file', headers: { range: 'bytes=2-5' } });
    expect(range.headers['content-length']).toBe('4');
  });

  it('a file that fails to close is not an unhandled rejection', async () => {
    // Vitest fails the run on an unhandled rejection, which is what a bare `void file.close()` would give.
    const response = await app.inject({
      method: 'GET',
      url: '/file',
      query: { failClose: '1' },
      headers: { 'if-none-match': ETAG },
    });
    expect(response.statusCode).toBe(304);
    await new Promise((resolve) => setImmediate(resolve));
    expect(lastBlob.closed).toBe(1);
  });
});

describe('sendFile: Content-Disposition', () => {
  it('an ASCII name goes in filename, inline', async () => {
    const response = await get({}, 'My song.mp3');
    expect(response.headers['content-disposition']).toBe('inline; filename="My song.mp3"');
  });

  it('a non-ASCII name goes in filename*, with an ASCII stand-in in filename', async () => {
    const response = await get({}, 'Café ☕ 日本.mp3');
    const header = String(response.headers['content-disposition']);
    expect(header).toMatch(/^inline; /);
    expect(header).toContain(`filename*=UTF-8''${encodeURIComponent('Café ☕ 日本.mp3')}`);
    expect(header).toContain('filename="Cafe _ _.mp3"');
    expect(header).toMatch(/^[\x20-\x7e]*$/);
  });

  it('the stand-in has no characters that download dialogs refuse', async () => {
    const response = await get({}, 'ü: 50% "a/b" <c>|d?*.mp3');
    const fallback = /filename="([^"]*)"/.exec(String(response.headers['content-disposition']))?.[1];
    expect(fallback).toBe('u_ 50_ _a_b_ _c_d_.mp3');
  });
});
