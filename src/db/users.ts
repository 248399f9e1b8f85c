import { and, eq } from 'drizzle-orm';
import type { Database } from './client.js';
import { records, users, type StoredAudioRef } from './schema.js';
import { isUniqueViolation } from './postgres-errors.js';

export interface NewUser {
  readonly id: string;
  readonly username: string;
  readonly accessTokenHash: string;
}

export class UserRepository {
  constructor(private readonly db: Database) {}

  /** False when the name is taken, compared case-insensitively. */
  async create(user: NewUser): Promise<boolean> {
    try {
      await this.db.insert(users).values(user);
      return true;
    } catch (error) {
      if (isUniqueViolation(error)) return false;
      throw error;
    }
  }

  async findTokenHash(userId: string): Promise<string | undefined> {
    const [row] = await this.db
      .select({ accessTokenHash: users.accessTokenHash })
      .from(users)
      .where(eq(users.id, userId));
    return row?.accessTokenHash;
  }

  /** The user holding this token, found through the unique index on the token hash. */
  async findByTokenHash(accessTokenHash: string): Promise<UserProfile | undefined> {
    const [row] = await this.db
      .select({ id: users.id, username: users.username, createdAt: users.createdAt })
      .from(users)
      .where(eq(users.accessTokenHash, accessTokenHash));
    return row;
  }

  /**
   * Swaps the token hash only if it is still `currentHash` (compare-and-set), so that of two concurrent
   * rotations with the same old token exactly one wins. False when it was not.
   */
  async replaceTokenHash(userId: string, currentHash: string, newHash: string): Promise<boolean> {
    const updated = await this.db
      .update(users)
      .set({ accessTokenHash: newHash })
      .where(and(eq(users.id, userId), eq(users.accessTokenHash, currentHash)))
      .returning({ id: users.id });
    return updated.length > 0;
  }

  /**
   * Deletes the user and every record in one transaction and returns the deleted records (their audio is
   * the caller's to remove after the commit), or undefined when there is no such user. The user's row
   * is locked first, so an upload committing meanwhile either lands before (and is deleted here) or fails
   * its foreign key after.
   */
  async deleteWithRecords(userId: string): Promise<StoredAudioRef[] | undefined> {
    return this.db.transaction(async (tx) => {
      const [user] = await tx.select({ id: users.id }).from(users).where(eq(users.id, userId)).for('update');
      if (user === undefined) return undefined;
      const deleted = await tx
        .delete(records)
        .where(eq(records.userId, userId))
        .returning({ recordId: records.recordId, format: records.format });
      await tx.delete(users).where(eq(users.id, userId));
      return deleted;
    });
  }
}

export interface UserProfile {
  readonly id: string;
  readonly username: string;
  readonly createdAt: Date;
}
