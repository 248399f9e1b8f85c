import { spawn } from 'node:child_process';
import { mkdtemp, rm, utimes } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';

/** s3rver's only account. */
const ACCESS_KEY = 'S3RVER';

/** Where a running s3rver is: enough for another process (a test worker) to connect to it. */
export interface S3rverAddress {
  /** e.g. http://127.0.0.1:41234 */
  readonly endpoint: string;
  readonly bucket: string;
  /** s3rver's own folder, where its objects are files (see `backdate`). */
  readonly directory: string;
}

/** A bucket of a running s3rver, and a client to look into it. */
export interface S3rverBucket {
  /** e.g. http://127.0.0.1:41234 */
  readonly endpoint: string;
  readonly bucket: string;
  /** Path-style, s3rver's account, checksums only where required: as the service's client. */
  readonly client: S3Client;
  /** The service's environment for this bucket, keys under `prefix`. */
  env(prefix: string): Record<string, string>;
  /** Keys of every object under `prefix`, sorted. */
  keys(prefix: string): Promise<string[]>;
  body(key: string): Promise<Buffer>;
  put(key: string, body: Buffer | string): Promise<void>;
  remove(key: string): Promise<void>;
  /** Makes an object look `seconds` old: s3rver's Last-Modified is its file's modification time. */
  backdate(key: string, seconds: number): Promise<void>;
}

/**
 * s3rver (a real S3 HTTP endpoint written in Node) in a child process, with one bucket and a client to
 * look into it. A child, because on Node 17+ its ListObjectsV2 continuation tokens (DES) need
 * `--openssl-legacy-provider`, and a process of its own keeps its work off the test's event loop.
 */
export interface RunningS3rver extends S3rverBucket {
  readonly address: S3rverAddress;
  stop(): Promise<void>;
}

export async function startS3rver(bucket = 'audio'): Promise<RunningS3rver> {
  const directory = await mkdtemp(join(tmpdir(), 's3rver-'));
  const bin = join(dirname(createRequire(import.meta.url).resolve('s3rver/package.json')), 'bin', 's3rver.js');
  const child = spawn(
    process.execPath,
    [
      '--openssl-legacy-provider',
      bin,
      '-d',
      directory,
      '-a',
      '127.0.0.1',
      '-p',
      '0',
      '--configure-bucket',
      bucket,
      '--silent',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const port = await new Promise<number>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /S3rver listening on [\d.]+:(\d+)/.exec(output);
      if (match !== null) resolve(Number(match[1]));
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => reject(new Error(`s3rver exited (${code}) before listening:\n${output}`)));
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const address = { endpoint: `http://127.0.0.1:${port}`, bucket, directory };
  const view = connectS3rver(address);
  return {
    ...view,
    address,
    stop: async () => {
      view.client.destroy();
      child.kill('SIGTERM');
      await exited;
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/** The bucket of an s3rver started elsewhere (in vitest's main process, for a test worker). */
export function connectS3rver({ endpoint, bucket, directory }: S3rverAddress): S3rverBucket {
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: ACCESS_KEY },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });

  return {
    endpoint,
    bucket,
    client,
    env: (prefix) => ({
      STORAGE_DRIVER: 's3',
      S3_ENDPOINT: endpoint,
      S3_REGION: 'us-east-1',
      S3_BUCKET: bucket,
      S3_PREFIX: prefix,
      S3_ACCESS_KEY_ID: ACCESS_KEY,
      S3_SECRET_ACCESS_KEY: ACCESS_KEY,
      S3_FORCE_PATH_STYLE: 'true',
    }),
    keys: async (prefix) => {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
        );
        keys.push(...(page.Contents ?? []).map((object) => object.Key ?? ''));
        token = page.NextContinuationToken;
      } while (token !== undefined);
      return keys.sort();
    },
    body: async (key) => {
      const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return Buffer.from((await answer.Body?.transformToByteArray()) ?? []);
    },
    put: async (key, body) => {
      const bytes = Buffer.from(body);
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes, ContentLength: bytes.length }));
    },
    remove: async (key) => {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    },
    backdate: async (key, seconds) => {
      const parts = key.split('/');
      const name = parts.pop() ?? '';
      const when = new Date(Date.now() - seconds * 1000);
      await utimes(join(directory, bucket, ...parts, `${name}._S3rver_object`), when, when);
    },
  };
}
