import { readFileSync } from 'node:fs';
import { parse } from 'graphql';
import {
  createLogger,
  createTokenVerifier,
  jwksKeyResolver,
  onShutdown,
  runService,
  startSubgraphServer,
  type RequestContext,
} from '@vidmp3/shared';
import { readConfig } from './config.js';

// Placeholder until issue #3: serves health routes and an empty subgraph schema, nothing more.
const config = readConfig();
const logger = createLogger('media', config.LOG_LEVEL);
const typeDefs = parse(readFileSync(new URL('../schema.graphql', import.meta.url), 'utf8'));

runService(logger, async () => {
  const server = await startSubgraphServer<RequestContext>(
    {
      service: 'media',
      typeDefs,
      resolvers: {},
      logger,
      verifier: createTokenVerifier({
        keys: jwksKeyResolver(config.JWKS_URL),
        issuer: config.JWT_ISSUER,
        audience: config.JWT_AUDIENCE,
      }),
      production: config.NODE_ENV === 'production',
      trustProxy: config.TRUST_PROXY,
      readiness: {},
      context: (base) => base,
    },
    { port: config.PORT, host: config.HOST },
  );
  onShutdown(logger, () => server.close());
});
