import type { QuotaConfig } from '../config.js';
import {
  exceededLimit,
  QuotaExceededError,
  type QuotaLimits,
  type RecordRepository,
  type Usage,
} from '../db/records.js';
import type { NewRecordRow, RecordRow } from '../db/schema.js';
import { quotaExceeded } from '../errors.js';

/*
 * Per-user storage quotas (MAX_RECORDS_PER_USER, MAX_BYTES_PER_USER), enforced in two steps:
 *
 * 1. Before the body is read or converted (`checkUploadQuota`): a user already at the record limit, or
 *    whose stored bytes already reach the byte limit, is refused at once.
 *    The byte quota counts stored MP3 bytes, and the upload's Content-Length says nothing reliable about
 *    those: it measures the WAV, typically 5–10 times larger than its MP3, yet a low-rate WAV can even
 *    become a larger MP3 (8 kHz 8-bit mono is 64 kbit/s; a constant-bitrate MP3 may be more). Judging
 *    the WAV's size against the remaining MP3 quota would refuse uploads that fit, so Content-Length is
 *    deliberately not used here; MAX_UPLOAD_BYTES bounds the upload itself.
 * 2. After conversion, the exact MP3 size is checked in the transaction that inserts the row, with the
 *    owner's row locked (`insertWithinQuota`), so concurrent uploads cannot together pass a limit. A
 *    refusal there throws before the row exists, and the upload route removes the converted file.
 */

export function limitsOf(quota: QuotaConfig): QuotaLimits {
  return { maxRecords: quota.maxRecordsPerUser, maxBytes: quota.maxBytesPerUser };
}

const unlimited = (limits: QuotaLimits) => limits.maxRecords === undefined && limits.maxBytes === undefined;

/** Refuses (413, quota type) an upload the user has no room for at all, before a byte of it is read. */
export async function checkUploadQuota(records: RecordRepository, quota: QuotaConfig, userId: string): Promise<void> {
  const limits = limitsOf(quota);
  if (unlimited(limits)) return;
  const usage = await records.usageOf(userId);
  // One more record, and at least one more byte: a full byte quota has no room for any recording.
  const exceeded = exceededLimit(usage, limits, { records: 1, bytes: 1 });
  if (exceeded !== undefined) throw quotaProblem(new QuotaExceededError(exceeded, usage, limits));
}

/** Inserts the converted recording's row unless it takes the user past a quota (then 413, nothing inserted). */
export async function insertWithinQuota(
  records: RecordRepository,
  quota: QuotaConfig,
  record: NewRecordRow,
): Promise<RecordRow> {
  const limits = limitsOf(quota);
  if (unlimited(limits)) return records.insert(record);
  try {
    return await records.insertWithinQuota(record, limits);
  } catch (error) {
    if (error instanceof QuotaExceededError) throw quotaProblem(error, record.sizeBytes);
    throw error;
  }
}

function quotaProblem(error: QuotaExceededError, recordingBytes?: number) {
  const { usage, quota } = error;
  if (error.kind === 'records') {
    return quotaExceeded(
      `You keep ${usage.recordCount} records, the most allowed is ${quota.maxRecords ?? 0}: delete some to upload more.`,
    );
  }
  return quotaExceeded(bytesDetail(usage, quota.maxBytes ?? 0, recordingBytes));
}

function bytesDetail(usage: Usage, maxBytes: number, recordingBytes: number | undefined): string {
  const stored = `You store ${usage.totalBytes} bytes of ${maxBytes} allowed`;
  return recordingBytes === undefined
    ? `${stored}: delete some records to upload more.`
    : `${stored}; this recording's ${recordingBytes} bytes do not fit: delete some records to upload it.`;
}
