// The drain on shutdown: a request in flight (an upload, a download) may finish within the grace, and is cut after it.
import { request } from 'node:http';
import { parse } from 'graphql';
import { describe, expect, it, vi } from 'vitest';
import { createTokenVerifier } from './auth.js';
import { startSubgraphServer, type RunningSubgraph } from './graphql-server.js';
import { createLogger } from './logger.js';

const typeDefs = parse('type Query { ok: Boolean }');

type Outcome = 'finished' | 'cut';

/**
 * A subgraph whose /held route answers only when the test says so. Its handler tells the test when the request
 * has arrived, and the server side tells how the response ended: written to its end, or its connection cut.
 */
async function subgraphHoldingARequest(shutdownGraceMs: number) {
  let arrived!: () => void;
  const arrival = new Promise<void>((resolve) => (arrived = resolve));
  let answer: (() => void) | undefined;
  let serverSaw!: (outcome: Outcome) => void;
  const serverSide = new Promise<Outcome>((resolve) => (serverSaw = resolve));
  const server: RunningSubgraph = await startSubgraphServer(
    {
      service: 'drain-test',
      typeDefs,
      resolvers: { Query: { ok: () => true } },
      logger: createLogger('drain-test', 'silent'),
      verifier: createTokenVerifier({ keys: async () => undefined, issuer: 'i', audience: 'a' }),
      production: true,
      trustProxy: 'loopback',
      shutdownGraceMs,
      readiness: {},
      context: (base) => base,
      routes: (app) =>
        app.get('/held', (_req, res) => {
          res.once('close', () => serverSaw(res.writableFinished ? 'finished' : 'cut'));
          answer = () => res.end('done');
          arrived();
        }),
    },
    { port: 0, host: '127.0.0.1' },
  );

  /** Sends GET /held; resolves with what the client got: the whole answer, or a cut connection. */
  const send = () =>
    new Promise<Outcome>((resolve) => {
      const req = request(`${server.url}/held`, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve(body === 'done' ? 'finished' : 'cut'));
        res.on('error', () => resolve('cut'));
      });
      req.on('error', () => resolve('cut'));
      req.end();
    });

  return {
    server,
    send,
    arrival,
    serverSide,
    answer: () => {
      if (!answer) throw new Error('no request has arrived to answer');
      answer();
    },
  };
}

describe('a subgraph shutting down', () => {
  it('lets a request in flight finish within SHUTDOWN_GRACE_SECONDS', async () => {
    const held = await subgraphHoldingARequest(60_000);
    const client = held.send();
    await held.arrival; // in the handler: the drain cannot refuse it any more
    let closed = false;
    const closing = held.server.close().then(() => (closed = true));
    // The drain has begun once the server stops taking connections; the request is answered only then.
    await vi.waitFor(() => expect(held.server.server.listening).toBe(false), { timeout: 10_000, interval: 5 });
    expect(closed).toBe(false); // the drain waits for the request
    held.answer();
    expect(await client).toBe('finished');
    expect(await held.serverSide).toBe('finished');
    await closing;
  });

  // Bounded well below the 10 s default grace: a shutdownGraceMs that were ignored would fail here.
  it('cuts a request still running when the grace is over', { timeout: 5_000 }, async () => {
    const held = await subgraphHoldingARequest(300);
    const client = held.send();
    await held.arrival; // the request is in flight, not refused at the door
    await held.server.close(); // never answered: the grace runs out
    expect(await client).toBe('cut');
    expect(await held.serverSide).toBe('cut');
  });
});
