import { request as httpRequest } from 'node:http';
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

export interface RawResponse {
  readonly status: number;
  readonly headers: import('node:http').IncomingHttpHeaders;
  readonly body: Buffer;
}

/**
 * One HTTP/1.1 request over node:http, where fetch would not let a test choose the header (Host) or
 * would add its own (Accept, Accept-Encoding). Only the headers given are sent, besides Host.
 */
export async function rawRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {},
): Promise<RawResponse> {
  const { request } = await import('node:http');
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { method: options.method ?? 'GET', headers: options.headers ?? {} }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (data: Buffer) => chunks.push(data));
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }),
      );
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end(options.body);
  });
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

export interface FormPart {
  readonly name: string;
  readonly data: Buffer | string;
  /** Makes the part a file part. */
  readonly filename?: string;
  readonly contentType?: string;
}

/** A multipart/form-data body written by hand, so tests control every byte (order, names, truncation). */
export function multipartBody(parts: readonly FormPart[], boundary: string): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) chunks.push(multipartPartHead(part, boundary), Buffer.from(part.data), Buffer.from('\r\n'));
  chunks.push(multipartTail(boundary));
  return Buffer.concat(chunks);
}

/** The delimiter and headers of one part; its bytes follow, then `\r\n` and the next part or the tail. */
export function multipartPartHead(part: Omit<FormPart, 'data'>, boundary: string): Buffer {
  const disposition =
    `form-data; name="${part.name}"` + (part.filename === undefined ? '' : `; filename="${part.filename}"`);
  const type = part.contentType ?? (part.filename === undefined ? undefined : 'application/octet-stream');
  return Buffer.from(
    `--${boundary}\r\nContent-Disposition: ${disposition}\r\n` +
      (type === undefined ? '' : `Content-Type: ${type}\r\n`) +
      '\r\n',
  );
}

export function multipartTail(boundary: string): Buffer {
  return Buffer.from(`--${boundary}--\r\n`);
}

export interface StreamedResponse {
  readonly status: number;
  readonly headers: import('node:http').IncomingHttpHeaders;
  readonly body: string;
}

/** A request whose body the test writes piece by piece, e.g. to play a slow client or one that goes away. */
export interface StreamingRequest {
  write(chunk: Buffer): Promise<void>;
  end(chunk?: Buffer): void;
  /** Drops the connection mid-request. */
  abort(): void;
  /** Settles as soon as the server answers, whether or not the body was finished. */
  readonly response: Promise<StreamedResponse>;
}

export function streamRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string> } = {},
): StreamingRequest {
  const request = httpRequest(url, { method: options.method ?? 'POST', headers: options.headers });
  const response = new Promise<StreamedResponse>((resolve, reject) => {
    request.once('error', reject);
    request.once('response', (incoming) => {
      const chunks: Buffer[] = [];
      incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
      incoming.once('error', reject);
      incoming.once('end', () =>
        resolve({
          status: incoming.statusCode ?? 0,
          headers: incoming.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
  });
  // An aborted request rejects; a test that aborts on purpose need not await it.
  response.catch(() => {});
  request.flushHeaders();
  return {
    write: (chunk) =>
      new Promise<void>((resolve, reject) => {
        request.write(chunk, (error) => (error ? reject(error) : resolve()));
      }),
    end: (chunk) => {
      request.end(chunk);
    },
    abort: () => {
      request.destroy();
    },
    response,
  };
}
