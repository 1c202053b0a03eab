import { describe, expect, it } from 'vitest';
import { AbortError } from './errors.js';
import { Slots } from './slots.js';

const never = new AbortController().signal;
/** Whether a promise has settled by the time the microtask queue drains. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe('Slots', () => {
  it('grants as many slots as it has, and makes the next one wait', async () => {
    const slots = new Slots(2);
    await slots.acquire(never);
    await slots.acquire(never);
    const third = slots.acquire(never);
    expect(await settled(third)).toBe(false);
    expect(slots.waiting).toBe(1);
  });

  it('hands a released slot to the first in line, in arrival order', async () => {
    const slots = new Slots(1);
    const release = await slots.acquire(never);
    const order: string[] = [];
    const first = slots.acquire(never).then((r) => (order.push('first'), r));
    const second = slots.acquire(never).then((r) => (order.push('second'), r));
    release();
    (await first)();
    await second;
    expect(order).toEqual(['first', 'second']);
  });

  it('counts a release only once, however often it is called', async () => {
    const slots = new Slots(1);
    const release = await slots.acquire(never);
    release();
    release();
    await slots.acquire(never);
    expect(await settled(slots.acquire(never))).toBe(false);
  });

  it('lets a waiter whose signal aborts leave the line without taking a slot', async () => {
    const slots = new Slots(1);
    const release = await slots.acquire(never);
    const controller = new AbortController();
    const leaving = slots.acquire(controller.signal);
    const staying = slots.acquire(never);
    controller.abort();
    await expect(leaving).rejects.toBeInstanceOf(AbortError);
    expect(slots.waiting).toBe(1);
    release();
    expect(await settled(staying)).toBe(true);
  });

  it('refuses at once when the signal has already aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(new Slots(1).acquire(controller.signal)).rejects.toBeInstanceOf(AbortError);
  });
});
