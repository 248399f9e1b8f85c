import { QuotaExceeded } from '../domain/errors.js';
import type { Usage } from '../db/records.js';

/*
 * Per-user storage quotas (MAX_RECORDS_PER_USER, MAX_BYTES_PER_USER), enforced in two steps:
 *
 * 1. Before the body is read or converted (`refuseIfFull`): a user already at the record limit, or whose
 *    stored bytes already reach the byte limit, is refused at once.
 *    The byte quota counts stored bytes of converted audio, and the upload's Content-Length says nothing
 *    reliable about those: it measures the source, typically 5–10 times larger than its MP3, yet a low-rate
 *    WAV can even become a larger MP3 (8 kHz 8-bit mono is 64 kbit/s; a constant-bitrate MP3 may be more).
 *    Judging the source's size against the remaining quota would refuse uploads that fit, so
 *    Content-Length is deliberately not used here; MAX_UPLOAD_BYTES bounds the upload itself.
 * 2. After conversion, the exact size is checked in the transaction that inserts the row, with the owner's
 *    row locked (`admit`), so concurrent uploads cannot together pass a limit.
 */

export interface QuotaLimits {
  /** Most records one user may keep; unset means unlimited. */
  readonly maxRecords: number | undefined;
  /** Most bytes of stored audio one user may keep; unset means unlimited. */
  readonly maxBytes: number | undefined;
}

export class Quota {
  constructor(private readonly limits: QuotaLimits) {}

  get unlimited(): boolean {
    return this.limits.maxRecords === undefined && this.limits.maxBytes === undefined;
  }

  /** Throws QuotaExceeded for a user with no room at all: one more record, and at least one more byte. */
  refuseIfFull(usage: Usage): void {
    this.check(usage, 1, undefined);
  }

  /** Throws QuotaExceeded when a recording of `bytes` does not fit beside `usage`. */
  admit(usage: Usage, bytes: number): void {
    this.check(usage, bytes, bytes);
  }

  private check(usage: Usage, addedBytes: number, recordingBytes: number | undefined): void {
    const { maxRecords, maxBytes } = this.limits;
    if (maxRecords !== undefined && usage.recordCount + 1 > maxRecords) {
      throw new QuotaExceeded(
        `You keep ${usage.recordCount} records, the most allowed is ${maxRecords}: delete some to upload more.`,
      );
    }
    if (maxBytes !== undefined && usage.totalBytes + addedBytes > maxBytes) {
      const stored = `You store ${usage.totalBytes} bytes of ${maxBytes} allowed`;
      throw new QuotaExceeded(
        recordingBytes === undefined
          ? `${stored}: delete some records to upload more.`
          : `${stored}; this recording's ${recordingBytes} bytes do not fit: delete some records to upload it.`,
      );
    }
  }
}
