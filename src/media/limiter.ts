import { Busy } from '../domain/errors.js';

export type Release = () => void;

/**
 * Admission control for conversions: `slots` run at once and `queueSize` more may wait. Past that a
 * request is refused at once, before its body is read, so a waiting upload holds no memory.
 */
export class ConversionLimiter {
  private running = 0;
  private readonly waiting: Array<(release: Release) => void> = [];
  // A running estimate of one conversion's length, for Retry-After; starts at a typical short recording.
  private averageSeconds = 5;

  constructor(
    private readonly slots: number,
    private readonly queueSize: number,
  ) {}

  /** Throws the Busy that `acquire` would, without taking anything: for a check before any other work. */
  refuseIfFull(): void {
    if (this.running >= this.slots && this.waiting.length >= this.queueSize) throw this.busy();
  }

  /**
   * Takes a slot, waiting in the queue if needed. Throws Busy (with a retry estimate) when the queue is full;
   * leaves the queue when `signal` aborts (the client went away).
   */
  async acquire(signal?: AbortSignal): Promise<Release> {
    if (signal?.aborted === true) throw abortReason(signal);
    if (this.running < this.slots) return this.grant();
    if (this.waiting.length >= this.queueSize) throw this.busy();
    return new Promise<Release>((resolve, reject) => {
      this.waiting.push(resolve);
      signal?.addEventListener(
        'abort',
        () => {
          const index = this.waiting.indexOf(resolve);
          if (index !== -1) this.waiting.splice(index, 1);
          reject(abortReason(signal));
        },
        { once: true },
      );
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

  private grant(): Release {
    this.running += 1;
    const startedAt = performance.now();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const seconds = (performance.now() - startedAt) / 1000;
      this.averageSeconds = 0.8 * this.averageSeconds + 0.2 * seconds;
      this.running -= 1;
      const next = this.waiting.shift();
      if (next !== undefined) next(this.grant());
    };
  }
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('Gave up waiting for a conversion slot.');
}
