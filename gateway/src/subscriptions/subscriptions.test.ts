import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { buildSchema, graphql, GraphQLError, specifiedRules } from 'graphql';
import { createClient, type Client, type FormattedExecutionResult } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import jwt from 'jsonwebtoken';
import WebSocket, { WebSocketServer } from 'ws';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger, createTokenVerifier, listen, type Viewer } from '@vidmp3/shared';
import { ConfigSchema } from '../config.js';
import type { GatewayContext } from '../context.js';
import { operationLimits } from '../limits.js';
import {
  startSubscriptionServer,
  webSocketUrl,
  type JobQueryExecutor,
  type SubscriptionServerOptions,
} from './index.js';
import { planSubscription } from './plan.js';
import { JobRelay, RelayTarget } from './relay.js';
import { Connection, UpstreamHub } from './upstream.js';

// Node loads graphql-ws's `graphql` as CommonJS, while Vite would hand this file and the module under test
// graphql's ESM build (its "module" field): two instances, and graphql refuses schemas and errors made by the
// other one. Everything here uses Node's copy, the way the gateway runs in production.
vi.mock('graphql', async () => {
  const { createRequire } = await import('node:module');
  return createRequire(import.meta.url)('graphql') as object;
});

// The jobs subgraph's shape, cut down: the gateway validates against it, the fake jobs serves it.
const schema = buildSchema(/* GraphQL */ `
  type Query {
    job(id: ID!): Job
  }
  type Job {
    id: ID!
    status: String!
    progress: Float!
  }
  type Subscription {
    jobUpdated(id: ID!): Job!
    myJobUpdates: Job!
  }
`);

// ---------------------------------------------------------------------------------------------------------------
// Tokens, as the users service issues them

const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const strangerKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const verifier = createTokenVerifier({
  keys: async (kid) => (kid === 'k1' ? keys.publicKey : undefined),
  issuer: 'vidmp3',
  audience: 'vidmp3-api',
});

function tokenFor(userId: string, { expiresIn = 300, key = keys.privateKey } = {}): string {
  return jwt.sign({ sub: userId, exp: Math.floor(Date.now() / 1000) + expiresIn }, key, {
    algorithm: 'ES256',
    keyid: 'k1',
    issuer: 'vidmp3',
    audience: 'vidmp3-api',
  });
}

// ---------------------------------------------------------------------------------------------------------------
// State shared by the fake jobs subgraph (events) and the fake gateway executor (queries)

interface JobRow {
  id: string;
  owner: string;
  status: string;
  progress: number;
}
const jobs = new Map<string, JobRow>();

function addJob(id: string, owner: string): JobRow {
  const job = { id, owner, status: 'QUEUED', progress: 0 };
  jobs.set(id, job);
  return job;
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  jobs.clear();
});

/** One upstream subscription as the fake jobs serves it: events are pushed, `return()` is recorded. */
class Feed implements AsyncIterableIterator<unknown> {
  private readonly queue: unknown[] = [];
  private waiting: ((result: IteratorResult<unknown>) => void) | undefined;
  private ended = false;

  constructor(
    readonly field: 'jobUpdated' | 'myJobUpdates',
    readonly matches: (job: JobRow) => boolean,
    private readonly onEnd: (returned: boolean) => void,
  ) {}

  push(job: JobRow): void {
    const value = { [this.field]: { id: job.id } };
    const waiting = this.waiting;
    this.waiting = undefined;
    if (waiting) waiting({ value, done: false });
    else this.queue.push(value);
  }

  end(returned = false): void {
    if (this.ended) return;
    this.ended = true;
    this.waiting?.({ value: undefined, done: true });
    this.waiting = undefined;
    this.onEnd(returned);
  }

  async next(): Promise<IteratorResult<unknown>> {
    if (this.queue.length > 0) return { value: this.queue.shift(), done: false };
    if (this.ended) return { value: undefined, done: true };
    return new Promise((resolve) => (this.waiting = resolve));
  }

  async return(): Promise<IteratorResult<unknown>> {
    this.end(true);
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** The jobs subgraph's WebSocket side, as the gateway expects it: graphql-ws on /graphql, ids only. */
class FakeJobs {
  readonly feeds = new Set<Feed>();
  readonly connectionParams: unknown[] = [];
  /** Each subscription's own credentials (`extensions`), in the order they came. */
  readonly subscriptionCredentials: unknown[] = [];
  returned = 0;
  port = 0;
  private http: Server | undefined;
  private wss: WebSocketServer | undefined;

  get url(): string {
    return `http://127.0.0.1:${this.port}/graphql`;
  }

  get openSockets(): number {
    return this.wss?.clients.size ?? 0;
  }

  async start(): Promise<void> {
    this.http = createServer();
    this.wss = new WebSocketServer({ server: this.http, path: '/graphql' });
    const viewerOf = async (params: unknown): Promise<Viewer | null> => {
      const authorization = (params as { authorization?: string } | undefined)?.authorization;
      return verifier.authenticate(authorization);
    };
    const feed = (field: Feed['field'], matches: Feed['matches']) => {
      const created: Feed = new Feed(field, matches, (returned) => {
        this.feeds.delete(created);
        if (returned) this.returned++;
      });
      this.feeds.add(created);
      return created;
    };
    const notFound = () => new GraphQLError('Job not found', { extensions: { code: 'NOT_FOUND' } });
    const unauthenticated = () => new GraphQLError('Sign in first', { extensions: { code: 'UNAUTHENTICATED' } });
    useServer(
      {
        schema,
        // As jobs does: a subscription's own credentials (the gateway's shared sockets), else the socket's.
        context: (ctx, _id, payload) => {
          this.subscriptionCredentials.push(payload.extensions);
          return {
            params: payload.extensions?.authorization !== undefined ? payload.extensions : ctx.connectionParams,
          };
        },
        onConnect: (ctx) => {
          this.connectionParams.push(ctx.connectionParams);
        },
        roots: {
          subscription: {
            jobUpdated: async ({ id }: { id: string }, { params }: { params: unknown }) => {
              const viewer = await viewerOf(params);
              if (!viewer) throw unauthenticated();
              if (jobs.get(id)?.owner !== viewer.userId) throw notFound();
              return feed('jobUpdated', (job) => job.id === id);
            },
            myJobUpdates: async (_args: unknown, { params }: { params: unknown }) => {
              const viewer = await viewerOf(params);
              if (!viewer) throw unauthenticated();
              return feed('myJobUpdates', (job) => job.owner === viewer.userId);
            },
          },
        },
      },
      this.wss,
    );
    await listen(this.http, this.port, '127.0.0.1').then((url) => (this.port = Number(new URL(url).port)));
  }

  /** Dies the way a crashed replica does: connections cut, nothing said. */
  async crash(): Promise<void> {
    for (const socket of this.wss?.clients ?? []) socket.terminate();
    await new Promise((resolve) => this.wss?.close(resolve));
    await new Promise((resolve) => this.http?.close(resolve));
  }

  publish(job: JobRow): void {
    for (const feed of this.feeds) if (feed.matches(job)) feed.push(job);
  }

  /** A final state: the last event, then jobUpdated completes. */
  finish(job: JobRow): void {
    this.publish(job);
    for (const feed of [...this.feeds]) if (feed.field === 'jobUpdated' && feed.matches(job)) feed.end();
  }
}

async function startJobs(): Promise<FakeJobs> {
  const fake = new FakeJobs();
  await fake.start();
  cleanups.push(() => fake.crash());
  return fake;
}

// ---------------------------------------------------------------------------------------------------------------
// The gateway side: the module under test, on a plain HTTP server, with a query executor over `jobs`

interface Executed {
  query: string;
  variables: Record<string, unknown>;
  context: GatewayContext;
}

/** Stands in for Apollo: answers the per-event query from the same rows the events are about, as the viewer. */
function fakeExecutor(executed: Executed[]): JobQueryExecutor {
  return async (query, variables, context) => {
    executed.push({ query, variables, context });
    const result = await graphql({
      schema,
      source: query,
      variableValues: variables,
      rootValue: {
        job: ({ id }: { id: string }) => {
          const job = jobs.get(id);
          return job && job.owner === context.viewer?.userId ? { ...job } : null;
        },
      },
    });
    return { ...(result.data ? { data: result.data } : {}), errors: result.errors?.map((e) => e.toJSON()) };
  };
}

async function startGatewayWs(
  upstream: FakeJobs,
  { env = {}, ...overrides }: Partial<SubscriptionServerOptions> & { env?: Record<string, string> } = {},
) {
  const executed: Executed[] = [];
  const httpServer = createServer((_req, res) => res.writeHead(404).end());
  const url = await listen(httpServer, 0, '127.0.0.1');
  const server = startSubscriptionServer({
    httpServer,
    schema: () => schema,
    validationRules: operationLimits(ConfigSchema.parse(env)).validationRules,
    maxTokens: 2_000,
    verifier,
    allowedOrigins: ['https://app.example'],
    jobsUrl: upstream.url,
    execute: fakeExecutor(executed),
    logger: createLogger('test', 'silent'),
    exposeInternals: false,
    hideSchemaDetails: true,
    reconnect: { maxDelayMs: 200 },
    ...overrides,
  });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await server.close();
    await new Promise((resolve) => httpServer.close(resolve));
  };
  cleanups.push(close);
  return { url: webSocketUrl(`${url}/graphql`), executed, close };
}

function connect(
  url: string,
  options: { token?: string; origin?: string; params?: Record<string, unknown>; forwardedFor?: string } = {},
) {
  const { origin, forwardedFor } = options;
  class BrowserLikeWebSocket extends WebSocket {
    constructor(address: string | URL, protocols?: string | string[]) {
      super(address, protocols, {
        ...(origin ? { origin } : {}),
        ...(forwardedFor ? { headers: { 'x-forwarded-for': forwardedFor } } : {}),
      });
    }
  }
  const client = createClient({
    url,
    webSocketImpl: BrowserLikeWebSocket,
    connectionParams: options.params ?? (options.token ? { authorization: `Bearer ${options.token}` } : {}),
    retryAttempts: 0, // a refusal must reach the test, not be retried
  });
  cleanups.push(() => client.dispose());
  return client;
}

/** Subscribes and records what the client sees. */
function watch(client: Client, query: string, variables?: Record<string, unknown>) {
  const seen = {
    events: [] as FormattedExecutionResult<Record<string, unknown>, unknown>[],
    error: undefined as unknown,
    completed: false,
    unsubscribe: () => {},
    ended: undefined as unknown as Promise<void>,
  };
  seen.ended = new Promise<void>((resolve) => {
    seen.unsubscribe = client.subscribe(
      { query, ...(variables ? { variables } : {}) },
      {
        next: (event) => void seen.events.push(event),
        error: (err) => {
          seen.error = err;
          resolve();
        },
        complete: () => {
          seen.completed = true;
          resolve();
        },
      },
    );
  });
  return seen;
}

const watchJob = (client: Client, id: string) => watch(client, `subscription { jobUpdated(id: "${id}") { id } }`);
const closeCode = (err: unknown) => (err as { code?: number } | undefined)?.code;
const errorCodes = (errors: unknown) => (errors as { extensions?: { code?: string } }[]).map((e) => e.extensions?.code);

const WATCH_ONE = /* GraphQL */ `
  subscription Watch($job: ID!, $withProgress: Boolean!) {
    watched: jobUpdated(id: $job) {
      ...State
      done: progress @include(if: $withProgress)
    }
  }
  fragment State on Job {
    id
    status
  }
`;

// ---------------------------------------------------------------------------------------------------------------

describe('subscriptions through the gateway', () => {
  it("answers every job event with the client's selection, aliases and fragments included, then completes", async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream);
    const job = addJob('job-1', 'alice');
    const token = tokenFor('alice');
    const seen = watch(connect(gateway.url, { token }), WATCH_ONE, { job: 'job-1', withProgress: true });
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(1));

    Object.assign(job, { status: 'RUNNING', progress: 0.5 });
    upstream.publish(job);
    await vi.waitFor(() => expect(seen.events).toHaveLength(1));
    Object.assign(job, { status: 'SUCCEEDED', progress: 1 });
    upstream.finish(job);
    await seen.ended;

    expect(seen.events).toEqual([
      { data: { watched: { id: 'job-1', status: 'RUNNING', done: 0.5 } } },
      { data: { watched: { id: 'job-1', status: 'SUCCEEDED', done: 1 } } },
    ]);
    expect(seen.completed).toBe(true);
    // Upstream: the gateway's own socket, the caller's token on the subscription; per event: the caller as the
    // viewer, only the variables the selection uses.
    expect(upstream.connectionParams).toEqual([undefined]);
    expect(upstream.subscriptionCredentials).toEqual([
      { authorization: `Bearer ${token}`, requestId: expect.any(String) as string },
    ]);
    expect(gateway.executed[0]?.context.viewer?.userId).toBe('alice');
    expect(gateway.executed[0]?.variables).toEqual({ __id: 'job-1', withProgress: true });
    expect(gateway.executed[0]?.query).toContain('fragment State on Job');
  });

  it("sends each change of any of the caller's jobs on myJobUpdates, with a bare token in connectionParams", async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream);
    const first = addJob('job-1', 'alice');
    const second = addJob('job-2', 'alice');
    const client = connect(gateway.url, { params: { token: tokenFor('alice') } });
    const seen = watch(client, 'subscription { myJobUpdates { id status } }');
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(1));

    first.status = 'RUNNING';
    upstream.publish(first);
    await vi.waitFor(() => expect(seen.events).toHaveLength(1));
    second.status = 'FAILED';
    upstream.publish(second);
    await vi.waitFor(() => expect(seen.events).toHaveLength(2));

    expect(seen.events).toEqual([
      { data: { myJobUpdates: { id: 'job-1', status: 'RUNNING' } } },
      { data: { myJobUpdates: { id: 'job-2', status: 'FAILED' } } },
    ]);
    expect(seen.error).toBeUndefined();
  });

  it('refuses a page from an origin that is not allowed with 4403, and serves an allowed one', async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream);
    const token = tokenFor('alice');

    const refused = watch(
      connect(gateway.url, { token, origin: 'https://evil.example' }),
      'subscription { myJobUpdates { id } }',
    );
    await refused.ended;
    expect(closeCode(refused.error)).toBe(4403);

    addJob('job-1', 'alice');
    const allowed = watch(
      connect(gateway.url, { token, origin: 'https://app.example' }),
      'subscription { myJobUpdates { id } }',
    );
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(1));
    upstream.publish(jobs.get('job-1')!);
    await vi.waitFor(() => expect(allowed.events).toEqual([{ data: { myJobUpdates: { id: 'job-1' } } }]));
  });

  it('closes the connection with 4401 for a token it cannot verify, and when the token expires', async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream);

    const forged = watch(
      connect(gateway.url, { token: tokenFor('alice', { key: strangerKeys.privateKey }) }),
      'subscription { myJobUpdates { id } }',
    );
    const malformed = watch(
      connect(gateway.url, { params: { authorization: 'Basic YWxpY2U6c2VjcmV0' } }),
      'subscription { myJobUpdates { id } }',
    );
    // Expired a second ago: still within the verifier's clock tolerance, so only the expiry timer catches it.
    const expired = watch(
      connect(gateway.url, { token: tokenFor('alice', { expiresIn: -1 }) }),
      'subscription { myJobUpdates { id } }',
    );
    await Promise.all([forged.ended, malformed.ended, expired.ended]);

    expect(closeCode(forged.error)).toBe(4401);
    expect(closeCode(malformed.error)).toBe(4401);
    expect(closeCode(expired.error)).toBe(4401);
    expect(upstream.feeds.size).toBe(0);
  });

  it('refuses queries and mutations on the socket and points to HTTP', async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream);
    addJob('job-1', 'alice');

    const seen = watch(connect(gateway.url, { token: tokenFor('alice') }), '{ job(id: "job-1") { id } }');
    await seen.ended;

    expect(errorCodes(seen.error)).toEqual(['BAD_REQUEST']);
    expect(JSON.stringify(seen.error)).toMatch(/over HTTP/);
    expect(gateway.executed).toEqual([]);
  });

  it('applies the same operation limits as HTTP before anything is called upstream', async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream, { env: { MAX_ALIASES: '1' } });

    const seen = watch(
      connect(gateway.url, { token: tokenFor('alice') }),
      'subscription { a: jobUpdated(id: "job-1") { b: id c: status } }',
    );
    await seen.ended;

    expect(errorCodes(seen.error)).toEqual(['GRAPHQL_VALIDATION_FAILED']);
    expect(JSON.stringify(seen.error)).toMatch(/aliases limit of 1 exceeded/i);
    expect(upstream.connectionParams).toEqual([]);
  });

  it("forwards jobs' refusal with its code (NOT_FOUND for another user's job, UNAUTHENTICATED), then completes", async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream);
    addJob('job-1', 'alice');

    const foreign = watch(
      connect(gateway.url, { token: tokenFor('bob') }),
      'subscription { theirs: jobUpdated(id: "job-1") { id } }',
    );
    const anonymous = watch(connect(gateway.url), 'subscription { myJobUpdates { id } }');
    await Promise.all([foreign.ended, anonymous.ended]);

    expect(foreign.events).toEqual([
      { errors: [{ message: 'Job not found', path: ['theirs'], extensions: { code: 'NOT_FOUND' } }] },
    ]);
    expect(foreign.completed).toBe(true);
    expect(anonymous.events.map((e) => errorCodes(e.errors))).toEqual([['UNAUTHENTICATED']]);
    expect(anonymous.completed).toBe(true);
  });

  it('masks unexpected errors: no internal message or URL reaches the client', async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream, {
      execute: () => Promise.reject(new Error('connect ECONNREFUSED http://10.0.0.7:4003/graphql')),
    });
    const job = addJob('job-1', 'alice');
    const seen = watch(connect(gateway.url, { token: tokenFor('alice') }), 'subscription { myJobUpdates { id } }');
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(1));

    upstream.publish(job);
    await vi.waitFor(() => expect(seen.events).toHaveLength(1));

    expect(seen.events[0]).toEqual({
      data: null,
      errors: [{ message: 'Internal server error', extensions: { code: 'INTERNAL' } }],
    });
  });

  it('ends the upstream subscription when the client unsubscribes, and the upstream socket when it leaves', async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream);
    addJob('job-1', 'alice');
    const client = connect(gateway.url, { token: tokenFor('alice') });

    const first = watch(client, WATCH_ONE, { job: 'job-1', withProgress: false });
    const second = watch(client, 'subscription { myJobUpdates { id } }');
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(2));
    expect(upstream.openSockets).toBe(1); // one upstream connection per client connection

    first.unsubscribe();
    await vi.waitFor(() => expect(upstream.returned).toBe(1));
    expect(upstream.feeds.size).toBe(1);

    await client.dispose();
    await vi.waitFor(() => expect(upstream.returned).toBe(2));
    await vi.waitFor(() => expect(upstream.openSockets).toBe(0));
    expect(second.error).toBeUndefined();
  });

  it('abandons a connection attempt to a jobs replica that never answers when the client leaves', async () => {
    const accepted: Socket[] = [];
    // Takes the bytes, says nothing.
    const blackHole = createTcpServer((socket) => {
      accepted.push(socket);
      socket.resume();
    });
    await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => blackHole.close(resolve)));
    const { port } = blackHole.address() as AddressInfo;
    const gateway = await startGatewayWs(new FakeJobs(), { jobsUrl: `http://127.0.0.1:${port}/graphql` });
    const client = connect(gateway.url, { token: tokenFor('alice') });
    watch(client, 'subscription { myJobUpdates { id } }');
    await vi.waitFor(() => expect(accepted).toHaveLength(1));

    await client.dispose();

    await vi.waitFor(() => expect(accepted[0]!.closed).toBe(true));
  });

  it('keeps the subscription through a crash and restart of the jobs service', async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream);
    const job = addJob('job-1', 'alice');
    const seen = watch(connect(gateway.url, { token: tokenFor('alice') }), WATCH_ONE, {
      job: 'job-1',
      withProgress: true,
    });
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(1));
    job.progress = 0.25;
    upstream.publish(job);
    await vi.waitFor(() => expect(seen.events).toHaveLength(1));

    await upstream.crash();
    // Down until the gateway has tried to reconnect and been turned away (a port that resets what it accepts).
    let refused = 0;
    const down = createTcpServer((socket: Socket) => {
      refused++;
      socket.resetAndDestroy();
    });
    await new Promise<void>((resolve) => down.listen(upstream.port, '127.0.0.1', resolve));
    await vi.waitFor(() => expect(refused).toBeGreaterThan(0), { timeout: 10_000 });
    await new Promise((resolve) => down.close(resolve));
    await upstream.start(); // same port
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(1), { timeout: 5_000 });
    job.progress = 0.75;
    upstream.publish(job);
    await vi.waitFor(() => expect(seen.events).toHaveLength(2));

    expect(seen.events[1]).toEqual({ data: { watched: { id: 'job-1', status: 'QUEUED', done: 0.75 } } });
    expect(seen.error).toBeUndefined();
    expect(seen.completed).toBe(false);
  });

  it('resubscribes after a jobs restart with the freshest token of the clients still listening', async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream);
    addJob('job-1', 'alice');
    const older = tokenFor('alice', { expiresIn: 300 });
    const fresher = tokenFor('alice', { expiresIn: 600 });
    watchJob(connect(gateway.url, { token: older }), 'job-1');
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(1));
    watchJob(connect(gateway.url, { token: fresher }), 'job-1'); // joins the same upstream subscription
    await vi.waitFor(() => expect(gateway.executed).toHaveLength(0));

    await upstream.crash();
    await upstream.start();
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(1), { timeout: 5_000 });

    const sent = upstream.subscriptionCredentials as { authorization?: string }[];
    expect(sent.map((c) => c.authorization)).toEqual([`Bearer ${older}`, `Bearer ${fresher}`]);
  });

  it('says "going away" to every client on shutdown and leaves no upstream socket open', async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream);
    const seen = watch(connect(gateway.url, { token: tokenFor('alice') }), 'subscription { myJobUpdates { id } }');
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(1));

    await gateway.close();
    await seen.ended;

    expect(closeCode(seen.error)).toBe(1001);
    await vi.waitFor(() => expect(upstream.openSockets).toBe(0));
    expect(upstream.feeds.size).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Fan-out: upstream subscriptions and per-event queries shared between client subscriptions

/** A hub of upstream subscriptions of its own, to the fake jobs, that gives up at once when jobs goes away. */
function hubFor(upstream: FakeJobs): UpstreamHub {
  const hub = new UpstreamHub({
    url: webSocketUrl(upstream.url),
    attempts: 0,
    maxDelayMs: 100,
    sockets: 1,
    log: createLogger('test', 'silent'),
  });
  cleanups.push(() => hub.close());
  return hub;
}

/** A client subscription driven by hand (the way graphql-ws pulls it), on a hub of its own. */
async function relayFor(upstream: FakeJobs, executed: Executed[], userId: string, query: string) {
  const hub = hubFor(upstream);
  const plan = planSubscription(
    schema,
    { query },
    { rules: specifiedRules, maxTokens: 2_000, hideSchemaDetails: true },
  );
  if (Array.isArray(plan)) throw new Error(`not planned: ${plan.map((e) => e.message).join('; ')}`);
  const viewer = await verifier.verify(tokenFor(userId));
  const identity = { viewer, requestId: 'test', log: createLogger('test', 'silent'), ip: '127.0.0.1' };
  const connection = new Connection(identity, { close: () => undefined });
  const relay = new JobRelay(new RelayTarget(plan, connection, fakeExecutor(executed), hub));
  cleanups.push(() => relay.return());
  return relay;
}

describe('fan-out of job events to many clients', () => {
  it("shares one upstream subscription and one query per event among one user's clients watching one job", async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream);
    const job = addJob('job-1', 'alice');
    const variables = { job: 'job-1', withProgress: true };
    const first = watch(connect(gateway.url, { token: tokenFor('alice') }), WATCH_ONE, variables);
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(1));
    Object.assign(job, { status: 'RUNNING', progress: 0.5 });
    upstream.publish(job);
    await vi.waitFor(() => expect(first.events).toHaveLength(1));

    // A second tab joins the running subscription: it starts from the job's current state, jobs is not asked again.
    const second = watch(connect(gateway.url, { token: tokenFor('alice') }), WATCH_ONE, variables);
    await vi.waitFor(() => expect(second.events).toHaveLength(1));
    expect(upstream.feeds.size).toBe(1);
    expect(upstream.openSockets).toBe(1);
    expect(upstream.connectionParams).toHaveLength(1);
    expect(gateway.executed).toHaveLength(1);

    Object.assign(job, { status: 'SUCCEEDED', progress: 1 });
    upstream.finish(job);
    await Promise.all([first.ended, second.ended]);

    const states = [
      { data: { watched: { id: 'job-1', status: 'RUNNING', done: 0.5 } } },
      { data: { watched: { id: 'job-1', status: 'SUCCEEDED', done: 1 } } },
    ];
    expect(first.events).toEqual(states);
    expect(second.events).toEqual(states);
    expect(first.completed && second.completed).toBe(true);
    expect(gateway.executed).toHaveLength(2); // one per event, not one per client
    await vi.waitFor(() => expect(upstream.openSockets).toBe(0));
  });

  it('runs one query per distinct selection of the same job, and ends the upstream one with its last client', async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream);
    const job = addJob('job-1', 'alice');
    const client = connect(gateway.url, { token: tokenFor('alice') });
    const full = watch(client, WATCH_ONE, { job: 'job-1', withProgress: true });
    const brief = watch(client, WATCH_ONE, { job: 'job-1', withProgress: false });
    const alsoBrief = watch(client, WATCH_ONE, { job: 'job-1', withProgress: false });
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(1));
    // Every subscription has joined once each has seen a state (a later joiner starts from the current one).
    upstream.publish(job);
    await vi.waitFor(() => expect([full, brief, alsoBrief].every((w) => w.events.length === 1)).toBe(true));
    const before = gateway.executed.length;

    job.progress = 0.5;
    upstream.publish(job);
    await vi.waitFor(() => expect(full.events).toHaveLength(2));

    expect(gateway.executed.length - before).toBe(2);
    expect(brief.events).toHaveLength(1); // its selection did not change: nothing new to send
    full.unsubscribe();
    brief.unsubscribe();
    expect(upstream.returned).toBe(0);
    alsoBrief.unsubscribe();
    await vi.waitFor(() => expect(upstream.returned).toBe(1));
  });

  it('keeps users apart on one shared upstream socket: their own subscription and query, only their own jobs', async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream);
    const alicesJob = addJob('job-1', 'alice');
    const bobsJob = addJob('job-2', 'bob');
    const alice = watch(connect(gateway.url, { token: tokenFor('alice') }), 'subscription { myJobUpdates { id } }');
    const bobClient = connect(gateway.url, { token: tokenFor('bob') });
    const bob = watch(bobClient, 'subscription { myJobUpdates { id } }');
    const prying = watch(bobClient, 'subscription { jobUpdated(id: "job-1") { id } }');
    await prying.ended;
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(2));

    upstream.publish(alicesJob);
    await vi.waitFor(() => expect(alice.events).toHaveLength(1));
    upstream.publish(bobsJob);
    await vi.waitFor(() => expect(bob.events).toHaveLength(1));

    expect(prying.events.map((e) => errorCodes(e.errors))).toEqual([['NOT_FOUND']]);
    expect(alice.events).toEqual([{ data: { myJobUpdates: { id: 'job-1' } } }]);
    expect(bob.events).toEqual([{ data: { myJobUpdates: { id: 'job-2' } } }]);
    expect(gateway.executed.map((e) => e.context.viewer?.userId)).toEqual(['alice', 'bob']);
    expect(upstream.openSockets).toBe(1);
    expect(upstream.connectionParams).toEqual([undefined]);
  });

  it("refuses one user's subscription with a bad token without touching the others on the shared socket", async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream);
    const job = addJob('job-1', 'alice');
    const alice = watch(connect(gateway.url, { token: tokenFor('alice') }), 'subscription { myJobUpdates { id } }');
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(1));
    // A token the gateway accepted that jobs refuses (here: it expired between the two checks).
    const hub = hubFor(upstream);
    const mallory = new Connection(
      {
        viewer: {
          userId: 'alice',
          token: tokenFor('alice', { expiresIn: -60 }),
          expiresAt: new Date(Date.now() + 60_000),
        },
        requestId: 'r1',
        log: createLogger('test', 'silent'),
        ip: '127.0.0.1',
      },
      { close: () => undefined },
    );
    const refused = new Promise<unknown>((resolve) => {
      hub.join(
        {
          connection: mallory,
          changed: () => undefined,
          errors: resolve, // the fake refuses in its resolver; jobs refuses in onSubscribe (an error message)
          failed: resolve,
          completed: () => undefined,
        },
        { payload: { query: 'subscription { myJobUpdates { id } }' }, field: 'myJobUpdates', replaysCurrent: false },
      );
    });
    expect(errorCodes(await refused)).toEqual(['UNAUTHENTICATED']);

    upstream.publish(job);
    await vi.waitFor(() => expect(alice.events).toEqual([{ data: { myJobUpdates: { id: 'job-1' } } }]));
  });

  it('never sends the same state twice in a row', async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream);
    const job = addJob('job-1', 'alice');
    const seen = watch(connect(gateway.url, { token: tokenFor('alice') }), WATCH_ONE, {
      job: 'job-1',
      withProgress: true,
    });
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(1));

    job.progress = 0.5;
    upstream.publish(job);
    await vi.waitFor(() => expect(seen.events).toHaveLength(1));
    upstream.publish(job); // jobs heard of a change that changed nothing this selection shows
    await vi.waitFor(() => expect(gateway.executed).toHaveLength(2));
    job.progress = 0.6;
    upstream.publish(job);
    await vi.waitFor(() => expect(gateway.executed).toHaveLength(3));
    await vi.waitFor(() => expect(seen.events.length).toBeGreaterThanOrEqual(2));

    expect(seen.events.map((e) => (e.data?.watched as { done?: number } | undefined)?.done)).toEqual([0.5, 0.6]);
  });

  it('gives a client that stops reading the latest state instead of a backlog, and always the final state', async () => {
    const upstream = await startJobs();
    const job = addJob('job-1', 'alice');
    const executed: Executed[] = [];
    const relay = await relayFor(
      upstream,
      executed,
      'alice',
      'subscription { jobUpdated(id: "job-1") { status progress } }',
    );
    const heardTheEnd = vi.spyOn(relay, 'completed');
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(1));
    Object.assign(job, { status: 'RUNNING', progress: 0.1 });
    upstream.publish(job);
    expect(await relay.next()).toEqual({
      done: false,
      value: { data: { jobUpdated: { status: 'RUNNING', progress: 0.1 } } },
    });

    // The client does not read while the job moves on and finishes.
    for (const progress of [0.2, 0.4, 0.6, 0.8]) {
      job.progress = progress;
      upstream.publish(job);
    }
    Object.assign(job, { status: 'SUCCEEDED', progress: 1 });
    upstream.finish(job);
    await vi.waitFor(() => expect(heardTheEnd).toHaveBeenCalled());

    expect(await relay.next()).toEqual({
      done: false,
      value: { data: { jobUpdated: { status: 'SUCCEEDED', progress: 1 } } },
    });
    expect(await relay.next()).toEqual({ done: true, value: undefined });
    expect(executed).toHaveLength(2); // the skipped progress was never queried
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Limits per user and per address

type Opened = { connected: true; client: Client } | { connected: false; code: number | undefined; reason: string };

/** Opens a graphql-ws connection (connection_init sent at once) and says whether the gateway acknowledged it. */
function open(url: string, options: { token?: string; forwardedFor?: string } = {}): Promise<Opened> {
  const { forwardedFor } = options;
  class ForwardedWebSocket extends WebSocket {
    constructor(address: string | URL, protocols?: string | string[]) {
      super(address, protocols, forwardedFor ? { headers: { 'x-forwarded-for': forwardedFor } } : {});
    }
  }
  return new Promise((resolve) => {
    const client = createClient({
      url,
      webSocketImpl: ForwardedWebSocket,
      connectionParams: options.token ? { authorization: `Bearer ${options.token}` } : {},
      lazy: false,
      retryAttempts: 0,
      onNonLazyError: () => undefined,
      on: {
        connected: () => resolve({ connected: true, client }),
        closed: (event) => {
          const { code, reason } = event as { code?: number; reason?: string };
          resolve({ connected: false, code, reason: reason ?? '' });
        },
      },
    });
    cleanups.push(() => client.dispose());
  });
}

/** A socket that opens and never says connection_init: anonymous, never authenticated. */
function openSilent(
  url: string,
  forwardedFor?: string,
): Promise<{ socket: WebSocket; code?: number; reason?: string }> {
  const socket = new WebSocket(
    url,
    'graphql-transport-ws',
    forwardedFor ? { headers: { 'x-forwarded-for': forwardedFor } } : {},
  );
  cleanups.push(() => socket.terminate());
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    // A refusal comes as a close right after the open: wait for either the close or a quiet moment.
    socket.once('close', (code, reason) => resolve({ socket, code, reason: reason.toString() }));
    socket.once('open', () => {
      // The server's close frame, when it refuses, is its first message: a ping round trip proves there is none.
      socket.ping();
      socket.once('pong', () => resolve({ socket }));
    });
  });
}

async function openConnected(url: string, options: { token?: string; forwardedFor?: string } = {}): Promise<Client> {
  const opened = await open(url, options);
  if (!opened.connected) throw new Error(`expected the connection to be accepted, got ${opened.code} ${opened.reason}`);
  return opened.client;
}

describe('WebSocket limits per user and per address', () => {
  it("takes its limits from the gateway's settings: 10 sockets per user, 50 per address, 20 subscriptions per user", () => {
    const defaults = ConfigSchema.parse({});
    expect([
      defaults.MAX_WS_CONNECTIONS_PER_USER,
      defaults.MAX_WS_CONNECTIONS_PER_IP,
      defaults.MAX_SUBSCRIPTIONS_PER_USER,
    ]).toEqual([10, 50, 20]);
    expect(ConfigSchema.parse({ MAX_SUBSCRIPTIONS_PER_USER: '3' }).MAX_SUBSCRIPTIONS_PER_USER).toBe(3);
    expect(ConfigSchema.safeParse({ MAX_WS_CONNECTIONS_PER_IP: '0' }).success).toBe(false);
  });

  it("refuses a user's connection over the limit with 4429 while another user still connects, and counts a closed one as free", async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream, { limits: { connectionsPerUser: 2 } });
    const alice = tokenFor('alice');
    const first = await openConnected(gateway.url, { token: alice });
    await openConnected(gateway.url, { token: alice });

    const third = await open(gateway.url, { token: alice });
    expect(third).toEqual({
      connected: false,
      code: 4429,
      reason: expect.stringMatching(/too many connections/i) as string,
    });
    await openConnected(gateway.url, { token: tokenFor('bob') });

    await first.dispose();
    // The gateway counts the socket as gone when its close arrives: poll with fresh attempts.
    await vi.waitFor(async () => expect((await open(gateway.url, { token: alice })).connected).toBe(true));
  });

  it('counts every socket from one address, authenticated or not, and frees the slot when one closes', async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream, { limits: { connectionsPerAddress: 3 } });
    const silent = await openSilent(gateway.url); // never authenticates
    expect(silent.code).toBeUndefined();
    await openConnected(gateway.url); // anonymous: connection_init without a token
    await openConnected(gateway.url, { token: tokenFor('alice') });

    const anonymous = await openSilent(gateway.url);
    const signedIn = await open(gateway.url, { token: tokenFor('bob') });
    expect(anonymous.code).toBe(4429);
    expect(anonymous.reason).toMatch(/too many connections/i);
    expect(signedIn).toMatchObject({ connected: false, code: 4429 });

    silent.socket.close();
    await vi.waitFor(async () => expect((await open(gateway.url, { token: tokenFor('bob') })).connected).toBe(true));
  });

  it('counts IPv6 clients by their /64 behind a trusted proxy', async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream, {
      limits: { connectionsPerAddress: 2 },
      trustProxy: () => true,
    });
    await openConnected(gateway.url, { forwardedFor: '2001:db8:1:2::1' });
    await openConnected(gateway.url, { forwardedFor: '2001:db8:1:2:ffff:ffff:ffff:fffe' });

    const sameNetwork = await open(gateway.url, { forwardedFor: '2001:db8:1:2::77' });
    expect(sameNetwork).toMatchObject({ connected: false, code: 4429 });
    await openConnected(gateway.url, { forwardedFor: '2001:db8:1:3::1' });
  });

  it("refuses a user's subscription over the limit, across sockets, with QUOTA_EXCEEDED and the limit and use", async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream, { limits: { subscriptionsPerUser: 3 } });
    const alice = tokenFor('alice');
    // One job each: subscriptions to different jobs are different upstream subscriptions (the same one is shared).
    for (const id of ['a1', 'a2', 'a3', 'a4', 'a5']) addJob(id, 'alice');
    addJob('b1', 'bob');
    const one = connect(gateway.url, { token: alice });
    const two = connect(gateway.url, { token: alice });
    const first = watchJob(one, 'a1');
    watchJob(one, 'a2'); // keeps the socket open when the first one ends
    watchJob(two, 'a3');
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(3));

    const fourth = watchJob(two, 'a4');
    await fourth.ended;
    expect(fourth.error).toEqual([
      {
        message: expect.stringMatching(/at most 3/) as string,
        extensions: { code: 'QUOTA_EXCEEDED', quota: 'subscriptions', limit: 3, used: 3 },
      },
    ]);
    // Someone else's subscriptions are counted apart.
    watchJob(connect(gateway.url, { token: tokenFor('bob') }), 'b1');
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(4));

    // Ending one (the client completes it, its socket stays open) frees a slot.
    first.unsubscribe();
    await vi.waitFor(() => expect(upstream.returned).toBe(1));
    const again = watchJob(two, 'a5');
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(4));
    expect(again.error).toBeUndefined();
  });

  it('refuses a subscription over the limit for one address, whoever is signed in there, and gives it back', async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream, {
      limits: { subscriptionsPerUser: 5, subscriptionsPerAddress: 2 },
      trustProxy: () => true,
    });
    const here = '203.0.113.9';
    const first = watch(
      connect(gateway.url, { token: tokenFor('alice'), forwardedFor: here }),
      'subscription { myJobUpdates { id } }',
    );
    const bob = connect(gateway.url, { token: tokenFor('bob'), forwardedFor: here });
    watch(bob, 'subscription { myJobUpdates { id } }');
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(2));

    const third = watch(
      connect(gateway.url, { token: tokenFor('carol'), forwardedFor: here }),
      'subscription { myJobUpdates { id } }',
    );
    await third.ended;
    expect(third.error).toEqual([
      {
        message: expect.stringMatching(/at most 2 active at once per address/) as string,
        extensions: { code: 'QUOTA_EXCEEDED', quota: 'subscriptions', limit: 2, used: 2 },
      },
    ]);
    // Another address is counted apart; Carol's refused subscription took none of her own slots.
    watch(
      connect(gateway.url, { token: tokenFor('carol'), forwardedFor: '198.51.100.1' }),
      'subscription { myJobUpdates { id } }',
    );
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(3));

    first.unsubscribe();
    await vi.waitFor(() => expect(upstream.returned).toBe(1));
    addJob('b1', 'bob');
    const again = watchJob(bob, 'b1'); // Bob's myJobUpdates is running already: this one needs a feed of its own
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(3));
    expect(again.error).toBeUndefined();
  });

  it('gives back the subscriptions of a socket that closes, and of subscriptions that end upstream', async () => {
    const upstream = await startJobs();
    const gateway = await startGatewayWs(upstream, { limits: { subscriptionsPerUser: 2 } });
    const alice = tokenFor('alice');
    const job = addJob('job-1', 'alice');
    const leaving = connect(gateway.url, { token: alice });
    const finishing = watch(leaving, WATCH_ONE, { job: 'job-1', withProgress: false });
    watch(leaving, 'subscription { myJobUpdates { id } }');
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(2));

    // jobUpdated completes upstream when the job finishes: its slot is free again.
    job.status = 'SUCCEEDED';
    upstream.finish(job);
    await finishing.ended;
    const staying = connect(gateway.url, { token: alice });
    addJob('job-2', 'alice');
    watchJob(staying, 'job-2'); // (a second myJobUpdates of Alice would share the running one upstream)
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(2));

    // The socket with the other one goes away: its slot is free again.
    await leaving.dispose();
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(1));
    const last = watch(staying, 'subscription { myJobUpdates { id } }');
    await vi.waitFor(() => expect(upstream.feeds.size).toBe(2));
    expect(last.error).toBeUndefined();
  });
});
