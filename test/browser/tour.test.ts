import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, upload, type TestUser } from '../kit/client.js';
import {
  DESKTOP,
  PHONE,
  accessibilityViolations,
  saveScreenshot,
  signInBeforeLoad,
  startWebApp,
  type WebAppSession,
} from '../kit/browser.js';

const run = promisify(execFile);

type Language = 'en' | 'ru';
type View = 'start' | 'library' | 'settings' | 'share';

const LOCALES: Record<Language, string> = { en: 'en-US', ru: 'ru-RU' };
const LISTEN: Record<Language, string> = { en: 'Listen', ru: 'Слушать' };
const VIEWS: readonly View[] = ['start', 'library', 'settings', 'share'];

/**
 * Every main view, in both languages, at a phone's and a desktop's width: axe finds nothing, nothing is
 * wider than the screen, and the screenshots in docs/screenshots (shown in the README) are taken from here.
 * Each view's own tests check its states in both colour schemes.
 */
describe('a tour of the web page', () => {
  let session: WebAppSession;
  let user: TestUser;
  let shareUrl: string;

  beforeAll(async () => {
    session = await startWebApp();
    user = await createUser(session.service.url, 'anna');
    const titles = ['Interview with the mayor', 'Rehearsal, take 3', 'Voice memo'];
    for (const [index, title] of titles.entries()) {
      const answer = await upload(session.service.url, user, await speechLikeWav(4 + index * 5), { title });
      if (answer.status !== 200) throw new Error(`upload: ${answer.status} ${await answer.text()}`);
    }
    const answer = await fetch(`${session.service.url}/api/v1/records?user_id=${user.user_id}&limit=1`, {
      headers: { authorization: `Bearer ${user.access_token}` },
    });
    const { records } = (await answer.json()) as { records: Array<{ share_url: string }> };
    shareUrl = records[0]?.share_url ?? '';
  });
  afterAll(async () => {
    await session?.close();
  });

  /** The view, loaded and settled, with every console error and uncaught exception it had (CSP refusals too). */
  async function open(view: View, options: { language: Language; phone: boolean }) {
    const page = await session.newPage({
      locale: LOCALES[options.language],
      colorScheme: 'light',
      viewport: options.phone ? PHONE : DESKTOP,
    });
    const errors: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    page.on('pageerror', (error) => errors.push(error.message));
    if (view === 'library' || view === 'settings') {
      await signInBeforeLoad(page, user);
    }
    const path = { start: '/', library: '/', settings: '/settings', share: shareUrl }[view];
    await page.goto(path);
    await settled(page, view, options.language);
    return { page, errors };
  }

  /** Waits until the view shows what it loads, so that axe and the screenshot see it whole. */
  async function settled(page: Page, view: View, language: Language): Promise<void> {
    await page.getByRole('heading', { level: 1 }).first().waitFor();
    if (view === 'library') {
      // With the newest record's player open, as someone listening would see it.
      await page.getByRole('button', { name: LISTEN[language] }).first().click();
      await page.getByRole('slider').waitFor();
    }
    if (view === 'share') await page.getByRole('heading', { name: 'Voice memo' }).waitFor();
    await page.waitForLoadState('networkidle');
  }

  for (const language of ['en', 'ru'] as const) {
    it(`shows every view within a 360 px phone and a desktop, without a WCAG 2.2 AA violation, and saves the screenshots (${language})`, async () => {
      for (const phone of [false, true]) {
        for (const view of VIEWS) {
          const { page, errors } = await open(view, { language, phone });
          // Nothing wider than the screen: no sideways scrolling on a phone.
          expect(await page.evaluate<number>('document.documentElement.scrollWidth'), view).toBeLessThanOrEqual(
            (phone ? PHONE : DESKTOP).width,
          );
          expect(await page.evaluate<string>('document.documentElement.lang')).toBe(language);
          expect(await accessibilityViolations(page), view).toEqual([]);
          expect(errors, view).toEqual([]);
          await saveScreenshot(page, `${view}-${phone ? 'phone' : 'desktop'}-${language}`);
          await page.context().close();
        }
      }
    });
  }
});

/** A tone whose loudness rises and falls like speech, so that the screenshots show a waveform, not a block. */
async function speechLikeWav(seconds: number): Promise<Buffer> {
  const loudness = '(0.15+0.85*abs(sin(2*PI*0.9*t)*sin(2*PI*0.23*t)))';
  const { stdout } = await run(
    'ffmpeg',
    ['-v', 'error', '-f', 'lavfi', '-i', `aevalsrc=sin(2*PI*220*t)*${loudness}:s=22050:d=${seconds}`, '-f', 'wav', '-'],
    { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 },
  );
  return stdout;
}
