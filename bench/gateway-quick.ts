// Quick gateway throughput check: three queries through the gateway of a system started by the e2e harness,
// a fixed number of keep-alive connections each sending its next request as soon as the previous answered,
// for a fixed time. Every response body is checked for data (an error or a missing field fails the run).
//
//   npm run build && npx tsx bench/gateway-quick.ts
//   BENCH_SECONDS=5 BENCH_CONNECTIONS=16 BENCH_DEDUPE=false npx tsx bench/gateway-quick.ts
import { Agent, request } from 'node:http';
import { graphql, signUpUser, uploadFile } from '../e2e/client.js';
import { startSystem } from '../e2e/harness.js';
import { sample } from '../e2e/fixtures.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 32);

interface Case {
  name: string;
  query: string;
  token?: string;
  /** Whether the parsed body carries what the query asked for. */
  ok(body: { data?: Record<string, unknown> | null; errors?: unknown[] }): boolean;
}

/** Sends `body` over `agent` and resolves with the status and text of the answer. */
function post(agent: Agent, url: URL, body: string, token?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function load(
  gatewayUrl: string,
  test: Case,
  forSeconds = seconds,
): Promise<{ rps: number; failures: number; firstFailure?: string }> {
  const url = new URL('/graphql', gatewayUrl);
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const body = JSON.stringify({ query: test.query });
  const until = Date.now() + forSeconds * 1000;
  let done = 0;
  let failures = 0;
  let firstFailure: string | undefined;
  const loop = async () => {
    while (Date.now() < until) {
      try {
        const res = await post(agent, url, body, test.token);
        const parsed = JSON.parse(res.text) as Parameters<Case['ok']>[0];
        if (res.status === 200 && !parsed.errors && test.ok(parsed)) done++;
        else {
          failures++;
          firstFailure ??= `${res.status} ${res.text.slice(0, 300)}`;
        }
      } catch (err) {
        failures++;
        firstFailure ??= String(err);
      }
    }
  };
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: connections }, loop));
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  agent.destroy();
  return { rps: Math.round(done / elapsed), failures, ...(firstFailure ? { firstFailure } : {}) };
}

// BENCH_DEDUPE=false: the gateway's in-flight dedupe off (every request of the 32 connections is the same
// query of the same viewer, so with dedupe on concurrent ones share upstream calls).
const system = await startSystem({ gateway: { SUBGRAPH_DEDUPE: process.env.BENCH_DEDUPE ?? 'true' } });
try {
  const user = await signUpUser(system.gatewayUrl);
  // One video and a (queued: no worker runs) conversion of it, so every list has an item to resolve.
  const uploaded = await uploadFile(system.gatewayUrl, await sample('faststart.mp4'), { token: user.token });
  const mediaId = uploaded.data?.uploadVideo.id;
  if (!mediaId) throw new Error(`upload failed: ${JSON.stringify(uploaded.errors)}`);
  const converted = await graphql(system.gatewayUrl, 'mutation ($id: ID!) { convertMedia(mediaId: $id) { id } }', {
    token: user.token,
    variables: { id: mediaId },
  });
  if (converted.errors) throw new Error(`convertMedia failed: ${JSON.stringify(converted.errors)}`);

  type Me = { me?: { email?: string; media?: { edges: unknown[] }; jobs?: { edges: unknown[] } } };
  const cases: Case[] = [
    { name: '{ __typename }', query: '{ __typename }', ok: (b) => b.data?.__typename === 'Query' },
    {
      name: 'me { id email }',
      query: '{ me { id email } }',
      token: user.token,
      ok: (b) => (b.data as Me | undefined)?.me?.email === user.email,
    },
    {
      name: '3 subgraphs',
      query:
        '{ me { email media(first: 5) { edges { node { id filename } } } jobs(first: 5) { edges { node { id status input { filename } } } } } }',
      token: user.token,
      ok: (b) => {
        const me = (b.data as Me | undefined)?.me;
        return me?.media?.edges.length === 1 && me.jobs?.edges.length === 1;
      },
    },
  ];
  console.log(`${connections} connections, ${seconds} s per query, dedupe ${process.env.BENCH_DEDUPE ?? 'true'}`);
  for (const test of cases) {
    await load(system.gatewayUrl, test, 2); // warm-up (JIT, connection pools), not counted
    const result = await load(system.gatewayUrl, test);
    console.log(JSON.stringify({ query: test.name, ...result }));
  }
} finally {
  await system.stop();
}
