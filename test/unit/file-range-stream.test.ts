import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChunkPool, FileRangeStream } from '../../src/storage/file-range-stream.js';

const CHUNK = 256 * 1024;
let folder: string;
let bytes: Buffer;
let file: FileHandle;

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'file-range-stream-'));
  // Random, so that a chunk read into a buffer still being sent shows as wrong bytes.
  bytes = randomBytes(16 * 1024 * 1024 + 12_345);
  await writeFile(join(folder, 'random'), bytes);
  file = await open(join(folder, 'random'), 'r');
});
afterAll(async () => {
  await file?.close();
  await rm(folder, { recursive: true, force: true });
});

/** A pool that counts the buffers it hands out new and those given back. */
class CountingPool extends ChunkPool {
  allocated = 0;
  givenBack = 0;
  private kept = 0;

  override take(): Buffer {
    if (this.kept === 0) this.allocated += 1;
    else this.kept -= 1;
    return super.take();
  }

  override give(buffers: readonly Buffer[]): void {
    this.givenBack += buffers.length;
    this.kept = Math.min(8, this.kept + buffers.length);
    super.give(buffers);
  }
}

async function collect(stream: FileRangeStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  // Copies: without recycling each chunk is its own buffer anyway, and this sink must not depend on that.
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks);
}

/** A loopback connection whose client reads `pauseEvery` bytes at a time, then stops for `pauseMs`. */
async function slowConnection(pauseEvery: number, pauseMs: number) {
  let server: Server | undefined;
  const accepted = new Promise<Socket>((resolve) => {
    server = createServer(resolve);
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const address = server!.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const client = connect(address.port, '127.0.0.1');
  const serverSide = await accepted;
  const received = new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let sinceLastPause = 0;
    client.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      sinceLastPause += chunk.length;
      if (sinceLastPause >= pauseEvery) {
        sinceLastPause = 0;
        client.pause();
        setTimeout(() => client.resume(), pauseMs);
      }
    });
    client.on('end', () => resolve(Buffer.concat(chunks)));
    client.on('error', reject);
  });
  return { serverSide, client, received, close: () => new Promise((resolve) => server!.close(resolve)) };
}

describe('FileRangeStream', () => {
  it('streams exactly the bytes of a range, at the edges and across chunks', async () => {
    const size = bytes.length;
    const ranges: Array<[number, number]> = [
      [0, 1],
      [size - 1, size],
      [0, CHUNK],
      [1, CHUNK + 2],
      [CHUNK - 1, 3 * CHUNK + 1],
      [1000, size],
      [0, size],
      [5, 5],
    ];
    for (const [start, end] of ranges) {
      const streamed = await collect(new FileRangeStream(file, start, end));
      expect(streamed.equals(bytes.subarray(start, end)), `${start}-${end}`).toBe(true);
    }
  });

  it('fails a file shorter than the range it was asked for', async () => {
    await expect(collect(new FileRangeStream(file, bytes.length - 10, bytes.length + 10))).rejects.toThrow(
      /ended 10 bytes early/,
    );
  });

  it('reuses a buffer only once a slow socket has sent every byte of it, then gives it back', async () => {
    const connection = await slowConnection(1024 * 1024, 15);
    const pool = new CountingPool(8);
    const stream = new FileRangeStream(file, 7, bytes.length, { destination: connection.serverSide, pool });
    await pipeline(stream, connection.serverSide);
    const received = await connection.received;
    await connection.close();

    expect(received.length).toBe(bytes.length - 7);
    expect(received.equals(bytes.subarray(7))).toBe(true);
    // 65 chunks went through a handful of buffers, all given back once the socket had finished.
    const chunks = Math.ceil((bytes.length - 7) / CHUNK);
    expect(pool.allocated).toBeGreaterThan(0);
    expect(pool.allocated).toBeLessThan(chunks / 4);
    expect(pool.givenBack).toBe(pool.allocated);

    // The next stream starts from the pool's buffers.
    const next = await slowConnection(4 * 1024 * 1024, 5);
    await pipeline(new FileRangeStream(file, 0, bytes.length, { destination: next.serverSide, pool }), next.serverSide);
    expect((await next.received).equals(bytes)).toBe(true);
    await next.close();
    expect(pool.allocated).toBeLessThan(chunks / 2);
  });

  it('gives nothing back to the pool when its destination is cut off', async () => {
    const connection = await slowConnection(512 * 1024, 50);
    const pool = new CountingPool(8);
    const stream = new FileRangeStream(file, 0, bytes.length, { destination: connection.serverSide, pool });
    const piped = pipeline(stream, connection.serverSide);
    await new Promise((resolve) => connection.client.once('data', resolve));
    connection.client.destroy();
    await expect(piped).rejects.toThrow();
    await connection.close();
    expect(stream.destroyed).toBe(true);
    expect(pool.givenBack).toBe(0);
  });
});
