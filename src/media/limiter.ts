import { Busy } from '../domain/errors.js';

/**
 * One admitted job. It holds two things, given back separately: a slot (a core, while its encoder runs)
 * and a place (from admission until the job is over, committing included). Both calls are idempotent.
 */
export interface Admission {
  /** The encoder has exited: its core goes to the next waiting job at once; the place stays taken. */
  readonly freeSlot: () => void;
  /** The job is over, stored or failed: frees its place, and its slot when `freeSlot` was not called. */
  readonly end: () => void;
}

/**
 * Admission control for conversions: `slots` encoders run at once, and `slots + queueSize` jobs may be
 * admitted in all (waiting, converting, or committing their result). Past that a request is refused at
 * once, before its body is read, so a waiting upload holds no memory.
 *
 * A job gives back its slot when its encoder exits, not when it is stored: the fsyncs, the rename or the
 * S3 put and the row's insert take tens of milliseconds per upload, in which the next encoder can already
 * run. Its place is kept until it is stored, so that the uploads in flight (and their scratch files and
 * store puts) stay bounded by the same `slots + queueSize` however slow the store is.
 */
export class ConversionLimiter {
  private converting = 0;
  private admitted = 0;
  private readonly waiting: Array<() => void> = [];
  // A running estimate of one conversion's length, for Retry-After; starts at a typical short recording.
  private averageSeconds = 5;

  constructor(
    private readonly slots: number,
    private readonly queueSize: number,
  ) {}

  /** Throws the Busy that `acquire` would, without taking anything: for a check before any other work. */
  refuseIfFull(): void {
    if (this.admitted >= this.slots + this.queueSize) throw this.busy();
  }

  /**
   * Takes a place, then a slot, waiting in the queue for the slot if needed. Throws Busy (with a retry
   * estimate) when every place is taken; leaves the queue when `signal` aborts (the client went away).
   */
  async acquire(signal?: AbortSignal): Promise<Admission> {
    if (signal?.aborted === true) throw abortReason(signal);
    this.refuseIfFull();
    this.admitted += 1;
    if (this.converting < this.slots) return this.admission();
    return new Promise<Admission>((resolve, reject) => {
      const onAbort = () => {
        const index = this.waiting.indexOf(start);
        if (index === -1) return;
        this.waiting.splice(index, 1);
        this.admitted -= 1;
        reject(abortReason(signal as AbortSignal));
      };
      const start = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve(this.admission());
      };
      this.waiting.push(start);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Seconds until a queue place is likely to free up, from the recent conversion times. */
  retryAfterSeconds(): number {
    const rounds = Math.ceil((this.waiting.length + 1) / this.slots);
    return Math.min(600, Math.max(1, Math.ceil(rounds * this.averageSeconds)));
  }

  private busy(): Busy {
    return new Busy(
      'The service is converting as many recordings as it can; try again later.',
      this.retryAfterSeconds(),
    );
  }

  private admission(): Admission {
    this.converting += 1;
    const startedAt = performance.now();
    let slotHeld = true;
    let ended = false;
    const freeSlot = () => {
      if (!slotHeld) return;
      slotHeld = false;
      const seconds = (performance.now() - startedAt) / 1000;
      this.averageSeconds = 0.8 * this.averageSeconds + 0.2 * seconds;
      this.converting -= 1;
      this.waiting.shift()?.();
    };
    return {
      freeSlot,
      end: () => {
        if (ended) return;
        ended = true;
        freeSlot();
        this.admitted -= 1;
      },
    };
  }
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('Gave up waiting for a conversion slot.');
}
