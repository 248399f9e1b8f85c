import { LRUCache } from 'lru-cache';
import type { RecordRow } from '../db/schema.js';

/** How long a looked-up record is served from memory: the staleness other replicas may show after a change. */
const RECORD_LINK_TTL_MS = 5_000;
const MAX_ENTRIES = 10_000;

/**
 * Records looked up by their link, kept for a few seconds: a player seeking through a record sends many
 * Range requests, and each would otherwise query the database for the same row.
 *
 * This process forgets a record as soon as it deletes or renames it (or deletes its owner), so that its own
 * next answer is fresh. Another replica cannot tell it to, so there a deleted or renamed record may be
 * answered from memory for up to `RECORD_LINK_TTL_MS`: with its old title, or, until its file is gone, its
 * audio. The bytes and their ETag always come from the file as opened, never from here.
 */
export class RecordLinkCache {
  private readonly entries: LRUCache<string, RecordRow>;
  // Counts every forget, so that a lookup which raced one does not put back what was just forgotten.
  private changes = 0;

  constructor(ttlMs = RECORD_LINK_TTL_MS, maxEntries = MAX_ENTRIES, now: () => number = () => performance.now()) {
    // ttlResolution 0: the clock is read at each lookup rather than cached behind a timer, which is as cheap
    // and lets a test's clock move between two lookups.
    this.entries = new LRUCache({ max: maxEntries, ttl: ttlMs, ttlResolution: 0, perf: { now } });
  }

  /** The record from memory while it is fresh, else from `lookup` (remembered when found). */
  async find(
    recordId: string,
    userId: string,
    lookup: () => Promise<RecordRow | undefined>,
  ): Promise<RecordRow | undefined> {
    const key = `${recordId} ${userId}`;
    const cached = this.entries.get(key);
    if (cached !== undefined) return cached;
    const changesBefore = this.changes;
    const record = await lookup();
    if (record !== undefined && this.changes === changesBefore) this.entries.set(key, record);
    return record;
  }

  forget(recordId: string, userId: string): void {
    this.changes += 1;
    this.entries.delete(`${recordId} ${userId}`);
  }

  forgetUser(userId: string): void {
    this.changes += 1;
    // Collected first: the cache's iterator walks the list that a delete relinks.
    const keys = [...this.entries.entries()].filter(([, record]) => record.userId === userId).map(([key]) => key);
    for (const key of keys) this.entries.delete(key);
  }
}
