import { describe, expect, it } from 'vitest';
import { QuotaExceeded } from '../../src/domain/errors.js';
import { Quota } from '../../src/services/quota.js';

const usage = (recordCount: number, totalBytes: number) => ({ recordCount, totalBytes });

function quotaMessage(run: () => void): string {
  try {
    run();
  } catch (error) {
    if (error instanceof QuotaExceeded) return error.detail;
    throw error;
  }
  throw new Error('expected QuotaExceeded');
}

describe('Quota', () => {
  it('is unlimited only without both limits', () => {
    expect(new Quota({ maxRecords: undefined, maxBytes: undefined }).unlimited).toBe(true);
    expect(new Quota({ maxRecords: 1, maxBytes: undefined }).unlimited).toBe(false);
    expect(new Quota({ maxRecords: undefined, maxBytes: 1 }).unlimited).toBe(false);
  });

  it('an unlimited quota admits anything', () => {
    const quota = new Quota({ maxRecords: undefined, maxBytes: undefined });
    expect(() => quota.refuseIfFull(usage(1e9, 1e15))).not.toThrow();
    expect(() => quota.admit(usage(1e9, 1e15), 1e12)).not.toThrow();
  });

  describe('record limit', () => {
    const quota = new Quota({ maxRecords: 3, maxBytes: undefined });

    it('admits the last record that fits and refuses the next', () => {
      expect(() => quota.refuseIfFull(usage(2, 0))).not.toThrow();
      expect(() => quota.admit(usage(2, 0), 1_000_000)).not.toThrow();
      expect(() => quota.refuseIfFull(usage(3, 0))).toThrow(QuotaExceeded);
      expect(() => quota.admit(usage(3, 0), 1)).toThrow(QuotaExceeded);
    });

    it('says how many records are kept and allowed', () => {
      expect(quotaMessage(() => quota.refuseIfFull(usage(3, 0)))).toBe(
        'You keep 3 records, the most allowed is 3: delete some to upload more.',
      );
    });
  });

  describe('byte limit', () => {
    const quota = new Quota({ maxRecords: undefined, maxBytes: 1000 });

    it('before the body: refuses only a user with no byte left', () => {
      expect(() => quota.refuseIfFull(usage(5, 999))).not.toThrow();
      expect(() => quota.refuseIfFull(usage(5, 1000))).toThrow(QuotaExceeded);
      expect(() => quota.refuseIfFull(usage(5, 1500))).toThrow(QuotaExceeded);
    });

    it('at the insert: exactly full is admitted, one byte over is not', () => {
      expect(() => quota.admit(usage(1, 900), 100)).not.toThrow();
      expect(() => quota.admit(usage(1, 900), 101)).toThrow(QuotaExceeded);
      expect(() => quota.admit(usage(0, 0), 1000)).not.toThrow();
      expect(() => quota.admit(usage(0, 0), 1001)).toThrow(QuotaExceeded);
    });

    it('the messages tell the two checks apart', () => {
      expect(quotaMessage(() => quota.refuseIfFull(usage(1, 1000)))).toBe(
        'You store 1000 bytes of 1000 allowed: delete some records to upload more.',
      );
      expect(quotaMessage(() => quota.admit(usage(1, 900), 101))).toBe(
        "You store 900 bytes of 1000 allowed; this recording's 101 bytes do not fit: delete some records to upload it.",
      );
    });
  });

  it('with both limits, either one refuses', () => {
    const quota = new Quota({ maxRecords: 2, maxBytes: 1000 });
    expect(() => quota.admit(usage(1, 500), 500)).not.toThrow();
    expect(quotaMessage(() => quota.admit(usage(2, 0), 1))).toMatch(/records/);
    expect(quotaMessage(() => quota.admit(usage(1, 600), 500))).toMatch(/bytes/);
  });
});
