import { describe, expect, it } from 'vitest';
import { describeQuota, formatBytes, fromGraphQLErrors, Vidmp3Error } from './errors.js';
import { shouldReconnect, subscriptionError } from './watch.js';

const GB = 1024 ** 3;

const quotaError = (quota: string, limit: number, used: number, message = 'Over the limit') =>
  fromGraphQLErrors([{ message, extensions: { code: 'QUOTA_EXCEEDED', quota, limit, used } }]);

describe('QUOTA_EXCEEDED', () => {
  it('puts the quota, the limit and the use on the error', () => {
    const err = quotaError('storageBytes', 2 * GB, 2 * GB - 10);
    expect(err).toBeInstanceOf(Vidmp3Error);
    expect(err).toMatchObject({ code: 'QUOTA_EXCEEDED', quota: 'storageBytes', limit: 2 * GB, used: 2 * GB - 10 });
  });

  it('leaves quota, limit and used undefined on other errors and on malformed extensions', () => {
    const other = fromGraphQLErrors([{ message: 'nope', extensions: { code: 'NOT_FOUND' } }]);
    expect([other.quota, other.limit, other.used]).toEqual([undefined, undefined, undefined]);
    const odd = fromGraphQLErrors([{ message: 'x', extensions: { code: 'QUOTA_EXCEEDED', limit: '5', used: null } }]);
    expect([odd.quota, odd.limit, odd.used]).toEqual([undefined, undefined, undefined]);
  });

  it.each([
    ['storageBytes', 2 * GB, 2 * GB, /^Storage full: 2\.0 GB of 2\.0 GB used\. Delete/],
    ['concurrentUploads', 2, 2, /^Too many uploads at once: 2 of 2 in progress/],
    ['activeJobs', 5, 5, /^Too many conversions at once: 5 of 5 queued or running/],
    ['conversionsPerHour', 30, 30, /^Hourly conversion limit reached: 30 of 30 in the last hour/],
    ['webSocketConnections', 10, 10, /^Too many live connections: at most 10/],
    ['subscriptions', 20, 20, /^Too many live updates at once: 20 of 20/],
  ])('words %s for a person, with the figures', (quota, limit, used, expected) => {
    expect(describeQuota(quotaError(quota, limit, used))).toMatch(expected);
  });

  it('says when a file does not fit in the storage left, before the storage is full', () => {
    expect(describeQuota(quotaError('storageBytes', 2 * GB, GB))).toMatch(
      /^Not enough storage left for this file: 1\.0 GB of 2\.0 GB used, 1\.0 GB free\. Delete/,
    );
  });

  it("falls back to the server's message for a quota it does not know, and says nothing for other errors", () => {
    expect(describeQuota(quotaError('webhooks', 3, 3, 'At most 3 webhooks'))).toBe('At most 3 webhooks');
    expect(describeQuota(new Vidmp3Error('NOT_FOUND', 'No job'))).toBeUndefined();
    expect(describeQuota(new Error('boom'))).toBeUndefined();
  });

  it('turns a 4429 "too many connections" close into QUOTA_EXCEEDED without reconnecting', () => {
    const close = { code: 4429, reason: 'Too many connections: at most 10 per user' };
    const err = subscriptionError(close, 'ws://127.0.0.1:4000/graphql');
    expect(err).toMatchObject({ code: 'QUOTA_EXCEEDED', quota: 'webSocketConnections', limit: 10, used: 10 });
    expect(describeQuota(err)).toMatch(/at most 10/);
    expect(shouldReconnect(close)).toBe(false);
    // graphql-ws's own 4429 (a protocol error) stays what it was.
    const protocol = subscriptionError({ code: 4429, reason: 'Too many initialisation requests' }, 'ws://x/graphql');
    expect(protocol.code).toBe('NETWORK_ERROR');
  });
});

describe('formatBytes', () => {
  it.each([
    [900, '900 B'],
    [120 * 1024 ** 2, '120 MB'],
    [1.5 * GB, '1.5 GB'],
  ])('writes %d as %s', (bytes, text) => expect(formatBytes(bytes)).toBe(text));
});
