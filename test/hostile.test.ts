import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, recordIdOf, upload, uploadAndFetch, PREFIX, type TestUser } from './kit/client.js';
import { expectNoTempFiles, expectProblem } from './kit/expect.js';
import { canTrace, ffmpegSpy, type FfmpegRun, type FfmpegSpy } from './kit/ffmpeg-spy.js';
import { rawHttp, type RawAnswer } from './kit/http.js';
import { multipartPartHead, multipartTail } from './kit/multipart.js';
import { startIsolatedService, type IsolatedService } from './kit/service.js';
import { chunk, makeWav } from './kit/wav.js';

/**
 * The hostile layer: property-based fuzzing of every endpoint over raw TCP, and a corpus of malformed
 * audio. Every answer is judged against what the API promises for that request (an oracle written from
 * the README and errors.test.ts, not from the code), and besides: never a 5xx, every error is
 * problem+json, no temp file stays, no answer carries a local file's contents, and ffmpeg is only ever
 * run on its pipe and opens no file but its output. FUZZ_RUNS scales the number of cases (1 = the CI amount).
 */
const SCALE = Number(process.env.FUZZ_RUNS ?? '1');
const runs = (count: number) => Math.max(1, Math.round(count * SCALE));
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// Distinctive lines of local files that must never appear in an answer.
const SECRETS = readFileSync('/etc/passwd', 'utf8')
  .split('\n')
  .filter((line) => line.length > 12);

let service: IsolatedService;
let spy: FfmpegSpy;
/** Has one record, `recordId`. */
let user: TestUser;
let other: TestUser;
let recordId: string;
let port: number;
let cases = 0;

beforeAll(async () => {
  spy = await ffmpegSpy();
  service = await startIsolatedService('pglite', {
    // Fuzzing fails authentication on purpose, thousands of times, from one address.
    RATE_LIMIT_AUTH_FAILURES: '0',
    RATE_LIMIT_USER_CREATIONS: '0',
    CONVERT_QUEUE_SIZE: '100',
    LOG_LEVEL: 'warn',
    FFMPEG_PATH: spy.path,
  });
  user = await createUser(service.url);
  other = await createUser(service.url);
  recordId = (await uploadAndFetch(service.url, user, makeWav({ durationSeconds: 0.2, channels: 1 }))).recordId;
  port = Number(new URL(service.url).port);
});
afterAll(async () => {
  console.log(`hostile: ${cases} requests`);
  await service.cleanup();
  await spy.cleanup();
});

// ---------------------------------------------------------------------------------------------------------
// The oracle: what the API promises for a request, from its documentation.

interface Sent {
  readonly method: string;
  /** Without the query. */
  readonly path: string;
  readonly query: string;
  /** Names in any case. */
  readonly headers: Readonly<Record<string, string>>;
}

const header = (sent: Sent, name: string) =>
  Object.entries(sent.headers).find(([key]) => key.toLowerCase() === name)?.[1];

/** The one value of a query parameter; undefined when it is missing or repeated. */
function single(query: URLSearchParams, name: string): string | undefined {
  const values = query.getAll(name);
  return values.length === 1 ? values[0] : undefined;
}

const tokens = () => new Map([user, other].map((account) => [account.user_id, account.access_token]));

/**
 * The statuses the service may answer. Bodiless requests only: an upload here has no multipart body, so
 * once authenticated it is a 400.
 */
function expectedStatuses(sent: Sent): number[] {
  const expectation = header(sent, 'expect');
  if (expectation !== undefined && expectation.trim().toLowerCase() !== '100-continue') return [417];
  const path = sent.path.replace(/\/$/, '');
  const api = /^\/(?:api\/v1|api_v1)(\/.*)$/.exec(path)?.[1];
  const read = sent.method === 'GET' || sent.method === 'HEAD';
  const statuses = routeStatuses(sent, read, api);
  // For a method that may carry a body, the body's declared type is judged first, even for a route that
  // does not exist: a type that is no media type at all is a 415.
  const type = header(sent, 'content-type')?.trim();
  if (read || type === undefined) return statuses;
  if (!/^[^/\s]+\/[^/\s]+/.test(type)) return [415];
  return /^[\w!#$&^.+-]+\/[\w!#$&^.+-]+$/.test(type) ? statuses : [...statuses, 415];
}

/** The statuses for the route itself, when the request gets that far. */
function routeStatuses(sent: Sent, read: boolean, api: string | undefined): number[] {
  const query = new URLSearchParams(sent.query);
  if (read && ['/health', '/ready', '/openapi.json'].includes(sent.path)) return [200];
  if (sent.method === 'POST' && api === '/users') return usernameStatuses(query.getAll('username'));
  if (sent.method === 'POST' && api === '/record') return uploadStatuses(sent, query);
  if (read && api === '/record') {
    const ids = [single(query, 'record_id'), single(query, 'user_id')];
    if (!ids.every((id) => id !== undefined && UUID.test(id))) return [400];
    const [record, owner] = ids.map((id) => id?.toLowerCase());
    if (record !== recordId || owner !== user.user_id) return [404];
    const conditional = ['range', 'if-range', 'if-none-match', 'if-modified-since'].some(
      (name) => header(sent, name) !== undefined,
    );
    return conditional ? [200, 206, 304, 416] : [200];
  }
  return [404];
}

/** An upload without a body: 400 for malformed parameters, 401 for any token but the user's, else 400. */
function uploadStatuses(sent: Sent, query: URLSearchParams): number[] {
  const userId = single(query, 'user_id');
  const queryToken = single(query, 'access_token');
  if (userId === undefined || !UUID.test(userId)) return [400];
  if (query.getAll('access_token').length > 1 || (queryToken?.length ?? 0) > 128) return [400];
  const authorization = header(sent, 'authorization');
  const token = authorization === undefined ? queryToken : /^Bearer\s+(\S+)\s*$/i.exec(authorization.trim())?.[1];
  if (token === undefined || tokens().get(userId.toLowerCase()) !== token) return [401];
  return [400];
}

/** 1–64 characters after trimming, any script, no control or invisible characters (README). */
function usernameStatuses(values: string[]): number[] {
  if (values.length !== 1) return [400];
  const name = (values[0] ?? '').trim();
  const length = [...name].length;
  if (length === 0 || length > 64 || /[\p{Cc}\p{Cf}]/u.test(name)) return [400];
  // Plainly valid, or valid unless taken; characters the README does not speak of may go either way.
  return /^[\p{L}\p{N}_.-]+(?: [\p{L}\p{N}_.-]+)*$/u.test(name) ? [200, 409] : [200, 400, 409];
}

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

/** Sends the request over raw TCP and checks the answer against the invariants and the oracle. */
async function expectAnswered(sent: Sent): Promise<void> {
  const target = sent.query === '' ? sent.path : `${sent.path}?${sent.query}`;
  const text = request(sent.method, target, sent.headers);
  const answer = await rawHttp(port, Buffer.from(text, 'latin1'));
  expectSafe(answer, text);
  expect(expectedStatuses(sent), `${answer.raw.slice(0, 300)}\n--- for ---\n${text.slice(0, 300)}`).toContain(
    answer.status,
  );
}

/**
 * The conversions ffmpeg ran since `before` (the spy's run ids then), each checked to have been confined
 * to its pipe; with `traced` (and strace on the machine), also by what it opened, none of `forbidden`.
 */
async function expectFfmpegConfined(
  before: readonly string[],
  options: { traced: boolean; forbidden?: readonly string[]; outputOpened?: boolean },
): Promise<FfmpegRun[]> {
  const conversions = (await spy.runs(before)).filter((run) => run.args.includes('-i'));
  for (const run of conversions) {
    const { args } = run;
    const at = (flag: string) => args.indexOf(flag);
    // One input in a format forced among its options: nothing is probed. It is stdin, or the one spooled
    // file (an MP4 with its index last), and then `file` is the only protocol allowed.
    expect(args.filter((arg) => arg === '-i')).toHaveLength(1);
    const input = args[at('-i') + 1] ?? '';
    const spooled = input.startsWith('file:') ? input.slice('file:'.length) : undefined;
    expect(spooled === undefined ? input : 'file:', input).toMatch(/^(pipe:0|file:)$/);
    const inputFormat = args.slice(0, at('-i')).lastIndexOf('-f');
    expect(inputFormat).toBeGreaterThanOrEqual(0);
    expect(args[inputFormat + 1]).toMatch(/^\w+$/);
    // No protocol but the pipe: a playlist or a concat script could not reach a file or a URL.
    expect(args[at('-protocol_whitelist') + 1]).toBe(spooled === undefined ? 'pipe' : 'file');
    // Outputs: the stored file, and the peaks on an inherited pipe.
    const outputs = args.slice(at('-i') + 2).filter((arg) => /^(file|pipe):/.test(arg));
    expect(outputs.filter((arg) => arg.startsWith('pipe:')).every((arg) => arg === 'pipe:3')).toBe(true);
    if (!options.traced || !canTrace) continue;
    if (run.opened === undefined) throw new Error(`ffmpeg ${args.join(' ')} was not traced`);
    // It opened its output (so the trace covers it), unless the input failed first, and otherwise only
    // what any program opens.
    const files = outputs.filter((arg) => arg.startsWith('file:')).map((arg) => arg.slice('file:'.length));
    if (options.outputOpened !== false) for (const file of files) expect(run.opened).toContain(file);
    expect(run.opened.length).toBeGreaterThan(0);
    const unexpected = run.opened.filter(
      (path) =>
        !files.includes(path) &&
        path !== spooled &&
        !/^\/(?:lib|lib64|usr|proc|sys|dev)\//.test(path) &&
        !/^\/etc\/(?!passwd|shadow)/.test(path),
    );
    expect(unexpected, `ffmpeg ${args.join(' ')}`).toEqual([]);
    for (const place of options.forbidden ?? []) expect(run.opened.filter((path) => path.includes(place))).toEqual([]);
  }
  return conversions;
}

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
const uuidish = (known: string[]) =>
  fc.oneof(
    fc.constantFrom(...known, ...known.map((id) => id.toUpperCase())),
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
          const headers: Record<string, string> = withToken ? { authorization: `Bearer ${user.access_token}` } : {};
          await expectAnswered({ method, path, query, headers });
        },
      ),
      { numRuns: runs(500) },
    );
    await expectNoTempFiles(service.dataDir);
  });

  it('UUID-ish ids and tokens in every place an id or a token goes', async () => {
    const token = fc.oneof(
      fc.constantFrom(user.access_token, other.access_token, user.access_token.toUpperCase(), 'x', ''),
      fc.uuid(),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(`${PREFIX}/record`, `${PREFIX}/record/`, '/api_v1/record'),
        fc.constantFrom('GET', 'POST'),
        uuidish([recordId, user.user_id, other.user_id]),
        uuidish([user.user_id, other.user_id, recordId]),
        fc.option(token, { nil: undefined }),
        fc.boolean(),
        async (path, method, recordIdSent, userIdSent, tokenSent, tokenInQuery) => {
          const query = new URLSearchParams({ record_id: recordIdSent, user_id: userIdSent });
          if (tokenSent !== undefined && tokenInQuery) query.set('access_token', tokenSent);
          const headers: Record<string, string> =
            tokenSent !== undefined && !tokenInQuery ? { authorization: `Bearer ${tokenSent}` } : {};
          await expectAnswered({ method, path, query: query.toString(), headers });
        },
      ),
      {
        numRuns: runs(400),
        // The cases the oracle is most exact about, always among them.
        examples: [
          [`${PREFIX}/record`, 'GET', recordId, user.user_id, undefined, false],
          [`${PREFIX}/record`, 'GET', recordId.toUpperCase(), user.user_id.toUpperCase(), undefined, false],
          [`${PREFIX}/record`, 'GET', recordId, other.user_id, user.access_token, false],
          [`${PREFIX}/record`, 'GET', `{${recordId}}`, user.user_id, undefined, false],
          [`${PREFIX}/record/`, 'POST', recordId, user.user_id, user.access_token, false],
          [`${PREFIX}/record/`, 'POST', recordId, user.user_id, user.access_token, true],
          [`${PREFIX}/record/`, 'POST', recordId, user.user_id, other.access_token, false],
          [`${PREFIX}/record/`, 'POST', recordId, user.user_id, randomUUID(), true],
          [`${PREFIX}/record/`, 'POST', recordId, user.user_id, undefined, false],
          [`${PREFIX}/record/`, 'POST', recordId, `urn:uuid:${user.user_id}`, user.access_token, false],
        ],
      },
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
          const query = `user_id=${user.user_id}&record_id=${randomUUID()}&username=h${randomUUID().slice(0, 8)}`;
          await expectAnswered({ method, path, query, headers: Object.fromEntries(headers) });
        },
      ),
      { numRuns: runs(400) },
    );
    await expectNoTempFiles(service.dataDir);
  });

  it('random multipart bodies: missing, extra and huge parts, wrong boundaries, truncation', async () => {
    // Bytes at random cannot name a file, so the conversions are only checked by their command lines.
    await spy.trace(false);
    const before = await spy.ids();
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
    type Part = { name: string; filename: string | undefined; extraHeader: string | undefined; content: Buffer };
    type BoundaryKind = 'right' | 'wrong' | 'missing' | 'quoted' | 'huge';
    const wholeWav: Part = { name: 'file', filename: 'a.wav', extraHeader: undefined, content: wavHead };
    const titleField: Part = { name: 'title', filename: undefined, extraHeader: undefined, content: Buffer.from('t') };
    const oddField: Part = { name: 'other', filename: undefined, extraHeader: 'X: y', content: Buffer.from('o') };
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          part.map((p): Part => ({ ...p, content: p.content as Buffer })),
          { maxLength: 20 },
        ),
        fc.constantFrom<BoundaryKind>('right', 'wrong', 'missing', 'quoted', 'huge'),
        fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }),
        fc.boolean(),
        async (parts, boundaryKind, truncateAt, closed) => {
          const boundary = `b${Math.random().toString(36).slice(2)}`;
          const pieces: Buffer[] = [];
          for (const p of parts) {
            const head = multipartPartHead(
              {
                name: p.name,
                ...(p.filename === undefined ? {} : { filename: p.filename }),
                ...(p.extraHeader === undefined ? {} : { extraHeaders: [p.extraHeader] }),
              },
              boundary,
            );
            // As a part is written by hand: no Content-Type unless the extra header is one.
            pieces.push(
              Buffer.from(head.toString('latin1').replace('Content-Type: application/octet-stream\r\n', ''), 'latin1'),
              p.content,
              Buffer.from('\r\n'),
            );
          }
          if (closed) pieces.push(multipartTail(boundary));
          const whole = Buffer.concat(pieces);
          const body = truncateAt === undefined ? whole : whole.subarray(0, Math.floor(whole.length * truncateAt));
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
          const sent = `${head}[${body.length} bytes of ${parts.length} parts]`;
          expectSafe(answer, sent);
          // The close delimiter's own CRLF is optional (RFC 2046): a closed form cut only there is complete.
          const truncated = body.length < whole.length - (closed ? 2 : 0);
          expect(multipartStatuses(parts, boundaryKind, truncated, closed, wavHead), sent).toContain(answer.status);
        },
      ),
      {
        numRuns: runs(300),
        // A plain, good upload, and forms that are well made but have no file: the oracle is exact there.
        examples: [
          [[wholeWav], 'right', undefined, true],
          [[titleField, wholeWav], 'quoted', undefined, true],
          [[titleField, oddField], 'right', undefined, true],
          [[], 'right', undefined, true],
          [[wholeWav], 'missing', undefined, true],
          [[wholeWav], 'wrong', undefined, true],
        ] satisfies Array<[Part[], BoundaryKind, number | undefined, boolean]>,
      },
    );
    await expectNoTempFiles(service.dataDir);
    await expectFfmpegConfined(before, { traced: false });
  });
});

/**
 * The statuses a multipart upload may get (README, errors.test.ts): 400 for a form without a "file" part
 * or one that is broken or cut off, 413 past the part limits, 415/422 for a file that is not usable WAV,
 * and 200 only for a complete form whose "file" part holds a WAV.
 */
function multipartStatuses(
  parts: ReadonlyArray<{ name: string; filename: string | undefined; content: Buffer }>,
  boundaryKind: string,
  truncated: boolean,
  closed: boolean,
  wav: Buffer,
): number[] {
  // A form that cannot be read at all: no boundary, or one that is not in the body (or too long to be one).
  if (boundaryKind === 'missing' || boundaryKind === 'wrong' || boundaryKind === 'huge') return [400];
  const complete = !truncated && closed;
  // Names and file names the oracle reads as the parser will (no quotes, escapes or line breaks).
  const plain = parts.every((p) => [p.name, p.filename ?? ''].every((text) => /^[\w ./-]*$/.test(text)));
  const files = parts.filter((p) => p.filename !== undefined);
  const fields = parts.filter((p) => p.filename === undefined);
  const withinLimits = parts.length <= 16 && files.length <= 1 && fields.length <= 8;
  const file = files.find((p) => p.name === 'file');
  if (complete && plain && withinLimits) {
    if (file === undefined) return [400];
    const titlesOk = fields
      .filter((p) => p.name === 'title')
      .every((title) => title.content.length <= 200 && /^[\x20-\x7e]*$/.test(title.content.toString('latin1')));
    if (titlesOk && file.content.equals(wav)) return [200];
  }
  // The rest depends on where the body breaks off and what the file part holds, but without a complete
  // form whose file part starts like a WAV it is never a success.
  const couldSucceed = complete && file !== undefined && file.content.subarray(0, 4).toString('latin1') === 'RIFF';
  return couldSucceed ? [200, 400, 413, 415, 422] : [400, 413, 415, 422];
}

describe('malformed audio', () => {
  const ffmpegEncode = (format: string, wav: Buffer) =>
    execFileSync('ffmpeg', ['-v', 'error', '-f', 'wav', '-i', 'pipe:0', '-f', format, 'pipe:1'], { input: wav });

  function wavWith(
    fmt: { tag?: number; channels?: number; rate?: number; bits?: number; align?: number },
    data: Buffer,
    chunksBeforeData: Buffer[] = [],
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
    const chunks = Buffer.concat([Buffer.from('WAVE'), chunk('fmt ', body), ...chunksBeforeData, chunk('data', data)]);
    const riff = Buffer.alloc(8);
    riff.write('RIFF', 0, 'latin1');
    riff.writeUInt32LE(chunks.length, 4);
    return Buffer.concat([riff, chunks]);
  }

  const good = makeWav({ durationSeconds: 0.3, sampleRate: 8000, channels: 1 });
  // Other formats named .wav are read (formats.test.ts); these are recognised by their first bytes and then
  // turn out not to be audio.
  const mp3ThenText = (() => {
    const mp3 = ffmpegEncode('mp3', good);
    const frame = mp3.indexOf(Buffer.from([0xff]), mp3.indexOf('ID3') === 0 ? 10 + mp3.readUInt8(9) : 0);
    // ffmpeg writes 8 kHz mono as MPEG-2.5 layer III at 8 kbit/s: 72-byte frames.
    if (mp3.readUInt32BE(frame) !== 0xffe318c4) throw new Error('ffmpeg wrote another kind of MP3 frame');
    return Buffer.concat([mp3.subarray(frame, frame + 72), Buffer.from('and then only text follows.\n'.repeat(50))]);
  })();
  const flacWithGarbage = (() => {
    const flac = Buffer.from(ffmpegEncode('flac', good));
    // Keeps the fLaC marker and the STREAMINFO block; everything after it becomes noise.
    for (let at = 42; at < flac.length; at++) flac[at] = (at * 7919) % 251;
    return flac;
  })();
  const playlist = Buffer.from('#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n');
  const gigabytes = (() => {
    const wav = wavWith({ bits: 16, rate: 44100, channels: 2 }, Buffer.alloc(4096));
    wav.writeUInt32LE(0xfffffff0, 40); // the data chunk claims 4 GiB
    return wav;
  })();

  // The statuses are those errors.test.ts pins for the same kind of file: 415 when the bytes are not a WAV
  // at all, 422 for a WAV whose audio cannot be used, 413 for one declaring more than the limits allow.
  const corpus: Array<[string, Buffer, number]> = [
    ['empty', Buffer.alloc(0), 415],
    ['text', Buffer.from('This is not audio at all.\n'.repeat(20)), 415],
    ['random bytes', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256)), 415],
    ['header only', good.subarray(0, 44), 422],
    ['truncated header', good.subarray(0, 30), 415],
    ['zero channels', wavWith({ channels: 0, align: 2 }, Buffer.alloc(800)), 415],
    ['zero rate', wavWith({ rate: 0 }, Buffer.alloc(800)), 415],
    ['12-bit PCM', wavWith({ bits: 12, align: 2 }, Buffer.alloc(800)), 422],
    ['7-bit PCM', wavWith({ bits: 7, align: 1 }, Buffer.alloc(800)), 422],
    ['unknown codec 0x1234', wavWith({ tag: 0x1234, bits: 16 }, Buffer.alloc(4000, 0x55)), 422],
    ['MPEG layer 3 in WAV (0x55) with junk', wavWith({ tag: 0x55, bits: 0, align: 1 }, Buffer.alloc(4000, 1)), 422],
    ['RIFF that is not WAVE', Buffer.concat([Buffer.from('RIFF\x10\x00\x00\x00AVI LIST'), Buffer.alloc(64)]), 415],
    ['MP3 that is one frame and then text', mp3ThenText, 415],
    ['FLAC whose audio frames are garbage', flacWithGarbage, 422],
    ['HLS playlist named .wav', playlist, 415],
    ['header declaring gigabytes', gigabytes, 413],
    ['block align lying', wavWith({ bits: 16, channels: 2, align: 3 }, Buffer.alloc(800)), 422],
    [
      'fmt chunk too short',
      Buffer.concat([Buffer.from('RIFF\x20\x00\x00\x00WAVEfmt \x04\x00\x00\x00\x01\x00\x01\x00')]),
      415,
    ],
  ];

  it.each(corpus)('%s gets its 4xx', async (_name, bytes, status) => {
    await spy.trace(true);
    const before = await spy.ids();
    const response = await upload(service.url, user, bytes, { filename: 'recording.wav' });
    const text = await response.clone().text();
    await expectProblem(response, status);
    for (const line of SECRETS) expect(text).not.toContain(line);
    await expectNoTempFiles(service.dataDir);
    // A container ffmpeg cannot read fails before the output is opened.
    await expectFfmpegConfined(before, { traced: true, outputOpened: false });
  });

  describe('files that point at a local file are only ever decoded as samples, never followed', () => {
    // A file of the test's own, holding a marker nothing else holds: nothing may open it, or echo it.
    let secretDir: string;
    let secretPath: string;
    let marker: string;
    beforeAll(async () => {
      secretDir = await mkdtemp(join(tmpdir(), 'hostile-secret-'));
      secretPath = join(secretDir, 'segment.ts');
      marker = `marker-${randomUUID()}`;
      await writeFile(secretPath, `${marker}\n`.repeat(200));
    });
    afterAll(async () => {
      await rm(secretDir, { recursive: true, force: true });
    });

    const hls = () => `#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://${secretPath}\n#EXT-X-ENDLIST\n`;
    const concat = () => `ffconcat version 1.0\nfile '${secretPath}'\nfile 'file:${secretPath}'\n`;
    /** 8-bit mono 8 kHz: every byte of the text is one sample, so the length says how it was read. */
    const asSamples = (text: string) => wavWith({ bits: 8, rate: 8000 }, Buffer.from(text.repeat(40)));

    const payloads = () =>
      [
        ['an HLS playlist inside a real RIFF/WAVE', asSamples(hls())],
        ['an ffconcat script inside a real RIFF/WAVE', asSamples(concat())],
        [
          'a WAV whose LIST chunk names the file',
          wavWith({ bits: 8, rate: 8000 }, Buffer.alloc(8000, 0x80), [
            chunk('LIST', Buffer.from(`INFOINAM${hls()}`, 'latin1')),
          ]),
        ],
      ] as const;

    it('converts them as audio of the right length, with nothing of the file in the answer or the MP3', async () => {
      await spy.trace(true);
      for (const [name, wav] of payloads()) {
        const before = await spy.ids();
        const response = await upload(service.url, user, wav);
        const body = await response.text();
        expect(response.status, `${name}: ${body}`).toBe(200);
        expect(body).not.toContain(marker);
        const url = (JSON.parse(body) as { record_url: string }).record_url;
        const mp3 = Buffer.from(await (await fetch(url)).arrayBuffer());
        expect(mp3.toString('latin1')).not.toContain(marker);
        const metadata = (await (await fetch(url, { headers: { accept: 'application/json' } })).json()) as {
          duration_seconds: number;
        };
        const samples = wav.length - wav.indexOf('data', 12, 'latin1') - 8;
        expect(metadata.duration_seconds, name).toBeCloseTo(samples / 8000, 2);
        expect(recordIdOf(url)).toMatch(UUID);
        // ffmpeg was run on the pipe alone, and never opened the file the payload names.
        expect(await expectFfmpegConfined(before, { traced: true, forbidden: [secretDir] })).toHaveLength(1);
      }
      const playlistAlone = await upload(service.url, user, Buffer.from(hls()));
      await expectProblem(playlistAlone, 415);
      await expectNoTempFiles(service.dataDir);
    });

    // The control that shows the check above can fail: the service's own output options, behind an input
    // that is probed with file: allowed, do follow the playlist, and the trace shows it.
    it.runIf(canTrace)('are followed by ffmpeg when the format is probed and file: allowed', async () => {
      await spy.trace(true);
      const before = await spy.ids();
      expect((await upload(service.url, user, asSamples(hls()))).status).toBe(200);
      const [run] = await expectFfmpegConfined(before, { traced: true });
      const serviceArgs = run?.args ?? [];
      const storedOutput = serviceArgs.findIndex(
        (arg, index) => index > serviceArgs.indexOf('-i') + 1 && arg.startsWith('file:'),
      );
      const output = serviceArgs.slice(serviceArgs.indexOf('-i') + 2, storedOutput);
      expect(output).toContain('libmp3lame');
      const args = [
        ...['-nostdin', '-loglevel', 'error', '-protocol_whitelist', 'pipe,file', '-i', 'pipe:0'],
        ...output,
        `file:${join(secretDir, 'control.mp3')}`,
      ];
      const seen = await spy.ids();
      spawnSync(spy.path, args, { input: Buffer.from(hls()), timeout: 30_000 });
      const control = await spy.runs(seen);
      expect(control).toHaveLength(1);
      expect(control[0]?.opened).toContain(secretPath);
    });
  });
});
