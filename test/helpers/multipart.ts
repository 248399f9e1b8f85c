import { request, type ClientRequest, type IncomingHttpHeaders } from 'node:http';

/** A multipart/form-data body built by hand, so tests can cut it, slow it or break it anywhere. */
export interface MultipartBody {
  readonly boundary: string;
  readonly contentType: string;
  /** Everything before the file's bytes (earlier fields and the file part's headers). */
  readonly head: Buffer;
  readonly tail: Buffer;
}

export function multipartAround(
  fields: Record<string, string> = {},
  file: { field?: string; filename?: string; type?: string } = {},
): MultipartBody {
  const boundary = `----test${Math.random().toString(16).slice(2)}`;
  const fieldParts = Object.entries(fields).map(
    ([name, value]) => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`,
  );
  const head = Buffer.from(
    `${fieldParts.join('')}--${boundary}\r\nContent-Disposition: form-data; name="${file.field ?? 'file'}"; ` +
      `filename="${file.filename ?? 'recording.wav'}"\r\nContent-Type: ${file.type ?? 'audio/wav'}\r\n\r\n`,
  );
  return {
    boundary,
    contentType: `multipart/form-data; boundary=${boundary}`,
    head,
    tail: Buffer.from(`\r\n--${boundary}--\r\n`),
  };
}

export interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/**
 * Opens an upload over node:http and leaves the writing to the caller: `answer` settles with the response
 * (or the connection's error), even if it comes before the body is complete.
 */
export function openUpload(
  url: string,
  token: string,
  contentType: string,
  headers: Record<string, string> = {},
): { req: ClientRequest; answer: Promise<Answer> } {
  const req = request(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': contentType, ...headers },
  });
  const answer = new Promise<Answer>((resolve, reject) => {
    req.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
      response.on('error', reject);
    });
    req.on('error', reject);
  });
  // A test may abandon the answer (the server was killed); that must not be an unhandled rejection.
  answer.catch(() => {});
  return { req, answer };
}

/** Writes and waits until the bytes are handed to the kernel (or the connection fails). */
export function writeChunk(req: ClientRequest, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    req.write(chunk, (error) => (error ? reject(error) : resolve()));
  });
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
