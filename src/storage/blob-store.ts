import type { Readable, Writable } from 'node:stream';

export interface BlobInfo {
  readonly sizeBytes: number;
  readonly modifiedAt: Date;
  /**
   * The MD5 of the bytes (hex) where the store states one without reading them: an S3 ETag of a single-part,
   * not KMS-encrypted object. Absent otherwise (a local file, a multipart upload's ETag).
   */
  readonly md5?: string;
}

export interface ByteRange {
  readonly start: number;
  /** Inclusive, as in HTTP ranges. */
  readonly end: number;
}

/** An open blob: its size and date are those of the bytes it streams, even if it is deleted meanwhile. */
export interface OpenedBlob extends BlobInfo {
  /**
   * Streams the blob, or one byte range of it, and closes it at the end. A store may reuse the memory of
   * the chunks it streams once `destination` holds none of their bytes: pass it only when the stream is
   * piped into it alone and it copies what it is given (see FileRangeStream).
   */
  stream(range?: ByteRange, destination?: Writable): Readable;
  /**
   * Reads one byte range into memory at once, and closes the blob: for stores where that is cheaper than a
   * stream (a local file: one positional read). Use it for short ranges only.
   */
  read?(range: ByteRange): Promise<Buffer>;
  /** Closes the blob when it is neither streamed nor read. */
  close(): Promise<void>;
}

export interface ListedBlob {
  readonly key: string;
  readonly modifiedAt: Date;
}

/** A finished file on the local disk, handed to the store whole (it may be moved, not copied). */
export interface LocalFile {
  readonly path: string;
}

/** The response headers a presigned URL makes the object store answer with. */
export interface PresignedResponse {
  readonly contentType: string;
  readonly contentDisposition: string;
  /** The shortest time the URL stays valid. */
  readonly expiresInSeconds: number;
}

/** Uploads a store began and never finished, old enough to be abandoned. */
export interface IncompleteUploads {
  readonly stale: number;
  readonly aborted: number;
}

/**
 * Where finished audio lives, by key (see keys.ts). A put is durable when it resolves, and readers never
 * see a partial blob.
 */
export interface BlobStore {
  put(key: string, source: LocalFile | Readable): Promise<BlobInfo>;
  /** Undefined when there is no such blob. */
  open(key: string): Promise<OpenedBlob | undefined>;
  stat(key: string): Promise<BlobInfo | undefined>;
  /** Deleting a missing blob is not an error. */
  delete(key: string): Promise<void>;
  /** Resolves when the store answers and the service may read and write it (for the readiness probe). */
  ping(): Promise<void>;
  /** Every blob whose key starts with `prefix`, including names the service never writes. */
  list(prefix: string): AsyncIterable<ListedBlob>;
  /** A URL where the store itself serves the blob for a while; only stores that can serve clients have it. */
  presignedUrl?(key: string, response: PresignedResponse): Promise<string>;
  /**
   * Uploads begun more than `olderThanMs` ago and never finished (a process died in the middle), aborted
   * when `abort` is set; only stores that have such uploads have it. Undefined when it cannot list them.
   */
  incompleteUploads?(olderThanMs: number, options: { abort: boolean }): Promise<IncompleteUploads | undefined>;
}
