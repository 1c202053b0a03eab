import { describe, expect, it } from 'vitest';
import { Vidmp3Error } from '@vidmp3/sdk';
import { describeError, formatBytes, isSessionOver, nearLimit, percent, usageText } from './messages.js';

describe('error messages on the page', () => {
  it('explains a refused file in plain words, not with the API code', () => {
    const message = describeError(new Vidmp3Error('UNSUPPORTED_MEDIA', 'no audio stream'), 'upload');
    expect(message).toMatch(/^This file isn't a video with an audio track/);
    expect(describeError(new Vidmp3Error('PAYLOAD_TOO_LARGE', 'too big'), 'upload')).toMatch(/too large/);
  });

  it('reads UNAUTHENTICATED as wrong credentials when logging in, and as an ended session elsewhere', () => {
    const error = new Vidmp3Error('UNAUTHENTICATED', 'invalid token');
    expect(describeError(error, 'auth')).toBe('Wrong email or password.');
    expect(isSessionOver(error, 'auth')).toBe(false);
    expect(describeError(error, 'app')).toMatch(/log in again/);
    expect(isSessionOver(error, 'upload')).toBe(true);
  });

  it("passes on the API's own sentence for input the user can fix", () => {
    const error = new Vidmp3Error('BAD_USER_INPUT', 'The password is too common.');
    expect(describeError(error, 'auth')).toBe('The password is too common.');
  });

  it('gives a reference for unexpected failures and never shows a raw error', () => {
    const error = new Vidmp3Error('INTERNAL', 'select * from …', { requestId: 'req-123' });
    expect(describeError(error, 'app')).toBe(
      'Something went wrong on our side. Please try again. (Reference: req-123)',
    );
    expect(describeError(new TypeError('x is undefined'), 'app')).not.toContain('undefined');
  });

  it('formats sizes and fractions for people', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(55 * 1024)).toBe('55 KB');
    expect(formatBytes(1.5 * 1024 ** 3)).toBe('1.5 GB');
    expect(percent(0.456)).toBe('46%');
    expect(percent(1.2)).toBe('100%');
  });
});

describe('usage and limits on the page', () => {
  const usage = {
    storageBytes: 120 * 1024 ** 2,
    storageLimitBytes: 2 * 1024 ** 3,
    uploadsInProgress: 0,
    concurrentUploadsLimit: 2,
    activeJobs: 1,
    activeJobsLimit: 5,
    conversionsLastHour: 3,
    conversionsPerHourLimit: 30,
  };

  it('sums up the use in one line', () => {
    expect(usageText(usage)).toBe('Storage 120 MB of 2.0 GB · 1 of 5 conversions running · 3 of 30 this hour');
    expect(nearLimit(usage)).toBe(false);
    expect(nearLimit({ ...usage, storageBytes: 1.9 * 1024 ** 3 })).toBe(true);
    expect(nearLimit({ ...usage, activeJobs: 5 })).toBe(true);
  });

  it('says which limit was reached, with the figures', () => {
    const error = new Vidmp3Error('QUOTA_EXCEEDED', 'Storage limit reached', {
      extensions: { code: 'QUOTA_EXCEEDED', quota: 'storageBytes', limit: 2 * 1024 ** 3, used: 2 * 1024 ** 3 },
    });
    expect(describeError(error, 'upload')).toMatch(/^Storage full: 2\.0 GB of 2\.0 GB used\./);
    const jobs = new Vidmp3Error('QUOTA_EXCEEDED', 'x', {
      extensions: { code: 'QUOTA_EXCEEDED', quota: 'activeJobs', limit: 5, used: 5 },
    });
    expect(describeError(jobs, 'app')).toMatch(/^Too many conversions at once: 5 of 5/);
  });
});
