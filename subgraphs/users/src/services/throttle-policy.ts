/**
 * The sign-in throttle's decisions, as pure functions over one counter each. The service around them
 * (login-throttle.ts) locks the counters, applies what these return, and turns refusals into RATE_LIMITED.
 *
 * Two kinds of counter:
 * - a window: at most `limit` attempts per `windowMs` (client address attempts, sign-ups per address);
 * - a back-off: the first `freeFailures` failures cost nothing, then each further attempt must wait a delay
 *   that doubles with every failure up to `maxDelayMs`. Nothing is ever locked: whoever waits can try again.
 *   Failures are forgotten `windowMs` after the last one's delay has passed.
 */

export interface Counter {
  count: number;
  /** Epoch ms before which the next attempt is refused (back-off counters; 0 for windows). */
  blockedUntil: number;
  /** Epoch ms at which the counter is forgotten. */
  expiresAt: number;
}

export interface WindowRule {
  limit: number;
  windowMs: number;
}

export interface BackoffRule {
  freeFailures: number;
  baseDelayMs: number;
  maxDelayMs: number;
  windowMs: number;
}

export type Verdict = { allowed: true; next: Counter } | { allowed: false; retryAfterMs: number };

const live = (counter: Counter | undefined, now: number): Counter | undefined =>
  counter && counter.expiresAt > now ? counter : undefined;

/** One attempt against a fixed window. */
export function takeFromWindow(counter: Counter | undefined, now: number, rule: WindowRule): Verdict {
  const current = live(counter, now) ?? { count: 0, blockedUntil: 0, expiresAt: now + rule.windowMs };
  if (current.count >= rule.limit) return { allowed: false, retryAfterMs: current.expiresAt - now };
  return { allowed: true, next: { ...current, count: current.count + 1 } };
}

/** How long the attempt after the `failures`-th failure must wait. */
export function backoffDelayMs(failures: number, rule: BackoffRule): number {
  if (failures < rule.freeFailures) return 0;
  const doublings = Math.min(failures - rule.freeFailures, 30); // 2^30 × base is past any cap
  return Math.min(rule.maxDelayMs, rule.baseDelayMs * 2 ** doublings);
}

/**
 * One attempt against a back-off counter. An allowed attempt is counted as a failure straight away — the
 * reservation that makes concurrent guesses wait their turn — and `forgiveOne` takes it back when the
 * password turns out right.
 */
export function takeWithBackoff(counter: Counter | undefined, now: number, rule: BackoffRule): Verdict {
  const current = live(counter, now) ?? { count: 0, blockedUntil: 0, expiresAt: now };
  if (now < current.blockedUntil) return { allowed: false, retryAfterMs: current.blockedUntil - now };
  const count = current.count + 1;
  const delay = backoffDelayMs(count, rule);
  // A free failure sets no time: replicas' clocks differ a little, and "blocked until a moment ago" from a
  // clock slightly ahead would refuse an attempt that is still free.
  const blockedUntil = delay > 0 ? now + delay : current.blockedUntil;
  // Remembered for a window after the delay ends, so that waiting out the delay does not also wipe the slate.
  return { allowed: true, next: { count, blockedUntil, expiresAt: now + delay + rule.windowMs } };
}

/** Takes back one reserved failure (the attempt succeeded); the delay it set is lifted with it. */
export function forgiveOne(counter: Counter | undefined, now: number, rule: BackoffRule): Counter | null {
  const current = live(counter, now);
  if (!current || current.count <= 1) return null;
  const count = current.count - 1;
  // No longer than the delay the remaining failures earned, counted from now.
  const delay = backoffDelayMs(count, rule);
  return { ...current, count, blockedUntil: delay > 0 ? Math.min(current.blockedUntil, now + delay) : 0 };
}
