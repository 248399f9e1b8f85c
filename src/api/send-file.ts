import contentDisposition from 'content-disposition';
import type { FastifyReply, FastifyRequest } from 'fastify';
import fresh from 'fresh';
import parseRange from 'range-parser';
import type { ByteRange, OpenedFile } from '../storage/local.js';

export interface FileResponse {
  readonly file: OpenedFile;
  readonly contentType: string;
  /** A strong validator: the bytes behind it never change. */
  readonly etag: string;
  readonly downloadName: string;
}

/**
 * Answers a GET for an immutable file with HTTP's conditional and range semantics: 304 for a fresh
 * cache, 206 for one satisfiable range, 416 for an unsatisfiable one, else 200 with the whole file.
 */
export function sendFile(request: FastifyRequest, reply: FastifyReply, response: FileResponse): FastifyReply {
  const { file } = response;
  const lastModified = file.modifiedAt.toUTCString();
  reply.headers({
    'accept-ranges': 'bytes',
    etag: response.etag,
    'last-modified': lastModified,
    'cache-control': 'no-cache',
    'content-disposition': contentDisposition(response.downloadName, { type: 'inline' }),
  });

  if (fresh(request.headers, { etag: response.etag, 'last-modified': lastModified })) {
    void file.close();
    return reply.code(304).send();
  }

  const range = requestedRange(request, response.etag, lastModified, file.sizeBytes);
  if (range === 'unsatisfiable') {
    void file.close();
    return reply
      .code(416)
      .header('content-range', `bytes */${file.sizeBytes}`)
      .type('application/problem+json')
      .send({
        type: 'about:blank',
        title: 'Range Not Satisfiable',
        status: 416,
        detail: `The file has ${file.sizeBytes} bytes.`,
      });
  }

  reply.type(response.contentType);
  if (range === undefined) {
    return reply.code(200).header('content-length', file.sizeBytes).send(file.stream());
  }
  return reply
    .code(206)
    .header('content-range', `bytes ${range.start}-${range.end}/${file.sizeBytes}`)
    .header('content-length', range.end - range.start + 1)
    .send(file.stream(range));
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

  const ranges = parseRange(size, header, { combine: true });
  if (ranges === -1) return 'unsatisfiable';
  // Malformed headers are ignored (RFC 9110 §14.2), and so are multiple ranges: nobody plays audio that way.
  if (ranges === -2 || ranges.type !== 'bytes' || ranges.length !== 1) return undefined;
  const [range] = ranges;
  return range;
}
