import { describe, expect, it } from 'vitest';
import { afterFailure, isPermanentFailure, isServerAway, retryDelayMs, type RetryPolicy } from './delivery-policy.js';

const policy: RetryPolicy = { baseMs: 5_000, maxMs: 60_000, giveUpAfterMs: 3_600_000, jitter: 0.2 };
const noJitter = () => 0;

describe('the wait before a mail is tried again', () => {
  it.each([
    [1, 5_000],
    [2, 10_000],
    [3, 20_000],
    [4, 40_000],
    [5, 60_000],
    [50, 60_000],
    [10_000, 60_000],
  ])('after %i failures is %i ms (doubling, capped)', (failures, expected) => {
    expect(retryDelayMs(failures, policy, noJitter)).toBe(expected);
  });

  it('takes at most the jitter fraction off, so one outage’s mails spread out', () => {
    expect(retryDelayMs(2, policy, () => 1)).toBe(8_000);
    expect(retryDelayMs(2, policy, () => 0.5)).toBe(9_000);
  });
});

describe('which SMTP failures are for good', () => {
  it.each([
    ['a mailbox the server refuses', { code: 'EENVELOPE', responseCode: 550 }, true],
    ['a message the server refuses', { code: 'EMESSAGE', responseCode: 554 }, true],
    ['a mailbox full for now', { code: 'EENVELOPE', responseCode: 452 }, false],
    ['greylisting', { code: 'EENVELOPE', responseCode: 451 }, false],
    ['a refused connection', { code: 'ECONNECTION', errno: -111 }, false],
    ['a timeout', { code: 'ETIMEDOUT' }, false],
    ['a refused login (our configuration)', { code: 'EAUTH', responseCode: 535 }, false],
    ['a TLS failure', { code: 'ETLS' }, false],
    ['something else', new Error('boom'), false],
    ['nothing at all', undefined, false],
  ])('%s: %s', (_name, err, permanent) => {
    expect(isPermanentFailure(err)).toBe(permanent);
  });
});

describe('which failures say the server is away (not about the mail)', () => {
  it.each([
    ['a refused connection', { code: 'ESOCKET', errno: -111 }, true],
    ['a closed connection', { code: 'ECONNECTION' }, true],
    ['a timeout', { code: 'ETIMEDOUT' }, true],
    ['an unknown host', { code: 'EDNS' }, true],
    ['a server shutting down (421)', { code: 'EENVELOPE', responseCode: 421 }, true],
    ['a mailbox refused', { code: 'EENVELOPE', responseCode: 550 }, false],
    ['greylisting', { code: 'EENVELOPE', responseCode: 451 }, false],
    ['nothing at all', undefined, false],
  ])('%s: %s', (_name, err, away) => {
    expect(isServerAway(err)).toBe(away);
  });
});

describe('after a failed send', () => {
  const now = new Date('2026-12-06T12:00:00.000Z');
  const queuedAt = new Date('2026-12-06T11:59:00.000Z');

  it('tries again later while the server is away', () => {
    expect(afterFailure({ failures: 3, createdAt: queuedAt }, { code: 'ECONNECTION' }, now, policy, noJitter)).toEqual({
      action: 'retry',
      at: new Date(now.getTime() + 20_000),
    });
  });

  it('gives up at once on a refusal for good', () => {
    expect(
      afterFailure({ failures: 1, createdAt: queuedAt }, { code: 'EENVELOPE', responseCode: 550 }, now, policy),
    ).toEqual({
      action: 'give-up',
      reason: 'rejected',
    });
  });

  it('gives up once the next try would come after the give-up age', () => {
    const old = new Date(now.getTime() - policy.giveUpAfterMs + 30_000);
    expect(afterFailure({ failures: 9, createdAt: old }, { code: 'ECONNECTION' }, now, policy, noJitter)).toEqual({
      action: 'give-up',
      reason: 'expired',
    });
    const younger = new Date(now.getTime() - policy.giveUpAfterMs + 90_000);
    expect(
      afterFailure({ failures: 9, createdAt: younger }, { code: 'ECONNECTION' }, now, policy, noJitter).action,
    ).toBe('retry');
  });
});
