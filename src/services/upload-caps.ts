import { RateLimited } from '../domain/errors.js';

export interface UploadCapLimits {
  readonly perUser: number;
  readonly perAddress: number;
}

/**
 * Caps the uploads one user and one client address may have converting or waiting at once, so that
 * nobody can take every slot and queue place while others wait.
 */
export class UploadCaps {
  private readonly byUser = new Map<string, number>();
  private readonly byAddress = new Map<string, number>();

  constructor(private readonly limits: UploadCapLimits) {}

  /** Counts one more upload for both, or throws RateLimited; call the returned function when it ends. */
  take(userId: string, address: string, retryAfterSeconds: number): () => void {
    if ((this.byUser.get(userId) ?? 0) >= this.limits.perUser) {
      throw new RateLimited(
        `This account already has ${this.limits.perUser} uploads under way; wait for one to finish.`,
        retryAfterSeconds,
      );
    }
    if ((this.byAddress.get(address) ?? 0) >= this.limits.perAddress) {
      throw new RateLimited(
        `This client already has ${this.limits.perAddress} uploads under way; wait for one to finish.`,
        retryAfterSeconds,
      );
    }
    increment(this.byUser, userId, 1);
    increment(this.byAddress, address, 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      increment(this.byUser, userId, -1);
      increment(this.byAddress, address, -1);
    };
  }
}

function increment(counts: Map<string, number>, key: string, by: number): void {
  const next = (counts.get(key) ?? 0) + by;
  if (next <= 0) counts.delete(key);
  else counts.set(key, next);
}
