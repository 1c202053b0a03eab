import { generateKeyPairSync } from 'node:crypto';
import { createServer, request, type Server } from 'node:http';
import { ApolloServer } from '@apollo/server';
import { buildSchema } from 'graphql';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  createMetrics,
  createTokenVerifier,
  defaultHttpTimeouts,
  GraphQLMetrics,
  listen,
  type Logger,
} from '@vidmp3/shared';
import type { GatewayContext } from './context.js';
import { graphqlPostLane } from './graphql-post.js';

// One `graphql` for everything, Node's CommonJS copy, as Apollo Server loads it (see subscriptions.test.ts).
vi.mock('graphql', async () => {
  const { createRequire } = await import('node:module');
  return createRequire(import.meta.url)('graphql') as object;
});

const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const verifier = createTokenVerifier({
  keys: async (kid) => (kid === 'k1' ? keys.publicKey : undefined),
  issuer: 'vidmp3',
  audience: 'vidmp3-api',
});
const token = jwt.sign({ sub: 'user-1', exp: Math.floor(Date.now() / 1000) + 300 }, keys.privateKey, {
  algorithm: 'ES256',
  keyid: 'k1',
  issuer: 'vidmp3',
  audience: 'vidmp3-api',
});

const schema = buildSchema(`
  type Query { whoami: String, ip: String, echo(text: String!): String }
`);
const rootValue = {
  whoami: (_args: unknown, ctx: GatewayContext) => {
    ctx.log.info('whoami resolved');
    return ctx.viewer?.userId ?? null;
  },
  ip: (_args: unknown, ctx: GatewayContext) => ctx.ip,
  echo: ({ text }: { text: string }) => text,
};

/** The lane's access log and the resolvers' lines, captured instead of printed. */
const logLines: Record<string, unknown>[] = [];
function capturingLogger(bindings: Record<string, unknown> = {}): Logger {
  const at = (level: string) => (fields: object | string, msg?: string) =>
    logLines.push(
      typeof fields === 'string' ? { level, ...bindings, msg: fields } : { level, ...bindings, ...fields, msg },
    );
  return {
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more: Record<string, unknown>) => capturingLogger({ ...bindings, ...more }),
  } as unknown as Logger;
}
const logger = capturingLogger();
const metrics = createMetrics('gateway');
let server: Server;
let base: string;
let operationsRun = 0;

beforeAll(async () => {
  const apollo = new ApolloServer<GatewayContext>({
    schema,
    rootValue,
    csrfPrevention: true,
    plugins: [
      {
        async requestDidStart() {
          operationsRun++;
        },
      },
    ],
  });
  const post = graphqlPostLane({
    apollo,
    verifier,
    logger,
    metrics,
    graphqlMetrics: new GraphQLMetrics(metrics),
    allowedOrigins: ['https://app.example'],
    timeouts: { ...defaultHttpTimeouts(), bodyBaseMs: 300, idleMs: 300 },
    clientAddress: (req) => String(req.headers['x-forwarded-for'] ?? req.socket.remoteAddress),
  });
  await apollo.start();
  server = createServer((req, res) => {
    if (post.lane(req, res)) return;
    res.writeHead(418).end('express');
  });
  base = await listen(server, 0, '127.0.0.1');
});
afterAll(() => server.close());
beforeEach(() => {
  logLines.length = 0;
});

function post(body: string, headers: Record<string, string> = {}, path = '/graphql') {
  return fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
}
const query = (text: string, extra: Record<string, unknown> = {}) => JSON.stringify({ query: text, ...extra });

/** A series' value; a histogram's `_count` is read from its histogram. */
async function counter(name: string, labels: Record<string, string>): Promise<number> {
  const metric = await metrics.registry.getSingleMetric(name.replace(/_count$/, ''))?.get();
  const sample = metric?.values.find(
    (v) =>
      ((v as { metricName?: string }).metricName ?? name) === name &&
      Object.entries(labels).every(([k, l]) => String(v.labels[k]) === l),
  );
  return sample?.value ?? 0;
}

describe('the JSON lane of POST /graphql', () => {
  it('runs an operation with the verified viewer, a request id, the CORS headers and an access log line', async () => {
    const res = await post(query('{ whoami }'), {
      authorization: `Bearer ${token}`,
      origin: 'https://app.example',
      'x-request-id': 'trace-1',
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ data: { whoami: 'user-1' } });
    expect(res.headers.get('x-request-id')).toBe('trace-1');
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(res.headers.get('vary')).toBe('Origin');
    expect(logLines).toContainEqual(expect.objectContaining({ requestId: 'trace-1', msg: 'whoami resolved' }));
    expect(logLines).toContainEqual(
      expect.objectContaining({ requestId: 'trace-1', msg: 'request', path: '/graphql', status: 200 }),
    );
    // Recorded when the response closes, which may be just after the client has it.
    await expect
      .poll(() => counter('vidmp3_http_request_duration_seconds_count', { route: '/graphql', status: '200' }))
      .toBe(1);
  });

  it('passes the client address on and generates a request id when none (or a bad one) is given', async () => {
    const res = await post(query('{ ip }'), { 'x-forwarded-for': '203.0.113.7', 'x-request-id': 'bad id!' });
    expect(await res.json()).toEqual({ data: { ip: '203.0.113.7' } });
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers `{ __typename }` from the kept answer once it has run, still counting it', async () => {
    const typename = query('{ __typename }');
    const first = await post(typename, { authorization: `Bearer ${token}` });
    expect(await first.json()).toEqual({ data: { __typename: 'Query' } });
    const runs = operationsRun;
    const before = await counter('vidmp3_graphql_operations_total', { type: 'query', field: '__typename' });
    for (let i = 0; i < 3; i++) {
      const again = await post(typename, { authorization: `Bearer ${token}` });
      expect(again.status).toBe(200);
      expect(again.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(again.headers.get('x-request-id')).toBeTruthy();
      expect(await again.text()).toBe('{"data":{"__typename":"Query"}}\n');
    }
    expect(operationsRun).toBe(runs);
    expect(await counter('vidmp3_graphql_operations_total', { type: 'query', field: '__typename' })).toBe(before + 3);
  });

  it('still refuses a bad token for a kept answer (401 UNAUTHENTICATED)', async () => {
    await post(query('{ __typename }'));
    const res = await post(query('{ __typename }'), { authorization: 'Bearer not.a.token' });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { errors: { extensions: { code: string } }[] }).errors[0]?.extensions.code).toBe(
      'UNAUTHENTICATED',
    );
  });

  it('keeps no answer that depends on data, variables or the accept header', async () => {
    const runs = operationsRun;
    await post(query('{ whoami }'));
    await post(query('{ whoami }'));
    await post(query('query ($t: String!) { echo(text: $t) }', { variables: { t: 'a' } }));
    const other = await post(query('query ($t: String!) { echo(text: $t) }', { variables: { t: 'b' } }));
    expect(await other.json()).toEqual({ data: { echo: 'b' } });
    expect(operationsRun).toBe(runs + 4);
    const graphqlJson = await post(query('{ __typename }'), { accept: 'application/graphql-response+json' });
    expect(graphqlJson.headers.get('content-type')).toBe('application/graphql-response+json; charset=utf-8');
  });

  it('answers a body that is not JSON with 400 BAD_REQUEST, and Apollo’s errors as Apollo gives them', async () => {
    const broken = await post('{"query":');
    expect(broken.status).toBe(400);
    expect(await broken.json()).toEqual({
      errors: [{ message: 'The request body is not valid JSON', extensions: { code: 'BAD_REQUEST' } }],
    });
    const batch = await post(`[${query('{ __typename }')}]`);
    expect(batch.status).toBe(400);
    const invalid = await post(query('{ nope }'));
    expect(invalid.status).toBe(400);
    expect(((await invalid.json()) as { errors: { extensions: { code: string } }[] }).errors[0]?.extensions.code).toBe(
      'GRAPHQL_VALIDATION_FAILED',
    );
  });

  it('leaves every other request to Express: other paths, methods, content types, encodings, chunked bodies', async () => {
    expect((await post(query('{ __typename }'), {}, '/graphql/')).status).toBe(418);
    expect((await post(query('{ __typename }'), { 'content-type': 'text/plain' })).status).toBe(418);
    expect((await post(query('{ __typename }'), { 'content-encoding': 'gzip' })).status).toBe(418);
    expect((await fetch(`${base}/graphql?query=%7B__typename%7D`)).status).toBe(418);
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = request(`${base}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' } });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write(query('{ __typename }'));
      req.end();
    });
    expect(chunked).toBe(418);
  });

  it('cuts a connection whose body stalls', async () => {
    const outcome = await new Promise<string>((resolve) => {
      const req = request(`${base}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': '100' },
      });
      req.on('response', (res) => resolve(`answered ${res.statusCode}`));
      req.on('error', (err) => resolve(err.message));
      req.write('{"query":');
    });
    expect(outcome).toMatch(/socket hang up|ECONNRESET/);
    expect(logLines).toContainEqual(expect.objectContaining({ msg: 'request body stalled; connection cut' }));
  });
});
