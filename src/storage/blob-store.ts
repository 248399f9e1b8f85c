import type { Readable } from 'node:stream';

export interface BlobInfo {
  readonly sizeBytes: number;
  readonly modifiedAt: Date;
}

export interface ByteRange {
  readonly start: number;
  /** Inclusive, as in HTTP ranges. */
  readonly end: number;
}

/** An open blob: its size and date are those of the bytes it streams, even if it is deleted meanwhile. */
export interface OpenedBlob extends BlobInfo {
  /** Streams the blob, or one byte range of it, and closes it at the end. */
  stream(range?: ByteRange): Readable;
  /** Closes the blob when it is not streamed. */
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
  /** Every blob whose key starts with `prefix`, including names the service never writes. */
  list(prefix: string): AsyncIterable<ListedBlob>;
}
