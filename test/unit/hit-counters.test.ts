import { describe, expect, it } from 'vitest';
import { LocalHitCounters } from '../../src/services/hit-counters.js';

function clock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('LocalHitCounters', () => {
  it('counts hits in a fixed window and starts again when it ends', async () => {
    const time = clock();
    const counters = new LocalHitCounters(100, time.now);
    expect(await counters.peek('a')).toBeUndefined();
    expect(await counters.hit('a', 1000)).toEqual({ hits: 1, resetInMs: 1000 });
    time.advance(400);
    expect(await counters.hit('a', 1000)).toEqual({ hits: 2, resetInMs: 600 });
    expect(await counters.peek('a')).toEqual({ hits: 2, resetInMs: 600 });
    // Another key has its own window.
    expect(await counters.hit('b', 1000)).toEqual({ hits: 1, resetInMs: 1000 });
    time.advance(600);
    expect(await counters.peek('a')).toBeUndefined();
    expect(await counters.hit('a', 1000)).toEqual({ hits: 1, resetInMs: 1000 });
    expect(await counters.peek('b')).toEqual({ hits: 1, resetInMs: 400 });
  });

  it('a peek never counts', async () => {
    const counters = new LocalHitCounters();
    await counters.hit('a', 60_000);
    for (let index = 0; index < 5; index++) await counters.peek('a');
    expect((await counters.peek('a'))?.hits).toBe(1);
  });

  it('remembers at most its limit of keys, forgetting those whose windows end first', async () => {
    const time = clock();
    const counters = new LocalHitCounters(3, time.now);
    for (const key of ['a', 'b', 'c']) {
      await counters.hit(key, 1000);
      time.advance(10);
    }
    await counters.hit('d', 1000);
    expect(await counters.peek('a')).toBeUndefined();
    expect((await counters.peek('b'))?.hits).toBe(1);
    expect((await counters.peek('d'))?.hits).toBe(1);
    // Expired keys go before any running one.
    time.advance(1000);
    await counters.hit('e', 1000);
    expect(await counters.peek('d')).toBeUndefined();
    expect((await counters.peek('e'))?.hits).toBe(1);
  });
});
