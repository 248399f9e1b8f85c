import { Readable, type Writable } from 'node:stream';
import { readAt, type OpenFile } from './open-files.js';

/**
 * Bytes read from a file at a time: a 256 KiB range is one read, and a whole file takes a quarter of the
 * reads and socket writes of Node's 64 KiB default. A slow client holds a few chunks at most: the stream
 * stops reading while the response's socket is full.
 */
const CHUNK_BYTES = 256 * 1024;

/**
 * Chunk buffers that finished streams gave back, for the next streams to read into; at most `maxKept`
 * (a few MiB) stay allocated between downloads.
 */
export class ChunkPool {
  private readonly free: Buffer[] = [];

  constructor(private readonly maxKept: number) {}

  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES);
  }

  give(buffers: readonly Buffer[]): void {
    for (const buffer of buffers) {
      if (this.free.length >= this.maxKept) return;
      this.free.push(buffer);
    }
  }
}

/** Where the chunks go, when the stream may reuse their memory (see FileRangeStream). */
export interface ChunkRecycling {
  /** The writable this stream is piped into, and only that one; it must copy what it is given. */
  readonly destination: Writable;
  readonly pool: Pick<ChunkPool, 'take' | 'give'>;
}

/** A chunk pushed downstream: its buffer is free again once `pushedUpTo` bytes have left the destination. */
interface LentBuffer {
  readonly buffer: Buffer;
  readonly pushedUpTo: number;
}

/**
 * Bytes [start, end) of an open file as a stream of positional reads, so that it never moves or closes a
 * descriptor other requests share.
 *
 * Node's file streams allocate a new buffer for every chunk. At a gigabyte a second that is thousands of
 * buffers a second outside V8's heap, and V8 answers every few dozen MiB of them with a full garbage
 * collection: about 40 % of a whole-file download's CPU went to marking and sweeping (bench/NOTES.md). So,
 * given the one writable it is piped into, this stream reads into the same buffers again: a chunk's buffer
 * is reused once the destination holds none of its bytes, which the destination's `writableLength` tells,
 * and the buffers go back to a pool when the destination has finished. That holds for a writable that
 * copies what it is given before it lets go of it (a socket, an HTTP response on one), not for one that
 * keeps the chunks. No stream library reuses buffers this way, because only the caller knows which kind its
 * destination is.
 */
export class FileRangeStream extends Readable {
  private position: number;
  private pushedBytes = 0;
  private readonly lent: LentBuffer[] = [];
  private readonly spare: Buffer[] = [];

  /** Without `recycling`, every chunk gets a buffer of its own. */
  constructor(
    private readonly file: Pick<OpenFile, 'fd'>,
    start: number,
    private readonly end: number,
    private readonly recycling?: ChunkRecycling,
  ) {
    super({ highWaterMark: CHUNK_BYTES });
    this.position = start;
    // Once the destination has finished it holds nothing; a read still under way is neither lent nor spare.
    recycling?.destination.once('finish', () => {
      this.reclaim();
      recycling.pool.give(this.spare.splice(0));
    });
  }

  override _read(): void {
    const length = Math.min(CHUNK_BYTES, this.end - this.position);
    if (length <= 0) {
      this.push(null);
      return;
    }
    const buffer = this.freeBuffer(length);
    readAt(this.file, this.position, length, buffer).then(
      (chunk) => {
        if (this.destroyed) return;
        this.position += length;
        this.pushedBytes += length;
        if (this.recycling !== undefined) this.lent.push({ buffer, pushedUpTo: this.pushedBytes });
        this.push(chunk);
      },
      (error: unknown) => {
        if (!this.destroyed) this.destroy(error instanceof Error ? error : new Error(String(error)));
      },
    );
  }

  private freeBuffer(length: number): Buffer {
    if (this.recycling === undefined) return Buffer.allocUnsafeSlow(length);
    this.reclaim();
    return this.spare.pop() ?? this.recycling.pool.take();
  }

  /** Moves the buffers whose bytes the destination no longer holds from lent to spare. */
  private reclaim(): void {
    if (this.recycling === undefined) return;
    // Bytes handed to the destination (pushed and no longer buffered here) that it no longer holds. Its
    // count may include bytes of its own (headers): that makes this smaller, never a buffer free too early.
    const released = this.pushedBytes - this.readableLength - this.recycling.destination.writableLength;
    while (this.lent.length > 0 && this.lent[0]!.pushedUpTo <= released) this.spare.push(this.lent.shift()!.buffer);
  }
}
