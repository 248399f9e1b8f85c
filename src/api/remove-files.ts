import type { FastifyBaseLogger } from 'fastify';
import type { LocalStorage } from '../storage/local.js';

/**
 * Removes the files of records whose rows are already deleted and committed. A failure here only leaves
 * an orphan file, which the start-up storage check removes, so it is logged and not reported to the client:
 * the deletion itself has happened.
 */
export async function removeRecordFiles(
  storage: LocalStorage,
  recordIds: readonly string[],
  log: FastifyBaseLogger,
): Promise<void> {
  // One at a time: a user with many records must not flood the thread pool that downloads also need.
  for (const recordId of recordIds) {
    try {
      await storage.remove(recordId);
    } catch (error) {
      log.warn({ err: error, recordId }, 'could not remove the file of a deleted record; the storage check will');
    }
  }
}
