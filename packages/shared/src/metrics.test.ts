import { createServer } from 'node:http';
import { ApolloServer, HeaderMap } from '@apollo/server';
import express from 'express';
import { GraphQLError } from 'graphql';
import { afterEach, describe, expect, it } from 'vitest';
import { listen } from './http.js';
import { boundedLabel, createMetrics, GraphQLMetrics, httpMetrics, metricsRoute, scrapedGauge } from './metrics.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

/** The value of the one series of `name` that has (at least) these labels, or undefined when there is none. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = new Map([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => found.get(k) === v)) return Number(match[3]);
  }
  return undefined;
}

describe('boundedLabel', () => {
  it('lets the first values through and folds every later new one into "other"', () => {
    const bound = boundedLabel(2);
    expect(['a', 'b', 'c', 'a', 'd', 'b'].map(bound)).toEqual(['a', 'b', 'other', 'a', 'other', 'b']);
  });
});

describe('HTTP metrics', () => {
  async function serve() {
    const metrics = createMetrics('test-http');
    const app = express();
    app.use(httpMetrics(metrics));
    metricsRoute(app, metrics);
    app.get('/files/:id', (_req, res) => {
      res.status(204).end();
    });
    const api = express.Router();
    api.get('/status', (_req, res) => {
      res.json({ ok: true });
    });
    app.use('/api', api);
    app.use('/graphql', (_req, res) => {
      res.status(400).json({});
    });
    const server = createServer(app);
    const url = await listen(server, 0, '127.0.0.1');
    closers.push(() => new Promise((resolve) => server.close(() => resolve())));
    return { url, scrape: async () => (await fetch(`${url}/metrics`)).text() };
  }

  it('labels requests with the route template, never the raw URL, and unmatched ones with a fixed label', async () => {
    const { url, scrape } = await serve();
    for (const id of ['a', 'b', 'c']) await fetch(`${url}/files/${id}`);
    await fetch(`${url}/api/status`);
    await fetch(`${url}/graphql`, { method: 'POST' });
    await fetch(`${url}/wp-login.php?user=admin`);
    await fetch(`${url}/files/x`, { method: 'PROPFIND' });

    const text = await scrape();
    const count = (method: string, route: string, status: string) =>
      sample(text, 'vidmp3_http_request_duration_seconds_count', { service: 'test-http', method, route, status });
    expect(count('GET', '/files/:id', '204')).toBe(3);
    expect(count('GET', '/api/status', '200')).toBe(1);
    expect(count('POST', '/graphql', '400')).toBe(1);
    expect(count('GET', 'unmatched', '404')).toBe(1);
    expect(count('OTHER', 'unmatched', '404')).toBe(1);
    expect(text).not.toContain('wp-login');
    expect(text).not.toMatch(/\/files\/[abc]"/);
  });

  it('serves the text exposition with default Node metrics and the service label, without counting scrapes', async () => {
    const { url, scrape } = await serve();
    const res = await fetch(`${url}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await scrape();
    expect(sample(text, 'process_cpu_user_seconds_total', { service: 'test-http' })).toBeGreaterThan(0);
    expect(text).toContain('# TYPE nodejs_eventloop_lag_seconds gauge');
    expect(text).not.toContain('route="/metrics"');
  });

  it('serves nothing when metrics are disabled', async () => {
    const metrics = createMetrics('off', { enabled: false });
    const app = express();
    metricsRoute(app, metrics);
    const server = createServer(app);
    const url = await listen(server, 0, '127.0.0.1');
    closers.push(() => new Promise((resolve) => server.close(() => resolve())));
    expect((await fetch(`${url}/metrics`)).status).toBe(404);
  });
});

describe('GraphQL metrics', () => {
  async function apollo() {
    const metrics = createMetrics('test-graphql', { enabled: false });
    const server = new ApolloServer({
      typeDefs: 'type Query { ok: Boolean, missing: Boolean }',
      resolvers: {
        Query: {
          ok: () => true,
          missing: () => {
            throw new GraphQLError('nope', { extensions: { code: 'NOT_FOUND' } });
          },
        },
      },
      plugins: [new GraphQLMetrics(metrics).plugin()],
    });
    await server.start();
    closers.push(() => server.stop());
    const post = (query: string) =>
      server.executeHTTPGraphQLRequest({
        httpGraphQLRequest: {
          method: 'POST',
          headers: new HeaderMap([['content-type', 'application/json']]),
          body: { query },
          search: '',
        },
        context: async () => ({}),
      });
    return { metrics, server, post };
  }

  it('counts operations by type and root field, invalid ones as unknown, whatever the client names them', async () => {
    const { metrics, server, post } = await apollo();
    await post('query Ping { ok }');
    await post('query Pong { ok }');
    await post('{ ok missing }');
    await post('{ ok');
    await post('query Invented { nope }');
    await post('query Lookup { missing }');
    await server.executeOperation({ query: 'query Event { ok }' });

    const { body: text } = await metrics.render();
    const ops = (type: string, field: string) =>
      sample(text, 'vidmp3_graphql_operations_total', { service: 'test-graphql', type, field });
    expect(ops('query', 'ok')).toBe(2);
    expect(ops('query', 'ok+')).toBe(1);
    expect(ops('unknown', 'unknown')).toBe(2);
    expect(ops('subscription_event', 'ok')).toBe(1);
    expect(text).not.toMatch(/Ping|Pong|Invented|Lookup|nope/);
    const errors = (type: string, field: string, code: string) =>
      sample(text, 'vidmp3_graphql_errors_total', { type, field, code });
    expect(errors('query', 'missing', 'NOT_FOUND')).toBe(1);
    expect(errors('unknown', 'unknown', 'GRAPHQL_PARSE_FAILED')).toBe(1);
    expect(errors('unknown', 'unknown', 'GRAPHQL_VALIDATION_FAILED')).toBe(1);
    expect(sample(text, 'vidmp3_graphql_operation_duration_seconds_count', { type: 'query', field: 'ok' })).toBe(2);
  });
});

describe('scrapedGauge', () => {
  it('reads its source once per cache period and shows every sample', async () => {
    const metrics = createMetrics('gauge', { enabled: false });
    let reads = 0;
    scrapedGauge(metrics, {
      name: 'test_jobs',
      help: 'jobs',
      labelNames: ['status'],
      cacheMs: 60_000,
      read: async () => {
        reads++;
        return [
          { labels: { status: 'QUEUED' }, value: 2 },
          { labels: { status: 'FAILED' }, value: 0 },
        ];
      },
    });
    const first = (await metrics.render()).body;
    await metrics.render();
    expect(reads).toBe(1);
    expect(sample(first, 'test_jobs', { status: 'QUEUED', service: 'gauge' })).toBe(2);
    expect(sample(first, 'test_jobs', { status: 'FAILED' })).toBe(0);
  });

  it('shows no value (NaN), rather than a stale one, when its source fails or is too slow', async () => {
    const metrics = createMetrics('gauge', { enabled: false });
    let mode: 'ok' | 'fail' | 'hang' = 'ok';
    const errors: unknown[] = [];
    scrapedGauge(metrics, {
      name: 'test_backlog',
      help: 'backlog',
      cacheMs: 0,
      timeoutMs: 50,
      onError: (err) => errors.push(err),
      read: () =>
        mode === 'ok'
          ? Promise.resolve([{ labels: {}, value: 7 }])
          : mode === 'fail'
            ? Promise.reject(new Error('database down'))
            : new Promise<never>(() => undefined),
    });
    const value = async () => sample((await metrics.render()).body, 'test_backlog', { service: 'gauge' });
    expect(await value()).toBe(7);
    mode = 'fail';
    expect(await value()).toBeNaN();
    mode = 'hang';
    expect(await value()).toBeNaN();
    mode = 'ok';
    expect(await value()).toBe(7);
    expect(errors).toHaveLength(2);
  });
});
