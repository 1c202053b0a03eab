// What a person reads when something goes wrong: the API's error codes in plain words.
import { describeQuota, formatBytes, type Usage, type Vidmp3Error } from '@vidmp3/sdk';

export { formatBytes };

export type Where = 'auth' | 'upload' | 'app';

type ErrorLike = Pick<Vidmp3Error, 'code' | 'message'> & { requestId?: string | undefined };

export function isVidmp3Error(error: unknown): error is ErrorLike {
  return (
    error instanceof Error && error.name === 'Vidmp3Error' && typeof (error as { code?: unknown }).code === 'string'
  );
}

/** Whether the error means the saved sign-in is no longer good (the page then goes back to the login form). */
export function isSessionOver(error: unknown, where: Where): boolean {
  return where !== 'auth' && isVidmp3Error(error) && error.code === 'UNAUTHENTICATED';
}

export function describeError(error: unknown, where: Where): string {
  if (!isVidmp3Error(error)) return 'Something went wrong in this page. Reload it and try again.';
  switch (error.code) {
    case 'UNSUPPORTED_MEDIA':
      return "This file isn't a video with an audio track that can be converted. Choose a video file (MP4, MKV, WebM, MOV, AVI…) that has sound.";
    case 'PAYLOAD_TOO_LARGE':
      return 'This file is too large to upload. Choose a smaller video, or trim it first.';
    case 'UNAUTHENTICATED':
      return where === 'auth' ? 'Wrong email or password.' : 'Your session has ended. Please log in again.';
    case 'FORBIDDEN':
      return "The server doesn't accept live updates for this page's address. Ask its administrator to allow it.";
    case 'QUOTA_EXCEEDED':
      // "Storage full: 2.0 GB of 2.0 GB used. Delete …": which limit, and how far, in the SDK's words.
      return describeQuota(error) ?? error.message;
    case 'RATE_LIMITED':
      return 'Too many attempts in a short time. Please wait a few minutes and try again.';
    case 'NETWORK_ERROR':
      return "Can't reach the server. Check your connection and try again.";
    case 'NOT_FOUND':
      return 'That video or conversion no longer exists.';
    case 'ABORTED':
    case 'CANCELLED':
      return 'Cancelled.';
    case 'JOB_FAILED':
      return `The conversion failed: ${error.message}`;
    // The API words these for people: which rule an email, a password or an option broke.
    case 'BAD_USER_INPUT':
    case 'CONFLICT':
      return error.message;
    case 'INTERNAL':
    default:
      return `Something went wrong on our side. Please try again.${error.requestId ? ` (Reference: ${error.requestId})` : ''}`;
  }
}

export const percent = (fraction: number): string => `${Math.round(Math.min(1, Math.max(0, fraction)) * 100)}%`;

/** "Storage 120 MB of 2.0 GB · 1 of 5 conversions running · 3 of 30 this hour": the account's use at a glance. */
export function usageText(usage: Usage): string {
  return [
    `Storage ${formatBytes(usage.storageBytes)} of ${formatBytes(usage.storageLimitBytes)}`,
    `${usage.activeJobs} of ${usage.activeJobsLimit} conversions running`,
    `${usage.conversionsLastHour} of ${usage.conversionsPerHourLimit} this hour`,
  ].join(' · ');
}

/** Whether any limit is reached or nearly so (90%), to draw the eye to the usage line. */
export function nearLimit(usage: Usage): boolean {
  return (
    usage.storageBytes >= 0.9 * usage.storageLimitBytes ||
    usage.activeJobs >= usage.activeJobsLimit ||
    usage.conversionsLastHour >= usage.conversionsPerHourLimit
  );
}
