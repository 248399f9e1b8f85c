import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import { chromium, type Browser, type BrowserContextOptions, type Page } from 'playwright-core';
import { databaseKinds } from './database.js';
import { startIsolatedService, type IsolatedService } from './service.js';
import { makeWav } from './wav.js';
import { builtWebApp } from './web-build.js';

/**
 * Debian's Chromium (`.ci/run` installs it): Playwright's own browser download cannot work here.
 * CHROMIUM_PATH names another.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const SCREENSHOTS_DIR = 'docs/screenshots';

export const PHONE = { width: 360, height: 760 } as const;
export const DESKTOP = { width: 1280, height: 800 } as const;

export interface WebAppSession {
  readonly service: IsolatedService;
  readonly browser: Browser;
  /** The WAV Chromium's fake microphone plays, in a loop. */
  readonly microphoneWav: string;
  /** A page in a fresh context (its own storage), at the service's origin. */
  newPage(options?: BrowserContextOptions): Promise<Page>;
  close(): Promise<void>;
}

/**
 * The service (serving a fresh build of the web app) on one of the run's databases, and a headless
 * Chromium whose microphone plays a 440 Hz tone. The browser tests run once, not once per database: the
 * page sees the API, which the other tests cover on each database.
 */
export async function startWebApp(env: Record<string, string> = {}): Promise<WebAppSession> {
  const webDir = await builtWebApp();
  // PostgreSQL when the run has it: it starts far faster than a fresh PGlite.
  const service = await startIsolatedService(databaseKinds.at(-1) ?? 'pglite', { WEB_DIR: webDir, ...env });
  const fixtures = await mkdtemp(join(tmpdir(), 'audio-browser-'));
  const microphoneWav = join(fixtures, 'microphone.wav');
  await writeFile(microphoneWav, makeWav({ durationSeconds: 10, channels: 1, sampleRate: 48000 }));
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${microphoneWav}`,
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  const contexts: Array<{ close(): Promise<void> }> = [];
  return {
    service,
    browser,
    microphoneWav,
    newPage: async (options = {}) => {
      const context = await browser.newContext({
        baseURL: service.url,
        viewport: DESKTOP,
        locale: 'en-US',
        ...options,
      });
      // Far below vitest's own timeout, so that a missing element fails with its locator named.
      context.setDefaultTimeout(10_000);
      contexts.push(context);
      return context.newPage();
    },
    close: async () => {
      for (const context of contexts) await context.close().catch(() => {});
      await browser.close();
      await service.cleanup();
      await rm(fixtures, { recursive: true, force: true });
    },
  };
}

/** Makes the page find these credentials in localStorage from its first script on, as after a sign-in. */
export async function signInBeforeLoad(page: Page, user: { user_id: string; access_token: string }): Promise<void> {
  const credentials = JSON.stringify({ userId: user.user_id, accessToken: user.access_token });
  await page.addInitScript(`localStorage.setItem('audio-records.credentials', ${JSON.stringify(credentials)})`);
}

/** The page links audio on its own origin: record_url's path and query, the same two ids. */
export function onPageOrigin(recordUrl: string): string {
  const url = new URL(recordUrl);
  return `${url.pathname}${url.search}`;
}

/** What axe-core finds against WCAG 2.2 A and AA on the page as it is now, as readable lines. */
export async function accessibilityViolations(page: Page): Promise<string[]> {
  const { violations } = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'])
    .analyze();
  return violations.flatMap((violation) =>
    violation.nodes.map((node) => `${violation.id}: ${node.target.join(' ')}: ${node.failureSummary ?? ''}`),
  );
}

/**
 * Saves the whole page to docs/screenshots/<name>.png, for the README, as a 64-colour PNG (ffmpeg's
 * palette filters): a third of the size of the browser's own, and still sharp for flat UI colours.
 */
export async function saveScreenshot(page: Page, name: string): Promise<void> {
  await mkdir(SCREENSHOTS_DIR, { recursive: true });
  const shot = await page.screenshot({ fullPage: true });
  const output = join(SCREENSHOTS_DIR, `${name}.png`);
  const ffmpeg = execFile('ffmpeg', ['-v', 'error', '-y', '-f', 'png_pipe', '-i', 'pipe:0', '-vf', PALETTE, output]);
  ffmpeg.stdin?.end(shot);
  const code = await new Promise<number | null>((resolve) => ffmpeg.once('close', resolve));
  if (code !== 0) throw new Error(`ffmpeg could not write ${output} (exit ${String(code)})`);
}

const PALETTE = 'split[a][b];[a]palettegen=max_colors=64[p];[b][p]paletteuse=dither=none';
