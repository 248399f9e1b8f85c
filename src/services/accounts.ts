import { randomUUID } from 'node:crypto';
import type { RecordRepository, Usage } from '../db/records.js';
import type { UserRepository } from '../db/users.js';
import { Unauthorized, UsernameTaken } from '../domain/errors.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { Logger } from './logger.js';
import type { RecordLinkCache } from './record-link-cache.js';
import { removeAudio } from './stored-audio.js';
import { cleanText } from './text.js';
import { hashesMatch, hashToken, issueToken } from './tokens.js';

export const MAX_USERNAME_LENGTH = 64;

/** A user who proved who they are, and the hash of the token they proved it with. */
export interface AuthenticatedUser {
  readonly id: string;
  readonly tokenHash: string;
}

export interface Credentials {
  readonly userId: string;
  /** Shown to the user once; only its hash is kept. */
  readonly accessToken: string;
}

export interface AccountSummary extends Usage {
  readonly userId: string;
  readonly username: string;
  readonly createdAt: Date;
}

/** What accounts need of the repositories: structural, so that a test can hand in a plain object. */
type AccountUsers = Pick<
  UserRepository,
  'create' | 'findTokenHash' | 'findByTokenHash' | 'replaceTokenHash' | 'deleteWithRecords'
>;
type AccountRecords = Pick<RecordRepository, 'usageOf'>;

/** Creating, proving, inspecting and ending accounts. */
export class AccountService {
  constructor(
    private readonly users: AccountUsers,
    private readonly records: AccountRecords,
    private readonly blobs: BlobStore,
    private readonly linkCache: RecordLinkCache,
  ) {}

  async create(requestedUsername: string): Promise<Credentials> {
    const username = cleanText(requestedUsername, 'username', MAX_USERNAME_LENGTH);
    const userId = randomUUID();
    const { token, hash } = issueToken();
    if (!(await this.users.create({ id: userId, username, accessTokenHash: hash }))) throw new UsernameTaken(username);
    return { userId, accessToken: token };
  }

  /** The user, when `token` is theirs; Unauthorized for every other case, in the same time. */
  async authenticate(userId: string, token: string | undefined): Promise<AuthenticatedUser> {
    if (token === undefined) throw new Unauthorized();
    const tokenHash = hashToken(token);
    if (!hashesMatch(tokenHash, await this.users.findTokenHash(userId))) throw new Unauthorized();
    return { id: userId, tokenHash };
  }

  /** The user holding `token`, found by the token alone. */
  async authenticateToken(token: string | undefined): Promise<AuthenticatedUser> {
    if (token === undefined) throw new Unauthorized();
    const tokenHash = hashToken(token);
    const user = await this.users.findByTokenHash(tokenHash);
    if (user === undefined) throw new Unauthorized();
    return { id: user.id, tokenHash };
  }

  async summary(user: AuthenticatedUser): Promise<AccountSummary> {
    const profile = await this.users.findByTokenHash(user.tokenHash);
    if (profile === undefined) throw new Unauthorized(); // the token was rotated or the account deleted meanwhile
    const usage = await this.records.usageOf(user.id);
    return { userId: profile.id, username: profile.username, createdAt: profile.createdAt, ...usage };
  }

  /** A new token; the one the user authenticated with stops working at once. */
  async rotateToken(user: AuthenticatedUser): Promise<Credentials> {
    const issued = issueToken();
    // Compare-and-set on the old hash: of two rotations racing with the same token, the loser is Unauthorized.
    if (!(await this.users.replaceTokenHash(user.id, user.tokenHash, issued.hash))) throw new Unauthorized();
    return { userId: user.id, accessToken: issued.token };
  }

  /** Deletes the user with every record, then their audio. */
  async delete(user: AuthenticatedUser, log: Logger): Promise<void> {
    // Rows first, in one committed transaction; audio after (see RecordingService.delete for why this order).
    const deleted = await this.users.deleteWithRecords(user.id);
    if (deleted === undefined) throw new Unauthorized(); // deleted meanwhile by a concurrent request
    this.linkCache.forgetUser(user.id);
    await removeAudio(this.blobs, deleted, log);
  }
}
