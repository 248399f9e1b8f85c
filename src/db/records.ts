import { and, eq } from 'drizzle-orm';
import type { Database } from './client.js';
import { records, type NewRecordRow, type RecordRow } from './schema.js';

export class RecordRepository {
  constructor(private readonly db: Database) {}

  async insert(record: NewRecordRow): Promise<RecordRow> {
    const [row] = await this.db.insert(records).values(record).returning();
    if (row === undefined) throw new Error('INSERT … RETURNING gave no row');
    return row;
  }

  /** The record, if it exists and belongs to this user; another user's record is as absent as a missing one. */
  async findOwned(recordId: string, userId: string): Promise<RecordRow | undefined> {
    const [row] = await this.db
      .select()
      .from(records)
      .where(and(eq(records.recordId, recordId), eq(records.userId, userId)));
    return row;
  }
}
