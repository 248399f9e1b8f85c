import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, upload, uploadAndFetch, type TestUser } from './kit/client.js';
import { databaseKinds } from './kit/database.js';
import { startIsolatedService, type IsolatedService } from './kit/service.js';
import { decodeMp3, makeWav } from './kit/wav.js';

describe.each(databaseKinds)('upload and download (%s)', (kind) => {
  let service: IsolatedService;
  let user: TestUser;

  beforeAll(async () => {
    service = await startIsolatedService(kind);
    user = await createUser(service.url);
  });
  afterAll(async () => {
    await service.cleanup();
  });

  it('converts a WAV to an MP3 of the same length, under both prefixes', async () => {
    for (const prefix of ['/api/v1', '/api_v1']) {
      const { recordUrl, mp3 } = await uploadAndFetch(service.url, user, makeWav({ durationSeconds: 1.5 }), { prefix });
      expect(recordUrl).toMatch(
        new RegExp(`^${service.url}${prefix}/record\\?record_id=[0-9a-f-]{36}&user_id=${user.user_id}$`),
      );
      const decoded = decodeMp3(mp3);
      expect(decoded.sampleRate).toBe(44100);
      expect(decoded.channels).toBe(2);
      expect(Math.abs(decoded.seconds - 1.5)).toBeLessThan(0.01);
    }
  });

  it('refuses a wrong token with 401 and leaves nothing behind', async () => {
    const response = await upload(service.url, { ...user, access_token: crypto.randomUUID() }, makeWav());
    expect(response.status).toBe(401);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await readdir(join(service.dataDir, 'tmp'))).toEqual([]);
  });
});
