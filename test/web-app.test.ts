import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliDecompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PREFIX, createUser, upload } from './kit/client.js';
import { databaseKinds } from './kit/database.js';
import { rawHttp, sendRequest } from './kit/http.js';
import { logLines, startIsolatedService, startService, type IsolatedService } from './kit/service.js';
import { makeWav } from './kit/wav.js';
import { builtWebApp } from './kit/web-build.js';

const PAGE_BUDGET_BYTES = 120 * 1024;

/** The page's own asset URLs, as index.html links them. */
function assetsOf(html: string): string[] {
  return [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1] ?? '');
}

describe('the web app as the service serves it', () => {
  let service: IsolatedService;
  let webDir: string;
  beforeAll(async () => {
    webDir = await builtWebApp();
    service = await startIsolatedService(databaseKinds.at(-1) ?? 'pglite', { WEB_DIR: webDir });
  });
  afterAll(async () => {
    await service?.cleanup();
  });

  it('serves the same page at /, /listen and /settings, revalidated on every visit', async () => {
    const pages = await Promise.all(
      ['/', '/listen?record_id=a&user_id=b', '/settings', '/?utm_source=x'].map((path) =>
        sendRequest(`${service.url}${path}`),
      ),
    );
    for (const page of pages) {
      expect(page.status).toBe(200);
      expect(page.headers['content-type']).toMatch(/^text\/html/);
      expect(page.headers['cache-control']).toBe('no-cache');
      expect(page.headers.etag).toBeDefined();
      expect(page.text).toBe(pages[0]?.text);
    }
    const again = await sendRequest(`${service.url}/`, { headers: { 'if-none-match': pages[0]?.headers.etag ?? '' } });
    expect(again.status).toBe(304);
    expect((await sendRequest(`${service.url}/`, { method: 'HEAD' })).status).toBe(200);
  });

  it('runs under a CSP without inline or evaluated script, from its own origin only', async () => {
    const page = await sendRequest(`${service.url}/`);
    const csp = new Map(
      String(page.headers['content-security-policy'])
        .split(';')
        .map((directive) => directive.trim().split(/\s+/))
        .map(([name = '', ...values]) => [name, values]),
    );
    expect(csp.get('script-src')).toEqual(["'self'"]);
    expect(csp.get('script-src-attr')).toEqual(["'none'"]);
    expect(csp.get('default-src')).toEqual(["'self'"]);
    expect(csp.get('media-src')).toEqual(["'self'", 'blob:']);
    expect(csp.get('style-src')).toEqual(["'self'", "'unsafe-inline'"]);
    // No inline script in the page itself, and every asset on this origin: no CDN.
    expect(page.text).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    for (const url of assetsOf(page.text)) expect(url, url).toMatch(/^\/(?!\/)/);
  });

  it('caches hashed assets for a year, and sends them compressed to browsers that accept it', async () => {
    const html = (await sendRequest(`${service.url}/`)).text;
    const assets = assetsOf(html).filter((url) => url.startsWith('/assets/'));
    expect(assets.some((url) => url.endsWith('.js'))).toBe(true);
    expect(assets.some((url) => url.endsWith('.css'))).toBe(true);
    for (const url of assets) {
      const plain = await sendRequest(`${service.url}${url}`);
      expect(plain.status).toBe(200);
      expect(plain.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(plain.headers['content-encoding']).toBeUndefined();
      const compressed = await sendRequest(`${service.url}${url}`, { headers: { 'accept-encoding': 'gzip, br' } });
      expect(compressed.headers['content-encoding']).toBe('br');
      expect(compressed.headers.vary).toMatch(/accept-encoding/i);
      expect(brotliDecompressSync(compressed.body).equals(plain.body)).toBe(true);
    }
  });

  it(`keeps everything the page can load within ${PAGE_BUDGET_BYTES / 1024} KB compressed`, async () => {
    // Every script and style of the build counts, loaded at first or later (the player too).
    const files = (await readdir(join(webDir, 'assets'))).filter((name) => /\.(js|css)$/.test(name));
    let total = (await sendRequest(`${service.url}/`, { headers: { 'accept-encoding': 'br' } })).body.length;
    for (const name of files) {
      total += (await sendRequest(`${service.url}/assets/${name}`, { headers: { 'accept-encoding': 'br' } })).body
        .length;
    }
    expect(total).toBeLessThanOrEqual(PAGE_BUDGET_BYTES);
  });

  it('leaves unknown paths to the API’s 404, and never serves a file outside the build', async () => {
    for (const path of ['/nope', '/listen/x', '/assets/nope.js', '/index.htm', '/assets/../../package.json']) {
      const answer = await sendRequest(`${service.url}${path}`);
      expect(answer.status, path).toBe(404);
      expect(answer.headers['content-type'], path).toMatch(/^application\/problem\+json/);
    }
    for (const path of ['/assets/..%2f..%2fpackage.json', '/%2e%2e/%2e%2e/package.json', '/assets/%00.js']) {
      const answer = await rawHttp(service.url, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect([400, 404], path).toContain(answer.status);
      expect(answer.text, path).not.toMatch(/"name":\s*"audio-records"/);
    }
  });

  it('links each record to its page, at the service’s root whichever API prefix was used', async () => {
    const user = await createUser(service.url);
    const answer = await upload(service.url, user, makeWav({ durationSeconds: 0.3 }), { prefix: '/api_v1' });
    const { record_url: recordUrl } = (await answer.json()) as { record_url: string };
    const query = new URL(recordUrl).searchParams;
    for (const prefix of [PREFIX, '/api_v1']) {
      const metadata = (await (
        await fetch(recordUrl.replace('/api_v1', prefix), { headers: { accept: 'application/json' } })
      ).json()) as { share_url: string };
      expect(metadata.share_url).toBe(`${service.url}/listen?${query.toString()}`);
      expect((await sendRequest(metadata.share_url)).headers['content-type']).toMatch(/^text\/html/);
    }
  });
});

describe('without a built web app', () => {
  it('serves the API only with WEB_APP=false, or when WEB_DIR names a folder without a build (and says so)', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'audio-no-web-'));
    const setups: Array<Record<string, string>> = [{ WEB_APP: 'false' }, { WEB_DIR: empty }];
    for (const env of setups) {
      const service = await startService({ env: { ...env, STORAGE_CHECK_ON_START: 'false' } });
      try {
        expect((await sendRequest(`${service.url}/`)).status).toBe(404);
        expect((await sendRequest(`${service.url}/health`)).status).toBe(200);
        const warned = logLines(service).some((line) => line.msg?.includes('the web app is not built'));
        expect(warned).toBe(env.WEB_DIR !== undefined);
      } finally {
        await service.stop();
        await rm(service.dataDir, { recursive: true, force: true });
      }
    }
    await rm(empty, { recursive: true, force: true });
  });
});
