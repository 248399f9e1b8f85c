import { randomUUID } from 'node:crypto';

/**
 * multipart/form-data written by hand, so that tests (and the benchmark) control every byte: the order
 * of parts, their names and headers, where a body is cut, and how fast the file's bytes are sent.
 */

export interface FormPart {
  readonly name: string;
  readonly data: Buffer | string;
  /** Makes the part a file part. */
  readonly filename?: string;
  /** Defaults to application/octet-stream for a file part; a plain field has none. */
  readonly contentType?: string;
  /** More header lines, as written, e.g. `Content-Transfer-Encoding: base64`. */
  readonly extraHeaders?: readonly string[];
}

function randomBoundary(): string {
  return `----test${randomUUID().replace(/-/g, '')}`;
}

const multipartContentType = (boundary: string) => `multipart/form-data; boundary=${boundary}`;

/** A whole body: every part, then the closing delimiter. */
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
  const headers = [
    `Content-Disposition: ${disposition}`,
    ...(type === undefined ? [] : [`Content-Type: ${type}`]),
    ...(part.extraHeaders ?? []),
  ];
  return Buffer.from(`--${boundary}\r\n${headers.map((line) => `${line}\r\n`).join('')}\r\n`);
}

/** The closing delimiter. */
export function multipartTail(boundary: string): Buffer {
  return Buffer.from(`--${boundary}--\r\n`);
}

/** A form whose last part is the file, split around the file's bytes so that they can be streamed. */
export interface MultipartEnvelope {
  readonly boundary: string;
  readonly contentType: string;
  /** Everything before the file's bytes (the fields, then the file part's headers). */
  readonly head: Buffer;
  /** Everything after them. */
  readonly tail: Buffer;
  /** head + bytes + tail. */
  wrap(bytes: Buffer): Buffer;
}

export function multipartAround(
  fields: Record<string, string> = {},
  file: { field?: string; filename?: string; type?: string } = {},
  boundary = randomBoundary(),
): MultipartEnvelope {
  const head = Buffer.concat([
    ...Object.entries(fields).map(([name, value]) =>
      Buffer.concat([multipartPartHead({ name }, boundary), Buffer.from(`${value}\r\n`)]),
    ),
    multipartPartHead(
      { name: file.field ?? 'file', filename: file.filename ?? 'recording.wav', contentType: file.type ?? 'audio/wav' },
      boundary,
    ),
  ]);
  const tail = Buffer.concat([Buffer.from('\r\n'), multipartTail(boundary)]);
  return {
    boundary,
    contentType: multipartContentType(boundary),
    head,
    tail,
    wrap: (bytes) => Buffer.concat([head, bytes, tail]),
  };
}
