import { describe, expect, it } from 'vitest';
import type { RecordRow } from '../../src/db/schema.js';
import { RecordLinkCache } from '../../src/services/record-link-cache.js';

const USER = '00000000-0000-4000-8000-000000000001';
const row = (recordId: string, title: string | null = null, userId = USER) =>
  ({ recordId, userId, title }) as RecordRow;

/** A lookup that counts its calls and answers what `rows` holds at the time. */
function database(rows: Map<string, RecordRow>) {
  let calls = 0;
  return {
    lookup: (recordId: string) => async () => {
      calls += 1;
      return rows.get(recordId);
    },
    calls: () => calls,
  };
}

describe('RecordLinkCache', () => {
  it('answers a record from memory until its time is up, then looks it up again', async () => {
    let now = 1_000;
    const cache = new RecordLinkCache(5_000, 100, () => now);
    const rows = new Map([['a', row('a', 'old')]]);
    const db = database(rows);
    expect(await cache.find('a', USER, db.lookup('a'))).toMatchObject({ title: 'old' });
    rows.set('a', row('a', 'new'));
    now += 5_000; // lru-cache counts an entry as fresh through its whole ttl, stale just after
    expect(await cache.find('a', USER, db.lookup('a'))).toMatchObject({ title: 'old' });
    expect(db.calls()).toBe(1);
    now += 1;
    expect(await cache.find('a', USER, db.lookup('a'))).toMatchObject({ title: 'new' });
    expect(db.calls()).toBe(2);
  });

  it('keeps records apart by owner, and does not remember a record that was not found', async () => {
    const cache = new RecordLinkCache();
    const rows = new Map<string, RecordRow>();
    const db = database(rows);
    expect(await cache.find('a', USER, db.lookup('a'))).toBeUndefined();
    rows.set('a', row('a'));
    expect(await cache.find('a', USER, db.lookup('a'))).toBeDefined();
    expect(await cache.find('a', 'someone else', async () => undefined)).toBeUndefined();
  });

  it('forgets a record, and every record of a user, at once', async () => {
    const cache = new RecordLinkCache();
    const rows = new Map([
      ['a', row('a')],
      ['b', row('b')],
    ]);
    const db = database(rows);
    await cache.find('a', USER, db.lookup('a'));
    await cache.find('b', USER, db.lookup('b'));
    rows.clear();
    cache.forget('a', USER);
    expect(await cache.find('a', USER, db.lookup('a'))).toBeUndefined();
    expect(await cache.find('b', USER, db.lookup('b'))).toBeDefined();
    cache.forgetUser(USER);
    expect(await cache.find('b', USER, db.lookup('b'))).toBeUndefined();
  });

  it('does not put back a record that was forgotten while it was being looked up', async () => {
    const cache = new RecordLinkCache();
    let answer: (value: RecordRow) => void = () => {};
    const slow = cache.find('a', USER, () => new Promise<RecordRow>((resolve) => (answer = resolve)));
    cache.forget('a', USER); // deleted while the lookup was on its way
    answer(row('a', 'stale'));
    expect(await slow).toMatchObject({ title: 'stale' });
    expect(await cache.find('a', USER, async () => undefined)).toBeUndefined();
  });

  it('holds at most its bound, dropping the oldest', async () => {
    const cache = new RecordLinkCache(60_000, 2);
    const rows = new Map(['a', 'b', 'c'].map((id) => [id, row(id)]));
    const db = database(rows);
    for (const id of ['a', 'b', 'c']) await cache.find(id, USER, db.lookup(id));
    expect(db.calls()).toBe(3);
    await cache.find('c', USER, db.lookup('c'));
    await cache.find('b', USER, db.lookup('b'));
    expect(db.calls()).toBe(3);
    await cache.find('a', USER, db.lookup('a'));
    expect(db.calls()).toBe(4);
  });
});
