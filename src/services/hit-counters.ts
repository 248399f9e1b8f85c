/** A key's hits in its current fixed window. */
export interface WindowCount {
  readonly hits: number;
  /** Milliseconds until the window ends and the count starts again from zero. */
  readonly resetInMs: number;
}

/**
 * Fixed-window hit counters by key (rate limits, failed authentications). Every process of a deployment
 * must see the same counts, or a limit multiplies by the number of replicas: the PostgreSQL implementation
 * shares them; this interface lets the single-process embedded setup keep them in memory.
 */
export interface HitCounters {
  /** Counts one hit; a key without a running window starts one of `windowMs`. */
  hit(key: string, windowMs: number): Promise<WindowCount>;
  /** The key's count in its running window, without counting; undefined when it has none. */
  peek(key: string): Promise<WindowCount | undefined>;
}

// At most this many keys are remembered; the ones whose windows end first are forgotten first.
const MAX_TRACKED_KEYS = 100_000;

/** Counters in this process's memory, bounded: for a deployment of one process (the embedded database). */
export class LocalHitCounters implements HitCounters {
  // Kept in the order their windows end (one window length per key use), so expired keys are at the front.
  private readonly windows = new Map<string, { hits: number; endsAt: number }>();

  constructor(
    private readonly maxKeys = MAX_TRACKED_KEYS,
    private readonly now: () => number = Date.now,
  ) {}

  async hit(key: string, windowMs: number): Promise<WindowCount> {
    const now = this.now();
    const running = this.running(key, now);
    if (running !== undefined) {
      running.hits += 1;
      return { hits: running.hits, resetInMs: running.endsAt - now };
    }
    for (const [oldest, window] of this.windows) {
      if (window.endsAt > now && this.windows.size < this.maxKeys) break;
      this.windows.delete(oldest);
    }
    this.windows.set(key, { hits: 1, endsAt: now + windowMs });
    return { hits: 1, resetInMs: windowMs };
  }

  async peek(key: string): Promise<WindowCount | undefined> {
    const now = this.now();
    const running = this.running(key, now);
    return running === undefined ? undefined : { hits: running.hits, resetInMs: running.endsAt - now };
  }

  private running(key: string, now: number): { hits: number; endsAt: number } | undefined {
    const window = this.windows.get(key);
    if (window === undefined) return undefined;
    if (window.endsAt > now) return window;
    this.windows.delete(key);
    return undefined;
  }
}
