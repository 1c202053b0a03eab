import { Agent, createServer, request } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import express from 'express';
import { describe, expect, it } from 'vitest';
import {
  applyServerTimeouts,
  bodyVerdict,
  defaultHttpTimeouts,
  requestBodyDeadline,
  type HttpTimeouts,
} from './http.js';

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

describe('requestBodyDeadline', () => {
  it('leaves nothing on a kept-alive socket once each request is done', async () => {
    const app = express();
    app.use(requestBodyDeadline(defaultHttpTimeouts()));
    const sockets = new Set<Socket>();
    app.post('/', (req, res) => {
      sockets.add(req.socket);
      req.resume();
      req.on('end', () => res.json({ closeListeners: req.socket.listenerCount('close') }));
    });
    const server = createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const post = () =>
      new Promise<number>((resolve, reject) => {
        const req = request(
          { port: (server.address() as AddressInfo).port, host: '127.0.0.1', method: 'POST', agent },
          (res) => {
            let body = '';
            res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
            res.on('end', () => resolve((JSON.parse(body) as { closeListeners: number }).closeListeners));
          },
        );
        req.on('error', reject);
        req.end('{"a":1}');
      });
    try {
      const counts: number[] = [];
      for (let i = 0; i < 20; i++) counts.push(await post());
      // One connection served them all, and the listeners did not grow with the requests.
      expect(sockets.size).toBe(1);
      expect(counts.at(-1)).toBe(counts[0]);
    } finally {
      agent.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
