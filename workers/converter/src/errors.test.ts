import { JobErrorCode, RETRY_DELAYS_MS } from '@vidmp3/shared';
import { describe, expect, it } from 'vitest';
import { PermanentError, TEMPORARY_FAILURE, TimeoutError, TransientError, planFailure } from './errors.js';

describe('planFailure', () => {
  it('fails the job at once on a permanent error, whatever the attempt', () => {
    const err = new PermanentError(JobErrorCode.UNSUPPORTED_MEDIA, 'The video has no audio track to convert.');
    expect(planFailure(err, 1, 3)).toEqual({
      action: 'fail',
      error: { code: 'UNSUPPORTED_MEDIA', message: 'The video has no audio track to convert.' },
    });
  });

  it('fails the job at once with TIMEOUT when the conversion ran too long', () => {
    expect(planFailure(new TimeoutError(20 * 60_000), 1, 3)).toEqual({
      action: 'fail',
      error: { code: 'TIMEOUT', message: 'The conversion took longer than the 20-minute limit.' },
    });
  });

  it('retries a transient error with the delay for its attempt', () => {
    const err = new TransientError('The job service could not be reached; the conversion will be retried.');
    expect(planFailure(err, 1, 3)).toEqual({
      action: 'retry',
      nextAttempt: 2,
      delayMs: RETRY_DELAYS_MS[0],
      error: { code: TEMPORARY_FAILURE, message: err.message },
    });
    expect(planFailure(err, 2, 3)).toMatchObject({ action: 'retry', nextAttempt: 3, delayMs: RETRY_DELAYS_MS[1] });
  });

  it('keeps the longest delay for attempts beyond the list', () => {
    expect(planFailure(new TransientError('x'), 7, 10)).toMatchObject({ delayMs: Math.max(...RETRY_DELAYS_MS) });
  });

  it('gives up with GAVE_UP once the attempts are used up', () => {
    const plan = planFailure(new TransientError('x'), 3, 3);
    expect(plan.action).toBe('give-up');
    expect(plan.error.code).toBe(JobErrorCode.GAVE_UP);
    expect(plan.error.message).toMatch(/^The conversion failed 3 times/);
  });

  it('treats an unexpected error as transient, without showing its message', () => {
    const plan = planFailure(new Error('ECONNRESET /var/lib/secret'), 1, 3);
    expect(plan.action).toBe('retry');
    expect(plan.error.message).not.toMatch(/secret|ECONNRESET/);
  });
});
