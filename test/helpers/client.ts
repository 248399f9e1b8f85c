/** A thin HTTP client for the service's API, as a user would call it. */
export interface TestUser {
  readonly user_id: string;
  readonly access_token: string;
}

export const PREFIX = '/api/v1';

let userCounter = 0;

export async function createUser(baseUrl: string, username?: string): Promise<TestUser> {
  const name = username ?? `user_${process.pid}_${Date.now()}_${userCounter++}`;
  const response = await fetch(`${baseUrl}${PREFIX}/users/?username=${encodeURIComponent(name)}`, { method: 'POST' });
  if (response.status !== 200) throw new Error(`create user: ${response.status} ${await response.text()}`);
  return (await response.json()) as TestUser;
}

export interface UploadOptions {
  readonly filename?: string;
  readonly field?: string;
  readonly prefix?: string;
  readonly title?: string;
  /** Send the token in the query string instead of the Authorization header. */
  readonly tokenInQuery?: boolean;
}

/** Uploads bytes as the multipart field `file` and returns the raw response. */
export async function upload(
  baseUrl: string,
  user: TestUser,
  bytes: Buffer,
  options: UploadOptions = {},
): Promise<Response> {
  const form = new FormData();
  if (options.title !== undefined) form.append('title', options.title);
  form.append(options.field ?? 'file', new Blob([bytes], { type: 'audio/wav' }), options.filename ?? 'recording.wav');
  const query = new URLSearchParams({ user_id: user.user_id });
  if (options.tokenInQuery) query.set('access_token', user.access_token);
  return fetch(`${baseUrl}${options.prefix ?? PREFIX}/record/?${query.toString()}`, {
    method: 'POST',
    body: form,
    headers: options.tokenInQuery ? {} : { authorization: `Bearer ${user.access_token}` },
  });
}

/** Uploads and downloads the resulting MP3, failing loudly on any non-200. */
export async function uploadAndFetch(
  baseUrl: string,
  user: TestUser,
  bytes: Buffer,
  options: UploadOptions = {},
): Promise<{ recordUrl: string; mp3: Buffer }> {
  const response = await upload(baseUrl, user, bytes, options);
  const body = await response.text();
  if (response.status !== 200) throw new Error(`upload: ${response.status} ${body}`);
  const { record_url: recordUrl } = JSON.parse(body) as { record_url: string };
  const download = await fetch(recordUrl);
  if (download.status !== 200) throw new Error(`download: ${download.status}`);
  return { recordUrl, mp3: Buffer.from(await download.arrayBuffer()) };
}
