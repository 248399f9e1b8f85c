import { eq } from 'drizzle-orm';
import type { Database } from './client.js';
import { users } from './schema.js';
import { isUniqueViolation } from './errors.js';

export interface NewUser {
  readonly id: string;
  readonly username: string;
  readonly accessTokenHash: string;
}

export class UsernameTakenError extends Error {
  override name = 'UsernameTakenError';
}

export class UserRepository {
  constructor(private readonly db: Database) {}

  /** Throws UsernameTakenError when the name is taken, compared case-insensitively. */
  async create(user: NewUser): Promise<void> {
    try {
      await this.db.insert(users).values(user);
    } catch (error) {
      if (isUniqueViolation(error)) throw new UsernameTakenError(user.username, { cause: error });
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
}
