// Query cost and cycles through a running system: the worst nested queries are refused at the gateway, on HTTP and
// on the WebSocket, before any subgraph hears of them; a video's conversions come a page at a time.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { createClient, type Client } from 'graphql-ws';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import WebSocket from 'ws';
import { errorCode, graphql, signUpUser, uploadFile, type GraphQLErrorBody, type SignedUp } from './client.js';
import { sample } from './fixtures.js';
import { startService, startSystem, stopService, type ServiceProcess, type System } from './harness.js';

/** A TCP proxy in front of a subgraph that counts the bytes the gateway sends it. */
interface Tap {
  url: string;
  bytes: number;
  close(): Promise<void>;
}

async function tap(target: string): Promise<Tap> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  const counter: Tap = { url: '', bytes: 0, close: () => Promise.resolve() };
  const server: Server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (chunk: Buffer) => {
      counter.bytes += chunk.length;
    });
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('the tap has no port');
  counter.url = `http://127.0.0.1:${address.port}`;
  counter.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  };
  return counter;
}

let system: System;
/** A second gateway, with the default limits, whose every subgraph is reached through a tap. */
let gateway: ServiceProcess;
let taps: Record<'users' | 'media' | 'jobs', Tap>;
let alice: SignedUp;
let bob: SignedUp;
let videoId: string;
/** Alice's three conversions of the video, newest first. */
let jobIds: string[];

beforeAll(async () => {
  system = await startSystem();
  const url = (name: string) => system.services[name]!.url;
  taps = { users: await tap(url('users')), media: await tap(url('media')), jobs: await tap(url('jobs')) };
  gateway = await startService('gateway-tapped', 'gateway/dist/main.js', {
    ...system.services.gateway!.env,
    PORT: '0',
    SUBGRAPH_USERS_URL: `${taps.users.url}/graphql`,
    SUBGRAPH_MEDIA_URL: `${taps.media.url}/graphql`,
    SUBGRAPH_JOBS_URL: `${taps.jobs.url}/graphql`,
  });
  [alice, bob] = await Promise.all([signUpUser(system.gatewayUrl), signUpUser(system.gatewayUrl)]);
  const uploaded = await uploadFile(system.gatewayUrl, await sample('faststart.mp4'), { token: alice.token });
  expect(uploaded.errors, JSON.stringify(uploaded.errors)).toBeUndefined();
  videoId = uploaded.data!.uploadVideo.id;
  // No worker runs: the jobs stay QUEUED, which is all a list needs.
  const created: string[] = [];
  for (let i = 0; i < 3; i++) {
    const res = await graphql<{ convertMedia: { id: string } }>(
      system.gatewayUrl,
      'mutation ($id: ID!) { convertMedia(mediaId: $id) { id } }',
      { token: alice.token, variables: { id: videoId } },
    );
    expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
    created.push(res.data!.convertMedia.id);
  }
  jobIds = created.reverse();
}, 120_000);
afterAll(async () => {
  if (gateway) await stopService(gateway);
  await Promise.all(Object.values(taps ?? {}).map((t) => t.close()));
  await system?.stop();
});
beforeEach(() =>
  onTestFailed(() =>
    console.error(`${system.logs()}\n${gateway?.logs.map((l) => `[gateway-tapped] ${l}`).join('\n')}`),
  ),
);

const subgraphBytes = () => taps.users.bytes + taps.media.bytes + taps.jobs.bytes;

const CONVERSIONS_PAGE = `query ($id: ID!, $first: Int, $after: String) {
  media(id: $id) { conversions(first: $first, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } }
}`;

interface ConversionsPage {
  media: { conversions: { edges: { node: { id: string } }[]; pageInfo: { hasNextPage: boolean; endCursor: string } } };
}

describe("a video's conversions", () => {
  it('come a page at a time, newest first, and the next page starts after the cursor', async () => {
    const before = taps.jobs.bytes;
    const first = await graphql<ConversionsPage>(gateway.url, CONVERSIONS_PAGE, {
      token: alice.token,
      variables: { id: videoId, first: 2 },
    });
    expect(first.errors, JSON.stringify(first.errors)).toBeUndefined();
    expect(first.data!.media.conversions.edges.map((e) => e.node.id)).toEqual(jobIds.slice(0, 2));
    expect(first.data!.media.conversions.pageInfo.hasNextPage).toBe(true);
    // The tapped gateway does reach the jobs subgraph when an operation is allowed.
    expect(taps.jobs.bytes).toBeGreaterThan(before);

    const next = await graphql<ConversionsPage>(gateway.url, CONVERSIONS_PAGE, {
      token: alice.token,
      variables: { id: videoId, first: 2, after: first.data!.media.conversions.pageInfo.endCursor },
    });
    expect(next.errors, JSON.stringify(next.errors)).toBeUndefined();
    expect(next.data!.media.conversions.edges.map((e) => e.node.id)).toEqual(jobIds.slice(2));
    expect(next.data!.media.conversions.pageInfo.hasNextPage).toBe(false);
  });

  it('default to a page of 20 and refuse a page over 100 with BAD_USER_INPUT', async () => {
    const all = await graphql<ConversionsPage>(gateway.url, CONVERSIONS_PAGE, {
      token: alice.token,
      variables: { id: videoId },
    });
    expect(all.data!.media.conversions.edges.map((e) => e.node.id)).toEqual(jobIds);

    const tooMany = await graphql(gateway.url, CONVERSIONS_PAGE, {
      token: alice.token,
      variables: { id: videoId, first: 101 },
    });
    expect(errorCode(tooMany)).toBe('BAD_USER_INPUT');
  });

  it("are nobody else's to read: another user gets NOT_FOUND for the video", async () => {
    const res = await graphql<ConversionsPage>(gateway.url, CONVERSIONS_PAGE, {
      token: bob.token,
      variables: { id: videoId },
    });
    expect(errorCode(res)).toBe('NOT_FOUND');
    expect(res.data?.media ?? null).toBeNull();
  });
});

// The issue's query, `job(id){input{conversions{input{conversions{input{conversions{id}}}}}}}`, in the
// connection shape, and its relatives through media(id) and with lists that are merely too large.
const worstQueries: [string, string][] = [
  [
    'job → input → conversions → input → conversions → input → conversions',
    `query ($id: ID!) { job(id: $id) { input { conversions(first: 100) { edges { node { input { conversions(first: 100)
      { edges { node { input { conversions(first: 100) { edges { node { id } } } } } } } } } } } } } }`,
  ],
  [
    'job → input → conversions → input (within the depth limit)',
    'query ($id: ID!) { job(id: $id) { input { conversions { edges { node { input { id } } } } } } }',
  ],
  [
    'media → conversions → input → conversions',
    `query ($id: ID!) { media(id: $id) { conversions(first: 100) { edges { node { input { conversions(first: 100)
      { edges { node { id } } } } } } } } }`,
  ],
  [
    'pages sized by variables: 100 jobs, each with 100 conversions of its input',
    `query ($id: ID!, $n: Int) { job(id: $id) { id } me { jobs(first: $n) { edges { node { input {
      conversions(first: $n) { edges { node { id } } } } } } } } }`,
  ],
  [
    'a page of 100 jobs, each with 100 conversions of its input',
    '{ me { jobs(first: 100) { edges { node { input { conversions(first: 100) { edges { node { id } } } } } } } } }',
  ],
];

/** Every error a refusal carries is a validation error, and one of them is ours, naming the limit. */
function expectRefused(errors: readonly GraphQLErrorBody[] | undefined) {
  expect(errors?.length).toBeGreaterThan(0);
  expect(errors!.map((e) => e.extensions?.code)).toEqual(errors!.map(() => 'GRAPHQL_VALIDATION_FAILED'));
  expect(errors!.map((e) => e.message).join('\n')).toMatch(/Cyclic selection: |Query cost limit of 5000 exceeded/);
}

describe('the worst nested queries', () => {
  it.each(worstQueries)('are refused over HTTP before any subgraph hears of them: %s', async (_name, query) => {
    const before = subgraphBytes();
    const res = await graphql(gateway.url, query, { token: alice.token, variables: { id: jobIds[0], n: 100 } });
    expect(res.status).toBe(400);
    expect(res.data ?? null).toBeNull();
    expectRefused(res.errors);
    expect(subgraphBytes()).toBe(before);
  });

  it('refuses them for an anonymous caller too (limits come before authentication matters)', async () => {
    const before = subgraphBytes();
    const res = await graphql(gateway.url, worstQueries[0]![1], { variables: { id: jobIds[0] } });
    expectRefused(res.errors);
    expect(subgraphBytes()).toBe(before);
  });
});

function subscriber(user: SignedUp): Client {
  return createClient({
    url: `${gateway.url.replace('http', 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${user.token}` },
    retryAttempts: 0,
  });
}

/** The first message of a subscription, or the errors it was refused with. */
async function firstMessage(query: string, variables: Record<string, unknown> = {}) {
  const client = subscriber(alice);
  const iterator = client.iterate({ query, variables });
  try {
    const next = await iterator.next();
    return { result: next.done ? undefined : next.value, refused: undefined };
  } catch (err) {
    return { result: undefined, refused: err as GraphQLErrorBody[] };
  } finally {
    await iterator.return?.();
    await client.dispose();
  }
}

describe('the worst nested subscriptions', () => {
  it.each([
    [
      'myJobUpdates → input → conversions → input → conversions',
      `subscription { myJobUpdates { input { conversions(first: 100) { edges { node { input { conversions(first: 100)
        { edges { node { id } } } } } } } } } }`,
    ],
    [
      'jobUpdated → input → conversions → input',
      'subscription ($id: ID!) { jobUpdated(id: $id) { input { conversions { edges { node { input { id } } } } } } }',
    ],
    [
      'jobUpdated with 100 conversions of 100 conversions',
      `subscription ($id: ID!) { jobUpdated(id: $id) { input { conversions(first: 100) { edges { node { output {
        conversions(first: 100) { edges { node { id } } } } } } } } } }`,
    ],
  ])('are refused on the WebSocket before any subgraph hears of them: %s', async (_name, query) => {
    const before = subgraphBytes();
    const { result, refused } = await firstMessage(query, { id: jobIds[0] });
    expect(result).toBeUndefined();
    expectRefused(refused);
    expect(subgraphBytes()).toBe(before);
  });

  it("still deliver a job's state with one page of its input's conversions", async () => {
    const { result, refused } = await firstMessage(
      'subscription ($id: ID!) { jobUpdated(id: $id) { id status input { conversions(first: 5) { edges { node { id } } } } } }',
      { id: jobIds[0] },
    );
    expect(refused).toBeUndefined();
    expect(result?.errors).toBeUndefined();
    expect(result?.data).toEqual({
      jobUpdated: {
        id: jobIds[0],
        status: 'QUEUED',
        input: { conversions: { edges: jobIds.map((id) => ({ node: { id } })) } },
      },
    });
  });
});
