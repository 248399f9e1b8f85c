import { eq, gt, lt, and, sql } from 'drizzle-orm';
import type { HitCounters, WindowCount } from '../services/hit-counters.js';
import type { Database } from './client.js';
import { hitCounters } from './schema.js';

// Expired rows are deleted at most this often, by whichever hit comes first after it.
const SWEEP_EVERY_MS = 60_000;

/**
 * Hit counters in PostgreSQL, shared by every replica: each hit is one atomic upsert, so concurrent hits
 * on several replicas are all counted. Windows are measured with the database's clock, never the
 * replicas' (which may disagree).
 */
export class SharedHitCounters implements HitCounters {
  private lastSweep = 0;

  constructor(private readonly db: Database) {}

  async hit(key: string, windowMs: number): Promise<WindowCount> {
    this.sweepNowAndThen();
    const expired = sql`${hitCounters.windowEndsAt} <= now()`;
    const [row] = await this.db
      .insert(hitCounters)
      .values({ key, hits: 1, windowEndsAt: sql`now() + ${windowMs}::integer * interval '1 millisecond'` })
      .onConflictDoUpdate({
        target: hitCounters.key,
        set: {
          hits: sql`case when ${expired} then 1 else ${hitCounters.hits} + 1 end`,
          windowEndsAt: sql`case when ${expired} then excluded.window_ends_at else ${hitCounters.windowEndsAt} end`,
        },
      })
      .returning({ hits: hitCounters.hits, resetInMs: millisecondsLeft });
    if (row === undefined) throw new Error('the hit counter upsert returned no row');
    return row;
  }

  async peek(key: string): Promise<WindowCount | undefined> {
    const [row] = await this.db
      .select({ hits: hitCounters.hits, resetInMs: millisecondsLeft })
      .from(hitCounters)
      .where(and(eq(hitCounters.key, key), gt(hitCounters.windowEndsAt, sql`now()`)));
    return row;
  }

  private sweepNowAndThen(): void {
    const now = Date.now();
    if (now - this.lastSweep < SWEEP_EVERY_MS) return;
    this.lastSweep = now;
    // A failed sweep only leaves expired rows for the next one.
    this.db
      .delete(hitCounters)
      .where(lt(hitCounters.windowEndsAt, sql`now()`))
      .catch(() => {});
  }
}

const millisecondsLeft = sql<number>`ceil(extract(epoch from ${hitCounters.windowEndsAt} - now()) * 1000)`.mapWith(
  Number,
);
