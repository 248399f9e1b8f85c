import type { StoredAudioRef } from '../db/schema.js';
import type { BlobStore } from '../storage/blob-store.js';
import { recordKey } from '../storage/keys.js';
import type { Logger } from './logger.js';

/** Where a record's audio lives in the blob store: its format name is the extension. */
export function audioKey(record: StoredAudioRef): string {
  return recordKey(record.recordId, record.format);
}

/**
 * Removes the audio of records whose rows are already deleted and committed. A failure here only leaves
 * an orphan blob, which the storage check removes, so it is logged and not reported to the client: the
 * deletion itself has happened.
 */
export async function removeAudio(blobs: BlobStore, records: readonly StoredAudioRef[], log: Logger): Promise<void> {
  // One at a time: a user with many records must not flood the thread pool that downloads also need.
  for (const record of records) {
    try {
      await blobs.delete(audioKey(record));
    } catch (error) {
      log.warn(
        { err: error, recordId: record.recordId },
        'could not remove the audio of a deleted record; the storage check will',
      );
    }
  }
}
