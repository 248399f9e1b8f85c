import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { format } from 'node:util';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type HeadObjectCommandOutput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type {
  BlobInfo,
  BlobStore,
  ByteRange,
  IncompleteUploads,
  ListedBlob,
  LocalFile,
  OpenedBlob,
  PresignedResponse,
} from './blob-store.js';
import { isRecordKey } from './keys.js';

/** S3 answers at most this many keys per listing page. */
const MAX_LIST_PAGE = 1000;
/** Parts of a multipart upload: S3 allows 10,000 of at least 5 MiB (but the last). */
const MIN_PART_BYTES = 8 * 1024 ** 2;
const MAX_PARTS = 10_000;
const PARTS_IN_FLIGHT = 4;
/** A single PutObject streams the file, which the SDK cannot replay: the store retries it itself. */
const PUT_ATTEMPTS = 3;
const PROBE_TIMEOUT_MS = 30_000;

/** How to reach the bucket; the same shape as the service's S3 settings. */
export interface S3ClientSettings {
  readonly endpoint: string | undefined;
  readonly region: string;
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string } | undefined;
  readonly forcePathStyle: boolean;
  /** Connections to the store at once: every proxied download holds one, so at least the service's own cap. */
  readonly maxSockets: number;
  /** A connection that moves no byte for this long fails (a download's client may pause this long, minus a bit). */
  readonly idleTimeoutMs: number;
  /**
   * Where the SDK's own warnings go. Its info and debug lines (one per call) are dropped, and so are its
   * error lines: every failed call's error reaches the store's caller, which decides whether it matters
   * (a HeadObject's 404 is an answer, not a failure).
   */
  readonly log: { warn(message: string): void };
}

/**
 * A client for S3 and the compatible stores. Checksums only where an operation requires them: many
 * S3-compatible servers refuse the SDK's default aws-chunked bodies with trailing CRCs.
 */
export function createS3Client(settings: S3ClientSettings): S3Client {
  const agent = { keepAlive: true, maxSockets: settings.maxSockets };
  return new S3Client({
    ...(settings.endpoint === undefined ? {} : { endpoint: settings.endpoint }),
    region: settings.region,
    ...(settings.credentials === undefined ? {} : { credentials: { ...settings.credentials } }),
    forcePathStyle: settings.forcePathStyle,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
    requestHandler: {
      connectionTimeout: 10_000,
      socketTimeout: settings.idleTimeoutMs,
      // Options, not agents: the handler makes its own, which client.destroy() closes.
      httpAgent: agent,
      httpsAgent: agent,
    },
    logger: {
      debug: () => {},
      info: () => {},
      warn: (...parts: unknown[]) => {
        const message = format(...parts);
        // A failed PutObject of a file: the store retries it itself, with the file opened again.
        if (!message.includes('non-retryable streaming request')) settings.log.warn(`S3 client: ${message}`);
      },
      error: () => {},
    },
  });
}

export interface S3StoreOptions {
  readonly bucket: string;
  /** Prepended to every key: empty, or ending with a slash. */
  readonly prefix: string;
  /** Files up to this size go in one PutObject, larger ones in a multipart upload. */
  readonly multipartThresholdBytes: number;
  /** Keys per listing page; S3's most unless a test wants several pages. */
  readonly listPageSize?: number;
}

interface Head extends BlobInfo {
  readonly etag: string | undefined;
}

/**
 * The MD5 an ETag states: a single PutObject's ETag is the MD5 of its bytes, unless AWS encrypts the object
 * with KMS or a customer key. A multipart upload's ETag (`…-N`) is not.
 */
function md5OfEtag(answer: HeadObjectCommandOutput): string | undefined {
  const md5 = /^"?([0-9a-fA-F]{32})"?$/.exec(answer.ETag ?? '')?.[1];
  if (answer.SSECustomerAlgorithm !== undefined) return undefined;
  if (answer.ServerSideEncryption !== undefined && answer.ServerSideEncryption !== 'AES256') return undefined;
  return md5?.toLowerCase();
}

/** Why the bucket cannot be used, by which step failed and the store's error code (NoSuchBucket, AccessDenied…). */
export class StorageUnusable extends Error {
  override name = 'StorageUnusable';
  constructor(
    message: string,
    readonly code: string,
    options: { cause: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Blobs as objects in an S3-compatible bucket, a key's object below the prefix. A put is one PutObject or
 * one completed multipart upload, both atomic for readers; a failed multipart upload is aborted. Reads
 * stream GetObject (ranges included) and never hold an object in memory.
 */
export class S3BlobStore implements BlobStore {
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly threshold: number;
  private readonly listPageSize: number;

  constructor(
    private readonly client: S3Client,
    options: S3StoreOptions,
  ) {
    if (options.prefix !== '' && !options.prefix.endsWith('/')) {
      throw new Error(`An S3 prefix ends with a slash: ${JSON.stringify(options.prefix)}`);
    }
    this.bucket = options.bucket;
    this.prefix = options.prefix;
    this.threshold = options.multipartThresholdBytes;
    this.listPageSize = options.listPageSize ?? MAX_LIST_PAGE;
  }

  async put(key: string, source: LocalFile | Readable): Promise<BlobInfo> {
    const objectKey = this.objectKey(key);
    let expectedSize: number | undefined;
    if (source instanceof Readable) {
      // Unknown length: lib-storage sends one PutObject when it fits in a part, a multipart upload otherwise.
      await this.multipart(objectKey, source, undefined);
    } else {
      expectedSize = (await stat(source.path)).size;
      if (expectedSize > this.threshold) {
        await this.multipart(objectKey, createReadStream(source.path), expectedSize);
      } else {
        await this.putFile(objectKey, source.path, expectedSize);
      }
    }
    // The object's own date (which the ETag of downloads is made from) is only known by asking.
    const head = await this.head(objectKey);
    if (head === undefined) throw new Error(`S3 object ${objectKey} is missing right after its upload`);
    if (expectedSize !== undefined && head.sizeBytes !== expectedSize) {
      throw new Error(`S3 object ${objectKey} has ${head.sizeBytes} bytes, not the ${expectedSize} sent`);
    }
    return { sizeBytes: head.sizeBytes, modifiedAt: head.modifiedAt };
  }

  async open(key: string): Promise<OpenedBlob | undefined> {
    const objectKey = this.objectKey(key);
    const head = await this.head(objectKey);
    if (head === undefined) return undefined;
    return {
      sizeBytes: head.sizeBytes,
      modifiedAt: head.modifiedAt,
      ...(head.md5 === undefined ? {} : { md5: head.md5 }),
      stream: (range) => this.download(objectKey, head, range),
      close: async () => {},
    };
  }

  async stat(key: string): Promise<BlobInfo | undefined> {
    const head = await this.head(this.objectKey(key));
    if (head === undefined) return undefined;
    const { sizeBytes, modifiedAt, md5 } = head;
    return md5 === undefined ? { sizeBytes, modifiedAt } : { sizeBytes, modifiedAt, md5 };
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  /** Every object whose key (below the prefix) starts with `prefix`, one listing page at a time. */
  async *list(prefix: string): AsyncIterable<ListedBlob> {
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: `${this.prefix}${prefix}`,
          MaxKeys: this.listPageSize,
          ContinuationToken: token,
        }),
      );
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined) continue;
        // Without a date an object is taken as new: too young to be called an orphan.
        yield { key: object.Key.slice(this.prefix.length), modifiedAt: object.LastModified ?? new Date() };
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
      if (page.IsTruncated === true && token === undefined) {
        throw new Error(`S3 listing of ${this.prefix}${prefix} is truncated without a continuation token`);
      }
    } while (token !== undefined);
  }

  /**
   * A GetObject URL signed for `expiresInSeconds` to 1.5 times that: it is signed as of the start of the
   * current half-lifetime, so every request (on every replica) in that window gets the same URL, which
   * browsers can cache.
   */
  async presignedUrl(key: string, response: PresignedResponse): Promise<string> {
    const windowMs = (response.expiresInSeconds * 1000) / 2;
    const signingDate = new Date(Math.floor(Date.now() / windowMs) * windowMs);
    const command = new GetObjectCommand({
      Bucket: this.bucket,
      Key: this.objectKey(key),
      ResponseContentType: response.contentType,
      ResponseContentDisposition: response.contentDisposition,
      // As the service answers downloads itself: a cache revalidates, so a renamed record's new bytes show.
      ResponseCacheControl: 'no-cache',
    });
    return getSignedUrl(this.client, command, {
      expiresIn: Math.ceil(response.expiresInSeconds * 1.5),
      signingDate,
    });
  }

  /**
   * Multipart uploads of record keys under the prefix started more than `olderThanMs` ago (a process
   * that died mid-upload leaves them, and the store bills their parts), aborted when `abort` is set.
   * Undefined when the store cannot list them.
   */
  async incompleteUploads(olderThanMs: number, options: { abort: boolean }): Promise<IncompleteUploads | undefined> {
    const cutoff = Date.now() - olderThanMs;
    const result = { stale: 0, aborted: 0 };
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      let page;
      try {
        page = await this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: this.prefix,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        );
      } catch (error) {
        if (keyMarker === undefined && isNotImplemented(error)) return undefined;
        throw error;
      }
      for (const upload of page.Uploads ?? []) {
        const { Key: objectKey, UploadId: uploadId, Initiated: initiated } = upload;
        if (objectKey === undefined || uploadId === undefined || initiated === undefined) continue;
        // Another application's uploads in a shared bucket are never touched.
        if (!objectKey.startsWith(this.prefix) || !isRecordKey(objectKey.slice(this.prefix.length))) continue;
        if (initiated.getTime() > cutoff) continue;
        result.stale += 1;
        if (!options.abort) continue;
        try {
          await this.client.send(
            new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId }),
          );
          result.aborted += 1;
        } catch (error) {
          // NoSuchUpload: it was completed or aborted meanwhile.
          if (!isNotFound(error)) throw error;
        }
      }
      if (page.IsTruncated !== true) return result;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
      if (keyMarker === undefined) throw new Error('S3 multipart upload listing is truncated without a marker');
    }
  }

  /** One listing of at most one key: it needs only the ListBucket permission the service has anyway. */
  async ping(): Promise<void> {
    await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, MaxKeys: 1 }), {
      abortSignal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
    });
  }

  /**
   * The start-up probe: writes a small object under the prefix, reads it back, lists the prefix and
   * deletes the object, so that a wrong endpoint, bucket, region or key stops the service at once.
   */
  async checkWritable(): Promise<void> {
    const objectKey = `${this.prefix}write-check-${randomUUID()}`;
    const body = Buffer.from(`written by the audio service's start-up check at ${new Date().toISOString()}\n`);
    const options = () => ({ abortSignal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    await this.probeStep(`write ${objectKey}`, async () => {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: objectKey, Body: body, ContentLength: body.length }),
        options(),
      );
    });
    try {
      await this.probeStep(`read ${objectKey} back`, async () => {
        const answer = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: objectKey }), options());
        const read = Buffer.from((await answer.Body?.transformToByteArray()) ?? []);
        if (!read.equals(body))
          throw new Error(`read ${read.length} bytes that differ from the ${body.length} written`);
      });
      await this.probeStep(`list ${this.prefix === '' ? 'the bucket' : this.prefix}`, async () => {
        await this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, MaxKeys: 1 }),
          options(),
        );
      });
    } finally {
      await this.probeStep(`delete ${objectKey}`, async () => {
        await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey }), options());
      });
    }
  }

  private async probeStep(what: string, step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (error) {
      const code = errorCode(error);
      const status = httpStatus(error);
      const message = error instanceof Error ? error.message : String(error);
      throw new StorageUnusable(
        `cannot ${what} in bucket "${this.bucket}": ${code}${status === undefined ? '' : ` (HTTP ${status})`}: ${message}`,
        code,
        { cause: error },
      );
    }
  }

  private async head(objectKey: string): Promise<Head | undefined> {
    let answer;
    try {
      answer = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
    if (answer.ContentLength === undefined || answer.LastModified === undefined) {
      throw new Error(`S3 HeadObject of ${objectKey} answered no length or no date`);
    }
    const md5 = md5OfEtag(answer);
    return {
      sizeBytes: answer.ContentLength,
      modifiedAt: answer.LastModified,
      etag: answer.ETag,
      ...(md5 === undefined ? {} : { md5 }),
    };
  }

  /**
   * Streams the object, or one range of it, as it arrives. If-Match holds the bytes to the version that
   * was opened: an object replaced meanwhile fails the stream instead of mixing two versions.
   */
  private download(objectKey: string, head: Head, range: ByteRange | undefined): Readable {
    const output = new PassThrough();
    const controller = new AbortController();
    // A client that goes away stops the transfer from the store too.
    output.once('close', () => {
      if (!output.readableEnded) controller.abort();
    });
    const expectedLength = range === undefined ? head.sizeBytes : range.end - range.start + 1;
    this.client
      .send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: objectKey,
          Range: range === undefined ? undefined : `bytes=${range.start}-${range.end}`,
          IfMatch: head.etag,
        }),
        { abortSignal: controller.signal },
      )
      .then(async (answer) => {
        const body = answer.Body;
        if (!(body instanceof Readable)) throw new Error(`S3 GetObject of ${objectKey} answered no stream`);
        if (answer.ContentLength !== expectedLength) {
          body.destroy();
          throw new Error(`S3 GetObject of ${objectKey} answered ${answer.ContentLength} bytes, not ${expectedLength}`);
        }
        await pipeline(body, output);
      })
      .catch((error: unknown) => {
        output.destroy(error instanceof Error ? error : new Error(String(error)));
      });
    return output;
  }

  private async putFile(objectKey: string, path: string, size: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: objectKey,
            Body: createReadStream(path),
            ContentLength: size,
          }),
        );
        return;
      } catch (error) {
        if (attempt >= PUT_ATTEMPTS || !isTransient(error)) throw error;
        await sleep(200 * 4 ** (attempt - 1));
      }
    }
  }

  /** A multipart upload whose parts are retried by the SDK; on failure it is aborted, leaving no parts. */
  private async multipart(objectKey: string, body: Readable, size: number | undefined): Promise<void> {
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.bucket,
        Key: objectKey,
        Body: body,
        ...(size === undefined ? {} : { ContentLength: size }),
      },
      partSize: Math.max(MIN_PART_BYTES, Math.ceil((size ?? 0) / MAX_PARTS)),
      queueSize: PARTS_IN_FLIGHT,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } finally {
      body.destroy();
    }
  }

  private objectKey(key: string): string {
    if (!isRecordKey(key)) throw new Error(`Not a blob key: ${JSON.stringify(key)}`);
    return `${this.prefix}${key}`;
  }
}

function httpStatus(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null || !('$metadata' in error)) return undefined;
  const metadata = error.$metadata as { httpStatusCode?: unknown } | undefined;
  return typeof metadata?.httpStatusCode === 'number' ? metadata.httpStatusCode : undefined;
}

/** The store's error code (NoSuchBucket…), or a network error's (ECONNREFUSED…). */
function errorCode(error: unknown): string {
  if (typeof error !== 'object' || error === null) return 'Error';
  if ('Code' in error && typeof error.Code === 'string') return error.Code;
  if ('code' in error && typeof error.code === 'string') return error.code;
  return error instanceof Error ? error.name : 'Error';
}

function isNotFound(error: unknown): boolean {
  const code = errorCode(error);
  return httpStatus(error) === 404 || code === 'NotFound' || code === 'NoSuchKey' || code === 'NoSuchUpload';
}

function isNotImplemented(error: unknown): boolean {
  const status = httpStatus(error);
  return status === 501 || status === 405 || errorCode(error) === 'NotImplemented';
}

const NETWORK_ERRORS = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'TimeoutError', 'RequestTimeout']);

/** Worth another try: the store's 5xx and throttling, or a connection that failed on the way. */
function isTransient(error: unknown): boolean {
  const status = httpStatus(error);
  if (status !== undefined) return status >= 500 || status === 429;
  return NETWORK_ERRORS.has(errorCode(error)) || (error instanceof Error && error.name === 'TimeoutError');
}
