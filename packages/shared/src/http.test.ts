import { createServer } from 'node:http';
import { describe, expect, it } from 'vitest';
import { applyServerTimeouts, bodyVerdict, defaultHttpTimeouts, type HttpTimeouts } from './http.js';

const timeouts: HttpTimeouts = { bodyBaseMs: 2_000, minBytesPerSecond: 1_000, idleMs: 3_000, maxBodyBytes: 10_000 };

describe('bodyVerdict (how long a request body may take)', () => {
  it.each([
    ['a body within its base time', { elapsedMs: 1_500, sinceProgressMs: 100, excusedMs: 0, bytes: 0 }, 'ok'],
    [
      'a steady body long past its base time, at the minimum rate',
      { elapsedMs: 60_000, sinceProgressMs: 200, excusedMs: 0, bytes: 58_000 },
      'ok',
    ],
    [
      'a body below the minimum rate once the base is spent',
      { elapsedMs: 60_000, sinceProgressMs: 200, excusedMs: 0, bytes: 30_000 },
      'too-slow',
    ],
    [
      'a slow body whose slowness was the service’s own (reader paused)',
      { elapsedMs: 60_000, sinceProgressMs: 200, excusedMs: 30_000, bytes: 30_000 },
      'ok',
    ],
    [
      'a body with no byte for the idle limit',
      { elapsedMs: 4_000, sinceProgressMs: 3_000, excusedMs: 0, bytes: 3_000 },
      'idle',
    ],
  ] as const)('%s → %s', (_name, state, verdict) => {
    expect(bodyVerdict(state, timeouts)).toBe(verdict);
  });
});

describe('applyServerTimeouts', () => {
  it('lets the largest upload (2 GiB by default) take far longer than Node’s 5 minutes at the minimum rate', () => {
    const server = createServer();
    applyServerTimeouts(server, defaultHttpTimeouts(2 * 1024 ** 3));
    expect(server.requestTimeout).toBeGreaterThan(300_000);
    // 2 GiB at 128 KiB/s, plus twice the 60 s base.
    expect(server.requestTimeout).toBe(16_384_000 + 120_000);
  });

  it('keeps idle connections longer than the gateway’s subgraph client does (30 s), headers a little longer', () => {
    const server = createServer();
    applyServerTimeouts(server, timeouts);
    expect(server.keepAliveTimeout).toBe(65_000);
    expect(server.headersTimeout).toBeGreaterThan(server.keepAliveTimeout);
    expect(server.requestTimeout).toBeGreaterThanOrEqual(server.headersTimeout);
  });

  it('keeps the whole-request limit above the headers timeout for small bodies', () => {
    const server = createServer();
    applyServerTimeouts(server, { ...timeouts, maxBodyBytes: 1 });
    expect(server.requestTimeout).toBeGreaterThanOrEqual(server.headersTimeout);
  });
});
