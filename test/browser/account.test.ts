import { readFile } from 'node:fs/promises';
import type { Page, Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { en } from '../../web/src/i18n/en.js';
import { startWebApp, type WebAppSession } from '../kit/browser.js';
import { createUser, PREFIX, upload } from '../kit/client.js';
import { makeWav } from '../kit/wav.js';
import {
  createAccountInPage,
  descriptionOf,
  isFocused,
  meStatus,
  shownValue,
  signInInPage,
  storedCredentials,
  tabTo,
  UUID,
} from './account-helpers.js';

const c = en.start.credentials;

describe('the start page, sign-in and settings', () => {
  let session: WebAppSession;
  beforeAll(async () => {
    session = await startWebApp();
  });
  afterAll(async () => {
    await session?.close();
  });

  async function startPage(): Promise<Page> {
    const page = await session.newPage();
    await page.goto('/');
    await page.getByRole('heading', { level: 1, name: en.start.title }).waitFor();
    return page;
  }

  /** Every account-creation request the page sends from now on. */
  function creations(page: Page): Request[] {
    const sent: Request[] = [];
    page.on('request', (request) => {
      if (request.method() === 'POST' && new URL(request.url()).pathname === `${PREFIX}/users/`) sent.push(request);
    });
    return sent;
  }

  it('refuses a blank, a whitespace-only and a 65-character username in the page, on the field, sending nothing', async () => {
    const page = await startPage();
    const sent = creations(page);
    const field = page.getByLabel(en.start.create.username);
    const submit = page.getByRole('button', { name: en.start.create.submit });

    await submit.click();
    expect(await field.getAttribute('aria-invalid')).toBe('true');
    expect(await descriptionOf(field)).toContain(en.start.create.blank);
    expect(await isFocused(field)).toBe(true);

    await field.fill(' \t  ');
    await submit.click();
    expect(await descriptionOf(field)).toContain(en.start.create.blank);

    await field.fill('a'.repeat(65));
    await submit.click();
    await expect.poll(() => descriptionOf(field)).toContain(en.start.create.tooLong);
    expect(await field.getAttribute('aria-invalid')).toBe('true');
    expect(sent).toEqual([]);

    // 64 characters outside the BMP are 128 UTF-16 units: counted as the service counts, they fit.
    await field.fill('🎵'.repeat(64));
    await submit.click();
    await page.getByRole('heading', { name: c.title }).waitFor();
    expect(sent).toHaveLength(1);
  });

  it('says a username taken in another case is taken (409), on the field', async () => {
    await createUser(session.service.url, 'Taken_Name');
    const page = await startPage();
    const field = page.getByLabel(en.start.create.username);
    await field.fill('taken_NAME');
    await page.getByRole('button', { name: en.start.create.submit }).click();
    await expect.poll(() => descriptionOf(field)).toContain(en.errors.usernameTaken);
    expect(await field.getAttribute('aria-invalid')).toBe('true');
    expect(await page.getByRole('heading', { name: c.title }).count()).toBe(0);
  });

  it('shows the service refusing an invisible character (400) in plain words', async () => {
    const page = await startPage();
    const field = page.getByLabel(en.start.create.username);
    await field.fill('zero\u200Bwidth');
    await page.getByRole('button', { name: en.start.create.submit }).click();
    await expect.poll(() => descriptionOf(field)).toContain(en.errors.badRequest.replace(/\.$/, ''));
    expect(await storedCredentials(page)).toBeNull();
  });

  it('refuses a blank or malformed user id and a blank token in the page; a wrong pair gets the 401 message', async () => {
    const anna = await createUser(session.service.url);
    const boris = await createUser(session.service.url);
    const page = await startPage();
    const s = en.start.signIn;
    const userId = page.getByLabel(s.userId);
    const token = page.getByLabel(s.token);
    const submit = page.getByRole('button', { name: s.submit, exact: true });

    await submit.click();
    expect(await userId.getAttribute('aria-invalid')).toBe('true');
    expect(await descriptionOf(userId)).toContain(s.userIdBlank);
    expect(await descriptionOf(token)).toContain(s.tokenBlank);
    expect(await isFocused(userId)).toBe(true);

    for (const malformed of ['not-a-uuid', anna.user_id.slice(0, -1), `${anna.user_id}0`, '<b>x</b>']) {
      await userId.fill(malformed);
      await token.fill(anna.access_token);
      await submit.click();
      await expect.poll(() => descriptionOf(userId)).toContain(s.userIdMalformed);
      expect(await token.getAttribute('aria-invalid')).toBeNull();
    }

    // Well formed but wrong: the service's 401, said once for the pair.
    await userId.fill(anna.user_id);
    await token.fill('d196d14f-294b-4ed0-a324-ae172a737a5a');
    await submit.click();
    await page.getByText(en.errors.unauthorized).waitFor();
    expect(await userId.getAttribute('aria-invalid')).toBeNull();

    // Boris's own token with Anna's user id: the token is right, the pair is not.
    await token.fill(boris.access_token);
    await submit.click();
    await page.getByText(en.errors.unauthorized).waitFor();
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe(en.start.title);
    expect(await storedCredentials(page)).toBeNull();
  });

  it('shows a username made of HTML as text', async () => {
    const page = await startPage();
    const dialogs: string[] = [];
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    const username = '<img src=x onerror="document.title=\'pwned\'">';
    await createAccountInPage(page, username);
    await page.getByRole('button', { name: c.continue }).click();
    await page.getByRole('link', { name: en.app.settings }).click();
    await page.getByRole('heading', { level: 1, name: en.settings.title }).waitFor();
    await page.getByRole('definition').filter({ hasText: username }).waitFor();
    expect(await page.getByRole('definition').filter({ hasText: username }).textContent()).toBe(username);
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.title()).not.toContain('pwned');
    expect(dialogs).toEqual([]);
  });

  it('creates an account and shows the token once: exact copies, a file with both, then only localStorage keeps it', async () => {
    const page = await startPage();
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: session.service.url });
    const user = await createAccountInPage(page, 'Anna Petrova');
    expect(user.user_id).toMatch(UUID);
    expect(user.access_token).toMatch(UUID);
    expect(await isFocused(page.getByRole('heading', { name: c.title }))).toBe(true);
    await page.getByText(c.warning).waitFor();
    // Not kept before the person says they saved it.
    expect(await storedCredentials(page)).toBeNull();

    await page.getByRole('button', { name: c.copyUserId }).click();
    await page.getByRole('status').filter({ hasText: c.userIdCopied }).waitFor();
    expect(await page.evaluate<string>('navigator.clipboard.readText()')).toBe(user.user_id);
    await page.getByRole('button', { name: c.copyToken }).click();
    await page.getByRole('status').filter({ hasText: c.tokenCopied }).waitFor();
    expect(await page.evaluate<string>('navigator.clipboard.readText()')).toBe(user.access_token);

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: c.download }).click(),
    ]);
    expect(download.suggestedFilename()).toBe(c.fileName);
    const file = await readFile(await download.path(), 'utf8');
    expect(file).toContain(`User id: ${user.user_id}\n`);
    expect(file).toContain(`Access token: ${user.access_token}\n`);
    expect(file).toContain('Username: Anna Petrova\n');
    expect(file).toContain(`Address: ${session.service.url}\n`);

    await page.getByRole('button', { name: c.continue }).click();
    const library = page.getByRole('heading', { level: 1, name: en.library.title });
    await library.waitFor();
    await expect.poll(() => isFocused(library)).toBe(true);
    expect(await storedCredentials(page)).toEqual({ userId: user.user_id, accessToken: user.access_token });

    await page.reload();
    await library.waitFor();
    expect(await page.content()).not.toContain(user.access_token);
    expect(await page.locator('body').innerText()).not.toContain(user.access_token);
    expect(await storedCredentials(page)).toEqual({ userId: user.user_id, accessToken: user.access_token });
    expect(await meStatus(session.service.url, user.access_token)).toBe(200);
  });

  it('signs out (forgetting the credentials) and in again by pasting, stray spaces and capitals included', async () => {
    const user = await createUser(session.service.url);
    const page = await startPage();
    await signInInPage(page, { user_id: `  ${user.user_id.toUpperCase()}\n`, access_token: ` ${user.access_token} ` });
    expect(await storedCredentials(page)).toEqual({ userId: user.user_id, accessToken: user.access_token });

    await page.getByRole('button', { name: en.app.signOut }).click();
    await page.getByRole('heading', { level: 1, name: en.start.title }).waitFor();
    const notice = page.getByText(en.app.signedOut);
    await notice.waitFor();
    await expect.poll(() => isFocused(notice)).toBe(true);
    expect(await storedCredentials(page)).toBeNull();
    expect(await page.getByRole('navigation', { name: en.app.nav }).count()).toBe(0);
    expect(new URL(page.url()).pathname).toBe('/');

    await signInInPage(page, user);
    await page.reload();
    await page.getByRole('heading', { level: 1, name: en.library.title }).waitFor();
    expect(await storedCredentials(page)).toEqual({ userId: user.user_id, accessToken: user.access_token });
  });

  it('replaces the token after a confirmation: the old one gets 401, the new one works, and so does the page', async () => {
    const user = await createUser(session.service.url, 'Rotating Rita');
    const page = await startPage();
    await signInInPage(page, user);
    await page.getByRole('link', { name: en.app.settings }).click();
    const settings = page.getByRole('heading', { level: 1, name: en.settings.title });
    await settings.waitFor();
    await expect.poll(() => isFocused(settings)).toBe(true);
    await page.getByRole('definition').filter({ hasText: 'Rotating Rita' }).waitFor();

    const open = page.getByRole('button', { name: en.settings.token.replace });
    const dialog = page.getByRole('dialog', { name: en.settings.token.confirmTitle });
    // Escape and Cancel change nothing.
    await open.click();
    await dialog.waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    await open.click();
    await dialog.getByRole('button', { name: en.settings.cancel }).click();
    await dialog.waitFor({ state: 'hidden' });
    expect(await meStatus(session.service.url, user.access_token)).toBe(200);

    await open.click();
    await dialog.getByRole('button', { name: en.settings.token.confirm }).click();
    const shown = page.getByRole('heading', { name: en.settings.token.newTitle });
    await shown.waitFor();
    await expect.poll(() => isFocused(shown)).toBe(true);
    const newToken = await shownValue(page, c.copyToken);
    expect(newToken).toMatch(UUID);
    expect(newToken).not.toBe(user.access_token);
    expect(await meStatus(session.service.url, user.access_token)).toBe(401);
    expect(await meStatus(session.service.url, newToken)).toBe(200);
    expect(await storedCredentials(page)).toEqual({ userId: user.user_id, accessToken: newToken });

    await page.getByRole('button', { name: en.settings.token.done }).click();
    await shown.waitFor({ state: 'detached' });
    expect(await page.locator('body').innerText()).not.toContain(newToken);
    await page.getByRole('link', { name: en.app.library }).click();
    await page.getByRole('heading', { level: 1, name: en.library.title }).waitFor();
    await page.getByRole('heading', { name: en.library.records }).waitFor();
    expect(await page.getByText(en.errors.unauthorized).count()).toBe(0);
    await page.getByRole('link', { name: en.app.settings }).click();
    await page.getByRole('definition').filter({ hasText: 'Rotating Rita' }).waitFor();
  });

  it('deletes the account only once the username is typed; the API then answers 401 and the start page is back', async () => {
    const user = await createUser(session.service.url, 'Delete Me');
    const stored = await upload(session.service.url, user, makeWav({ durationSeconds: 1 }), { title: 'Last words' });
    expect(stored.status).toBe(200);
    await stored.arrayBuffer();
    const page = await startPage();
    await signInInPage(page, user);
    await page.getByRole('link', { name: en.app.settings }).click();
    const recordCount = page.getByRole('definition').filter({ has: page.getByText('1', { exact: true }) });
    await recordCount.waitFor();

    const open = page.getByRole('button', { name: en.settings.delete.open });
    const dialog = page.getByRole('dialog', { name: en.settings.delete.confirmTitle });
    const field = dialog.getByLabel(en.settings.delete.typeUsername);
    const confirm = dialog.getByRole('button', { name: en.settings.delete.confirm });

    await open.click();
    await dialog.waitFor();
    expect(await isFocused(field)).toBe(true);
    await confirm.click();
    await expect.poll(() => descriptionOf(field)).toContain(en.settings.delete.mismatch);
    for (const wrong of ['delete me', 'Delete', 'Delete Me!']) {
      await field.fill(wrong);
      await page.keyboard.press('Enter');
      expect(await field.getAttribute('aria-invalid')).toBe('true');
    }
    await dialog.getByRole('button', { name: en.settings.cancel }).click();
    await dialog.waitFor({ state: 'hidden' });
    expect(await meStatus(session.service.url, user.access_token)).toBe(200);

    await open.click();
    // The dialog starts empty again: a name typed before is not kept for a second try.
    expect(await field.inputValue()).toBe('');
    await field.fill(' Delete Me ');
    await confirm.click();
    const notice = page.getByText(en.app.accountDeleted);
    await notice.waitFor();
    await expect.poll(() => isFocused(notice)).toBe(true);
    await page.getByRole('heading', { level: 1, name: en.start.title }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/');
    expect(await storedCredentials(page)).toBeNull();
    expect(await meStatus(session.service.url, user.access_token)).toBe(401);
  });

  it('says when the kept token stopped working, and offers to sign in again', async () => {
    const user = await createUser(session.service.url);
    const page = await startPage();
    await signInInPage(page, user);
    const rotated = await fetch(`${session.service.url}${PREFIX}/users/${user.user_id}/token`, {
      method: 'POST',
      headers: { authorization: `Bearer ${user.access_token}` },
    });
    expect(rotated.status).toBe(200);
    const { access_token: newToken } = (await rotated.json()) as { access_token: string };

    await page.getByRole('link', { name: en.app.settings }).click();
    await page.getByText(en.settings.staleToken).waitFor();
    expect(await page.getByRole('button', { name: en.settings.token.replace }).count()).toBe(0);
    await page.getByRole('button', { name: en.settings.signInAgain }).click();
    await page.getByText(en.app.signInAgain).waitFor();
    expect(await storedCredentials(page)).toBeNull();
    await signInInPage(page, { user_id: user.user_id, access_token: newToken });
  });

  it('can be used with the keyboard alone: skip link, then create an account with Tab, typing, Enter and Space', async () => {
    const page = await startPage();
    await page.keyboard.press('Tab');
    expect(await isFocused(page.getByRole('link', { name: en.app.skipToContent }))).toBe(true);
    await page.keyboard.press('Enter');
    await expect.poll(() => isFocused(page.getByRole('main'))).toBe(true);

    await tabTo(page, page.getByLabel(en.start.create.username));
    await page.keyboard.type('Keyboard Kira');
    await page.keyboard.press('Enter');
    const heading = page.getByRole('heading', { name: c.title });
    await heading.waitFor();
    await expect.poll(() => isFocused(heading)).toBe(true);
    const shownToken = await shownValue(page, c.copyToken);

    const next = page.getByRole('button', { name: c.continue });
    await tabTo(page, next);
    await page.keyboard.press('Space');
    const library = page.getByRole('heading', { level: 1, name: en.library.title });
    await library.waitFor();
    await expect.poll(() => isFocused(library)).toBe(true);
    expect((await storedCredentials(page))?.accessToken).toBe(shownToken);

    await tabTo(page, page.getByRole('link', { name: en.app.settings }));
    await page.keyboard.press('Enter');
    await page.getByRole('definition').filter({ hasText: 'Keyboard Kira' }).waitFor();
  });
});
