import { and, asc, count, desc, eq, gt, gte, ilike, inArray, lte, sql, type SQL } from 'drizzle-orm';
import type { Database } from './client.js';
import {
  recordPeaks,
  records,
  users,
  type NewRecordRow,
  type PeaksRow,
  type RecordRow,
  type StoredAudioRef,
} from './schema.js';

export class RecordRepository {
  constructor(private readonly db: Database) {}

  /** Inserts the record and its peaks in one transaction. */
  async insert(record: NewRecordRow, peaks: PeaksRow): Promise<RecordRow> {
    return this.db.transaction((tx) => insertWithPeaks(tx, record, peaks));
  }

  async findPeaks(recordId: string): Promise<PeaksRow | undefined> {
    const [row] = await this.db
      .select({
        sampleRate: recordPeaks.sampleRate,
        samplesPerPixel: recordPeaks.samplesPerPixel,
        data: recordPeaks.data,
      })
      .from(recordPeaks)
      .where(eq(recordPeaks.recordId, recordId));
    return row;
  }

  /** Stores peaks computed later for an older record; a concurrent computation's are as good. */
  async savePeaks(recordId: string, peaks: PeaksRow): Promise<void> {
    await this.db
      .insert(recordPeaks)
      .values({ recordId, ...peaks })
      .onConflictDoNothing();
  }

  /** The record, if it exists and belongs to this user; another user's record is as absent as a missing one. */
  async findOwned(recordId: string, userId: string): Promise<RecordRow | undefined> {
    const [row] = await this.db
      .select()
      .from(records)
      .where(and(eq(records.recordId, recordId), eq(records.userId, userId)));
    return row;
  }

  /**
   * One page of the user's records, newest first, after `options.after` (keyset pagination on
   * `(created_at, id_)`, so pages stay stable while records are added or removed).
   */
  async listPage(userId: string, options: ListOptions): Promise<RecordPage> {
    const conditions: SQL[] = [eq(records.userId, userId)];
    if (options.after !== undefined) {
      conditions.push(
        sql`(${records.createdAt}, ${records.id}) < (${options.after.createdAt}::timestamptz, ${options.after.id}::integer)`,
      );
    }
    if (options.titleContains !== undefined) {
      conditions.push(ilike(records.title, `%${escapeLike(options.titleContains)}%`));
    }
    const rows = await this.db
      .select({
        record: records,
        // The exact timestamp (microseconds, which a JS Date would lose), so a cursor compares equal to it.
        exactCreatedAt: sql<string>`to_char(${records.createdAt} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`,
      })
      .from(records)
      .where(and(...conditions))
      .orderBy(desc(records.createdAt), desc(records.id))
      .limit(options.limit + 1);
    const page = rows.slice(0, options.limit);
    const last = page.at(-1);
    return {
      records: page.map((row) => row.record),
      next:
        rows.length > options.limit && last !== undefined
          ? { createdAt: last.exactCreatedAt, id: last.record.id }
          : undefined,
    };
  }

  /** Sets the title of the user's record in one statement; undefined when there is no such record. */
  async rename(recordId: string, userId: string, title: string | null): Promise<RecordRow | undefined> {
    const [row] = await this.db
      .update(records)
      .set({ title })
      .where(and(eq(records.recordId, recordId), eq(records.userId, userId)))
      .returning();
    return row;
  }

  /** Deletes the user's record (one statement, its own transaction); undefined when there was none. */
  async deleteOwned(recordId: string, userId: string): Promise<StoredAudioRef | undefined> {
    const [deleted] = await this.db
      .delete(records)
      .where(and(eq(records.recordId, recordId), eq(records.userId, userId)))
      .returning({ recordId: records.recordId, format: records.format });
    return deleted;
  }

  async usageOf(userId: string): Promise<Usage> {
    return usageIn(this.db, userId);
  }

  /**
   * Inserts the record after `admit` has seen its owner's usage, in one transaction that first locks the
   * owner's row: concurrent uploads of one user are judged one after the other, never both on the same
   * old usage. Whatever `admit` throws aborts the insert.
   */
  async insertAdmitted(record: NewRecordRow, peaks: PeaksRow, admit: (usage: Usage) => void): Promise<RecordRow> {
    return this.db.transaction(async (tx) => {
      await tx.select({ id: users.id }).from(users).where(eq(users.id, record.userId)).for('update');
      admit(await usageIn(tx, record.userId));
      return insertWithPeaks(tx, record, peaks);
    });
  }

  /** Every record whose id starts with `shard` (two hex digits), for comparing rows with stored audio. */
  async inShard(shard: string): Promise<StoredAudioRef[]> {
    if (!/^[0-9a-f]{2}$/.test(shard)) throw new Error(`Not a shard: ${JSON.stringify(shard)}`);
    return this.db
      .select({ recordId: records.recordId, format: records.format })
      .from(records)
      .where(
        and(
          gte(records.recordId, `${shard}000000-0000-0000-0000-000000000000`),
          lte(records.recordId, `${shard}ffffff-ffff-ffff-ffff-ffffffffffff`),
        ),
      );
  }

  /**
   * Up to `limit` records after row `afterId` in row order (keyset pagination on `id_`, from 0): every row
   * once, those inserted meanwhile at the end.
   */
  async audioAfter(afterId: number, limit: number): Promise<StoredAudioRow[]> {
    return this.db
      .select({ id: records.id, recordId: records.recordId, format: records.format })
      .from(records)
      .where(gt(records.id, afterId))
      .orderBy(asc(records.id))
      .limit(limit);
  }

  /** Which of `recordIds` have a row now. */
  async existingRecordIds(recordIds: readonly string[]): Promise<Set<string>> {
    if (recordIds.length === 0) return new Set();
    const rows = await this.db
      .select({ recordId: records.recordId })
      .from(records)
      .where(inArray(records.recordId, [...recordIds]));
    return new Set(rows.map((row) => row.recordId));
  }

  /** Deletes the rows of `recordIds` (used by the storage repair for rows whose file is gone); returns how many. */
  async deleteByRecordIds(recordIds: readonly string[]): Promise<number> {
    if (recordIds.length === 0) return 0;
    const rows = await this.db
      .delete(records)
      .where(inArray(records.recordId, [...recordIds]))
      .returning({ recordId: records.recordId });
    return rows.length;
  }
}

/** Where a record's audio is, and its row's place in the table. */
export interface StoredAudioRow extends StoredAudioRef {
  readonly id: number;
}

/** A position in a user's newest-first list: the last record of a page. */
export interface RecordPosition {
  /** `created_at` in UTC with microseconds, e.g. 2026-11-28T09:14:38.209431Z. */
  readonly createdAt: string;
  readonly id: number;
}

export interface ListOptions {
  readonly limit: number;
  readonly after?: RecordPosition | undefined;
  /** Case-insensitive substring of the title; LIKE wildcards in it match themselves. */
  readonly titleContains?: string | undefined;
}

export interface RecordPage {
  readonly records: RecordRow[];
  /** Where the next page starts; undefined on the last page. */
  readonly next: RecordPosition | undefined;
}

export interface Usage {
  readonly recordCount: number;
  readonly totalBytes: number;
}

async function insertWithPeaks(db: Database, record: NewRecordRow, peaks: PeaksRow): Promise<RecordRow> {
  const [row] = await db.insert(records).values(record).returning();
  if (row === undefined) throw new Error('INSERT … RETURNING gave no row');
  await db.insert(recordPeaks).values({ recordId: row.recordId, ...peaks });
  return row;
}

async function usageIn(db: Database, userId: string): Promise<Usage> {
  const [row] = await db
    .select({
      recordCount: count(),
      totalBytes: sql`coalesce(sum(${records.sizeBytes}), 0)`.mapWith(Number),
    })
    .from(records)
    .where(eq(records.userId, userId));
  return row ?? { recordCount: 0, totalBytes: 0 };
}

/** Makes `%`, `_` and the escape character itself match literally in a LIKE pattern (default escape `\`). */
function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (character) => `\\${character}`);
}
