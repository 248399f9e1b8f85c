import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, upload, uploadAndFetch, PREFIX, type TestUser } from './kit/client.js';
import { databaseKinds, withSql } from './kit/database.js';
import { startIsolatedService, type IsolatedService as Service } from './kit/service.js';
import { makeWav } from './kit/wav.js';

describe('security headers and CORS', () => {
  let service: Service;
  let withCors: Service;
  beforeAll(async () => {
    service = await startIsolatedService('pglite');
    withCors = await startIsolatedService('pglite', { CORS_ORIGINS: 'https://app.example' });
  });
  afterAll(async () => {
    await service.cleanup();
    await withCors.cleanup();
  });

  it('sends helmet headers, and Swagger UI loads everything it needs under its CSP', async () => {
    const health = await fetch(`${service.url}/health`);
    expect(health.headers.get('x-content-type-options')).toBe('nosniff');
    expect(health.headers.get('x-frame-options')).toBe('SAMEORIGIN');
    expect(health.headers.get('cross-origin-resource-policy')).toBe('cross-origin');

    const page = await fetch(`${service.url}/docs/`, { redirect: 'follow' });
    expect(page.status).toBe(200);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toMatch(/script-src 'self'/);
    expect(csp).not.toMatch(/script-src[^;]*unsafe-inline/);
    expect(csp).not.toMatch(/upgrade-insecure-requests/);
    const html = await page.text();
    // No inline script (the CSP would block it); every script and stylesheet is same-origin and served.
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>\s*\S/);
    const assets = [...html.matchAll(/(?:src|href)="([^"]+\.(?:js|css))"/g)].map((match) => match[1] ?? '');
    expect(assets.length).toBeGreaterThanOrEqual(3);
    for (const asset of assets) {
      expect(asset).not.toMatch(/^(https?:)?\/\//);
      const response = await fetch(new URL(asset, `${service.url}/docs/`));
      expect(response.status, asset).toBe(200);
    }
    const spec = await fetch(`${service.url}/docs/json`);
    expect(spec.status).toBe(200);
  });

  it('sends the same security headers on every kind of answer: audio, ranges, 304, errors, unknown routes', async () => {
    const SECURITY_HEADERS = [
      'content-security-policy',
      'cross-origin-opener-policy',
      'cross-origin-resource-policy',
      'referrer-policy',
      'strict-transport-security',
      'x-content-type-options',
      'x-frame-options',
    ];
    const headersOf = (response: Response) =>
      Object.fromEntries(SECURITY_HEADERS.map((name) => [name, response.headers.get(name)]));
    const expected = headersOf(await fetch(`${service.url}/health`));
    for (const value of Object.values(expected)) expect(value).not.toBeNull();

    const created = await fetch(`${service.url}${PREFIX}/users/?username=headers-${Date.now()}`, { method: 'POST' });
    const user = (await created.json()) as TestUser;
    const { recordUrl } = await uploadAndFetch(service.url, user, makeWav({ durationSeconds: 0.2 }));
    const whole = await fetch(recordUrl);
    const etag = whole.headers.get('etag') ?? '';
    const answers: Array<[string, Response, number]> = [
      ['user created', created, 200],
      ['audio', whole, 200],
      ['range', await fetch(recordUrl, { headers: { range: 'bytes=0-9' } }), 206],
      ['not modified', await fetch(recordUrl, { headers: { 'if-none-match': etag } }), 304],
      ['unsatisfiable', await fetch(recordUrl, { headers: { range: 'bytes=999999999-' } }), 416],
      ['bad id', await fetch(`${service.url}${PREFIX}/record?record_id=x&user_id=y`), 400],
      ['no token', await fetch(`${service.url}${PREFIX}/records?user_id=${user.user_id}`), 401],
      ['unknown route', await fetch(`${service.url}/no/such/route`), 404],
    ];
    for (const [what, response, status] of answers) {
      expect(response.status, what).toBe(status);
      expect(headersOf(response), what).toEqual(expected);
    }
  });

  it('has CORS off unless CORS_ORIGINS names the origin', async () => {
    const origin = { origin: 'https://app.example' };
    const plain = await fetch(`${service.url}/health`, { headers: origin });
    expect(plain.headers.get('access-control-allow-origin')).toBeNull();
    const preflight = await fetch(`${service.url}${PREFIX}/record/`, {
      method: 'OPTIONS',
      headers: { ...origin, 'access-control-request-method': 'POST' },
    });
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();

    const allowed = await fetch(`${withCors.url}${PREFIX}/record/`, {
      method: 'OPTIONS',
      headers: {
        ...origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization',
      },
    });
    expect(allowed.status).toBeLessThan(300);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example');
    const other = await fetch(`${withCors.url}/health`, { headers: { origin: 'https://evil.example' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('rate limits', () => {
  let service: Service;
  let user: TestUser;
  beforeAll(async () => {
    service = await startIsolatedService('pglite', { RATE_LIMIT_AUTH_FAILURES: '5', RATE_LIMIT_USER_CREATIONS: '4' });
    user = await createUser(service.url);
  });
  afterAll(async () => {
    await service.cleanup();
  });

  it('answers 429 with Retry-After after repeated authentication failures, even to the right token', async () => {
    const wav = makeWav({ durationSeconds: 0.1 });
    for (let attempt = 0; attempt < 5; attempt++) {
      const response = await upload(service.url, { ...user, access_token: crypto.randomUUID() }, wav);
      expect(response.status).toBe(401);
    }
    for (const token of [crypto.randomUUID(), user.access_token]) {
      const throttled = await upload(service.url, { ...user, access_token: token }, wav);
      expect(throttled.status).toBe(429);
      expect(Number(throttled.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(throttled.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }
    // Probes are never throttled.
    expect((await fetch(`${service.url}/health`)).status).toBe(200);
  });
});

describe('user creation limit', () => {
  let service: Service;
  beforeAll(async () => {
    service = await startIsolatedService('pglite', { RATE_LIMIT_USER_CREATIONS: '3' });
  });
  afterAll(async () => {
    await service.cleanup();
  });

  it('allows N creations per window, then 429 with Retry-After', async () => {
    for (let index = 0; index < 3; index++) await createUser(service.url);
    const response = await fetch(`${service.url}${PREFIX}/users/?username=one_too_many`, { method: 'POST' });
    expect(response.status).toBe(429);
    expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    // Other routes are not affected.
    expect((await fetch(`${service.url}/health`)).status).toBe(200);
  });
});

describe.each(databaseKinds)('secrets at rest and in logs (%s)', (kind) => {
  let service: Service;
  beforeAll(async () => {
    service = await startIsolatedService(kind, { LOG_LEVEL: 'trace' });
  });
  afterAll(async () => {
    await service.cleanup();
  });

  it('stores no plain token, and logs none during a whole session', async () => {
    const tokens: string[] = [];
    const users: TestUser[] = [];
    for (let index = 0; index < 3; index++) {
      const user = await createUser(service.url);
      users.push(user);
      tokens.push(user.access_token);
    }
    const [first, second] = users as [TestUser, TestUser];
    const wav = makeWav({ durationSeconds: 0.2 });
    await uploadAndFetch(service.url, first, wav);
    await uploadAndFetch(service.url, second, wav, { tokenInQuery: true });
    // Failures carrying tokens: someone else's token, in the header and in the query, malformed headers.
    await upload(service.url, { ...first, access_token: second.access_token }, wav);
    await upload(service.url, { ...first, access_token: second.access_token }, wav, { tokenInQuery: true });
    await fetch(`${service.url}${PREFIX}/record/?user_id=${first.user_id}&access_token=${first.access_token}x`, {
      method: 'POST',
      headers: { authorization: `Basic ${first.access_token}` },
    });
    await fetch(`${service.url}${PREFIX}/record/?user_id=nope&access_token=${second.access_token}`, {
      method: 'POST',
    });
    await fetch(`${service.url}/no/such/route?access_token=${second.access_token}`);

    const logs = service.logs();
    expect(logs.length).toBeGreaterThan(1000);
    const leaks = logs.split('\n').filter((line) => tokens.some((token) => line.includes(token)));
    expect(leaks).toEqual([]);

    if (service.database.url !== undefined) {
      const dump = await withSql(service.database.url, async (sql) =>
        JSON.stringify([await sql`select * from users`, await sql`select * from records`]),
      );
      expect(dump).toContain(first.user_id);
      for (const token of tokens) expect(dump).not.toContain(token);
    } else {
      // PGlite: every byte it wrote to disk (tables, WAL), searched for each token as text.
      await service.stop();
      const files = await readdir(join(service.dataDir, 'pglite'), { recursive: true, withFileTypes: true });
      let bytes = 0;
      let hashSeen = false;
      const hash = createHash('sha256').update(first.access_token).digest('hex');
      for (const file of files.filter((entry) => entry.isFile())) {
        const content = await readFile(join(file.parentPath, file.name));
        bytes += content.length;
        const text = content.toString('latin1');
        if (text.includes(hash)) hashSeen = true;
        for (const token of tokens) expect(text).not.toContain(token);
      }
      expect(bytes).toBeGreaterThan(100_000);
      // The token's hash is stored as text: the search does reach the table data.
      expect(hashSeen).toBe(true);
    }
  });
});
