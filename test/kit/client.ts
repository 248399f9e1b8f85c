import { streamRequest, type StreamingRequest } from './http.js';
import { multipartAround, type MultipartEnvelope } from './multipart.js';

/** A thin client for the service's API, as a user would call it. */
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
): Promise<{ recordUrl: string; recordId: string; mp3: Buffer }> {
  const response = await upload(baseUrl, user, bytes, options);
  const body = await response.text();
  if (response.status !== 200) throw new Error(`upload: ${response.status} ${body}`);
  const { record_url: recordUrl } = JSON.parse(body) as { record_url: string };
  const download = await fetch(recordUrl);
  if (download.status !== 200) throw new Error(`download: ${download.status}`);
  return { recordUrl, recordId: recordIdOf(recordUrl), mp3: Buffer.from(await download.arrayBuffer()) };
}

/** The record id in a record_url. */
export function recordIdOf(recordUrl: string): string {
  const recordId = new URL(recordUrl).searchParams.get('record_id');
  if (recordId === null) throw new Error(`no record_id in ${recordUrl}`);
  return recordId;
}

/** An upload over a connection the test drives: the multipart head is sent, the WAV's bytes are up to the test. */
export interface OpenUpload extends StreamingRequest {
  readonly form: MultipartEnvelope;
}

/**
 * Starts an upload of the `file` part and sends the form's head (fields and the file part's headers), or
 * only the request headers with `sendHead: false`. Write the WAV with `write`, then `end(form.tail)`.
 */
export async function openUpload(
  baseUrl: string,
  user: TestUser,
  options: {
    fields?: Record<string, string>;
    filename?: string;
    /** More request headers, e.g. x-request-id. */
    headers?: Record<string, string>;
    sendHead?: boolean;
  } = {},
): Promise<OpenUpload> {
  const form = multipartAround(options.fields, options.filename === undefined ? {} : { filename: options.filename });
  const request = streamRequest(`${baseUrl}${PREFIX}/record/?user_id=${user.user_id}`, {
    headers: { authorization: `Bearer ${user.access_token}`, 'content-type': form.contentType, ...options.headers },
  });
  if (options.sendHead !== false) await request.write(form.head);
  return Object.assign(request, { form });
}

/** The parameters of a Content-Disposition header, with `filename*` (RFC 8187) decoded. */
export function parseContentDisposition(header: string): {
  type: string;
  filename?: string;
  filenameStar?: string;
} {
  const [type = '', ...rest] = header.split(';');
  const parameters = rest.join(';');
  const quoted = /(?:^|;)\s*filename\s*=\s*"((?:[^"\\]|\\.)*)"/i.exec(parameters);
  const token = /(?:^|;)\s*filename\s*=\s*([^";\s]+)/i.exec(parameters);
  const star = /(?:^|;)\s*filename\*\s*=\s*UTF-8''([^;\s]+)/i.exec(parameters);
  const filename = quoted?.[1]?.replace(/\\(.)/g, '$1') ?? token?.[1];
  return {
    type: type.trim().toLowerCase(),
    ...(filename === undefined ? {} : { filename }),
    ...(star?.[1] === undefined ? {} : { filenameStar: decodeURIComponent(star[1]) }),
  };
}
