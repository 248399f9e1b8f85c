import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { en } from '../../web/src/i18n/en.js';
import { startWebApp, type WebAppSession } from '../kit/browser.js';
import { createUser } from '../kit/client.js';
import { descriptionOf } from './account-helpers.js';

describe('the start page under the service limit on account creation', () => {
  let session: WebAppSession;
  beforeAll(async () => {
    session = await startWebApp({ RATE_LIMIT_USER_CREATIONS: '1', RATE_LIMIT_WINDOW_SECONDS: '600' });
  });
  afterAll(async () => {
    await session?.close();
  });

  it('says a 429 in plain words, with the wait, about the attempt and not the username', async () => {
    // The one creation this client may make in the window; the browser comes from the same address.
    await createUser(session.service.url);
    const page = await session.newPage();
    await page.goto('/');
    const field = page.getByLabel(en.start.create.username);
    await field.fill('Patient Pat');
    await page.getByRole('button', { name: en.start.create.submit }).click();
    const message = page.getByText(/^Too many requests\. Try again in \d+ s\.$/);
    await message.waitFor();
    expect(await field.getAttribute('aria-invalid')).toBeNull();
    expect(await descriptionOf(field)).not.toContain('Too many');
    expect(await page.getByRole('heading', { name: en.start.credentials.title }).count()).toBe(0);
    // Nothing was lost: the name is still there for a later try.
    expect(await field.inputValue()).toBe('Patient Pat');
  });
});
