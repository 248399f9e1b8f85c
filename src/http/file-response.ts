import type { Readable } from 'node:stream';
import contentDisposition from 'content-disposition';
import type { FastifyReply, FastifyRequest } from 'fastify';
import parseRange from 'range-parser';
import type { ByteRange, OpenedBlob } from '../storage/blob-store.js';
import { problemDocument } from './problems.js';

export interface FileResponse {
  readonly file: OpenedBlob;
  readonly contentType: string;
  /** A strong validator: the bytes behind it never change. */
  readonly etag: string;
  readonly downloadName: string;
}

/**
 * Ranges (and whole files) up to this long are read at once and answered from memory when the store can (a
 * local file), rather than streamed: a player's range request is then one read and one write. A client that
 * stops reading holds at most this much, twice a stream's 256 KiB chunk.
 */
const MAX_BUFFERED_RANGE_BYTES = 512 * 1024;

// Characters that some file systems or download dialogs refuse, replaced in the ASCII fallback name.
const UNSAFE_IN_FILENAME = /[\\/:*?"<>|%]/g;

/**
 * Answers a GET for an immutable file with HTTP's conditional and range semantics: 304 for a fresh
 * cache, 206 for one satisfiable range, 416 for an unsatisfiable one, else 200 with the whole file.
 */
export async function sendFile(
  request: FastifyRequest,
  reply: FastifyReply,
  response: FileResponse,
): Promise<FastifyReply> {
  const { file } = response;
  const lastModified = file.modifiedAt.toUTCString();
  // Set only on the answers about the file: an error answered instead must not carry its validators.
  const fileHeaders = {
    'accept-ranges': 'bytes',
    etag: response.etag,
    'last-modified': lastModified,
    'cache-control': 'no-cache',
    'content-disposition': inlineDisposition(response.downloadName),
  };

  if (notModified(request, response.etag, file.modifiedAt)) {
    closeQuietly(request, file);
    return reply.code(304).headers(fileHeaders).send();
  }

  const range = requestedRange(request, response.etag, lastModified, file.sizeBytes);
  if (range === 'unsatisfiable') {
    closeQuietly(request, file);
    return reply
      .code(416)
      .headers(fileHeaders)
      .header('content-range', `bytes */${file.sizeBytes}`)
      .type('application/problem+json')
      .send(problemDocument(416, `The file has ${file.sizeBytes} bytes.`));
  }

  const length = range === undefined ? file.sizeBytes : range.end - range.start + 1;
  let body: Buffer | Readable | undefined;
  // HEAD answers the same headers and no body: the file is never read. (The route must list HEAD itself:
  // Fastify's automatic HEAD route would set Content-Length to 0 for an empty payload.)
  if (request.method === 'HEAD') closeQuietly(request, file);
  else if (file.read !== undefined && length > 0 && length <= MAX_BUFFERED_RANGE_BYTES) {
    // Read before the headers are set: a failed read is answered as an error, with none of the file's.
    body = await file.read(range ?? { start: 0, end: file.sizeBytes - 1 });
  } else {
    // The response copies each chunk into its socket's kernel buffer before it lets go of it, so the store
    // may reuse the chunk's memory.
    body = file.stream(range, reply.raw);
  }

  reply.headers(fileHeaders).type(response.contentType);
  if (range !== undefined) {
    reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${file.sizeBytes}`);
  }
  return reply.header('content-length', length).send(body);
}

/** `inline` with the download's name, for a browser's "save as" (also what a presigned URL asks the store for). */
export function inlineDisposition(downloadName: string): string {
  return contentDisposition(downloadName, {
    type: 'inline',
    // Non-ASCII names go in filename* (RFC 6266 / 8187); filename keeps an ASCII-only stand-in.
    fallback: /^[\x20-\x7e]*$/.test(downloadName) ? true : asciiFallback(downloadName),
  });
}

/** Closes a blob that will not be streamed; a failure to close is logged, never left unhandled. */
function closeQuietly(request: FastifyRequest, file: OpenedBlob): void {
  file.close().catch((error: unknown) => request.log.warn({ err: error }, 'could not close a stored file'));
}

/**
 * Evaluates If-None-Match, else If-Modified-Since, as an origin server must (RFC 9110 §13.2.2). Unlike the
 * `fresh` package this ignores the request's `Cache-Control: no-cache`, which addresses caches, not the
 * origin: fetch() adds it to every conditional request it is given.
 */
function notModified(request: FastifyRequest, etag: string, modifiedAt: Date): boolean {
  const ifNoneMatch = request.headers['if-none-match'];
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch.trim() === '*') return true;
    // Weak comparison: W/"x" matches "x".
    const opaque = (tag: string) => tag.trim().replace(/^W\//, '');
    return ifNoneMatch.split(',').some((tag) => opaque(tag) === opaque(etag));
  }
  const ifModifiedSince = request.headers['if-modified-since'];
  if (ifModifiedSince === undefined) return false;
  const since = Date.parse(ifModifiedSince);
  // HTTP dates have whole seconds; the file's time is truncated the same way.
  return !Number.isNaN(since) && Math.floor(modifiedAt.getTime() / 1000) * 1000 <= since;
}

/** The name with accents stripped and anything else outside printable ASCII replaced, for old clients. */
function asciiFallback(name: string): string {
  return name
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .replace(/[^\x20-\x7e]/g, '_')
    .replace(UNSAFE_IN_FILENAME, '_')
    .replace(/_{2,}/g, '_');
}

/** One range to serve, or undefined for the whole file (no Range, a stale If-Range, or several ranges). */
function requestedRange(
  request: FastifyRequest,
  etag: string,
  lastModified: string,
  size: number,
): ByteRange | 'unsatisfiable' | undefined {
  const header = request.headers.range;
  if (header === undefined) return undefined;
  const ifRange = request.headers['if-range'];
  if (ifRange !== undefined && ifRange !== etag && ifRange !== lastModified) return undefined;

  // A suffix longer than the file selects all of it (RFC 9110 §14.1.3); range-parser calls it unsatisfiable.
  const suffix = /^bytes=\s*-(\d+)\s*$/i.exec(header);
  const normalised = suffix !== null && Number(suffix[1]) >= size && size > 0 ? 'bytes=0-' : header;
  const ranges = parseRange(size, normalised, { combine: true });
  if (ranges === -1) return 'unsatisfiable';
  // Malformed headers are ignored (RFC 9110 §14.2), and so are multiple ranges: nobody plays audio that way.
  if (ranges === -2 || ranges.type !== 'bytes' || ranges.length !== 1) return undefined;
  const [range] = ranges;
  return range;
}
