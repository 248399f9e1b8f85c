import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, parseContentDisposition, PREFIX, recordIdOf, type TestUser } from './kit/client.js';
import { query } from './kit/database.js';
import { expectNoTempFiles } from './kit/expect.js';
import { multipartBody, type FormPart } from './kit/multipart.js';
import { startService, type RunningService } from './kit/service.js';
import { makeWav } from './kit/wav.js';

const run = promisify(execFile);
const FORMATS = ['mp3', 'opus', 'm4a', 'flac'] as const;

/** The title tag as players read it: the file's, or for Ogg the audio stream's comments. */
async function titleTagOf(audio: Buffer): Promise<{ title: string | undefined; seconds: number }> {
  const path = join(tmpdir(), `tag-${randomUUID()}`);
  await writeFile(path, audio);
  try {
    const { stdout } = await run('ffprobe', ['-v', 'error', '-show_format', '-show_streams', '-of', 'json', path]);
    const json = JSON.parse(stdout) as {
      format: { duration: string; tags?: Record<string, string> };
      streams: Array<{ tags?: Record<string, string> }>;
    };
    const tags = [json.format.tags ?? {}, ...json.streams.map((stream) => stream.tags ?? {})];
    const title = tags.map((found) => found.title ?? found.TITLE).find((value) => value !== undefined);
    return { title, seconds: Number(json.format.duration) };
  } finally {
    await rm(path, { force: true });
  }
}

describe('titles are written into the stored file, and follow a rename', () => {
  let service: RunningService;
  let user: TestUser;
  // Long enough that an M4A index at the end lies beyond what ffmpeg buffers from a pipe.
  const wav = makeWav({ durationSeconds: 60, sampleRate: 8000, channels: 1 });

  beforeAll(async () => {
    service = await startService({ env: { LOG_LEVEL: 'warn' } });
    user = await createUser(service.url);
  });
  afterAll(async () => {
    await service.stop();
    await rm(service.dataDir, { recursive: true, force: true });
  });

  function post(parts: FormPart[], query: Record<string, string> = {}) {
    const boundary = `b${randomUUID()}`;
    const search = new URLSearchParams({ user_id: user.user_id, ...query });
    return fetch(`${service.url}${PREFIX}/record/?${search.toString()}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${user.access_token}`,
        'content-type': `multipart/form-data; boundary=${boundary}`,
      },
      body: multipartBody(parts, boundary),
    });
  }

  const filePart: FormPart = { name: 'file', filename: 'take.wav', contentType: 'audio/wav', data: wav };

  async function stored(recordUrl: string) {
    const response = await fetch(recordUrl);
    expect(response.status).toBe(200);
    return { response, audio: Buffer.from(await response.arrayBuffer()) };
  }

  function rename(recordUrl: string, title: string | null) {
    return fetch(`${service.url}${PREFIX}/records/${recordIdOf(recordUrl)}?user_id=${user.user_id}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${user.access_token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ title }),
    });
  }

  it.each(FORMATS)('%s: the title before the file is the tag; a rename rewrites it, not the audio', async (format) => {
    const response = await post([
      { name: 'format', data: format },
      { name: 'title', data: '-Morning = take' },
      filePart,
    ]);
    expect(response.status, await response.clone().text()).toBe(200);
    const { record_url: recordUrl } = (await response.json()) as { record_url: string };
    const before = await stored(recordUrl);
    const tagged = await titleTagOf(before.audio);
    expect(tagged.title).toBe('-Morning = take');

    const renamed = await rename(recordUrl, 'Evening, final');
    expect(renamed.status).toBe(200);
    expect(((await renamed.json()) as { title: string }).title).toBe('Evening, final');
    const after = await stored(recordUrl);
    const retagged = await titleTagOf(after.audio);
    expect(retagged.title).toBe('Evening, final');
    // The audio is copied, not re-encoded: the same length, and a new ETag for the new bytes.
    expect(retagged.seconds).toBeCloseTo(tagged.seconds, 2);
    expect(after.response.headers.get('etag')).not.toBe(before.response.headers.get('etag'));
    expect(parseContentDisposition(after.response.headers.get('content-disposition') ?? '').filename).toBe(
      `Evening, final.${format}`,
    );

    // A second rewrite reads the first one's output: still the whole audio, now untagged.
    expect((await rename(recordUrl, null)).status).toBe(200);
    const untagged = await titleTagOf((await stored(recordUrl)).audio);
    expect(untagged.title).toBeUndefined();
    expect(untagged.seconds).toBeCloseTo(tagged.seconds, 2);
    await expectNoTempFiles(service.dataDir);
  });

  it('a title sent after the file part is tagged too', async () => {
    const response = await post([filePart, { name: 'title', data: 'Came last' }], { format: 'opus' });
    expect(response.status, await response.clone().text()).toBe(200);
    const { record_url: recordUrl } = (await response.json()) as { record_url: string };
    expect((await titleTagOf((await stored(recordUrl)).audio)).title).toBe('Came last');
    await expectNoTempFiles(service.dataDir);
  });

  it('an untitled MP3 carries no ID3 tag at all: it starts with its first frame', async () => {
    const response = await post([filePart]);
    const { record_url: recordUrl } = (await response.json()) as { record_url: string };
    const { audio } = await stored(recordUrl);
    expect(audio.subarray(0, 3).toString('latin1')).not.toBe('ID3');
    expect(audio[0]).toBe(0xff);
  });

  it('renaming to the same title changes nothing, not even the ETag', async () => {
    const response = await post([{ name: 'title', data: 'Same' }, filePart]);
    const { record_url: recordUrl } = (await response.json()) as { record_url: string };
    const etag = (await stored(recordUrl)).response.headers.get('etag');
    expect((await rename(recordUrl, 'Same')).status).toBe(200);
    expect((await stored(recordUrl)).response.headers.get('etag')).toBe(etag);
  });
});

describe('records stored before peaks existed get them on first request', () => {
  let service: RunningService;

  afterAll(async () => {
    await service.stop();
    await rm(service.dataDir, { recursive: true, force: true });
  });

  it('computes them from the stored audio, stores them, and serves the same after', async () => {
    service = await startService({ env: { LOG_LEVEL: 'warn' } });
    const user = await createUser(service.url);
    const form = new FormData();
    form.append('file', new Blob([makeWav({ durationSeconds: 2, sampleRate: 22050, channels: 1 })]), 'old.wav');
    const response = await fetch(`${service.url}${PREFIX}/record/?user_id=${user.user_id}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${user.access_token}` },
      body: form,
    });
    const { record_url: recordUrl } = (await response.json()) as { record_url: string };
    const peaksUrl = recordUrl.replace('/record?', '/record/peaks?');
    const fresh = (await (await fetch(peaksUrl)).json()) as { length: number; data: number[] };
    expect(fresh.length).toBe(100);

    // As a record from before this version: no peaks row. PGlite opens only while the service is stopped.
    const { dataDir } = service;
    await service.stop();
    await query({ dataDir, databaseUrl: undefined }, 'delete from record_peaks');
    service = await startService({ dataDir, env: { LOG_LEVEL: 'warn' } });
    const lateUrl = peaksUrl.replace(new URL(peaksUrl).origin, service.url);
    const late = (await (await fetch(lateUrl)).json()) as { length: number; data: number[] };
    // Decoded from the stored MP3 rather than the upload: the same length, nearly the same values.
    expect(Math.abs(late.length - fresh.length)).toBeLessThanOrEqual(2);
    const differences = fresh.data.map((value, index) => Math.abs(value - (late.data[index] ?? 0)));
    expect(Math.max(...differences)).toBeLessThanOrEqual(8);
    expect(await (await fetch(lateUrl)).json()).toEqual(late);

    await service.stop();
    const rows = await query<{ count: number }>(
      { dataDir, databaseUrl: undefined },
      'select count(*)::int as count from record_peaks',
    );
    expect(rows[0]?.count).toBe(1);
    service = await startService({ dataDir, env: { LOG_LEVEL: 'warn' } });
  });
});
