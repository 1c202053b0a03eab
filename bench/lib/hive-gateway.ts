// Hive Gateway, the comparison for bench/gateway.ts: its runtime (`createGatewayRuntime`, what the
// `hive-gateway` CLI runs) served by node:http, over our committed supergraph and pointed at the subgraphs
// of the running system. Runs as a process of its own, like our gateway, so the two are measured alike;
// prints a JSON "ready" line with its URL, the form e2e/harness.ts `startService` waits for.
//
// Settings (environment, read here only: this is a benchmark fixture, not a service):
//   HIVE_SUPERGRAPH_PATH             the supergraph SDL file
//   HIVE_USERS_URL, HIVE_MEDIA_URL, HIVE_JOBS_URL   where each subgraph's /graphql really is
//   HIVE_DEDUPE=false                turn off the HTTP transport's in-flight request deduplication
//   PORT (0: any free port), HOST
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createGatewayRuntime } from '@graphql-hive/gateway-runtime';

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
  jobs: { location: need('HIVE_JOBS_URL') },
  // On by default in Hive Gateway; the documented switch is this option of every HTTP transport.
  ...(dedupe ? {} : { '*.http': { options: { deduplicateInflightRequests: false } } }),
};

const gateway = createGatewayRuntime({
  supergraph: readFileSync(need('HIVE_SUPERGRAPH_PATH'), 'utf8'),
  // The CLI's own default transport, named explicitly because the runtime alone resolves it by a dynamic
  // import of a package it does not depend on.
  transports: { http: import('@graphql-mesh/transport-http') },
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
server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const { address, port } = server.address() as AddressInfo;
  console.log(
    JSON.stringify({ level: 'info', msg: 'hive gateway ready', dedupe, url: `http://${address}:${port}/graphql` }),
  );
});

const stop = () => {
  server.closeAllConnections();
  server.close(() => void Promise.resolve(gateway.dispose()).then(() => process.exit(0)));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
