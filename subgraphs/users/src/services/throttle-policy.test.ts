import { describe, expect, it } from 'vitest';
import { backoffDelayMs, forgiveOne, takeFromWindow, takeWithBackoff, type BackoffRule } from './throttle-policy.js';

const backoff: BackoffRule = { freeFailures: 3, baseDelayMs: 30_000, maxDelayMs: 300_000, windowMs: 900_000 };
const T = 1_000_000;

describe('backoffDelayMs', () => {
  it.each([
    [0, 0],
    [2, 0],
    [3, 30_000],
    [4, 60_000],
    [5, 120_000],
    [6, 240_000],
    [7, 300_000],
    [1_000, 300_000],
  ])('after %i failures waits %i ms', (failures, delay) => {
    expect(backoffDelayMs(failures, backoff)).toBe(delay);
  });
});

describe('takeWithBackoff', () => {
  it('lets the free failures through at once and makes the next attempt wait, never refusing for good', () => {
    let counter;
    for (let i = 1; i <= backoff.freeFailures; i += 1) {
      const verdict = takeWithBackoff(counter, T, backoff);
      expect(verdict.allowed).toBe(true);
      counter = verdict.allowed ? verdict.next : undefined;
    }

    expect(takeWithBackoff(counter, T, backoff)).toEqual({ allowed: false, retryAfterMs: 30_000 });
    expect(takeWithBackoff(counter, T + 30_000, backoff).allowed).toBe(true);
  });

  it('remembers the failures for a window after the last delay ends', () => {
    const first = takeWithBackoff(undefined, T, backoff);

    expect(first).toEqual({ allowed: true, next: { count: 1, blockedUntil: 0, expiresAt: T + 900_000 } });
    const fourth = takeWithBackoff({ count: 3, blockedUntil: T, expiresAt: T + 900_000 }, T, backoff);
    expect(fourth).toEqual({ allowed: true, next: { count: 4, blockedUntil: T + 60_000, expiresAt: T + 960_000 } });
  });

  it('forgets the failures once the counter has expired', () => {
    const counter = { count: 10, blockedUntil: T + 300_000, expiresAt: T + 900_000 };

    expect(takeWithBackoff(counter, T + 899_999, backoff).allowed).toBe(true); // blocked until T + 300 s only
    expect(takeWithBackoff(counter, T + 900_000, backoff)).toMatchObject({ allowed: true, next: { count: 1 } });
  });

  it('sets no time for a free failure, so a replica whose clock is a little behind still lets the next one in', () => {
    const ahead = takeWithBackoff(undefined, T + 500, backoff);

    expect(ahead.allowed && takeWithBackoff(ahead.next, T, backoff).allowed).toBe(true);
  });
});

describe('forgiveOne', () => {
  it('takes back one reservation and the delay it added', () => {
    const counter = { count: 4, blockedUntil: T + 60_000, expiresAt: T + 900_000 };

    expect(forgiveOne(counter, T, backoff)).toEqual({ count: 3, blockedUntil: T + 30_000, expiresAt: T + 900_000 });
  });

  it('forgets a counter whose only failure was the successful attempt', () => {
    expect(forgiveOne({ count: 1, blockedUntil: T, expiresAt: T + 900_000 }, T, backoff)).toBeNull();
    expect(forgiveOne(undefined, T, backoff)).toBeNull();
  });
});

describe('takeFromWindow', () => {
  const rule = { limit: 2, windowMs: 3_600_000 };

  it('allows the limit per window, then says when the window ends', () => {
    const first = takeFromWindow(undefined, T, rule);
    const second = first.allowed ? takeFromWindow(first.next, T + 1_000, rule) : first;
    const third = second.allowed ? takeFromWindow(second.next, T + 2_000, rule) : second;

    expect(third).toEqual({ allowed: false, retryAfterMs: 3_600_000 - 2_000 });
    expect(second.allowed && takeFromWindow(second.next, T + 3_600_000, rule).allowed).toBe(true);
  });
});
