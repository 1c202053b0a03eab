import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createSubgraphFetcher, isQueryBody, type SubgraphFetcher } from './subgraph-client.js';

const QUERY = JSON.stringify({ query: '{ me { id } }', variables: {} });
const NAMED_QUERY = JSON.stringify({ query: 'query Me__users__0{me{id}}', variables: {} });
const MUTATION = JSON.stringify({ query: 'mutation { signOut }', variables: {} });

interface Received {
  body: string;
  authorization: string | undefined;
  socket: Socket;
  res: ServerResponse;
}

/** A subgraph stand-in: records every request and the connections it got; answers as the test says. */
async function subgraph(answer: (req: Received, nthOnSocket: number) => void = (r) => json(r.res, { data: {} })) {
  const received: Received[] = [];
  const sockets = new Set<Socket>();
  const perSocket = new Map<Socket, number>();
  const waiters: { count: number; resolve: () => void }[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const nth = (perSocket.get(req.socket) ?? 0) + 1;
      perSocket.set(req.socket, nth);
      const entry = { body, authorization: req.headers.authorization, socket: req.socket, res };
      received.push(entry);
      for (const w of waiters.filter((w) => received.length >= w.count)) w.resolve();
      answer(entry, nth);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (socket: Socket) => sockets.add(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/graphql`,
    received,
    /** Every connection ever opened to it. */
    connections: () => sockets.size,
    /** Resolves once `count` requests have arrived. */
    arrived: (count: number) =>
      new Promise<void>((resolve) => {
        if (received.length >= count) resolve();
        else waiters.push({ count, resolve });
      }),
  };
}

function json(res: ServerResponse, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const servers: Server[] = [];
const fetchers: SubgraphFetcher[] = [];
afterEach(async () => {
  for (const f of fetchers.splice(0)) f.close();
  await Promise.all(
    servers.splice(0).map(
      (s) =>
        new Promise((resolve) => {
          s.closeAllConnections();
          s.close(resolve);
        }),
    ),
  );
});

function fetcherWith(options: Parameters<typeof createSubgraphFetcher>[0] = {}): SubgraphFetcher {
  const fetcher = createSubgraphFetcher(options);
  fetchers.push(fetcher);
  return fetcher;
}

const post = (body: string, authorization?: string) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
  body,
});

describe('isQueryBody', () => {
  it.each([
    [QUERY, true],
    [NAMED_QUERY, true],
    [
      JSON.stringify({
        query: 'query($representations:[_Any!]!){_entities(representations:$representations){__typename}}',
      }),
      true,
    ],
    [JSON.stringify({ query: '\n  query { a }' }), true],
    [MUTATION, false],
    [JSON.stringify({ query: 'mutation Up__media__0($f:Upload!){uploadVideo(file:$f){id}}' }), false],
    [JSON.stringify({ query: 'subscription { jobUpdated { id } }' }), false],
    [JSON.stringify({ query: '# a comment\nquery { a }' }), false],
    [JSON.stringify({ query: 'queryish' }), false],
    [JSON.stringify({ variables: {}, query: '{ a }' }), false],
    [undefined, false],
  ])('%s → %s', (body, expected) => {
    expect(isQueryBody(body)).toBe(expected);
  });
});

describe('createSubgraphFetcher', () => {
  it('answers with the subgraph’s status, headers and whole body', async () => {
    const big = 'x'.repeat(1024 * 1024); // several chunks on the wire
    const upstream = await subgraph((r) => json(r.res, { data: { big } }));
    const res = await fetcherWith()(upstream.url, post(QUERY));

    expect(res.status).toBe(200);
    expect(res.ok).toBe(true);
    expect(res.headers.get('Content-Type')).toBe('application/json');
    expect(await res.json()).toEqual({ data: { big } });
    expect(upstream.received[0]?.body).toBe(QUERY);
  });

  it('sends request after request over one kept-alive connection', async () => {
    const upstream = await subgraph();
    const fetcher = fetcherWith();

    for (let i = 0; i < 5; i++) await (await fetcher(upstream.url, post(MUTATION))).text();

    expect(upstream.received).toHaveLength(5);
    expect(upstream.connections()).toBe(1);
  });

  it('opens at most maxSockets connections to a subgraph, queueing the requests beyond', async () => {
    const upstream = await subgraph();
    const fetcher = fetcherWith({ maxSockets: 2 });

    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => fetcher(upstream.url, post(JSON.stringify({ query: `{ n${i} }` })))),
    );

    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(upstream.received).toHaveLength(20);
    expect(upstream.connections()).toBeLessThanOrEqual(2);
  });

  it('sends a query once more when the server closed the reused connection before answering', async () => {
    // The second request on each connection finds it closed: the keep-alive race, made certain.
    const upstream = await subgraph((r, nth) => (nth === 1 ? json(r.res, { data: { ok: nth } }) : r.socket.destroy()));
    const fetcher = fetcherWith();
    await (await fetcher(upstream.url, post(QUERY))).text();

    const res = await fetcher(upstream.url, post(QUERY));

    expect(await res.json()).toEqual({ data: { ok: 1 } });
    expect(upstream.connections()).toBe(2);
  });

  it('never sends a mutation twice: a reused connection closed before the answer is the caller’s error', async () => {
    const upstream = await subgraph((r, nth) => (nth === 1 ? json(r.res, { data: {} }) : r.socket.destroy()));
    const fetcher = fetcherWith();
    await (await fetcher(upstream.url, post(MUTATION))).text();

    await expect(fetcher(upstream.url, post(MUTATION))).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(upstream.received.map((r) => r.body)).toEqual([MUTATION, MUTATION]);
  });

  it('does not resend a query that failed on a fresh connection', async () => {
    const upstream = await subgraph((r) => r.socket.destroy());

    await expect(fetcherWith()(upstream.url, post(QUERY))).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(upstream.received).toHaveLength(1);
  });

  it('gives up on a subgraph that does not answer within timeoutMs, as a dependency that is down', async () => {
    const upstream = await subgraph(() => undefined);

    const failure = fetcherWith({ timeoutMs: 200 })(upstream.url, post(QUERY));
    await expect(failure).rejects.toThrow(/did not answer/);
    // What makes the client's error SERVICE_UNAVAILABLE rather than INTERNAL (isDependencyDown).
    await expect(failure).rejects.toMatchObject({ code: 'ETIMEDOUT' });
  });

  it('refuses an answer larger than maxResponseBytes', async () => {
    const upstream = await subgraph((r) => json(r.res, { data: 'x'.repeat(10_000) }));

    await expect(fetcherWith({ maxResponseBytes: 1_000 })(upstream.url, post(QUERY))).rejects.toThrow(/more than/);
  });

  describe('in-flight deduplication', () => {
    /** A subgraph that holds every answer until the test releases them. */
    async function heldSubgraph() {
      const held: Received[] = [];
      const upstream = await subgraph((r) => held.push(r));
      const release = () => held.splice(0).forEach((r, i) => json(r.res, { data: { n: i, body: r.body } }));
      return { ...upstream, release };
    }

    it('shares one upstream request between identical concurrent queries of one viewer', async () => {
      const upstream = await heldSubgraph();
      const fetcher = fetcherWith();

      const pending = [1, 2, 3].map(() => fetcher(upstream.url, post(QUERY, 'Bearer alice')));
      await upstream.arrived(1);
      upstream.release();
      const bodies = await Promise.all((await Promise.all(pending)).map((r) => r.json()));

      expect(upstream.received).toHaveLength(1);
      expect(bodies).toEqual([1, 2, 3].map(() => ({ data: { n: 0, body: QUERY } })));
    });

    it('never shares between viewers, bodies or subgraphs', async () => {
      const upstream = await heldSubgraph();
      const other = await heldSubgraph();
      const fetcher = fetcherWith();

      const pending = [
        fetcher(upstream.url, post(QUERY, 'Bearer alice')),
        fetcher(upstream.url, post(QUERY, 'Bearer bob')),
        fetcher(upstream.url, post(QUERY)),
        fetcher(upstream.url, post(NAMED_QUERY, 'Bearer alice')),
        fetcher(other.url, post(QUERY, 'Bearer alice')),
      ];
      await upstream.arrived(4);
      await other.arrived(1);
      upstream.release();
      other.release();
      await Promise.all(pending);

      expect(upstream.received.map((r) => r.authorization)).toEqual([
        'Bearer alice',
        'Bearer bob',
        undefined,
        'Bearer alice',
      ]);
      expect(other.received).toHaveLength(1);
    });

    it('never shares mutations', async () => {
      const upstream = await heldSubgraph();
      const fetcher = fetcherWith();

      const pending = [1, 2, 3].map(() => fetcher(upstream.url, post(MUTATION, 'Bearer alice')));
      await upstream.arrived(3);
      upstream.release();
      await Promise.all(pending);

      expect(upstream.received).toHaveLength(3);
    });

    it('keeps nothing once the request is answered: the same query later goes upstream again', async () => {
      const upstream = await subgraph();
      const fetcher = fetcherWith();

      await (await fetcher(upstream.url, post(QUERY, 'Bearer alice'))).text();
      await (await fetcher(upstream.url, post(QUERY, 'Bearer alice'))).text();

      expect(upstream.received).toHaveLength(2);
    });

    it('is off with dedupe: false', async () => {
      const upstream = await heldSubgraph();
      const fetcher = fetcherWith({ dedupe: false });

      const pending = [1, 2].map(() => fetcher(upstream.url, post(QUERY, 'Bearer alice')));
      await upstream.arrived(2);
      upstream.release();
      await Promise.all(pending);

      expect(upstream.received).toHaveLength(2);
    });
  });
});
