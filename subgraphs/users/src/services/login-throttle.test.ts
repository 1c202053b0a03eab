import { setTimeout as sleep } from 'node:timers/promises';
import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { LoginThrottle, type ThrottleLimits } from './login-throttle.js';

const limits: ThrottleLimits = { maxFailuresPerEmail: 3, maxAttemptsPerIp: 5, windowSeconds: 60 };
const throttle = (overrides: Partial<ThrottleLimits> = {}) => new LoginThrottle({ ...limits, ...overrides });

/** Asserts RATE_LIMITED with a usable retry delay, and returns that delay. */
async function rateLimited(promise: Promise<unknown>): Promise<number> {
  const error = await promise.then(
    () => {
      throw new Error('expected RATE_LIMITED');
    },
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(GraphQLError);
  const { extensions, message } = error as GraphQLError;
  expect(extensions.code).toBe('RATE_LIMITED');
  const retryAfterSeconds = extensions.retryAfterSeconds as number;
  expect(Number.isInteger(retryAfterSeconds)).toBe(true);
  expect(message).toBe(`Too many attempts; try again in ${retryAfterSeconds} s`);
  return retryAfterSeconds;
}

async function failTimes(t: LoginThrottle, email: string, times: number) {
  for (let i = 0; i < times; i += 1) await t.failed(email);
}

describe('LoginThrottle, per client address', () => {
  it('allows maxAttemptsPerIp attempts and refuses the next one', async () => {
    const t = throttle();
    for (let i = 0; i < limits.maxAttemptsPerIp; i += 1) await t.attempt('203.0.113.7');

    const retryAfter = await rateLimited(t.attempt('203.0.113.7'));

    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(limits.windowSeconds);
  });

  it('counts each address separately', async () => {
    const t = throttle();
    for (let i = 0; i < limits.maxAttemptsPerIp; i += 1) await t.attempt('203.0.113.7');

    await expect(t.attempt('198.51.100.2')).resolves.toBeUndefined();
  });

  it('allows the address again once the window has passed', async () => {
    const t = throttle({ maxAttemptsPerIp: 1, windowSeconds: 1 });
    await t.attempt('203.0.113.7');
    await rateLimited(t.attempt('203.0.113.7'));

    await sleep(1_100);

    await expect(t.attempt('203.0.113.7')).resolves.toBeUndefined();
  });
});

describe('LoginThrottle, per email', () => {
  it('lets an email through while it has fewer than maxFailuresPerEmail failures', async () => {
    const t = throttle();
    await failTimes(t, 'alice@example.com', limits.maxFailuresPerEmail - 1);

    await expect(t.check('alice@example.com')).resolves.toBeUndefined();
  });

  it('refuses an email once it has used up its failures, saying when to retry', async () => {
    const t = throttle();
    await failTimes(t, 'alice@example.com', limits.maxFailuresPerEmail);

    const retryAfter = await rateLimited(t.check('alice@example.com'));

    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(limits.windowSeconds);
  });

  it('keeps refusing, without throwing from failed(), when failures go on past the limit', async () => {
    const t = throttle();

    await expect(failTimes(t, 'alice@example.com', limits.maxFailuresPerEmail + 5)).resolves.toBeUndefined();
    await rateLimited(t.check('alice@example.com'));
  });

  it('counts each email separately', async () => {
    const t = throttle();
    await failTimes(t, 'alice@example.com', limits.maxFailuresPerEmail);

    await expect(t.check('bob@example.com')).resolves.toBeUndefined();
  });

  it('forgets the failures of an email after a successful login', async () => {
    const t = throttle();
    await failTimes(t, 'alice@example.com', limits.maxFailuresPerEmail - 1);

    await t.succeeded('alice@example.com');
    await failTimes(t, 'alice@example.com', limits.maxFailuresPerEmail - 1);

    await expect(t.check('alice@example.com')).resolves.toBeUndefined();
  });

  it('allows the email again once the window has passed', async () => {
    const t = throttle({ maxFailuresPerEmail: 1, windowSeconds: 1 });
    await t.failed('alice@example.com');
    await rateLimited(t.check('alice@example.com'));

    await sleep(1_100);

    await expect(t.check('alice@example.com')).resolves.toBeUndefined();
  });

  it('does not count checks as failures', async () => {
    const t = throttle();
    for (let i = 0; i < 10; i += 1) await t.check('alice@example.com');

    await expect(t.check('alice@example.com')).resolves.toBeUndefined();
  });
});
