import type { Locator, Page } from 'playwright-core';
import { expect } from 'vitest';
import { en } from '../../web/src/i18n/en.js';
import { PREFIX, type TestUser } from '../kit/client.js';

/** Where session.ts keeps the credentials. */
const CREDENTIALS_KEY = 'audio-records.credentials';

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** What the page keeps in localStorage, parsed; null when signed out. */
export async function storedCredentials(page: Page): Promise<{ userId: string; accessToken: string } | null> {
  const text = await page.evaluate<string | null>(`localStorage.getItem(${JSON.stringify(CREDENTIALS_KEY)})`);
  return text === null ? null : (JSON.parse(text) as { userId: string; accessToken: string });
}

/** The text of what aria-describedby points at: what a screen reader reads after the field's name. */
export async function descriptionOf(field: Locator): Promise<string> {
  const ids = (await field.getAttribute('aria-describedby'))?.split(/\s+/).filter(Boolean) ?? [];
  const texts = await Promise.all(ids.map((id) => field.page().locator(`[id="${id}"]`).textContent()));
  return texts.join(' ');
}

export async function isFocused(locator: Locator): Promise<boolean> {
  return (await locator.and(locator.page().locator(':focus')).count()) === 1;
}

/** Presses Tab until `target` has focus, as a keyboard user would; fails if it never gets it. */
export async function tabTo(page: Page, target: Locator, maxPresses = 30): Promise<void> {
  for (let press = 0; press < maxPresses; press++) {
    if (await isFocused(target)) return;
    await page.keyboard.press('Tab');
  }
  expect(await isFocused(target), 'focus never reached the element by Tab').toBe(true);
}

/** The value shown next to a copy button (user id or token), as the page shows it. */
export async function shownValue(page: Page, copyButton: string): Promise<string> {
  const definition = page.getByRole('definition').filter({ has: page.getByRole('button', { name: copyButton }) });
  return ((await definition.getByRole('code').textContent()) ?? '').trim();
}

/** Creates an account through the page and reads the credentials it shows once (not yet continued). */
export async function createAccountInPage(page: Page, username: string): Promise<TestUser> {
  await page.getByLabel(en.start.create.username).fill(username);
  await page.getByRole('button', { name: en.start.create.submit }).click();
  await page.getByRole('heading', { name: en.start.credentials.title }).waitFor();
  return {
    user_id: await shownValue(page, en.start.credentials.copyUserId),
    access_token: await shownValue(page, en.start.credentials.copyToken),
  };
}

/** Signs in by pasting, as a person with saved credentials would, and waits for the library. */
export async function signInInPage(page: Page, user: TestUser): Promise<void> {
  await page.getByLabel(en.start.signIn.userId).fill(user.user_id);
  await page.getByLabel(en.start.signIn.token).fill(user.access_token);
  await page.getByRole('button', { name: en.start.signIn.submit, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: en.library.title }).waitFor();
}

/** The API's answer to /users/me for a token, asked from the test, not the page. */
export async function meStatus(baseUrl: string, token: string): Promise<number> {
  const response = await fetch(`${baseUrl}${PREFIX}/users/me`, { headers: { authorization: `Bearer ${token}` } });
  await response.arrayBuffer();
  return response.status;
}
