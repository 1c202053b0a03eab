// Hive Gateway, the comparison for bench/gateway.ts and bench/subscriptions.ts: its runtime
// (`createGatewayRuntime`, what the `hive-gateway` CLI runs) served by node:http, with graphql-ws on the same
// `/graphql` as the CLI serves it, over our committed supergraph and pointed at the subgraphs of the running
// system. Subscriptions go to jobs over graphql-ws (jobs serves no SSE), one socket per distinct token, the
// client's token in `connectionParams` as our gateway sends it. Runs as a process of its own, like our
// gateway, so the two are measured alike; prints a JSON "ready" line with its URL, the form e2e/harness.ts
// `startService` waits for.
//
// Settings (environment, read here only: this is a benchmark fixture, not a service):
//   HIVE_SUPERGRAPH_PATH             the supergraph SDL file
//   HIVE_USERS_URL, HIVE_MEDIA_URL, HIVE_JOBS_URL   where each subgraph's /graphql really is
//   HIVE_DEDUPE=false                turn off the HTTP transport's in-flight request deduplication
//   PORT (0: any free port), HOST
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createGatewayRuntime, getGraphQLWSOptions } from '@graphql-hive/gateway-runtime';
import { useServer, type Extra } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';

const need = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};

const dedupe = process.env.HIVE_DEDUPE !== 'false';
// The supergraph's routing URLs are the development ports; each subgraph's entry overrides its location.
const transportEntries = {
  users: { location: need('HIVE_USERS_URL') },
  media: { location: need('HIVE_MEDIA_URL') },
  jobs: {
    location: need('HIVE_JOBS_URL'),
    options: {
      // Relative to `location`: jobs serves graphql-ws on its /graphql. `{context.headers…}` is the client's
      // HTTP headers, and for a graphql-ws client its connectionParams (the runtime merges them in).
      subscriptions: {
        kind: 'ws',
        location: '/graphql',
        options: { connectionParams: { authorization: '{context.headers.authorization}' } },
      },
    },
  },
  // On by default in Hive Gateway; the documented switch is this option of every HTTP transport.
  ...(dedupe ? {} : { '*.http': { options: { deduplicateInflightRequests: false } } }),
};

const gateway = createGatewayRuntime({
  supergraph: readFileSync(need('HIVE_SUPERGRAPH_PATH'), 'utf8'),
  // The CLI's own default transport, named explicitly because the runtime alone resolves it by a dynamic
  // import of a package it does not depend on.
  transports: { http: import('@graphql-mesh/transport-http'), ws: import('@graphql-mesh/transport-ws') },
  transportEntries,
  // The subgraphs authenticate the caller themselves, so the token must reach them.
  propagateHeaders: {
    fromClientToSubgraphs: ({ request }) => {
      const authorization = request.headers.get('authorization');
      return authorization ? { authorization } : {};
    },
  },
});

const server = createServer(gateway);
// As the CLI's node:http server does it (graphql-ws next to HTTP on the GraphQL endpoint), plus a `request`:
// without one `propagateHeaders` sends nothing, and users and media would answer the entity fetches of each
// event without the client's token. That request is the upgrade request with the connectionParams as headers,
// as the runtime's own context treats them.
const wss = new WebSocketServer({ server, path: gateway.graphqlEndpoint });
useServer(
  getGraphQLWSOptions<Record<string, unknown>, Extra>(gateway, (ctx) => {
    const headers = new Headers();
    for (const [name, value] of Object.entries(ctx.extra.request.headers)) {
      if (typeof value === 'string') headers.set(name, value);
    }
    for (const [name, value] of Object.entries(ctx.connectionParams ?? {})) {
      if (typeof value === 'string') headers.set(name, value);
    }
    const url = `http://${ctx.extra.request.headers.host ?? '127.0.0.1'}${ctx.extra.request.url ?? '/'}`;
    return { req: ctx.extra.request, socket: ctx.extra.socket, request: new Request(url, { headers }) };
  }),
  wss,
);
server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const { address, port } = server.address() as AddressInfo;
  console.log(
    JSON.stringify({ level: 'info', msg: 'hive gateway ready', dedupe, url: `http://${address}:${port}/graphql` }),
  );
});

const stop = () => {
  for (const client of wss.clients) client.terminate();
  server.closeAllConnections();
  server.close(() => void Promise.resolve(gateway.dispose()).then(() => process.exit(0)));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
