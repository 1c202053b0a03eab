// The drain on shutdown: a request in flight (an upload, a download) may finish within the grace, and is cut after it.
import { request } from 'node:http';
import { parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { createTokenVerifier } from './auth.js';
import { startSubgraphServer } from './graphql-server.js';
import { createLogger } from './logger.js';

const typeDefs = parse('type Query { ok: Boolean }');

/** A subgraph whose /slow route answers after `ms`; the request is sent, then the server is closed. */
async function closeDuring(ms: number, shutdownGraceMs: number): Promise<'finished' | 'cut'> {
  const server = await startSubgraphServer(
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
      routes: (app) => app.get('/slow', (_req, res) => void setTimeout(() => res.end('done'), ms)),
    },
    { port: 0, host: '127.0.0.1' },
  );
  const outcome = new Promise<'finished' | 'cut'>((resolve) => {
    const req = request(`${server.url}/slow`, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve(body === 'done' ? 'finished' : 'cut'));
      res.on('error', () => resolve('cut'));
    });
    req.on('error', () => resolve('cut'));
    req.end();
  });
  await new Promise((resolve) => setTimeout(resolve, 100)); // the request is in flight
  await server.close();
  return outcome;
}

describe('a subgraph shutting down', () => {
  it('lets a request in flight finish within SHUTDOWN_GRACE_SECONDS', async () => {
    expect(await closeDuring(1_000, 5_000)).toBe('finished');
  });

  it('cuts a request still running when the grace is over', async () => {
    expect(await closeDuring(3_000, 300)).toBe('cut');
  });
});
