import { randomUUID } from 'node:crypto';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessibilityViolations, onPageOrigin, startWebApp, type WebAppSession } from '../kit/browser.js';
import { createUser, upload, type TestUser } from '../kit/client.js';
import { makeWav } from '../kit/wav.js';

interface Metadata {
  readonly record_url: string;
  readonly share_url: string;
  readonly record_id: string;
  readonly user_id: string;
  readonly duration_seconds: number;
}

describe('the share page, signed out', () => {
  let session: WebAppSession;
  let user: TestUser;
  let record: Metadata;
  const SECONDS = 4;

  async function uploadRecord(title: string, seconds = SECONDS): Promise<Metadata> {
    const wav = makeWav({ durationSeconds: seconds, channels: 1, sampleRate: 16000 });
    const response = await upload(session.service.url, user, wav, { title, filename: 'shared.wav' });
    expect(response.status).toBe(200);
    const { record_url: recordUrl } = (await response.json()) as { record_url: string };
    return (await (await fetch(recordUrl, { headers: { accept: 'application/json' } })).json()) as Metadata;
  }

  const sharePath = (recordId: string, userId: string) =>
    `/listen?record_id=${encodeURIComponent(recordId)}&user_id=${encodeURIComponent(userId)}`;

  async function alertOn(page: Page, path: string): Promise<string> {
    await page.goto(path);
    const alert = page.getByRole('alert');
    await alert.waitFor();
    return (await alert.textContent()) ?? '';
  }

  beforeAll(async () => {
    session = await startWebApp();
    user = await createUser(session.service.url);
    record = await uploadRecord('<b>Shared</b> </script> take');
  });
  afterAll(async () => {
    await session?.close();
  });

  it('explains a link without ids, with malformed ids, to an unknown record and to a deleted one', async () => {
    const page = await session.newPage();
    const asked: string[] = [];
    page.on('request', (request) => {
      if (request.url().includes('/api/v1/record?')) asked.push(request.url());
    });
    expect(await alertOn(page, '/listen')).toMatch(/^This link is incomplete/);
    expect(await alertOn(page, `/listen?record_id=${record.record_id}`)).toMatch(/^This link is incomplete/);
    expect(await alertOn(page, sharePath('not-a-uuid', record.user_id))).toMatch(/^This link is damaged/);
    expect(await alertOn(page, sharePath(record.record_id, `${record.user_id}'--`))).toMatch(/^This link is damaged/);
    expect(await alertOn(page, sharePath('<script>alert(1)</script>', '%00'))).toMatch(/^This link is damaged/);
    // Malformed ids never reach the API.
    expect(asked).toEqual([]);
    expect(await alertOn(page, sharePath(randomUUID(), record.user_id))).toBe(
      'This recording does not exist, or its owner deleted it.',
    );
    expect(await accessibilityViolations(page)).toEqual([]);

    const doomed = await uploadRecord('Soon gone', 0.5);
    await page.goto(sharePath(doomed.record_id, doomed.user_id));
    await page.getByRole('heading', { level: 1, name: 'Soon gone' }).waitFor();
    const deleted = await fetch(`${session.service.url}/api/v1/records/${doomed.record_id}?user_id=${user.user_id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${user.access_token}` },
    });
    expect(deleted.status).toBe(204);
    expect(await alertOn(page, sharePath(doomed.record_id, doomed.user_id))).toBe(
      'This recording does not exist, or its owner deleted it.',
    );

    const russian = await session.newPage({ locale: 'ru-RU', colorScheme: 'dark' });
    expect(await alertOn(russian, sharePath('x', 'y'))).toMatch(/^Ссылка повреждена/);
    expect(await alertOn(russian, sharePath(randomUUID(), randomUUID()))).toBe(
      'Такой записи нет, или владелец её удалил.',
    );
    expect(await accessibilityViolations(russian)).toEqual([]);
  });

  it('says so when the service cannot be reached', async () => {
    const page = await session.newPage();
    await page.route('**/api/v1/record?**', (route) => route.abort('connectionrefused'));
    expect(await alertOn(page, sharePath(record.record_id, record.user_id))).toBe(
      'The service cannot be reached. Check your connection and try again.',
    );
  });

  it('shows the title as text, the facts, a download, and plays in a fresh signed-out context', async () => {
    const page = await session.newPage();
    const statuses: number[] = [];
    page.on('response', (response) => {
      // The same URL answers the page's metadata request (Accept: JSON); only the audio's answers count.
      if (response.url() === record.record_url && response.request().headers().accept !== 'application/json')
        statuses.push(response.status());
    });
    await page.goto(new URL(record.share_url).pathname + new URL(record.share_url).search);
    await page.getByRole('heading', { level: 1, name: '<b>Shared</b> </script> take' }).waitFor();
    expect(await page.locator('main b').count()).toBe(0);
    // Signed out: nothing in this context's storage, no navigation of the signed-in views.
    expect(await page.evaluate<string | null>("localStorage.getItem('audio-records.credentials')")).toBeNull();
    await page.getByText(`0:0${Math.floor(record.duration_seconds)}`, { exact: true }).waitFor();
    const download = page.getByRole('link', { name: 'Download' });
    expect(await download.getAttribute('href')).toBe(onPageOrigin(record.record_url));
    expect(await download.getAttribute('download')).not.toBeNull();

    const player = page.getByRole('group', { name: 'Player: <b>Shared</b> </script> take' });
    await expect.poll(() => player.locator('canvas').count()).toBeGreaterThan(0);
    const audio = player.locator('audio');
    const state = async () =>
      await audio.evaluate((element: { duration: number; currentTime: number }) => ({
        duration: element.duration,
        time: element.currentTime,
      }));
    await expect.poll(async () => (await state()).duration).toBeGreaterThan(0);
    expect(Math.abs((await state()).duration - SECONDS)).toBeLessThan(0.1);
    await player.getByRole('button', { name: 'Play', exact: true }).click();
    await player.getByRole('button', { name: 'Pause', exact: true }).waitFor();
    await expect.poll(async () => (await state()).time).toBeGreaterThan(0.3);
    // The audio comes in Range requests; the player never downloads the file whole to draw it.
    expect(statuses.length).toBeGreaterThan(0);
    expect(statuses).toEqual(statuses.map(() => 206));
    expect(await accessibilityViolations(page)).toEqual([]);
  });

  it('has no accessibility violations in both languages and both colour schemes', async () => {
    for (const colorScheme of ['light', 'dark'] as const) {
      for (const locale of ['en-US', 'ru-RU']) {
        const page = await session.newPage({ locale, colorScheme });
        await page.goto(sharePath(record.record_id, record.user_id));
        await page.getByRole('heading', { level: 1, name: '<b>Shared</b> </script> take' }).waitFor();
        await page.getByRole('link', { name: locale === 'en-US' ? 'Download' : 'Скачать' }).waitFor();
        await expect.poll(() => page.locator('canvas').count()).toBeGreaterThan(0);
        expect(await accessibilityViolations(page)).toEqual([]);
      }
    }
  });
});
