// These tests are type-checked with Node's types, not the DOM's: code that runs in the page is given as text,
// or names only the shape of the element it reads.
import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessibilityViolations, startWebApp, type WebAppSession } from '../kit/browser.js';
import { createUser, openUpload, PREFIX, type TestUser } from '../kit/client.js';
import { makeWav } from '../kit/wav.js';

/** expect.poll's own second is too short on a loaded machine; a real failure still ends the wait. */
const patiently = { timeout: 30_000 };

interface StoredRecord {
  readonly title: string | null;
  readonly original_filename: string | null;
  readonly duration_seconds: number;
  readonly format: string;
  readonly source_format: string;
}

interface FilePayload {
  readonly name: string;
  readonly mimeType: string;
  readonly buffer: Buffer;
}

const wav = (name: string, durationSeconds = 3): FilePayload => ({
  name,
  mimeType: 'audio/wav',
  buffer: makeWav({ durationSeconds, channels: 2, sampleRate: 44100 }),
});
const text = (name: string, content: string): FilePayload => ({
  name,
  mimeType: 'text/plain',
  buffer: Buffer.from(content),
});

/** What the API lists for the user, newest first: the page's uploads are checked there, not in the page. */
async function storedRecords(session: WebAppSession, user: TestUser): Promise<StoredRecord[]> {
  const response = await fetch(`${session.service.url}${PREFIX}/records?user_id=${user.user_id}`, {
    headers: { authorization: `Bearer ${user.access_token}` },
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { records: StoredRecord[] }).records;
}

/** Puts the user's credentials where the page keeps them, as if they had signed in before. */
function signInScript(user: TestUser): string {
  const credentials = JSON.stringify({ userId: user.user_id, accessToken: user.access_token });
  return `localStorage.setItem('audio-records.credentials', ${JSON.stringify(credentials)});`;
}

/** A fresh user, signed in on a fresh page at `/`. */
async function signedIn(
  session: WebAppSession,
  options: Parameters<WebAppSession['newPage']>[0] = {},
): Promise<{ page: Page; user: TestUser }> {
  const user = await createUser(session.service.url);
  const page = await session.newPage(options);
  await page.context().addInitScript({ content: signInScript(user) });
  await page.goto('/');
  await page.getByRole('heading', { level: 2, name: /^(Upload|Загрузка файлов)$/ }).waitFor();
  return { page, user };
}

const picker = (page: Page) => page.getByLabel('Choose audio files');
const fileList = (page: Page) => page.getByRole('list', { name: 'Files', exact: true });
const item = (page: Page, name: string) => fileList(page).getByRole('listitem').filter({ hasText: name });
const startButton = (page: Page) => page.getByRole('button', { name: /^Upload \d+ files?$/ });
const library = (page: Page) => page.getByRole('list', { name: 'Your records', exact: true });

/** Slows the page's uploads to `bytesPerSecond`, so that a test can act while one is under way. */
async function throttleUploads(page: Page, bytesPerSecond: number): Promise<void> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: 0,
    downloadThroughput: -1,
    uploadThroughput: bytesPerSecond,
  });
}

async function progressOf(bar: Locator): Promise<{ value: number; max: number }> {
  return bar.evaluate((progress: { value: number; max: number }) => ({ value: progress.value, max: progress.max }));
}

/** Presses Tab until `target` has the focus (and fails after `limit` presses). */
async function tabTo(page: Page, target: Locator, limit = 40): Promise<void> {
  for (let step = 0; step < limit; step++) {
    const focused = await target.evaluate(
      (element: unknown) =>
        element === (globalThis as unknown as { document: { activeElement: unknown } }).document.activeElement,
    );
    if (focused) return;
    await page.keyboard.press('Tab');
  }
  throw new Error(`Tab never reached ${target.toString()}`);
}

describe('uploading files from the page', () => {
  let session: WebAppSession;
  beforeAll(async () => {
    session = await startWebApp();
  });
  afterAll(async () => {
    await session?.close();
  });

  it('refuses what is not audio next to each file, stores nothing of it, and shows a name made of HTML as text', async () => {
    const { page, user } = await signedIn(session);
    const dialogs: string[] = [];
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    const hostileName = '<img src=x onerror=alert(1)>.wav';
    await picker(page).setInputFiles([
      text('notes.txt', 'Shopping list: milk, bread.\n'),
      { name: 'empty.wav', mimeType: 'audio/wav', buffer: Buffer.alloc(0) },
      text('disguised.wav', 'This is text that only has an audio name.\n'.repeat(50)),
      wav(hostileName, 1),
    ]);
    await expect.poll(() => fileList(page).getByRole('listitem').count(), patiently).toBe(4);
    // The title starts as the name without its extension, as text in a field.
    await expect
      .poll(() => item(page, hostileName).getByLabel('Title').inputValue(), patiently)
      .toBe('<img src=x onerror=alert(1)>');
    expect(await accessibilityViolations(page)).toEqual([]);

    await startButton(page).click();
    for (const name of ['notes.txt', 'empty.wav', 'disguised.wav']) {
      await item(page, name)
        .getByRole('alert')
        .getByText(/This is not an audio file the service can read/)
        .waitFor();
      // Sending the same bytes again cannot help: only removing is offered.
      expect(
        await item(page, name)
          .getByRole('button', { name: /Try again/ })
          .count(),
      ).toBe(0);
    }
    await item(page, hostileName).getByRole('status').getByText('Done.').waitFor();
    expect(await accessibilityViolations(page)).toEqual([]);

    const stored = await storedRecords(session, user);
    expect(stored.map((record) => [record.title, record.original_filename])).toEqual([
      ['<img src=x onerror=alert(1)>', hostileName],
    ]);
    await library(page).getByText('<img src=x onerror=alert(1)>').waitFor();
    // The name was never parsed as HTML, in this panel or in the library.
    expect(await page.locator('img[src="x"]').count()).toBe(0);
    expect(dialogs).toEqual([]);

    await item(page, 'notes.txt').getByRole('button', { name: 'Remove' }).click();
    await expect.poll(() => fileList(page).getByRole('listitem').count(), patiently).toBe(3);
  });

  it('shows the detail of options the service refuses, then sends the file again with the options changed', async () => {
    const { page, user } = await signedIn(session);
    await page.getByText('Advanced: output format and quality').click();
    await page.getByLabel('Format').selectOption('flac');
    await page.getByLabel('Bitrate, kbit/s').fill('128');
    await picker(page).setInputFiles([wav('lossless.wav', 1)]);
    await startButton(page).click();
    const refusal = item(page, 'lossless.wav').getByRole('alert');
    await refusal.getByText(/^The service did not accept this request: .*bitrate/i).waitFor();
    expect(await accessibilityViolations(page)).toEqual([]);
    expect(await storedRecords(session, user)).toEqual([]);

    await page.getByLabel('Bitrate, kbit/s').fill('');
    await item(page, 'lossless.wav')
      .getByRole('button', { name: /Try again/ })
      .click();
    await item(page, 'lossless.wav').getByRole('status').getByText('Done.').waitFor();
    const [record] = await storedRecords(session, user);
    expect(record?.format).toBe('flac');
  });

  it('shows a WAV’s bytes sent, then 100 % and “converting”, then done, and the record appears in the library', async () => {
    const { page, user } = await signedIn(session);
    await throttleUploads(page, 256 * 1024);
    await picker(page).setInputFiles([wav('Interview take 2.wav', 3)]);
    const title = item(page, 'Interview take 2.wav').getByLabel('Title');
    expect(await title.inputValue()).toBe('Interview take 2');
    await title.fill('Interview, final take');

    // Every state the item goes through, as the person sees it, however briefly.
    await page.evaluate(`{
      window.seen = [];
      new MutationObserver(() => {
        const bar = document.querySelector('progress[aria-label^="Upload of"]');
        const listItem = bar?.closest('li');
        if (bar && listItem) window.seen.push({ value: bar.value, max: bar.max, text: listItem.innerText });
      }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
    }`);
    await startButton(page).click();
    const bar = item(page, 'Interview take 2.wav').getByRole('progressbar', { name: 'Upload of Interview take 2.wav' });
    await item(page, 'Interview take 2.wav')
      .getByText(/^[\d.]+ kB of [\d.]+ kB$/)
      .waitFor();
    expect(await accessibilityViolations(page)).toEqual([]);
    await item(page, 'Interview take 2.wav').getByRole('status').getByText('Done.').waitFor();

    const seen = await page.evaluate<Array<{ value: number; max: number; text: string }>>('window.seen');
    const converting = seen.findIndex((state) => state.text.includes('Converting…'));
    const done = seen.findIndex((state) => state.text.includes('Done.'));
    const partway = seen.findIndex((state) => state.value > 0 && state.value < state.max);
    expect(partway).toBeGreaterThanOrEqual(0);
    expect(converting).toBeGreaterThan(partway);
    expect(seen[converting]?.value).toBe(seen[converting]?.max);
    expect(done).toBeGreaterThan(converting);
    expect(await progressOf(bar)).toEqual({ value: 1, max: 1 });
    expect(await accessibilityViolations(page)).toEqual([]);

    await library(page).getByText('Interview, final take').waitFor();
    const [record] = await storedRecords(session, user);
    expect(record?.title).toBe('Interview, final take');
    expect(record?.duration_seconds).toBeCloseTo(3, 1);
    const link = item(page, 'Interview take 2.wav').getByRole('link', { name: /Open the recording/ });
    expect(await link.getAttribute('href')).toMatch(/^\/listen\?record_id=[0-9a-f-]{36}&user_id=/);
  });

  it('uploads several files at once, two at a time, the rest waiting their turn', async () => {
    const { page, user } = await signedIn(session);
    await throttleUploads(page, 512 * 1024);
    await page.evaluate(`{
      window.mostRunning = 0;
      new MutationObserver(() => {
        const running = Array.from(document.querySelectorAll('li')).filter((listItem) =>
          /Uploading:|Converting…/.test(listItem.innerText),
        ).length;
        window.mostRunning = Math.max(window.mostRunning, running);
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    }`);
    await picker(page).setInputFiles([wav('one.wav', 2), wav('two.wav', 2), wav('three.wav', 2)]);
    await startButton(page).click();
    await item(page, 'three.wav').getByRole('status').getByText('Waiting for the uploads before it.').waitFor();
    expect(await accessibilityViolations(page)).toEqual([]);
    for (const name of ['one.wav', 'two.wav', 'three.wav'])
      await item(page, name).getByRole('status').getByText('Done.').waitFor();
    expect(await page.evaluate('window.mostRunning')).toBe(2);
    for (const title of ['one', 'two', 'three']) await library(page).getByText(title, { exact: true }).waitFor();
    expect((await storedRecords(session, user)).map((record) => record.title).sort()).toEqual(['one', 'three', 'two']);
  });

  it('cancels an upload half-way, and nothing of it is stored', async () => {
    const { page, user } = await signedIn(session);
    await throttleUploads(page, 256 * 1024);
    await picker(page).setInputFiles([wav('long.wav', 30)]);
    await startButton(page).click();
    const bar = item(page, 'long.wav').getByRole('progressbar');
    await expect.poll(async () => (await progressOf(bar)).value, patiently).toBeGreaterThan(0);
    await item(page, 'long.wav').getByRole('button', { name: 'Cancel' }).click();
    await item(page, 'long.wav').getByRole('alert').getByText('Cancelled.').waitFor();
    expect(await accessibilityViolations(page)).toEqual([]);

    // A later upload is stored, and still only it: the cancelled one never will be.
    await throttleUploads(page, -1);
    await picker(page).setInputFiles([wav('after.wav', 1)]);
    await startButton(page).click();
    await item(page, 'after.wav').getByRole('status').getByText('Done.').waitFor();
    expect((await storedRecords(session, user)).map((record) => record.title)).toEqual(['after']);
  });

  it('uploads with the keyboard alone, with an output option that reaches the service', async () => {
    const { page, user } = await signedIn(session);
    // Listening first: Playwright intercepts the chooser only once its listener is in place in the browser.
    const chooser = page.waitForEvent('filechooser');
    await page.locator('body').focus();
    await tabTo(page, picker(page));
    await page.keyboard.press('Enter');
    await (await chooser).setFiles([wav('keyboard.wav', 1)]);
    await item(page, 'keyboard.wav').waitFor();

    await tabTo(page, page.getByText('Advanced: output format and quality'));
    await page.keyboard.press('Enter');
    await tabTo(page, page.getByLabel('Format'));
    await page.keyboard.type('Opus');
    expect(await page.getByLabel('Format').inputValue()).toBe('opus');
    await tabTo(page, startButton(page));
    await page.keyboard.press('Enter');
    await item(page, 'keyboard.wav').getByRole('status').getByText('Done.').waitFor();
    const [record] = await storedRecords(session, user);
    expect(record?.format).toBe('opus');
  });
  it('takes files dropped on the drop zone', async () => {
    const { page, user } = await signedIn(session);
    const wavBase64 = makeWav({ durationSeconds: 1, channels: 1, sampleRate: 8000 }).toString('base64');
    const dataTransfer = await page.evaluateHandle(`(() => {
      const bytes = Uint8Array.from(atob('${wavBase64}'), (character) => character.charCodeAt(0));
      const transfer = new DataTransfer();
      transfer.items.add(new File([bytes], 'dropped.wav', { type: 'audio/wav' }));
      transfer.items.add(new File(['not audio'], 'dropped.txt', { type: 'text/plain' }));
      return transfer;
    })()`);
    const zone = page.getByRole('group', { name: /Drop audio files here/ });
    await zone.dispatchEvent('dragenter', { dataTransfer });
    await zone.dispatchEvent('dragover', { dataTransfer });
    await zone.dispatchEvent('drop', { dataTransfer });
    await expect.poll(() => fileList(page).getByRole('listitem').count(), patiently).toBe(2);
    await page.getByRole('button', { name: 'Upload 2 files' }).click();
    await item(page, 'dropped.wav').getByRole('status').getByText('Done.').waitFor();
    await item(page, 'dropped.txt')
      .getByRole('alert')
      .getByText(/not an audio file/)
      .waitFor();
    expect((await storedRecords(session, user)).map((record) => record.title)).toEqual(['dropped']);
  });

  const looks = [
    { locale: 'en-US', colorScheme: 'dark', viewport: { width: 1280, height: 800 } },
    { locale: 'ru-RU', colorScheme: 'light', viewport: { width: 1280, height: 800 } },
    { locale: 'ru-RU', colorScheme: 'dark', viewport: { width: 320, height: 700 } },
  ] as const;
  for (const look of looks)
    it(`passes axe with files ready, queued, uploading, failed, cancelled and done: ${look.locale}, ${look.colorScheme}, ${look.viewport.width} px`, async () => {
      const russian = look.locale === 'ru-RU';
      const { page } = await signedIn(session, look);
      const files = page.getByRole('list', { name: russian ? 'Файлы' : 'Files', exact: true });
      const entry = (name: string) => files.getByRole('listitem').filter({ hasText: name });
      // second.wav is long enough to be still on its way when it is cancelled, however slow the machine.
      await page
        .getByLabel(russian ? 'Выберите аудиофайлы' : 'Choose audio files')
        .setInputFiles([
          wav('first.wav', 3),
          wav('second.wav', 60),
          text('notes.txt', 'not audio'),
          wav('last.wav', 1),
        ]);
      await page
        .getByText(russian ? 'Дополнительно: формат и качество' : 'Advanced: output format and quality')
        .click();
      expect(await accessibilityViolations(page)).toEqual([]);

      await throttleUploads(page, 256 * 1024);
      await page.getByRole('button', { name: russian ? 'Загрузить 4 файла' : 'Upload 4 files' }).click();
      await entry('last.wav')
        .getByText(russian ? 'Ждёт окончания предыдущих загрузок.' : 'Waiting for the uploads before it.')
        .waitFor();
      await entry('first.wav')
        .getByText(russian ? /^[\d,]+ кБ из [\d,]+ кБ$/ : /^[\d.]+ kB of [\d.]+ kB$/)
        .waitFor();
      expect(await accessibilityViolations(page)).toEqual([]);
      await entry('second.wav')
        .getByRole('button', { name: russian ? 'Отменить' : 'Cancel' })
        .click();
      await entry('notes.txt')
        .getByRole('alert')
        .getByText(russian ? /^Это не аудиофайл/ : /^This is not an audio file/)
        .waitFor();
      for (const name of ['first.wav', 'last.wav'])
        await entry(name)
          .getByRole('status')
          .getByText(russian ? 'Готово.' : 'Done.')
          .waitFor();
      await entry('second.wav')
        .getByRole('alert')
        .getByText(russian ? 'Отменено.' : 'Cancelled.')
        .waitFor();
      expect(await accessibilityViolations(page)).toEqual([]);
      // Nothing wider than the window, down to a 320 px phone.
      expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(look.viewport.width);
    });
});

describe('an account at its limit of uploads at once', () => {
  let session: WebAppSession;
  beforeAll(async () => {
    session = await startWebApp({ MAX_UPLOADS_PER_USER: '1' });
  });
  afterAll(async () => {
    await session?.close();
  });

  it('gets the 429 in plain words, and the page leaves the retry to the person', async () => {
    const { page, user } = await signedIn(session);
    const held = await openUpload(session.service.url, user, { fields: { title: 'held' }, filename: 'held.wav' });
    await picker(page).setInputFiles([wav('eager.wav', 1)]);
    await startButton(page).click();
    await item(page, 'eager.wav')
      .getByRole('alert')
      .getByText(/^Too many requests\. Try again in \d+ s\.$/)
      .waitFor();
    expect(
      await item(page, 'eager.wav')
        .getByText(/Trying again in/)
        .count(),
    ).toBe(0);
    expect(await accessibilityViolations(page)).toEqual([]);

    await held.end(Buffer.concat([makeWav({ durationSeconds: 1 }), held.form.tail]));
    expect((await held.response).status).toBe(200);
    expect((await storedRecords(session, user)).map((record) => record.title)).toEqual(['held']);
    await item(page, 'eager.wav')
      .getByRole('button', { name: /Try again/ })
      .click();
    await item(page, 'eager.wav').getByRole('status').getByText('Done.').waitFor();
    expect((await storedRecords(session, user)).map((record) => record.title).sort()).toEqual(['eager', 'held']);
  });
});

describe('a busy service', () => {
  let session: WebAppSession;
  beforeAll(async () => {
    // One conversion at a time and no queue: a second upload at once is answered 503 with Retry-After.
    session = await startWebApp({
      CONVERT_CONCURRENCY: '1',
      CONVERT_QUEUE_SIZE: '0',
      MAX_UPLOADS_PER_USER: '10',
      MAX_UPLOADS_PER_ADDRESS: '10',
    });
  });
  afterAll(async () => {
    await session?.close();
  });

  it('is retried by the page itself after Retry-After, with a countdown, and cancel still works meanwhile', async () => {
    const { page, user } = await signedIn(session);
    // Another client's upload holds the only conversion slot until the test finishes it.
    const held = await openUpload(session.service.url, user, { fields: { title: 'held' }, filename: 'held.wav' });

    await picker(page).setInputFiles([wav('steady.wav', 1), wav('impatient.wav', 1)]);
    await startButton(page).click();
    for (const name of ['steady.wav', 'impatient.wav']) {
      await item(page, name)
        .getByText(/^Trying again in \d+ s$/)
        .waitFor();
      await item(page, name)
        .getByRole('alert')
        .getByText('The service is busy. This file will be sent again by itself.')
        .waitFor();
    }
    expect(await accessibilityViolations(page)).toEqual([]);
    await item(page, 'impatient.wav').getByRole('button', { name: 'Cancel' }).click();
    await item(page, 'impatient.wav').getByRole('alert').getByText('Cancelled.').waitFor();

    await held.end(Buffer.concat([makeWav({ durationSeconds: 1 }), held.form.tail]));
    expect((await held.response).status).toBe(200);
    await item(page, 'steady.wav').getByRole('status').getByText('Done.').waitFor({ timeout: 30_000 });
    expect((await storedRecords(session, user)).map((record) => record.title).sort()).toEqual(['held', 'steady']);
  });
});
