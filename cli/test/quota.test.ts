import { describe, expect, it } from 'vitest';
import { formatUsageTable } from '../src/commands/usage.js';
import { describeError, EXIT_CODES_HELP, ExitCode, exitCodeFor, formatFailure } from '../src/errors.js';
import { Vidmp3Error } from '../src/sdk.js';

const GiB = 1024 ** 3;

describe('QUOTA_EXCEEDED in the CLI', () => {
  it('has an exit code of its own, listed in --help', () => {
    expect(exitCodeFor('QUOTA_EXCEEDED')).toBe(ExitCode.QUOTA_EXCEEDED);
    expect(ExitCode.QUOTA_EXCEEDED).toBe(8);
    expect(EXIT_CODES_HELP).toMatch(/^\s+8\s+a limit of your account is reached \(QUOTA_EXCEEDED\)/m);
  });

  it('says which limit and how far, in words and figures', () => {
    const err = new Vidmp3Error('QUOTA_EXCEEDED', 'Storage limit reached', {
      extensions: { code: 'QUOTA_EXCEEDED', quota: 'storageBytes', limit: 2 * GiB, used: 2 * GiB },
    });
    const failure = describeError(err);
    expect(failure).toMatchObject({
      code: 'QUOTA_EXCEEDED',
      exitCode: 8,
      quota: { quota: 'storageBytes', limit: 2 * GiB, used: 2 * GiB },
    });
    expect(formatFailure(failure, 'talk.mp4')).toMatch(
      /^vidmp3: talk\.mp4: Storage full: 2\.0 GB of 2\.0 GB used\. Delete .* \(QUOTA_EXCEEDED\)$/,
    );
  });

  it("keeps the server's message for a limit it has no words for", () => {
    const err = new Vidmp3Error('QUOTA_EXCEEDED', 'At most 3 webhooks', {
      extensions: { code: 'QUOTA_EXCEEDED', quota: 'webhooks', limit: 3, used: 3 },
    });
    expect(describeError(err).message).toBe('At most 3 webhooks');
  });
});

describe('vidmp3 usage', () => {
  it('prints one aligned row per limit, sizes in binary units', () => {
    const lines = formatUsageTable({
      storageBytes: 120 * 1024 ** 2,
      storageLimitBytes: 2 * GiB,
      uploadsInProgress: 0,
      concurrentUploadsLimit: 2,
      activeJobs: 1,
      activeJobsLimit: 5,
      conversionsLastHour: 3,
      conversionsPerHourLimit: 30,
    });
    expect(lines).toEqual([
      '                          USED   LIMIT',
      'storage                 120 MB  2.0 GB',
      'uploads at once              0       2',
      'conversions at once          1       5',
      'conversions, last hour       3      30',
    ]);
  });
});
