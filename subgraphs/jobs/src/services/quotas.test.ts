import { describe, expect, it } from 'vitest';
import { dispatchRoom, refuseConversion, type ConversionLimits } from './quotas.js';

const limits: ConversionLimits = { activeJobs: 5, conversionsPerHour: 30, dispatchedPerUser: 2 };
const now = new Date('2026-01-31T12:00:00.000Z');
const minutesAgo = (m: number) => new Date(now.getTime() - m * 60_000);

describe('refuseConversion', () => {
  it.each([
    ['nothing running', 0, 0, null],
    ['one below each limit', 4, 29, null],
    ['the active limit reached', 5, 0, { quota: 'activeJobs', limit: 5, used: 5 }],
    ['over the active limit (lowered since)', 7, 0, { quota: 'activeJobs', limit: 5, used: 7 }],
    ['the hourly limit reached', 0, 30, { quota: 'conversionsPerHour', limit: 30, used: 30 }],
    ['both reached: the active one, which frees up first', 5, 30, { quota: 'activeJobs', limit: 5, used: 5 }],
  ])('with %s → %j', (_, activeJobs, conversionsLastHour, expected) => {
    const error = refuseConversion(limits, { activeJobs, conversionsLastHour, oldestInWindow: minutesAgo(10) }, now);

    if (expected === null) expect(error).toBeNull();
    else expect(error?.extensions).toEqual({ code: 'QUOTA_EXCEEDED', ...expected });
  });

  it.each([
    [10, 'try again in 50 minutes'],
    [59.5, 'try again in 1 minute'],
    [60, 'try again in 1 minute'],
  ])('says when the hourly window has room again (oldest start %s minutes ago: %s)', (ago, text) => {
    const error = refuseConversion(
      limits,
      { activeJobs: 0, conversionsLastHour: 30, oldestInWindow: minutesAgo(ago) },
      now,
    );

    expect(error?.message).toContain(text);
  });
});

describe('dispatchRoom', () => {
  it.each([
    [0, 2],
    [1, 1],
    [2, 0],
    [3, 0],
  ])('with %i of the user’s jobs sent, %i more may be sent', (dispatched, room) => {
    expect(dispatchRoom(limits, dispatched)).toBe(room);
  });
});
