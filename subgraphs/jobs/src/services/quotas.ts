import { quotaExceeded } from '@vidmp3/shared';
import type { GraphQLError } from 'graphql';

/** The per-user limits of conversions (config: MAX_ACTIVE_JOBS_PER_USER, MAX_CONVERSIONS_PER_HOUR, MAX_DISPATCHED_PER_USER). */
export interface ConversionLimits {
  activeJobs: number;
  conversionsPerHour: number;
  dispatchedPerUser: number;
}

/** What the user runs now, read under their lock. */
export interface ConversionUse {
  /** QUEUED and RUNNING jobs. */
  activeJobs: number;
  /** Conversions started in the last hour. */
  conversionsLastHour: number;
  /** The oldest of those: the window has room again an hour after it. */
  oldestInWindow: Date | null;
}

export const HOUR_MS = 3600_000;

/**
 * Whether one more conversion (a new job, or a retry of a finished one) may start: null, or the
 * QUOTA_EXCEEDED error to answer. The active-job limit is checked first: it is the one that frees up soonest.
 */
export function refuseConversion(limits: ConversionLimits, use: ConversionUse, now: Date): GraphQLError | null {
  if (use.activeJobs >= limits.activeJobs) {
    return quotaExceeded(
      'activeJobs',
      limits.activeJobs,
      use.activeJobs,
      `You have ${use.activeJobs} conversions queued or running, the most allowed at once (${limits.activeJobs}): ` +
        'wait for one to finish, or cancel one',
    );
  }
  if (use.conversionsLastHour >= limits.conversionsPerHour) {
    const freeAt = use.oldestInWindow ? use.oldestInWindow.getTime() + HOUR_MS : now.getTime() + HOUR_MS;
    const minutes = Math.max(1, Math.ceil((freeAt - now.getTime()) / 60_000));
    return quotaExceeded(
      'conversionsPerHour',
      limits.conversionsPerHour,
      use.conversionsLastHour,
      `You started ${use.conversionsLastHour} conversions in the last hour, the most allowed ` +
        `(${limits.conversionsPerHour}): try again in ${minutes} minute${minutes === 1 ? '' : 's'}`,
    );
  }
  return null;
}

/** How many more of a user's waiting jobs may have their request sent to RabbitMQ now. */
export const dispatchRoom = (limits: ConversionLimits, dispatched: number): number =>
  Math.max(0, limits.dispatchedPerUser - dispatched);
