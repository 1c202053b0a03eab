import { describe, expect, it } from 'vitest';
import type { WebhookAttemptReport } from '@vidmp3/shared';
import { planAttempt, planHealth } from './webhook-policy.js';

const report = (attempt: number, outcome: WebhookAttemptReport['outcome']): WebhookAttemptReport => ({
  attempt,
  outcome,
  responseStatus: outcome === 'succeeded' ? 200 : 503,
  error: outcome === 'succeeded' ? null : 'HTTP 503',
  nextRetryAt: outcome === 'retrying' ? '2026-12-06T12:00:00.000Z' : null,
});

describe('planAttempt', () => {
  it.each([
    ['PENDING', 0, report(1, 'retrying'), 'PENDING'],
    ['PENDING', 1, report(2, 'succeeded'), 'SUCCEEDED'],
    ['PENDING', 3, report(9, 'failed'), 'FAILED'],
    ['PENDING', 2, report(2, 'failed'), null],
    ['PENDING', 3, report(2, 'succeeded'), null],
    ['SUCCEEDED', 1, report(2, 'failed'), null],
    ['FAILED', 9, report(10, 'succeeded'), null],
  ] as const)('a %s delivery after %i attempts, told %o, becomes %s', (status, attempts, r, expected) => {
    expect(planAttempt({ status, attempts }, r)?.status ?? null).toBe(expected);
  });

  it('keeps the next retry only while retrying, and no error after a success', () => {
    expect(planAttempt({ status: 'PENDING', attempts: 0 }, report(1, 'retrying'))).toMatchObject({
      nextRetryAt: new Date('2026-12-06T12:00:00.000Z'),
      lastError: 'HTTP 503',
      responseStatus: 503,
    });
    expect(
      planAttempt(
        { status: 'PENDING', attempts: 0 },
        { ...report(1, 'failed'), nextRetryAt: '2026-12-06T12:00:00.000Z' },
      )?.nextRetryAt,
    ).toBeNull();
    expect(
      planAttempt({ status: 'PENDING', attempts: 0 }, { ...report(1, 'succeeded'), error: 'x' })?.lastError,
    ).toBeNull();
    expect(
      planAttempt({ status: 'PENDING', attempts: 0 }, { ...report(1, 'failed'), error: 'e'.repeat(5000) })?.lastError,
    ).toHaveLength(1000);
  });
});

describe('planHealth', () => {
  const enabled = (failed: number) => ({ enabled: true, failedDeliveriesInARow: failed });

  it.each([
    [enabled(0), 'failed', { enabled: true, failedDeliveriesInARow: 1 }, false],
    [enabled(3), 'failed', { enabled: true, failedDeliveriesInARow: 4 }, false],
    [enabled(4), 'failed', { enabled: false, failedDeliveriesInARow: 5 }, true],
    [enabled(4), 'succeeded', { enabled: true, failedDeliveriesInARow: 0 }, false],
    [enabled(4), 'retrying', { enabled: true, failedDeliveriesInARow: 4 }, false],
    // Already disabled: in-flight deliveries that fail do not disable it (and mail the owner) again.
    [{ enabled: false, failedDeliveriesInARow: 5 }, 'failed', { enabled: false, failedDeliveriesInARow: 6 }, false],
  ] as const)('%o with a delivery %s → %o (disable: %s)', (health, outcome, next, disable) => {
    expect(planHealth(health, outcome, 5)).toEqual({ health: next, disable });
  });
});
