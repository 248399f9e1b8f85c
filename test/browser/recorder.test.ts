// These tests are type-checked with Node's types, not the DOM's: code that runs in the page is given as text,
// or names only the shape of the element it reads.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessibilityViolations, startWebApp, type WebAppSession } from '../kit/browser.js';
import { createUser, PREFIX, type TestUser } from '../kit/client.js';

/** expect.poll's own second is too short on a loaded machine; a real failure still ends the wait. */
const patiently = { timeout: 30_000 };

interface StoredRecord {
  readonly title: string | null;
  readonly duration_seconds: number;
  readonly source_format: string;
}

async function storedRecords(session: WebAppSession, user: TestUser): Promise<StoredRecord[]> {
  const response = await fetch(`${session.service.url}${PREFIX}/records?user_id=${user.user_id}`, {
    headers: { authorization: `Bearer ${user.access_token}` },
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { records: StoredRecord[] }).records;
}

/**
 * A fresh user signed in on a fresh page at `/`. `beforePage` runs in the page before its own scripts:
 * where a test replaces what the browser offers (a refused microphone, no MediaRecorder).
 */
async function signedIn(
  session: WebAppSession,
  options: Parameters<WebAppSession['newPage']>[0] = {},
  beforePage?: string,
): Promise<{ page: Page; user: TestUser }> {
  const user = await createUser(session.service.url);
  const page = await session.newPage(options);
  const credentials = JSON.stringify({ userId: user.user_id, accessToken: user.access_token });
  await page.context().addInitScript({
    content: `localStorage.setItem('audio-records.credentials', ${JSON.stringify(credentials)});`,
  });
  if (beforePage !== undefined) await page.context().addInitScript({ content: beforePage });
  await page.goto('/');
  await page.getByRole('heading', { level: 2, name: /^(Record|Запись с микрофона)$/ }).waitFor();
  return { page, user };
}

/** Keeps every microphone stream the page gets, so that the test can see whether its tracks were stopped. */
const keepStreams = `{
  const streams = [];
  window.liveTracks = () =>
    streams.flatMap((stream) => stream.getTracks()).filter((track) => track.readyState === 'live').length;
  const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    const stream = await original(constraints);
    streams.push(stream);
    return stream;
  };
}`;

const liveTracks = (page: Page) => page.evaluate('window.liveTracks()');
/** The recorder's own section: the library beside it has buttons and live regions of its own. */
const panel = (page: Page) => page.getByRole('region', { name: /^(Record|Запись с микрофона)$/ });
const timer = (page: Page) => panel(page).getByRole('timer');
/** Waits until the timer shows at least `seconds` (a loaded machine may skip a second's display). */
async function untilRecorded(page: Page, seconds: number): Promise<void> {
  await expect
    .poll(async () => {
      const [minutes = 0, rest = 0] = ((await timer(page).textContent()) ?? '').split(':').map(Number);
      return minutes * 60 + rest;
    }, patiently)
    .toBeGreaterThanOrEqual(seconds);
}
const meterValue = (page: Page, name: string) =>
  panel(page)
    .getByRole('meter', { name })
    .evaluate((meter: { value: number }) => meter.value);

describe('recording from the microphone', () => {
  let session: WebAppSession;
  beforeAll(async () => {
    session = await startWebApp();
  });
  afterAll(async () => {
    await session?.close();
  });

  it('explains a refused microphone and what to do, and offers to try again', async () => {
    const { page } = await signedIn(
      session,
      {},
      `navigator.mediaDevices.getUserMedia = () =>
        Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));`,
    );
    await panel(page).getByRole('button', { name: 'Record' }).click();
    await page
      .getByRole('alert')
      .getByText(/not allowed to use the microphone. To record, allow the microphone for this site/)
      .waitFor();
    await panel(page).getByRole('button', { name: 'Try again' }).waitFor();
    expect(await accessibilityViolations(page)).toEqual([]);
  });

  it('explains a missing microphone', async () => {
    const { page } = await signedIn(
      session,
      { locale: 'ru-RU' },
      `navigator.mediaDevices.getUserMedia = () =>
        Promise.reject(new DOMException('Requested device not found', 'NotFoundError'));`,
    );
    await panel(page).getByRole('button', { name: 'Записать' }).click();
    await page
      .getByRole('alert')
      .getByText(/^Микрофон не найден\. Подключите его/)
      .waitFor();
    expect(await accessibilityViolations(page)).toEqual([]);
  });

  it('explains a browser without MediaRecorder, and does not ask for the microphone', async () => {
    const { page } = await signedIn(
      session,
      {},
      `Object.defineProperty(window, 'MediaRecorder', { value: undefined, configurable: true });
      window.asked = false;
      navigator.mediaDevices.getUserMedia = () => {
        window.asked = true;
        return Promise.reject(new DOMException('unexpected', 'AbortError'));
      };`,
    );
    await panel(page).getByRole('button', { name: 'Record' }).click();
    await page
      .getByRole('alert')
      .getByText(/^This browser cannot record here\./)
      .waitFor();
    expect(
      await panel(page)
        .getByRole('button', { name: /Record|Try again/ })
        .count(),
    ).toBe(0);
    expect(await page.evaluate('window.asked')).toBe(false);
    expect(await accessibilityViolations(page)).toEqual([]);
  });

  it('records 3 s with a pause that does not count, plays it back, uploads it, and frees the microphone', async () => {
    const { page, user } = await signedIn(session, {}, keepStreams);
    // Before anything is asked, the page says why it will ask.
    await panel(page)
      .getByText(/When you press Record, your browser asks whether this page may use it/)
      .waitFor();
    expect(await accessibilityViolations(page)).toEqual([]);

    await panel(page).getByRole('button', { name: 'Record' }).click();
    await panel(page).getByRole('status').getByText('Recording.').waitFor();
    await expect.poll(() => meterValue(page, 'Input level'), patiently).toBeGreaterThan(0.1);
    expect(await accessibilityViolations(page)).toEqual([]);
    await untilRecorded(page, 1);

    await panel(page).getByRole('button', { name: 'Pause' }).click();
    await panel(page).getByRole('status').getByText('Paused.').waitFor();
    const pausedAt = await timer(page).textContent();
    expect(await accessibilityViolations(page)).toEqual([]);
    // The pause being measured: two seconds that must not count.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(await timer(page).textContent()).toBe(pausedAt);
    expect(await meterValue(page, 'Input level')).toBe(0);

    await panel(page).getByRole('button', { name: 'Resume' }).click();
    await untilRecorded(page, 3);
    await panel(page).getByRole('button', { name: 'Stop' }).click();
    await panel(page).getByRole('heading', { name: 'Listen back' }).waitFor();
    expect(await liveTracks(page)).toBe(0);

    // The length the page measured, to the hundredth: the test stops at its first sight of 3 s, a moment late
    // (more on a loaded machine), so the recording and its playback are held to that, and that to about 3 s.
    const measured = await panel(page).getByRole('time').getAttribute('datetime');
    const seconds = Number(/^PT([\d.]+)S$/.exec(measured ?? '')?.[1]);
    expect(seconds).toBeGreaterThanOrEqual(3);
    expect(seconds).toBeLessThan(4.5);
    const audio = panel(page).locator('audio');
    const audioDuration = () => audio.evaluate((element: { duration: number }) => element.duration);
    await expect.poll(audioDuration, patiently).toBeLessThan(Infinity);
    expect(Math.abs((await audioDuration()) - seconds)).toBeLessThan(0.3);
    expect(await audio.getAttribute('src')).toMatch(/^blob:/);
    const title = panel(page).getByLabel('Title');
    expect(await title.inputValue()).toMatch(/^Recording \w{3} \d{1,2}, 20\d\d, \d{1,2}:\d\d/);
    expect(await accessibilityViolations(page)).toEqual([]);

    await title.fill('Microphone check <b>bold</b>');
    await panel(page).getByRole('button', { name: 'Upload', exact: true }).click();
    const uploads = panel(page).getByRole('list', { name: 'Your recordings' });
    await uploads.getByRole('status').getByText('Done.').waitFor();
    expect(await accessibilityViolations(page)).toEqual([]);
    await page.getByRole('list', { name: 'Your records' }).getByText('Microphone check <b>bold</b>').waitFor();
    const [record] = await storedRecords(session, user);
    expect(record?.title).toBe('Microphone check <b>bold</b>');
    expect(record?.source_format).toBe('webm');
    expect(Math.abs((record?.duration_seconds ?? 0) - seconds)).toBeLessThan(0.3);
  });

  it('discards a recording without uploading it, and frees the microphone', async () => {
    const { page, user } = await signedIn(session, {}, keepStreams);
    await panel(page).getByRole('button', { name: 'Record' }).click();
    await untilRecorded(page, 1);
    expect(await liveTracks(page)).toBe(1);
    await panel(page).getByRole('button', { name: 'Discard' }).click();
    await panel(page).getByRole('button', { name: 'Record' }).waitFor();
    expect(await liveTracks(page)).toBe(0);

    // Discarding after stopping too.
    await panel(page).getByRole('button', { name: 'Record' }).click();
    await untilRecorded(page, 1);
    await panel(page).getByRole('button', { name: 'Stop' }).click();
    await panel(page).getByRole('button', { name: 'Discard' }).click();
    await panel(page).getByRole('button', { name: 'Record' }).waitFor();
    expect(await panel(page).locator('audio').count()).toBe(0);
    expect(await liveTracks(page)).toBe(0);
    expect(await storedRecords(session, user)).toEqual([]);
  });

  it('frees the microphone when the person leaves the view while recording', async () => {
    const { page } = await signedIn(session, {}, keepStreams);
    await panel(page).getByRole('button', { name: 'Record' }).click();
    await untilRecorded(page, 1);
    await page.getByRole('navigation').getByRole('link', { name: 'Settings' }).click();
    await page.getByRole('heading', { level: 1, name: 'Settings' }).waitFor();
    await expect.poll(() => liveTracks(page), patiently).toBe(0);
  });

  for (const colorScheme of ['light', 'dark'] as const)
    it(`passes axe in Russian in each state, ${colorScheme}`, async () => {
      const { page } = await signedIn(session, { locale: 'ru-RU', colorScheme });
      expect(await accessibilityViolations(page)).toEqual([]);
      await panel(page).getByRole('button', { name: 'Записать' }).click();
      await panel(page).getByRole('status').getByText('Идёт запись.').waitFor();
      expect(await accessibilityViolations(page)).toEqual([]);
      await panel(page).getByRole('button', { name: 'Пауза' }).click();
      await panel(page).getByRole('status').getByText('Запись на паузе.').waitFor();
      expect(await accessibilityViolations(page)).toEqual([]);
      await panel(page).getByRole('button', { name: 'Остановить' }).click();
      await panel(page).getByRole('heading', { name: 'Прослушать' }).waitFor();
      expect(await panel(page).getByLabel('Название').inputValue()).toMatch(
        /^Запись \d{1,2} \S+ 20\d\d г\., \d{1,2}:\d\d/,
      );
      expect(await accessibilityViolations(page)).toEqual([]);
      await panel(page).getByRole('button', { name: 'Загрузить', exact: true }).click();
      await panel(page)
        .getByRole('list', { name: 'Ваши новые записи' })
        .getByRole('status')
        .getByText('Готово.')
        .waitFor();
      expect(await accessibilityViolations(page)).toEqual([]);
    });
});
