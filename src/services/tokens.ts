import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';

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

/** Constant-time comparison of two hex hashes; an absent stored hash compares against a dummy, and fails. */
export function hashesMatch(presentedHash: string, storedHash: string | undefined): boolean {
  const expected = Buffer.from(storedHash ?? '0'.repeat(64), 'hex');
  const presented = Buffer.from(presentedHash, 'hex');
  return presented.length === expected.length && timingSafeEqual(presented, expected) && storedHash !== undefined;
}
