import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, upload, PREFIX, type TestUser } from './kit/client.js';
import { expectNoTempFiles as expectNoTempFilesIn } from './kit/expect.js';
import { rawHttp, type RawAnswer } from './kit/http.js';
import { startIsolatedService, type IsolatedService } from './kit/service.js';
import { chunk, makeWav } from './kit/wav.js';

/**
 * The hostile layer: property-based fuzzing of every endpoint over raw TCP, and a corpus of malformed
 * audio. The invariants: never a 5xx, every error is problem+json, no temp file stays, and no answer
 * ever carries a local file's contents. FUZZ_RUNS scales the number of cases (1 = the CI amount).
 */
const SCALE = Number(process.env.FUZZ_RUNS ?? '1');
const runs = (count: number) => Math.max(1, Math.round(count * SCALE));
// Distinctive lines of local files that must never appear in an answer.
const SECRETS = readFileSync('/etc/passwd', 'utf8')
  .split('\n')
  .filter((line) => line.length > 12);

let service: IsolatedService;
let user: TestUser;
let port: number;
let cases = 0;

beforeAll(async () => {
  service = await startIsolatedService('pglite', {
    // Fuzzing fails authentication on purpose, thousands of times, from one address.
    RATE_LIMIT_AUTH_FAILURES: '0',
    RATE_LIMIT_USER_CREATIONS: '0',
    CONVERT_QUEUE_SIZE: '100',
    LOG_LEVEL: 'warn',
  });
  user = await createUser(service.url);
  port = Number(new URL(service.url).port);
});
afterAll(async () => {
  console.log(`hostile: ${cases} requests`);
  await service.cleanup();
});

/** The invariants every answer keeps, whatever was sent. */
function expectSafe(answer: RawAnswer, sent: string): void {
  cases += 1;
  const context = `${answer.raw.slice(0, 300)}\n--- for ---\n${sent.slice(0, 300)}`;
  expect(answer.status, context).toBeGreaterThanOrEqual(200);
  expect(answer.status, context).toBeLessThan(500);
  if (answer.status >= 400) {
    expect(answer.headers['content-type'], context).toMatch(/^application\/problem\+json/);
    if (sent.startsWith('HEAD ')) return;
    const problem = JSON.parse(answer.text) as { status: number; title: string; detail: string };
    expect(problem.status, context).toBe(answer.status);
    expect(typeof problem.detail).toBe('string');
  }
  for (const line of SECRETS) expect(answer.raw, context).not.toContain(line);
}

const expectNoTempFiles = () => expectNoTempFilesIn(service.dataDir);

const ENDPOINTS = [
  ['POST', `${PREFIX}/users/`],
  ['POST', `${PREFIX}/record/`],
  ['GET', `${PREFIX}/record`],
  ['HEAD', `${PREFIX}/record`],
  ['GET', '/api_v1/record'],
  ['POST', '/api_v1/users/'],
  ['GET', '/health'],
  ['GET', '/ready'],
  ['GET', '/openapi.json'],
  ['DELETE', `${PREFIX}/record`],
  ['OPTIONS', `${PREFIX}/record/`],
  ['PUT', `${PREFIX}/users/`],
] as const;

// Printable ASCII without space, '#' and '%' (added on purpose below), as a request target allows.
const targetChar = fc.mapToConstant(
  { num: 2, build: (v) => String.fromCharCode(0x21 + v) }, // ! "
  { num: 1, build: () => '$' },
  { num: 0x7e - 0x26 + 1, build: (v) => String.fromCharCode(0x26 + v) },
);
const percentJunk = fc.constantFrom('%', '%zz', '%00', '%ED%A0%80', '%C0%AF', '%FF%FE', '%2e%2e%2f', '%0d%0a');
const queryText = fc
  .array(fc.oneof({ weight: 5, arbitrary: targetChar }, { weight: 1, arbitrary: percentJunk }), { maxLength: 120 })
  .map((parts) => parts.join(''));
const uuidish = fc.oneof(
  fc.uuid(),
  fc.uuid().map((id) => id.toUpperCase()),
  fc.uuid().map((id) => `{${id}}`),
  fc.uuid().map((id) => `urn:uuid:${id}`),
  fc.uuid().map((id) => id.slice(0, 35)),
  fc.uuid().map((id) => `${id}0`),
  fc.uuid().map((id) => id.replaceAll('-', '')),
  fc.uuid().map((id) => id.replace('a', 'а')), // Cyrillic a
  fc.constantFrom('', '0', 'null', '../../etc/passwd', '00000000-0000-0000-0000-000000000000', '%00'),
  fc.string({ maxLength: 40 }),
);

function request(method: string, target: string, headers: Record<string, string> = {}, body = ''): string {
  const lines = [`${method} ${target} HTTP/1.1`, 'Host: test', 'Connection: close'];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  if (body !== '' || method === 'POST') lines.push(`Content-Length: ${Buffer.byteLength(body, 'latin1')}`);
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

describe('fuzzing every endpoint', () => {
  it('random query strings', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ENDPOINTS),
        queryText,
        fc.boolean(),
        async ([method, path], query, withToken) => {
          const sent = request(
            method,
            `${path}?${query}`,
            withToken ? { authorization: `Bearer ${user.access_token}` } : {},
          );
          expectSafe(await rawHttp(port, sent), sent);
        },
      ),
      { numRuns: runs(500) },
    );
    await expectNoTempFiles();
  });

  it('UUID-ish ids in every place an id goes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(`${PREFIX}/record`, `${PREFIX}/record/`, '/api_v1/record'),
        fc.constantFrom('GET', 'POST'),
        uuidish,
        uuidish,
        async (path, method, recordId, userId) => {
          const query = new URLSearchParams({ record_id: recordId, user_id: userId }).toString();
          const sent = request(method, `${path}?${query}`, { authorization: `Bearer ${user.access_token}` });
          expectSafe(await rawHttp(port, sent), sent);
        },
      ),
      { numRuns: runs(400) },
    );
  });

  it('random headers', async () => {
    const headerValue = fc
      .array(fc.integer({ min: 0x20, max: 0xff }), { maxLength: 200 })
      .map((codes) => String.fromCharCode(...codes.filter((code) => code !== 0x7f)).trim());
    const headerName = fc.constantFrom(
      'Authorization',
      'Content-Type',
      'Accept',
      'Accept-Encoding',
      'Range',
      'If-Range',
      'If-None-Match',
      'If-Modified-Since',
      'X-Request-Id',
      'X-Forwarded-For',
      'X-Forwarded-Host',
      'Cookie',
      'Origin',
      'Expect',
      'Upgrade',
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ENDPOINTS),
        fc.uniqueArray(fc.tuple(headerName, headerValue), { maxLength: 6, selector: ([name]) => name }),
        async ([method, path], headers) => {
          const query = `user_id=${user.user_id}&record_id=${crypto.randomUUID()}&username=h${cases}`;
          const sent = request(method, `${path}?${query}`, Object.fromEntries(headers));
          expectSafe(await rawHttp(port, Buffer.from(sent, 'latin1')), sent);
        },
      ),
      { numRuns: runs(400) },
    );
    await expectNoTempFiles();
  });

  it('random multipart bodies: missing, extra and huge parts, wrong boundaries, truncation', async () => {
    const wavHead = makeWav({ durationSeconds: 0.05 });
    const partContent = fc.oneof(
      { weight: 4, arbitrary: fc.uint8Array({ maxLength: 1024 }).map((bytes) => Buffer.from(bytes)) },
      { weight: 1, arbitrary: fc.constant(wavHead) },
      { weight: 1, arbitrary: fc.integer({ min: 1, max: wavHead.length }).map((n) => wavHead.subarray(0, n)) },
      { weight: 1, arbitrary: fc.integer({ min: 4097, max: 70_000 }).map((n) => Buffer.alloc(n, 'x')) },
    );
    const part = fc.record({
      name: fc.oneof(fc.constantFrom('file', 'title', 'other', ''), fc.string({ maxLength: 20 })),
      filename: fc.option(fc.oneof(fc.constantFrom('a.wav', '../../etc/passwd', 'x"y.wav'), fc.string()), {
        nil: undefined,
      }),
      extraHeader: fc.option(fc.constantFrom('Content-Type: audio/wav', 'Content-Transfer-Encoding: base64', 'X: y'), {
        nil: undefined,
      }),
      content: partContent,
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(part, { maxLength: 20 }),
        fc.constantFrom('right', 'wrong', 'missing', 'quoted', 'huge'),
        fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }),
        fc.boolean(),
        async (parts, boundaryKind, truncateAt, closed) => {
          const boundary = `b${Math.random().toString(36).slice(2)}`;
          const pieces: Buffer[] = [];
          for (const p of parts) {
            const disposition =
              `Content-Disposition: form-data; name="${p.name}"` +
              (p.filename === undefined ? '' : `; filename="${p.filename}"`);
            const headers = [disposition, ...(p.extraHeader === undefined ? [] : [p.extraHeader])].join('\r\n');
            pieces.push(Buffer.from(`--${boundary}\r\n${headers}\r\n\r\n`), p.content, Buffer.from('\r\n'));
          }
          if (closed) pieces.push(Buffer.from(`--${boundary}--\r\n`));
          let body = Buffer.concat(pieces);
          if (truncateAt !== undefined) body = body.subarray(0, Math.floor(body.length * truncateAt));
          const declared = {
            right: `multipart/form-data; boundary=${boundary}`,
            wrong: `multipart/form-data; boundary=${boundary}x`,
            missing: 'multipart/form-data',
            quoted: `multipart/form-data; boundary="${boundary}"`,
            huge: `multipart/form-data; boundary=${'z'.repeat(300)}`,
          }[boundaryKind];
          const head = request(
            'POST',
            `${PREFIX}/record/?user_id=${user.user_id}`,
            { authorization: `Bearer ${user.access_token}`, 'content-type': declared },
            '',
          ).replace(/Content-Length: \d+/, `Content-Length: ${body.length}`);
          const answer = await rawHttp(port, Buffer.concat([Buffer.from(head, 'latin1'), body]));
          expectSafe(answer, `${head}[${body.length} bytes of ${parts.length} parts]`);
        },
      ),
      { numRuns: runs(300) },
    );
    await expectNoTempFiles();
  });
});

describe('malformed audio', () => {
  const ffmpegEncode = (format: string, wav: Buffer) =>
    execFileSync('ffmpeg', ['-v', 'error', '-f', 'wav', '-i', 'pipe:0', '-f', format, 'pipe:1'], { input: wav });

  function wavWith(
    fmt: { tag?: number; channels?: number; rate?: number; bits?: number; align?: number },
    data: Buffer,
  ) {
    const channels = fmt.channels ?? 1;
    const bits = fmt.bits ?? 16;
    const rate = fmt.rate ?? 8000;
    const align = fmt.align ?? Math.ceil((channels * bits) / 8);
    const body = Buffer.alloc(16);
    body.writeUInt16LE(fmt.tag ?? 1, 0);
    body.writeUInt16LE(channels, 2);
    body.writeUInt32LE(rate, 4);
    body.writeUInt32LE(rate * align, 8);
    body.writeUInt16LE(align, 12);
    body.writeUInt16LE(bits, 14);
    const chunks = Buffer.concat([Buffer.from('WAVE'), chunk('fmt ', body), chunk('data', data)]);
    const riff = Buffer.alloc(8);
    riff.write('RIFF', 0, 'latin1');
    riff.writeUInt32LE(chunks.length, 4);
    return Buffer.concat([riff, chunks]);
  }

  const good = makeWav({ durationSeconds: 0.3, sampleRate: 8000, channels: 1 });
  const playlist = Buffer.from('#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n');
  const gigabytes = (() => {
    const wav = wavWith({ bits: 16, rate: 44100, channels: 2 }, Buffer.alloc(4096));
    wav.writeUInt32LE(0xfffffff0, 40); // the data chunk claims 4 GiB
    return wav;
  })();

  const corpus: Array<[string, Buffer, number[]]> = [
    ['empty', Buffer.alloc(0), [400, 415]],
    ['text', Buffer.from('This is not audio at all.\n'.repeat(20)), [415]],
    ['random bytes', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256)), [415]],
    ['header only', good.subarray(0, 44), [422]],
    ['truncated header', good.subarray(0, 30), [415, 422]],
    ['zero channels', wavWith({ channels: 0, align: 2 }, Buffer.alloc(800)), [415]],
    ['zero rate', wavWith({ rate: 0 }, Buffer.alloc(800)), [415]],
    ['12-bit PCM', wavWith({ bits: 12, align: 2 }, Buffer.alloc(800)), [422]],
    ['7-bit PCM', wavWith({ bits: 7, align: 1 }, Buffer.alloc(800)), [422]],
    ['unknown codec 0x1234', wavWith({ tag: 0x1234, bits: 16 }, Buffer.alloc(4000, 0x55)), [415, 422]],
    [
      'MPEG layer 3 in WAV (0x55) with junk',
      wavWith({ tag: 0x55, bits: 0, align: 1 }, Buffer.alloc(4000, 1)),
      [415, 422],
    ],
    ['RIFF that is not WAVE', Buffer.concat([Buffer.from('RIFF\x10\x00\x00\x00AVI LIST'), Buffer.alloc(64)]), [415]],
    ['MP3 named .wav', ffmpegEncode('mp3', good), [415]],
    ['FLAC named .wav', ffmpegEncode('flac', good), [415]],
    ['HLS playlist named .wav', playlist, [415]],
    ['header declaring gigabytes', gigabytes, [413]],
    ['block align lying', wavWith({ bits: 16, channels: 2, align: 3 }, Buffer.alloc(800)), [422]],
    [
      'fmt chunk too short',
      Buffer.concat([Buffer.from('RIFF\x20\x00\x00\x00WAVEfmt \x04\x00\x00\x00\x01\x00\x01\x00')]),
      [415],
    ],
  ];

  it.each(corpus)('%s gets its 4xx', async (_name, bytes, statuses) => {
    const response = await upload(service.url, user, bytes, { filename: 'recording.wav' });
    const body = await response.text();
    expect(statuses, body).toContain(response.status);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    for (const line of SECRETS) expect(body).not.toContain(line);
    await expectNoTempFiles();
  });

  it('an HLS playlist inside a real RIFF/WAVE is only ever decoded as samples, never followed', async () => {
    const wav = wavWith({ bits: 8, rate: 8000 }, Buffer.concat(Array.from({ length: 40 }, () => playlist)));
    const response = await upload(service.url, user, wav);
    const body = await response.text();
    for (const line of SECRETS) expect(body).not.toContain(line);
    if (response.status === 200) {
      const { record_url: url } = JSON.parse(body) as { record_url: string };
      const mp3 = Buffer.from(await (await fetch(url)).arrayBuffer());
      for (const line of SECRETS) expect(mp3.toString('latin1')).not.toContain(line);
    } else {
      expect(response.status).toBeGreaterThanOrEqual(400);
      expect(response.status).toBeLessThan(500);
    }
    await expectNoTempFiles();
  });
});
