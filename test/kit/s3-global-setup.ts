import type { TestProject } from 'vitest/node';
import { startS3rver, type S3rverAddress } from './s3rver.js';

/**
 * `TEST_STORAGE=s3` runs every service the kit starts on the S3 driver (see storage.ts); `local`, the
 * default, keeps audio under DATA_DIR/records.
 */
export const testStorage: 'local' | 's3' = parseTestStorage(process.env.TEST_STORAGE);

function parseTestStorage(value: string | undefined): 'local' | 's3' {
  if (value === undefined || value === '' || value === 'local') return 'local';
  if (value === 's3') return 's3';
  throw new Error(`TEST_STORAGE is "local" (the default) or "s3", not ${JSON.stringify(value)}`);
}

declare module 'vitest' {
  export interface ProvidedContext {
    /** The run's s3rver with TEST_STORAGE=s3, else null. */
    s3rver: S3rverAddress | null;
  }
}

/**
 * vitest's globalSetup: with TEST_STORAGE=s3, one s3rver for the whole run, in vitest's main process,
 * handed to the test workers with provide/inject and stopped when the run ends (failed or not). One
 * rather than one per test file: each is a Node process of its own, and on a 2-core machine fourteen of
 * them starting and idling beside the services cost more than one serving them all; the tests stay
 * independent because every service gets a key prefix of its own.
 */
export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  if (testStorage !== 's3') {
    project.provide('s3rver', null);
    return undefined;
  }
  const s3rver = await startS3rver();
  project.provide('s3rver', s3rver.address);
  return () => s3rver.stop();
}
