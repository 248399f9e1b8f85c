import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { UserRepository } from '../db/users.js';
import { unauthorized } from '../errors.js';

export interface IssuedToken {
  readonly token: string;
  readonly hash: string;
}

/** Tokens are random UUIDs (122 bits), so a fast hash is enough: there is nothing to brute-force. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function issueToken(): IssuedToken {
  const token = randomUUID();
  return { token, hash: hashToken(token) };
}

/** The token from `Authorization: Bearer …`, else from the `access_token` query parameter. */
export function presentedToken(request: FastifyRequest, queryToken: string | undefined): string | undefined {
  const header = request.headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    return match?.[1];
  }
  return queryToken;
}

/** Resolves when `token` belongs to `userId`; throws the one 401 for every other case. */
export async function authenticate(users: UserRepository, userId: string, token: string | undefined): Promise<void> {
  if (token === undefined) throw unauthorized();
  const stored = await users.findTokenHash(userId);
  const presented = Buffer.from(hashToken(token), 'hex');
  // An unknown user is compared against a dummy so that both failures take the same time.
  const expected = Buffer.from(stored ?? '0'.repeat(64), 'hex');
  if (!timingSafeEqual(presented, expected) || stored === undefined) throw unauthorized();
}
