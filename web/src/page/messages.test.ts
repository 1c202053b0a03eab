import { describe, expect, it } from 'vitest';
import { Vidmp3Error } from '@vidmp3/sdk';
import { describeError, formatBytes, isSessionOver, percent } from './messages.js';

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
