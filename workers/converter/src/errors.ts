import { JobErrorCode, RETRY_DELAYS_MS } from '@vidmp3/shared';

export type JobErrorCodeName = (typeof JobErrorCode)[keyof typeof JobErrorCode];

/** What a job's `error` says: a code from the shared list and a sentence for a person (no paths, no URLs). */
export interface JobFailure {
  code: string;
  message: string;
}

/** Retrying cannot help (bad media, input deleted, too slow): the job fails at once. */
export class PermanentError extends Error {
  override name = 'PermanentError';
  constructor(
    readonly code: JobErrorCodeName,
    /** Shown to the user as it is. */
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A dependency failed (media or jobs unreachable, a 5xx, a dropped connection): a later attempt may work. */
export class TransientError extends Error {
  override name = 'TransientError';
}

/**
 * The attempt could not be claimed because the jobs service did not answer. Nothing ran and jobs recorded
 * nothing, so the attempt is not spent: the same request is tried again later.
 */
export class ClaimUnavailableError extends Error {
  override name = 'ClaimUnavailableError';
}

/** The conversion ran past its wall-clock limit; the same input would only run past it again. */
export class TimeoutError extends PermanentError {
  override name = 'TimeoutError';
  constructor(limitMs: number) {
    super(JobErrorCode.TIMEOUT, `The conversion took longer than the ${describeDuration(limitMs)} limit.`);
  }
}

/** The work was stopped on purpose (the job was cancelled, or the worker is shutting down). */
export class AbortError extends Error {
  override name = 'AbortError';
  constructor(message = 'The conversion was stopped.') {
    super(message);
  }
}

function describeDuration(ms: number): string {
  const minutes = ms / 60_000;
  if (minutes >= 1 && Number.isInteger(minutes)) return `${minutes}-minute`;
  return `${Math.max(1, Math.round(ms / 1000))}-second`;
}

export type FailurePlan =
  /** Fail the job now and drop the request. */
  | { action: 'fail'; error: JobFailure }
  /** Send the request, as `nextAttempt`, to the retry queue that holds it for `delayMs`. */
  | { action: 'retry'; nextAttempt: number; delayMs: number; error: JobFailure }
  /** Transient failures used up every attempt: fail the job and dead-letter the request. */
  | { action: 'give-up'; error: JobFailure };

export const TEMPORARY_FAILURE = JobErrorCode.TEMPORARY_FAILURE;

/** The longest delay applies to every attempt beyond the list (RETRY_DELAYS_MS grows). */
const longestDelay = Math.max(...RETRY_DELAYS_MS);

/** Decides what a failed attempt leads to. Errors of unknown kind count as transient: retries are bounded. */
export function planFailure(err: unknown, attempt: number, maxAttempts: number): FailurePlan {
  if (err instanceof PermanentError) return { action: 'fail', error: { code: err.code, message: err.message } };
  const message =
    err instanceof TransientError ? err.message : 'The conversion failed because of an unexpected internal error.';
  if (attempt < maxAttempts) {
    return {
      action: 'retry',
      nextAttempt: attempt + 1,
      delayMs: RETRY_DELAYS_MS[attempt - 1] ?? longestDelay,
      error: { code: TEMPORARY_FAILURE, message },
    };
  }
  return {
    action: 'give-up',
    error: {
      code: JobErrorCode.GAVE_UP,
      message: `The conversion failed ${maxAttempts} times because of a temporary problem; please try again later.`,
    },
  };
}
