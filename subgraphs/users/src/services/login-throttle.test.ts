import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { MemoryCounterStore } from '../adapters/throttle-store.js';
import { LoginThrottle, type ThrottlePolicy } from './login-throttle.js';

const MINUTE = 60_000;
const policy: ThrottlePolicy = {
  attemptsPerAddress: { limit: 20, windowMs: 15 * MINUTE },
  perAddressAndEmail: { freeFailures: 3, baseDelayMs: 30_000, maxDelayMs: 15 * MINUTE, windowMs: 15 * MINUTE },
  perEmail: { freeFailures: 8, baseDelayMs: 1_000, maxDelayMs: MINUTE, windowMs: 15 * MINUTE },
  knownAddressMs: 30 * 24 * 60 * MINUTE,
  signUpsPerAddress: { limit: 2, windowMs: 60 * MINUTE },
};

/** A throttle over in-memory counters, with a clock the test moves by hand (nobody sleeps). */
function throttle(overrides: Partial<ThrottlePolicy> = {}) {
  const clock = { ms: Date.UTC(2026, 0, 1), advance: (ms: number) => (clock.ms += ms) };
  const t = new LoginThrottle(new MemoryCounterStore(), { ...policy, ...overrides }, () => clock.ms);
  return Object.assign(t, { clock });
}

/** Asserts RATE_LIMITED with a usable retry delay, and returns that delay in seconds. */
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
  expect(retryAfterSeconds).toBeGreaterThanOrEqual(1);
  expect(message).toContain(`try again in ${retryAfterSeconds} s`);
  return retryAfterSeconds;
}

/** Failed logins: reserved and never reported as a success. */
async function fail(t: LoginThrottle, ip: string, email: string, times: number) {
  for (let i = 0; i < times; i += 1) await t.reserveLogIn(ip, email);
}

const ALICE = 'alice@example.com';
const STRANGER = '198.51.100.66';
const OWNER = '203.0.113.7';

describe('LoginThrottle, failures for one email from one address', () => {
  it('lets the free failures through, then makes the next attempt wait the base delay', async () => {
    const t = throttle();
    await fail(t, STRANGER, ALICE, 3);

    expect(await rateLimited(t.reserveLogIn(STRANGER, ALICE))).toBe(30);
  });

  it('doubles the delay with each further failure, up to the cap, and lets each one through after waiting', async () => {
    const t = throttle();
    await fail(t, STRANGER, ALICE, 3);
    const delays: number[] = [];
    for (let i = 0; i < 7; i += 1) {
      const delay = await rateLimited(t.reserveLogIn(STRANGER, ALICE));
      delays.push(delay);
      t.clock.advance(delay * 1000);
      await t.reserveLogIn(STRANGER, ALICE);
    }

    expect(delays).toEqual([30, 60, 120, 240, 480, 900, 900]);
  });

  it('counts an attempt before its password is checked, so concurrent guesses cannot all get in', async () => {
    const t = throttle();

    const results = await Promise.allSettled(Array.from({ length: 12 }, () => t.reserveLogIn(STRANGER, ALICE)));

    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
  });

  it('forgets the failures a window after the last delay has passed', async () => {
    const t = throttle();
    await fail(t, STRANGER, ALICE, 3);
    t.clock.advance(30_000 + 15 * MINUTE);

    await fail(t, STRANGER, ALICE, 3);
    await rateLimited(t.reserveLogIn(STRANGER, ALICE));
  });

  it('forgets the failures from an address once a login from it succeeds', async () => {
    const t = throttle();
    await fail(t, OWNER, ALICE, 2);
    await (await t.reserveLogIn(OWNER, ALICE)).succeeded();

    await fail(t, OWNER, ALICE, 3);
  });

  it('counts every address of one IPv6 /64 as one address', async () => {
    const t = throttle();
    for (let i = 1; i <= 3; i += 1) await t.reserveLogIn(`2001:db8:1:2::${i}`, ALICE);

    await rateLimited(t.reserveLogIn('2001:db8:1:2:ffff::99', ALICE));
    await expect(t.reserveLogIn('2001:db8:1:3::1', ALICE)).resolves.toBeDefined();
  });

  it('counts an IPv4-mapped IPv6 address as the IPv4 address', async () => {
    const t = throttle();
    await fail(t, '::ffff:198.51.100.66', ALICE, 3);

    await rateLimited(t.reserveLogIn('198.51.100.66', ALICE));
  });
});

describe('LoginThrottle, one email attacked from elsewhere', () => {
  it("does not slow the owner down because of a stranger's failures from another address", async () => {
    const t = throttle();
    await fail(t, STRANGER, ALICE, 3);
    await rateLimited(t.reserveLogIn(STRANGER, ALICE));

    await expect(t.reserveLogIn(OWNER, ALICE)).resolves.toBeDefined();
  });

  it('slows every new address once the email has had many failures from many addresses, briefly', async () => {
    const t = throttle();
    for (let i = 0; i < 8; i += 1) await t.reserveLogIn(`198.51.100.${i}`, ALICE);

    const wait = await rateLimited(t.reserveLogIn('198.51.100.200', ALICE));

    expect(wait).toBeLessThanOrEqual(60);
  });

  it('never slows an address that logged in to the account before, however many addresses guess', async () => {
    const t = throttle();
    await (await t.reserveLogIn(OWNER, ALICE)).succeeded();
    for (let i = 0; i < 30; i += 1) {
      await t.reserveLogIn(`198.51.100.${i}`, ALICE).catch(() => undefined);
      t.clock.advance(1_000);
    }

    await expect(t.reserveLogIn(OWNER, ALICE)).resolves.toBeDefined();
  });
});

describe('LoginThrottle, per client address', () => {
  it('limits logIn attempts from one address across emails, and leaves other addresses alone', async () => {
    const t = throttle({ attemptsPerAddress: { limit: 5, windowMs: 15 * MINUTE } });
    for (let i = 0; i < 5; i += 1) await t.reserveLogIn(STRANGER, `victim-${i}@example.com`);

    const wait = await rateLimited(t.reserveLogIn(STRANGER, 'one-more@example.com'));

    expect(wait).toBe(15 * 60);
    await expect(t.reserveLogIn(OWNER, ALICE)).resolves.toBeDefined();
    t.clock.advance(15 * MINUTE);
    await expect(t.reserveLogIn(STRANGER, 'one-more@example.com')).resolves.toBeDefined();
  });

  it('does not count a refused attempt against the other limits', async () => {
    const t = throttle({ attemptsPerAddress: { limit: 1, windowMs: 15 * MINUTE } });
    await t.reserveLogIn(STRANGER, 'bob@example.com');
    for (let i = 0; i < 10; i += 1) await rateLimited(t.reserveLogIn(STRANGER, ALICE));
    t.clock.advance(15 * MINUTE);

    await expect(t.reserveLogIn(STRANGER, ALICE)).resolves.toBeDefined();
  });
});

describe('LoginThrottle, sign-ups', () => {
  it('allows signUpsPerAddress per hour from one address (IPv6 /64), then says when to come back', async () => {
    const t = throttle();
    await t.reserveSignUp('2001:db8:5:6::1');
    await t.reserveSignUp('2001:db8:5:6::2');

    expect(await rateLimited(t.reserveSignUp('2001:db8:5:6::3'))).toBe(3_600);
    await expect(t.reserveSignUp('2001:db8:5:7::1')).resolves.toBeUndefined();
    t.clock.advance(60 * MINUTE);
    await expect(t.reserveSignUp('2001:db8:5:6::3')).resolves.toBeUndefined();
  });
});
