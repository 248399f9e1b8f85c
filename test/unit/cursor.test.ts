import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidInput } from '../../src/domain/errors.js';
import { decodeCursor, encodeCursor } from '../../src/services/cursor.js';

const encodeRaw = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
const TIMESTAMP = '2026-11-28T09:14:38.209431Z';

/** A created_at as the database writes it: UTC with six fractional digits. */
const exactTimestamp = fc
  .tuple(
    fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }),
    fc.integer({ min: 0, max: 999 }),
  )
  .map(([date, micros]) => `${date.toISOString().slice(0, 23)}${String(micros).padStart(3, '0')}Z`);

describe('cursor codec', () => {
  it('round-trips a position', () => {
    const cursor = encodeCursor({ createdAt: TIMESTAMP, id: 42 });
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(cursor)).toEqual({ createdAt: TIMESTAMP, id: 42 });
  });

  it('round-trips every valid position (property)', () => {
    fc.assert(
      fc.property(exactTimestamp, fc.integer({ min: 1, max: 2 ** 31 - 1 }), (createdAt, id) => {
        const cursor = encodeCursor({ createdAt, id });
        expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
        expect(decodeCursor(cursor)).toEqual({ createdAt, id });
      }),
      { numRuns: 500 },
    );
  });

  it('accepts the edges of the id range and 29 February of a leap year', () => {
    expect(decodeCursor(encodeRaw([TIMESTAMP, 1])).id).toBe(1);
    expect(decodeCursor(encodeRaw([TIMESTAMP, 2 ** 31 - 1])).id).toBe(2 ** 31 - 1);
    expect(decodeCursor(encodeRaw(['2024-02-29T00:00:00.000000Z', 1])).createdAt).toBe('2024-02-29T00:00:00.000000Z');
  });

  const rejected: Array<[string, string]> = [
    ['empty', ''],
    ['not base64url', '!!!***'],
    ['base64url of non-JSON', Buffer.from('not json').toString('base64url')],
    ['truncated', encodeCursor({ createdAt: TIMESTAMP, id: 42 }).slice(0, -3)],
    ['an object', encodeRaw({ createdAt: TIMESTAMP, id: 42 })],
    ['an empty array', encodeRaw([])],
    ['one element', encodeRaw([TIMESTAMP])],
    ['three elements', encodeRaw([TIMESTAMP, 42, 'x'])],
    ['swapped', encodeRaw([42, TIMESTAMP])],
    ['id as a string', encodeRaw([TIMESTAMP, '42'])],
    ['null id', encodeRaw([TIMESTAMP, null])],
    ['id 0', encodeRaw([TIMESTAMP, 0])],
    ['negative id', encodeRaw([TIMESTAMP, -1])],
    ['fractional id', encodeRaw([TIMESTAMP, 1.5])],
    ['id above int4', encodeRaw([TIMESTAMP, 2 ** 31])],
    ['timestamp as a number', encodeRaw([Date.parse('2026-11-28T09:14:38Z'), 42])],
    ['31 February', encodeRaw(['2026-02-31T00:00:00.000000Z', 42])],
    ['29 February of a common year', encodeRaw(['2023-02-29T00:00:00.000000Z', 42])],
    ['hour 24', encodeRaw(['2026-01-01T24:00:00.000000Z', 42])],
    ['leap second', encodeRaw(['2026-06-30T23:59:60.000000Z', 42])],
    ['month 13', encodeRaw(['2026-13-01T00:00:00.000000Z', 42])],
    ['milliseconds only', encodeRaw(['2026-11-28T09:14:38.209Z', 42])],
    ['no fraction', encodeRaw(['2026-11-28T09:14:38Z', 42])],
    ['no Z', encodeRaw(['2026-11-28T09:14:38.209431', 42])],
    ['an offset instead of Z', encodeRaw(['2026-11-28T09:14:38.209431+00:00', 42])],
    ['a space instead of T', encodeRaw(['2026-11-28 09:14:38.209431Z', 42])],
    ['SQL in the timestamp', encodeRaw(["2026-11-28T09:14:38.209431Z'; drop table records; --", 42])],
  ];

  it.each(rejected)('rejects %s as InvalidInput', (_name, cursor) => {
    expect(() => decodeCursor(cursor)).toThrow(InvalidInput);
  });

  // Buffer.from(…, 'base64url') skips characters outside the alphabet: without a check, a real cursor with
  // '!', spaces or '=' padding mixed in would still decode to the same position.
  it('rejects a real cursor with characters outside the base64url alphabet mixed in', () => {
    const cursor = encodeCursor({ createdAt: TIMESTAMP, id: 42 });
    for (const tampered of [`${cursor.slice(0, 8)}!${cursor.slice(8)}`, `${cursor}!!!!`, `${cursor}==`]) {
      expect(() => decodeCursor(tampered), tampered).toThrow(InvalidInput);
    }
  });

  it('rejects arbitrary strings with InvalidInput and nothing else (property)', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        try {
          decodeCursor(text);
        } catch (error) {
          expect(error).toBeInstanceOf(InvalidInput);
        }
      }),
      { numRuns: 500 },
    );
  });
});
