import { describe, expect, it } from 'vitest';
import { describeError, ExitCode, exitCodeFor, formatFailure, worstExitCode } from '../src/errors.js';
import { createProgress, formatBytes, renderBar } from '../src/progress.js';

class FakeSdkError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

describe('exit codes', () => {
  it('follow the API error code', () => {
    expect(exitCodeFor('UNAUTHENTICATED')).toBe(3);
    expect(exitCodeFor('FORBIDDEN')).toBe(3);
    expect(exitCodeFor('UNSUPPORTED_MEDIA')).toBe(4);
    expect(exitCodeFor('PAYLOAD_TOO_LARGE')).toBe(4);
    expect(exitCodeFor('BAD_USER_INPUT')).toBe(4);
    expect(exitCodeFor('JOB_FAILED')).toBe(5);
    expect(exitCodeFor('CANCELLED')).toBe(5);
    expect(exitCodeFor('NETWORK_ERROR')).toBe(6);
    expect(exitCodeFor('RATE_LIMITED')).toBe(7);
    expect(exitCodeFor('ABORTED')).toBe(130);
    expect(exitCodeFor('INTERNAL')).toBe(1);
    expect(exitCodeFor(undefined)).toBe(1);
  });

  it('with several files, the worst one wins', () => {
    expect([0, 4, 0, 5].reduce<ExitCode>((a, b) => worstExitCode(a, b as ExitCode), ExitCode.OK)).toBe(5);
  });
});

describe('error lines', () => {
  it('name the file, say what went wrong in lower case, and end with the code', () => {
    const failure = describeError(new FakeSdkError('UNSUPPORTED_MEDIA', 'This file is not a video we can read'));
    expect(failure.exitCode).toBe(ExitCode.INPUT);
    expect(formatFailure(failure, 'notes.mp4')).toBe(
      'vidmp3: notes.mp4: this file is not a video we can read (UNSUPPORTED_MEDIA)',
    );
  });

  it('turn file system errors into words', () => {
    const err = Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT', path: '/x/y' });
    expect(formatFailure(describeError(err))).toBe('vidmp3: /x/y: no such file or directory');
  });
});

describe('progress', () => {
  it('formats sizes', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(2_600_000)).toBe('2.6 MB');
    expect(formatBytes(48_000)).toBe('48 kB');
  });

  it('draws a bar that fits the terminal', () => {
    const line = renderBar({ label: 'video.mp4', phase: 'upload', fraction: 0.5, detail: '1.0 MB / 2.0 MB' }, 80);
    expect(line).toMatch(/^video\.mp4 {2}uploading {3}\[#+-+\] {2}50% {2}1\.0 MB \/ 2\.0 MB$/);
    expect(line.length).toBeLessThan(80);
    const narrow = renderBar(
      { label: 'a-very-long-file-name-indeed.mp4', phase: 'convert', fraction: 1, detail: 'x' },
      40,
    );
    expect(narrow.length).toBeLessThan(40);
    expect(renderBar({ label: 'v', phase: 'download', fraction: undefined, detail: '3 kB' }, 80)).toContain(' ---');
  });

  it('prints one line per step when stderr is not a terminal', () => {
    const out: string[] = [];
    const progress = createProgress('lines', { write: (t: string) => out.push(t) }, 'v.mp4');
    progress.upload(0, 1000);
    progress.upload(500, 1000);
    progress.convert('QUEUED', 0, 'j1');
    progress.convert('RUNNING', 0.1, 'j1');
    progress.convert('RUNNING', 0.6, 'j1');
    progress.convert('SUCCEEDED', 1, 'j1');
    progress.download(10, 100);
    progress.download(100, 100);
    expect(out.join('')).toBe(
      [
        'v.mp4: uploading 1.0 kB',
        'v.mp4: job j1 queued',
        'v.mp4: job j1 running',
        'v.mp4: converting 50%',
        'v.mp4: job j1 succeeded',
        'v.mp4: downloading 100 B',
        '',
      ].join('\n'),
    );
  });

  it('prints nothing with --json', () => {
    const out: string[] = [];
    const progress = createProgress('none', { write: (t: string) => out.push(t) }, 'v.mp4');
    progress.upload(1, 2);
    progress.end();
    expect(out).toEqual([]);
  });
});
