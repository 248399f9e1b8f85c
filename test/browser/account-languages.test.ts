import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { en } from '../../web/src/i18n/en.js';
import { accessibilityViolations, startWebApp, type WebAppSession } from '../kit/browser.js';
import { descriptionOf, isFocused } from './account-helpers.js';

/**
 * The Russian strings the tests look for, written out here rather than imported: a test that read them
 * from the catalogue would pass whatever the catalogue said.
 */
const RU = {
  title: 'Храните и слушайте записи, делитесь ими',
  create: 'Создать учётную запись',
  signIn: 'Войти',
  username: 'Имя пользователя',
  userId: 'Идентификатор пользователя',
  token: 'Токен доступа',
  blankUsername: 'Введите имя пользователя.',
  blankUserId: 'Введите идентификатор пользователя.',
  saveTitle: 'Сохраните идентификатор пользователя и токен доступа',
  continue: 'Всё сохранено, перейти к записям',
  settings: 'Настройки',
  deleteOpen: 'Удалить учётную запись…',
  deleteTitle: 'Удалить учётную запись и все записи?',
  deleteConfirm: 'Удалить навсегда',
  language: 'Язык',
  records: 'Записи',
};

type Language = 'en' | 'ru';

const words = (language: Language) =>
  language === 'en'
    ? {
        title: en.start.title,
        create: en.start.create.submit,
        signIn: en.start.signIn.submit,
        username: en.start.create.username,
        saveTitle: en.start.credentials.title,
        continue: en.start.credentials.continue,
        settings: en.app.settings,
        deleteOpen: en.settings.delete.open,
        deleteTitle: en.settings.delete.confirmTitle,
        deleteConfirm: en.settings.delete.confirm,
      }
    : RU;

describe('the start page and settings in English and Russian, light and dark', () => {
  let session: WebAppSession;
  beforeAll(async () => {
    session = await startWebApp();
  });
  afterAll(async () => {
    await session?.close();
  });

  const htmlLang = (page: Page) => page.evaluate<string>('document.documentElement.lang');

  it('speaks Russian to a Russian browser: headings, labels, <html lang="ru"> and the title', async () => {
    const page = await session.newPage({ locale: 'ru-RU' });
    await page.goto('/');
    await page.getByRole('heading', { level: 1, name: RU.title }).waitFor();
    expect(await htmlLang(page)).toBe('ru');
    expect(await page.title()).toBe(`${RU.title} · Аудиозаписи`);
    for (const name of [RU.create, RU.signIn]) await page.getByRole('heading', { level: 2, name }).waitFor();
    for (const label of [RU.username, RU.userId, RU.token, RU.language])
      expect(await page.getByLabel(label, { exact: true }).count()).toBe(1);

    await page.getByRole('button', { name: RU.create }).click();
    expect(await descriptionOf(page.getByLabel(RU.username))).toContain(RU.blankUsername);
    await page.getByRole('button', { name: RU.signIn, exact: true }).click();
    expect(await descriptionOf(page.getByLabel(RU.userId))).toContain(RU.blankUserId);
  });

  it('switches language with the select and remembers the choice across a reload', async () => {
    const page = await session.newPage({ locale: 'en-GB' });
    await page.goto('/');
    await page.getByRole('heading', { level: 1, name: en.start.title }).waitFor();
    expect(await htmlLang(page)).toBe('en');

    await page.getByLabel(en.language.choose).focus();
    await page.getByLabel(en.language.choose).selectOption('ru');
    await page.getByRole('heading', { level: 1, name: RU.title }).waitFor();
    expect(await htmlLang(page)).toBe('ru');
    // The select keeps focus: the person who changed it goes on from where they were.
    expect(await isFocused(page.getByLabel(RU.language))).toBe(true);
    await page.reload();
    await page.getByRole('heading', { level: 1, name: RU.title }).waitFor();
    expect(await htmlLang(page)).toBe('ru');

    await page.getByLabel(RU.language).selectOption('en');
    await page.getByRole('heading', { level: 1, name: en.start.title }).waitFor();
    await page.reload();
    await page.getByRole('heading', { level: 1, name: en.start.title }).waitFor();
    expect(await htmlLang(page)).toBe('en');
  });

  for (const language of ['en', 'ru'] as const)
    for (const colorScheme of ['light', 'dark'] as const)
      it(`has no axe violations in ${language}, ${colorScheme}: start, errors, token shown, settings, delete dialog`, async () => {
        const w = words(language);
        const page = await session.newPage({ locale: language === 'ru' ? 'ru-RU' : 'en-US', colorScheme });
        await page.goto('/');
        await page.getByRole('heading', { level: 1, name: w.title }).waitFor();
        expect(await accessibilityViolations(page), 'start').toEqual([]);

        await page.getByRole('button', { name: w.create }).click();
        await page.getByRole('button', { name: w.signIn, exact: true }).click();
        await page.locator('[aria-invalid="true"]').nth(2).waitFor();
        expect(await accessibilityViolations(page), 'errors').toEqual([]);

        await page.getByLabel(w.username).fill(`${language} ${colorScheme} <b>user</b>`);
        await page.getByRole('button', { name: w.create }).click();
        await page.getByRole('heading', { name: w.saveTitle }).waitFor();
        expect(await accessibilityViolations(page), 'token shown').toEqual([]);

        await page.getByRole('button', { name: w.continue }).click();
        await page.getByRole('link', { name: w.settings }).click();
        await page.getByRole('button', { name: w.deleteOpen }).waitFor();
        expect(await accessibilityViolations(page), 'settings').toEqual([]);

        await page.getByRole('button', { name: w.deleteOpen }).click();
        const dialog = page.getByRole('dialog', { name: w.deleteTitle });
        await dialog.getByRole('button', { name: w.deleteConfirm }).click();
        await dialog.locator('[aria-invalid="true"]').waitFor();
        expect(await accessibilityViolations(page), 'delete dialog').toEqual([]);
      });

  it('fits a 320 px wide screen in both languages, with the token shown and in settings', async () => {
    for (const language of ['en', 'ru'] as const) {
      const w = words(language);
      const page = await session.newPage({
        locale: language === 'ru' ? 'ru-RU' : 'en-US',
        viewport: { width: 320, height: 640 },
      });
      const overflow = () => page.evaluate<number>('document.documentElement.scrollWidth - innerWidth');
      await page.goto('/');
      await page.getByRole('heading', { level: 1, name: w.title }).waitFor();
      expect(await overflow(), `${language} start`).toBeLessThanOrEqual(0);
      // A long name without spaces must wrap rather than widen the page.
      await page.getByLabel(w.username).fill(`narrow-${language}-${'x'.repeat(54)}`);
      await page.getByRole('button', { name: w.create }).click();
      await page.getByRole('heading', { name: w.saveTitle }).waitFor();
      expect(await overflow(), `${language} token shown`).toBeLessThanOrEqual(0);
      await page.getByRole('button', { name: w.continue }).click();
      await page.getByRole('link', { name: w.settings }).click();
      await page.getByRole('button', { name: w.deleteOpen }).waitFor();
      expect(await overflow(), `${language} settings`).toBeLessThanOrEqual(0);
    }
  });
});
