import { describe, expect, it } from 'vitest';
import { Busy } from '../../src/domain/errors.js';
import { ConversionLimiter, type Admission } from '../../src/media/limiter.js';

/** Lets every settled promise's callbacks run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Tracks whether a promise has settled yet, without awaiting it. */
function track<T>(promise: Promise<T>) {
  const state: { value?: T; error?: unknown; settled: boolean } = { settled: false };
  promise.then(
    (value) => Object.assign(state, { value, settled: true }),
    (error: unknown) => Object.assign(state, { error, settled: true }),
  );
  return state;
}

function busyOf(run: () => unknown): Busy {
  try {
    run();
  } catch (error) {
    if (error instanceof Busy) return error;
    throw error;
  }
  throw new Error('expected Busy');
}

async function busyOfAsync(run: () => Promise<unknown>): Promise<Busy> {
  try {
    await run();
  } catch (error) {
    if (error instanceof Busy) return error;
    throw error;
  }
  throw new Error('expected Busy');
}

describe('ConversionLimiter', () => {
  it('grants slots at once up to the limit, then queues', async () => {
    const limiter = new ConversionLimiter(2, 5);
    const first = track(limiter.acquire());
    const second = track(limiter.acquire());
    const third = track(limiter.acquire());
    await settle();
    expect(first.settled).toBe(true);
    expect(second.settled).toBe(true);
    expect(third.settled).toBe(false);
    first.value?.end();
    await settle();
    expect(third.settled).toBe(true);
    expect(third.value).toBeDefined();
  });

  it('hands freed slots to waiters in arrival order', async () => {
    const limiter = new ConversionLimiter(1, 3);
    const running = await limiter.acquire();
    const order: string[] = [];
    const waiters = ['a', 'b', 'c'].map((name) =>
      limiter.acquire().then((admission) => {
        order.push(name);
        return admission;
      }),
    );
    await settle();
    expect(order).toEqual([]);
    running.end();
    await settle();
    expect(order).toEqual(['a']);
    (await waiters[0])?.end();
    await settle();
    expect(order).toEqual(['a', 'b']);
    (await waiters[1])?.end();
    await settle();
    expect(order).toEqual(['a', 'b', 'c']);
  });

  it('is Busy, with a retry time of at least a second, when every slot and queue place is taken', async () => {
    const limiter = new ConversionLimiter(1, 1);
    await limiter.acquire();
    void limiter.acquire(); // waits
    const busy = await busyOfAsync(() => limiter.acquire());
    expect(busy.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(busy.retryAfterSeconds).toBeLessThanOrEqual(600);
    expect(Number.isInteger(busy.retryAfterSeconds)).toBe(true);
  });

  it('a queue of zero refuses as soon as the slots are taken', async () => {
    const limiter = new ConversionLimiter(2, 0);
    await limiter.acquire();
    await limiter.acquire();
    await expect(limiter.acquire()).rejects.toBeInstanceOf(Busy);
  });

  it('the retry time stays at least a second after very fast conversions', async () => {
    const limiter = new ConversionLimiter(1, 0);
    for (let round = 0; round < 50; round++) (await limiter.acquire()).end();
    await limiter.acquire();
    expect((await busyOfAsync(() => limiter.acquire())).retryAfterSeconds).toBe(1);
  });

  it('refuseIfFull throws only when slots and queue are both full, and takes nothing', async () => {
    const limiter = new ConversionLimiter(1, 1);
    expect(() => limiter.refuseIfFull()).not.toThrow();
    const held = await limiter.acquire();
    expect(() => limiter.refuseIfFull()).not.toThrow(); // a queue place is free
    const queued = track(limiter.acquire());
    expect(busyOf(() => limiter.refuseIfFull()).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    // Calling it many times must not have taken anything: one release lets the queued one in.
    for (let i = 0; i < 5; i++) expect(() => limiter.refuseIfFull()).toThrow(Busy);
    held.end();
    await settle();
    expect(queued.settled).toBe(true);
    expect(() => limiter.refuseIfFull()).not.toThrow();
  });

  it('aborting while queued rejects with the signal reason and frees the queue place', async () => {
    const limiter = new ConversionLimiter(1, 1);
    const running = await limiter.acquire();
    const controller = new AbortController();
    const waiting = limiter.acquire(controller.signal);
    const reason = new Error('client went away');
    controller.abort(reason);
    await expect(waiting).rejects.toBe(reason);
    // The queue place is free again: another request may wait.
    expect(() => limiter.refuseIfFull()).not.toThrow();
    const next = track(limiter.acquire());
    running.end();
    await settle();
    // The slot went to the live waiter, not to the one that left.
    expect(next.settled).toBe(true);
    expect(next.value).toBeDefined();
  });

  it('an abort reason that is not an Error still rejects with an Error', async () => {
    const limiter = new ConversionLimiter(1, 1);
    await limiter.acquire();
    const controller = new AbortController();
    const waiting = limiter.acquire(controller.signal);
    controller.abort('just a string');
    await expect(waiting).rejects.toThrow(/conversion slot/);
  });

  it('a slot granted before the abort is kept', async () => {
    const limiter = new ConversionLimiter(1, 1);
    const controller = new AbortController();
    const held = await limiter.acquire(controller.signal);
    controller.abort(new Error('late'));
    // Still held: a second caller must wait.
    const second = track(limiter.acquire());
    await settle();
    expect(second.settled).toBe(false);
    held.end();
    await settle();
    expect(second.settled).toBe(true);
  });

  // A signal that is already aborted never fires 'abort' again: without a check, a request whose client left
  // before it reached the queue would hold a queue place until a slot frees.
  it('an already-aborted signal is refused at once instead of queueing', async () => {
    const limiter = new ConversionLimiter(1, 1);
    await limiter.acquire();
    const controller = new AbortController();
    controller.abort(new Error('gone'));
    const waiting = track(limiter.acquire(controller.signal));
    await settle();
    expect(waiting.settled).toBe(true);
    expect(waiting.error).toBeInstanceOf(Error);
  });

  it('releasing twice frees only one slot', async () => {
    const limiter = new ConversionLimiter(1, 0);
    const admission: Admission = await limiter.acquire();
    admission.end();
    admission.end();
    await limiter.acquire();
    // Had the second release counted, this would be granted too.
    await expect(limiter.acquire()).rejects.toBeInstanceOf(Busy);
  });

  it('releasing twice hands the slot to only one waiter', async () => {
    const limiter = new ConversionLimiter(1, 2);
    const held = await limiter.acquire();
    const a = track(limiter.acquire());
    const b = track(limiter.acquire());
    held.end();
    held.end();
    await settle();
    expect(a.settled).toBe(true);
    expect(b.settled).toBe(false);
  });
});

describe('ConversionLimiter: the slot goes at encoder exit, the place at the end of the commit', () => {
  it('freeSlot starts the next waiter while the first still holds its place', async () => {
    const limiter = new ConversionLimiter(1, 1);
    const first = await limiter.acquire();
    const second = track(limiter.acquire());
    await settle();
    expect(second.settled).toBe(false);
    first.freeSlot();
    await settle();
    expect(second.settled).toBe(true);
    // One committing, one converting: both places are taken, so a third is refused before its body is read.
    expect(() => limiter.refuseIfFull()).toThrow(Busy);
    await expect(limiter.acquire()).rejects.toBeInstanceOf(Busy);
    first.end();
    expect(() => limiter.refuseIfFull()).not.toThrow();
  });

  it('refuses while every place is committing, even with every core idle: uploads in flight stay bounded', async () => {
    const limiter = new ConversionLimiter(2, 0);
    const a = await limiter.acquire();
    const b = await limiter.acquire();
    a.freeSlot();
    b.freeSlot();
    expect(() => limiter.refuseIfFull()).toThrow(Busy);
    await expect(limiter.acquire()).rejects.toBeInstanceOf(Busy);
    b.end();
    // The place that came free comes with a free core: granted at once.
    const c = track(limiter.acquire());
    await settle();
    expect(c.settled).toBe(true);
    expect(c.error).toBeUndefined();
    a.end();
    c.value?.end();
  });

  it('a queue full while others commit takes a waiter again once a commit ends', async () => {
    const limiter = new ConversionLimiter(1, 2);
    const a = await limiter.acquire();
    const b = track(limiter.acquire());
    const c = track(limiter.acquire());
    a.freeSlot(); // a commits, b converts, c waits
    await settle();
    expect([b.settled, c.settled]).toEqual([true, false]);
    await expect(limiter.acquire()).rejects.toBeInstanceOf(Busy);
    a.end();
    const d = track(limiter.acquire()); // waits behind c for the one slot
    await settle();
    expect(d.settled).toBe(false);
    b.value?.end();
    await settle();
    expect([c.settled, d.settled]).toEqual([true, false]);
    c.value?.end();
    await settle();
    expect(d.settled).toBe(true);
  });

  it('freeSlot and end twice, in any order, give back one slot and one place', async () => {
    const limiter = new ConversionLimiter(1, 2);
    const a = await limiter.acquire();
    const b = track(limiter.acquire());
    const c = track(limiter.acquire());
    a.freeSlot();
    a.freeSlot();
    a.end();
    a.end();
    a.freeSlot();
    await settle();
    // Only b got the slot; c still waits, and one place (a's) is free for one more waiter.
    expect([b.settled, c.settled]).toEqual([true, false]);
    const d = track(limiter.acquire());
    await settle();
    expect(d.settled).toBe(false);
    await expect(limiter.acquire()).rejects.toBeInstanceOf(Busy);
    b.value?.end();
    b.value?.end();
    await settle();
    expect([c.settled, d.settled]).toEqual([true, false]);
  });

  it('end without freeSlot gives back both, for jobs that have no commit of their own', async () => {
    const limiter = new ConversionLimiter(1, 0);
    (await limiter.acquire()).end();
    const again = await limiter.acquire();
    await expect(limiter.acquire()).rejects.toBeInstanceOf(Busy);
    again.end();
  });

  it('an abort while committing changes nothing: the place is held until end', async () => {
    const limiter = new ConversionLimiter(1, 0);
    const controller = new AbortController();
    const committing = await limiter.acquire(controller.signal);
    committing.freeSlot();
    controller.abort(new Error('client went away during the commit'));
    await settle();
    await expect(limiter.acquire()).rejects.toBeInstanceOf(Busy);
    committing.end();
    const next = await limiter.acquire();
    next.end();
  });

  it('an abort while queued behind committing uploads gives back its place only', async () => {
    const limiter = new ConversionLimiter(1, 1);
    const a = await limiter.acquire();
    const controller = new AbortController();
    const waiting = limiter.acquire(controller.signal);
    controller.abort(new Error('gone'));
    await expect(waiting).rejects.toThrow('gone');
    a.freeSlot();
    // a still commits, so one place is left: the next is granted the free core at once.
    const b = track(limiter.acquire());
    await settle();
    expect(b.settled).toBe(true);
    await expect(limiter.acquire()).rejects.toBeInstanceOf(Busy);
    a.end();
    b.value?.end();
  });
});
