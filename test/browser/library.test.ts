import type { BrowserContextOptions, Locator, Page, Response } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessibilityViolations, onPageOrigin, startWebApp, type WebAppSession } from '../kit/browser.js';
import { createUser, type TestUser } from '../kit/client.js';
import { makeWav } from '../kit/wav.js';

interface Metadata {
  readonly record_url: string;
  readonly share_url: string;
  readonly record_id: string;
  readonly title: string | null;
  readonly created_at: string;
  readonly size_bytes: number;
  readonly duration_seconds: number;
}

const CREDENTIALS_KEY = 'audio-records.credentials';
/** The page's page size (library.tsx): one more record than this needs "Load more". */
const PAGE_SIZE = 20;

describe('the library, its player and its records', () => {
  let session: WebAppSession;
  beforeAll(async () => {
    session = await startWebApp();
  });
  afterAll(async () => {
    await session?.close();
  });

  async function uploadRecord(
    user: TestUser,
    options: { title?: string; filename?: string; seconds?: number; wav?: Buffer; format?: string } = {},
  ): Promise<Metadata> {
    const wav = options.wav ?? makeWav({ durationSeconds: options.seconds ?? 0.3, channels: 1, sampleRate: 8000 });
    const form = new FormData();
    // Output options go before the file, as the service requires.
    if (options.format !== undefined) form.append('format', options.format);
    if (options.title !== undefined) form.append('title', options.title);
    form.append('file', new Blob([new Uint8Array(wav)], { type: 'audio/wav' }), options.filename ?? 'take.wav');
    const response = await fetch(`${session.service.url}/api/v1/record/?user_id=${user.user_id}`, {
      method: 'POST',
      body: form,
      headers: { authorization: `Bearer ${user.access_token}` },
    });
    expect(response.status).toBe(200);
    const { record_url: recordUrl } = (await response.json()) as { record_url: string };
    return metadataOf(recordUrl);
  }

  async function metadataOf(recordUrl: string): Promise<Metadata> {
    const response = await fetch(recordUrl, { headers: { accept: 'application/json' } });
    expect(response.status).toBe(200);
    return (await response.json()) as Metadata;
  }

  async function signedInPage(user: TestUser, options: BrowserContextOptions = {}): Promise<Page> {
    const page = await session.newPage(options);
    const credentials = JSON.stringify({ userId: user.user_id, accessToken: user.access_token });
    await page.context().addInitScript({
      content: `localStorage.setItem(${JSON.stringify(CREDENTIALS_KEY)}, ${JSON.stringify(credentials)});`,
    });
    await page.goto('/');
    return page;
  }

  /** Whether `locator` has focus (the test's own TypeScript has no DOM to ask document.activeElement). */
  const isFocused = async (locator: Locator) => (await locator.and(locator.page().locator(':focus')).count()) === 1;

  const recordsOf = (page: Page, name = 'Your records') => page.getByRole('list', { name });
  const itemOf = (page: Page, text: string, name?: string) =>
    recordsOf(page, name).getByRole('listitem').filter({ hasText: text });

  /** The item that shows `text` now, found again by its place: renaming takes the text away. */
  async function stableItemOf(page: Page, text: string, name?: string): Promise<Locator> {
    await itemOf(page, text, name).waitFor();
    const texts = await recordsOf(page, name).getByRole('listitem').allTextContents();
    return recordsOf(page, name)
      .getByRole('listitem')
      .nth(texts.findIndex((content) => content.includes(text)));
  }

  async function waitForItems(page: Page, count: number, name?: string): Promise<Locator> {
    const items = recordsOf(page, name).getByRole('listitem');
    await expect.poll(() => items.count()).toBe(count);
    return items;
  }

  describe('hostile input', () => {
    let user: TestUser;
    beforeAll(async () => {
      user = await createUser(session.service.url);
    });

    it('shows a title holding markup as text, and runs none of it', async () => {
      const image = '<img src=x onerror="window.__pwned = 1">';
      const script = '</script><script>window.__pwned = 2</script>';
      await uploadRecord(user, { title: image });
      await uploadRecord(user, { title: script });
      const page = await signedInPage(user);
      await itemOf(page, image).getByRole('heading', { name: image }).waitFor();
      await itemOf(page, script).getByRole('heading', { name: script }).waitFor();
      expect(await recordsOf(page).locator('img, script').count()).toBe(0);
      expect(await page.evaluate<unknown>('window.__pwned')).toBeUndefined();
    });

    it('explains a title the API refuses (300 characters) in plain words, and keeps the old one', async () => {
      const record = await uploadRecord(user, { title: 'Too long soon' });
      const page = await signedInPage(user);
      const item = await stableItemOf(page, 'Too long soon');
      await item.getByRole('button', { name: 'Rename' }).click();
      const input = item.getByRole('textbox', { name: 'Title' });
      await expect.poll(() => isFocused(input)).toBe(true);
      await input.fill('x'.repeat(300));
      await input.press('Enter');
      await item.getByRole('alert').filter({ hasText: 'at most 200 characters' }).waitFor();
      expect(await input.getAttribute('aria-invalid')).toBe('true');
      expect((await metadataOf(record.record_url)).title).toBe('Too long soon');
      // Escape gives the old title back, unchanged.
      await input.press('Escape');
      await item.getByRole('heading', { name: 'Too long soon' }).waitFor();
      expect(await accessibilityViolations(page)).toEqual([]);
    });

    it('searches for % and _ as plain characters', async () => {
      const searcher = await createUser(session.service.url);
      for (const title of ['100% sure', '100 sure', 'a_b', 'axb']) await uploadRecord(searcher, { title });
      const page = await signedInPage(searcher);
      await waitForItems(page, 4);
      const search = page.getByLabel('Search by title');
      await search.fill('%');
      const items = await waitForItems(page, 1);
      expect(await items.first().textContent()).toContain('100% sure');
      await search.fill('_');
      await expect.poll(() => items.first().textContent()).toContain('a_b');
      await waitForItems(page, 1);
      await search.fill('no such title');
      await page
        .getByRole('status')
        .filter({ hasText: 'No recordings have “no such title” in their title.' })
        .waitFor();
      await waitForItems(page, 0);
      await search.fill('');
      await waitForItems(page, 4);
    });
  });

  it('lists the records newest first, with dates, sizes and durations in the reader’s locale', async () => {
    const user = await createUser(session.service.url);
    const older = await uploadRecord(user, { title: 'Older one', seconds: 1 });
    const newer = await uploadRecord(user, { filename: 'untitled-take.wav', seconds: 2 });
    for (const locale of ['en-US', 'ru-RU']) {
      const page = await signedInPage(user, { locale });
      const items = await waitForItems(page, 2, locale === 'en-US' ? 'Your records' : 'Ваши записи');
      // Untitled: the file name stands in for the title.
      expect(await items.nth(0).getByRole('heading').textContent()).toBe('untitled-take.wav');
      expect(await items.nth(1).getByRole('heading').textContent()).toBe('Older one');
      for (const [index, record] of [newer, older].entries()) {
        const text = (await items.nth(index).textContent()) ?? '';
        const date = new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short' });
        expect(text).toContain(date.format(new Date(record.created_at)));
        const size = new Intl.NumberFormat(locale, {
          style: 'unit',
          unit: 'kilobyte',
          unitDisplay: 'short',
          maximumFractionDigits: 1,
        });
        expect(text).toContain(size.format(record.size_bytes / 1000));
        expect(text).toContain(`0:0${Math.floor(record.duration_seconds)}`);
        expect(text).toContain('MP3');
      }
    }
  });

  describe('playing', () => {
    const SECONDS = 120;
    let user: TestUser;
    let record: Metadata;
    beforeAll(async () => {
      user = await createUser(session.service.url);
      // Large enough (lossless, CD quality: about 10 MB) that the first response cannot hold it all, so
      // a seek to the middle needs a Range request of its own.
      record = await uploadRecord(user, {
        title: 'Long talk',
        format: 'flac',
        wav: makeWav({ durationSeconds: SECONDS, channels: 2, sampleRate: 44100 }),
      });
    });

    /** The start of each Range request answered 206 for the record's audio; -1 for any other answer. */
    function partialStarts(page: Page): number[] {
      const starts: number[] = [];
      page.on('response', (response: Response) => {
        if (response.url() !== record.record_url) return;
        if (response.status() !== 206) {
          starts.push(-1);
          return;
        }
        const range = /bytes=(\d+)-/.exec(response.request().headers().range ?? '');
        starts.push(Number(range?.[1] ?? -1));
      });
      return starts;
    }

    interface AudioState {
      readonly duration: number;
      readonly currentTime: number;
      readonly paused: boolean;
    }
    const audioState = async (item: Locator) =>
      await item.locator('audio').evaluate((audio: AudioState): AudioState => ({
        duration: audio.duration,
        currentTime: audio.currentTime,
        paused: audio.paused,
      }));

    it('plays with the source’s duration, and seeks by a click on the waveform with a Range request', async () => {
      const page = await signedInPage(user);
      const starts = partialStarts(page);
      const item = itemOf(page, 'Long talk');
      await item.getByRole('button', { name: 'Listen' }).click();
      const hide = item.getByRole('button', { name: 'Hide player' });
      expect(await hide.getAttribute('aria-expanded')).toBe('true');
      const slider = item.getByRole('slider', { name: 'Position' });
      await slider.waitFor();
      expect(await slider.getAttribute('aria-valuemax')).toBe(String(SECONDS));
      await expect.poll(async () => (await audioState(item)).duration).toBeGreaterThan(0);
      expect(Math.abs((await audioState(item)).duration - SECONDS)).toBeLessThan(0.1);

      // The waveform is drawn from the server's peaks (wavesurfer's canvas), not from the audio.
      await expect.poll(() => item.locator('canvas').count()).toBeGreaterThan(0);

      // Where the slider is when the click happens (Playwright waits until it stops moving): a box read
      // earlier may be stale once the list around it has settled.
      const box = await slider.boundingBox();
      if (!box) throw new Error('the waveform has no box');
      await slider.click({ position: { x: box.width / 2, y: box.height / 2 } });
      await expect
        .poll(async () => (await audioState(item)).currentTime, { timeout: 10_000 })
        .toBeGreaterThan(SECONDS / 2 - 2);
      expect((await audioState(item)).currentTime).toBeLessThan(SECONDS / 2 + 2);
      expect(await slider.getAttribute('aria-valuetext')).toMatch(/^1:0\d of 2:00$/);

      await item.getByRole('button', { name: 'Play', exact: true }).click();
      await item.getByRole('button', { name: 'Pause', exact: true }).waitFor();
      const started = (await audioState(item)).currentTime;
      await expect.poll(async () => (await audioState(item)).currentTime).toBeGreaterThan(started + 0.3);
      // The middle of the file was asked for by its own Range request, answered 206.
      await expect.poll(() => starts.some((start) => start > 0)).toBe(true);
      // Never a whole download: wavesurfer draws the server's peaks and leaves the audio to the element.
      expect(starts).not.toContain(-1);

      expect(await accessibilityViolations(page)).toEqual([]);
      await item.getByRole('button', { name: 'Pause', exact: true }).click();
      await expect.poll(async () => (await audioState(item)).paused).toBe(true);
      // Closing the player stops it and takes the element away.
      await hide.click();
      expect(await item.locator('audio').count()).toBe(0);
    });

    it('is played and sought with the keyboard alone', async () => {
      const page = await signedInPage(user);
      const starts = partialStarts(page);
      const item = itemOf(page, 'Long talk');
      const listen = item.getByRole('button', { name: 'Listen' });
      await listen.waitFor();
      // Tab through the page until "Listen" has focus: no mouse at all.
      for (let presses = 0; presses < 40 && !(await isFocused(listen)); presses++) await page.keyboard.press('Tab');
      expect(await isFocused(listen)).toBe(true);
      await page.keyboard.press('Enter');
      const play = item.getByRole('button', { name: 'Play', exact: true });
      await expect.poll(() => isFocused(play)).toBe(true);

      // Seek first, before playback streams the file: the far end must come by a Range request of its own.
      await page.keyboard.press('Tab');
      const slider = item.getByRole('slider', { name: 'Position' });
      expect(await isFocused(slider)).toBe(true);
      await page.keyboard.press('End');
      await page.keyboard.press('ArrowLeft');
      await expect.poll(() => slider.getAttribute('aria-valuenow')).toBe(String(SECONDS - 5));
      expect(Math.abs((await audioState(item)).currentTime - (SECONDS - 5))).toBeLessThan(0.5);
      // The browser asks for the far end when it gets to it: more than poll's default second on a loaded CI machine.
      await expect.poll(() => starts.some((start) => start > 0), { timeout: 10_000 }).toBe(true);
      await page.keyboard.press('Home');
      for (let press = 0; press < 12; press++) await page.keyboard.press('ArrowRight');
      await expect.poll(() => slider.getAttribute('aria-valuetext')).toBe('1:00 of 2:00');

      // Space on the waveform plays and pauses, like on the button.
      await page.keyboard.press('Space');
      await item.getByRole('button', { name: 'Pause', exact: true }).waitFor();
      await expect.poll(async () => (await audioState(item)).currentTime, { timeout: 10_000 }).toBeGreaterThan(60.3);
      await page.keyboard.press('Space');
      await expect.poll(async () => (await audioState(item)).paused).toBe(true);
      // The element pauses at once; its 'pause' event, which renames the button, comes a moment later.
      await play.waitFor();
      // Back on the button, Enter plays again.
      await page.keyboard.press('Shift+Tab');
      await expect.poll(() => isFocused(play)).toBe(true);
      await page.keyboard.press('Enter');
      await item.getByRole('button', { name: 'Pause', exact: true }).waitFor();
      expect(starts).not.toContain(-1);
    });

    it('plays without its waveform when the peaks cannot be had', async () => {
      const page = await signedInPage(user);
      await page.route('**/api/v1/record/peaks?**', (route) => route.abort());
      const item = itemOf(page, 'Long talk');
      await item.getByRole('button', { name: 'Listen' }).click();
      await item.getByText('The waveform could not be loaded; the recording still plays.').waitFor();
      await item.getByRole('button', { name: 'Play', exact: true }).click();
      await expect.poll(async () => (await audioState(item)).currentTime).toBeGreaterThan(0.3);
      expect(await accessibilityViolations(page)).toEqual([]);
    });
  });

  it('renames inline: Enter saves, Cancel keeps, blank removes the title', async () => {
    const user = await createUser(session.service.url);
    const record = await uploadRecord(user, { title: 'First name', filename: 'memo.wav' });
    const page = await signedInPage(user, { locale: 'ru-RU' });
    const item = await stableItemOf(page, 'First name', 'Ваши записи');
    await item.getByRole('button', { name: 'Переименовать' }).click();
    const input = item.getByRole('textbox', { name: 'Название' });
    await input.fill('Second name');
    await item.getByRole('button', { name: 'Отмена' }).click();
    await item.getByRole('heading', { name: 'First name' }).waitFor();
    expect((await metadataOf(record.record_url)).title).toBe('First name');

    const rename = item.getByRole('button', { name: 'Переименовать' });
    await rename.click();
    await input.fill('  Интервью, дубль 2  ');
    await input.press('Enter');
    await item.getByRole('heading', { name: 'Интервью, дубль 2' }).waitFor();
    const renamed = item;
    await expect.poll(async () => (await metadataOf(record.record_url)).title).toBe('Интервью, дубль 2');
    // Focus is back on the button that started it.
    const renamedButton = renamed.getByRole('button', { name: 'Переименовать' });
    expect(await isFocused(renamedButton)).toBe(true);

    await renamedButton.click();
    await renamed.getByRole('textbox', { name: 'Название' }).fill('   ');
    await renamed.getByRole('button', { name: 'Сохранить' }).click();
    await item.getByRole('heading', { name: 'memo.wav' }).waitFor();
    expect((await metadataOf(record.record_url)).title).toBeNull();
  });

  it('loads the next page with "Load more", from the first page again after an upload', async () => {
    const user = await createUser(session.service.url);
    for (let index = 1; index <= PAGE_SIZE + 3; index++) await uploadRecord(user, { title: `Take ${index}` });
    const page = await signedInPage(user);
    const items = await waitForItems(page, PAGE_SIZE);
    expect(await items.first().getByRole('heading').textContent()).toBe(`Take ${PAGE_SIZE + 3}`);
    await page.getByRole('button', { name: 'Load more' }).click();
    await waitForItems(page, PAGE_SIZE + 3);
    expect(await items.last().getByRole('heading').textContent()).toBe('Take 1');
    expect(await page.getByRole('button', { name: 'Load more' }).count()).toBe(0);
    // Focus went to the first record of the new page, where reading goes on.
    expect(await isFocused(items.nth(PAGE_SIZE).getByRole('heading'))).toBe(true);
    // A search narrows the list and pages through the narrowed list.
    await page.getByLabel('Search by title').fill('Take 2');
    await expect.poll(() => items.count()).toBe(5); // Take 2, Take 20…23
    await page.getByRole('status').filter({ hasText: '5 recordings shown' }).waitFor();
    // 23 uploads, one after another so that their order is known: slow on a loaded 2-core machine.
  }, 120_000);

  it('deletes only after a confirmation that one stray key press cannot give', async () => {
    const user = await createUser(session.service.url);
    const doomed = await uploadRecord(user, { title: 'Doomed' });
    await uploadRecord(user, { title: 'Survivor' });
    for (const colorScheme of ['light', 'dark'] as const) {
      for (const locale of ['en-US', 'ru-RU']) {
        const page = await signedInPage(user, { locale, colorScheme });
        const english = locale === 'en-US';
        const item = itemOf(page, 'Doomed', english ? 'Your records' : 'Ваши записи');
        await item.getByRole('button', { name: english ? 'Delete' : 'Удалить', exact: true }).click();
        await item.getByRole('group').waitFor();
        expect(await accessibilityViolations(page)).toEqual([]);
      }
    }
    const page = await signedInPage(user);
    const item = itemOf(page, 'Doomed');
    await item.getByRole('button', { name: 'Delete', exact: true }).click();
    const confirmation = item.getByRole('group', { name: 'Delete “Doomed”? It cannot be brought back.' });
    await confirmation.waitFor();
    // The safe choice has focus: Enter keeps the record.
    await expect.poll(() => isFocused(confirmation.getByRole('button', { name: 'Keep it' }))).toBe(true);
    await page.keyboard.press('Enter');
    await expect.poll(() => confirmation.count()).toBe(0);
    expect(await isFocused(item.getByRole('button', { name: 'Delete', exact: true }))).toBe(true);
    await page.keyboard.press('Enter');
    await confirmation.waitFor();
    await expect.poll(() => isFocused(confirmation.getByRole('button', { name: 'Keep it' }))).toBe(true);
    await page.keyboard.press('Escape');
    await expect.poll(() => confirmation.count()).toBe(0);
    expect((await fetch(doomed.record_url)).status).toBe(200);

    await item.getByRole('button', { name: 'Delete', exact: true }).click();
    await item.getByRole('button', { name: 'Yes, delete' }).click();
    await page.getByRole('status').filter({ hasText: '“Doomed” was deleted.' }).waitFor();
    await waitForItems(page, 1);
    // Focus lands on the record that took its place.
    const survivor = itemOf(page, 'Survivor').getByRole('heading', { name: 'Survivor' });
    await expect.poll(() => isFocused(survivor)).toBe(true);
    expect((await fetch(doomed.record_url)).status).toBe(404);
  });

  it('copies the share link to the clipboard and says so', async () => {
    const user = await createUser(session.service.url);
    const record = await uploadRecord(user, { title: 'Shared take' });
    const page = await signedInPage(user);
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write']);
    const item = itemOf(page, 'Shared take');
    await item.getByRole('button', { name: 'Copy share link' }).click();
    await item.getByRole('status').filter({ hasText: 'Link copied.' }).waitFor();
    expect(await page.evaluate<string>('navigator.clipboard.readText()')).toBe(record.share_url);
    expect(new URL(record.share_url).pathname).toBe('/listen');
    expect(await item.getByRole('link', { name: 'Download' }).getAttribute('href')).toBe(
      onPageOrigin(record.record_url),
    );
  });

  it('has no accessibility violations: empty, with records, player open, renaming; both languages and schemes', async () => {
    const empty = await createUser(session.service.url);
    const full = await createUser(session.service.url);
    await uploadRecord(full, { title: 'Accessible take', seconds: 2 });
    for (const colorScheme of ['light', 'dark'] as const) {
      for (const locale of ['en-US', 'ru-RU']) {
        const english = locale === 'en-US';
        const listName = english ? 'Your records' : 'Ваши записи';
        const emptyPage = await signedInPage(empty, { locale, colorScheme });
        await emptyPage
          .getByText(english ? 'You have no recordings yet.' : 'Записей пока нет.', { exact: false })
          .waitFor();
        expect(await accessibilityViolations(emptyPage)).toEqual([]);

        const page = await signedInPage(full, { locale, colorScheme });
        const item = await stableItemOf(page, 'Accessible take', listName);
        expect(await accessibilityViolations(page)).toEqual([]);
        await item.getByRole('button', { name: english ? 'Listen' : 'Слушать' }).click();
        await expect.poll(() => item.locator('canvas').count()).toBeGreaterThan(0);
        expect(await accessibilityViolations(page)).toEqual([]);
        await item.getByRole('button', { name: english ? 'Rename' : 'Переименовать' }).click();
        await item.getByRole('textbox').waitFor();
        expect(await accessibilityViolations(page)).toEqual([]);
      }
    }
  });
});
