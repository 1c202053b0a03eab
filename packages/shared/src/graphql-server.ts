import { createServer, type Server } from 'node:http';
import { ApolloServer, type ApolloServerPlugin, type BaseContext, type GraphQLRequestListener } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import {
  ApolloServerPluginInlineTraceDisabled,
  ApolloServerPluginLandingPageDisabled,
} from '@apollo/server/plugin/disabled';
import { expressMiddleware } from '@as-integrations/express5';
import { buildSubgraphSchema } from '@apollo/subgraph';
import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper/resolverMap.js';
import express, { type Express, type Request, type RequestHandler } from 'express';
import type { DocumentNode, GraphQLSchema } from 'graphql';
import type { TokenVerifier, Viewer } from './auth.js';
import { createFormatError, isPublicError } from './errors.js';
import {
  accessLog,
  applyServerTimeouts,
  closeAfterEarlyAnswer,
  defaultHttpTimeouts,
  healthRoutes,
  listen,
  requestBodyDeadline,
  requestContext,
  type HttpTimeouts,
  type ReadinessChecks,
} from './http.js';
import type { Logger } from './logger.js';
import { GraphQLMetrics, httpMetrics, metricsRoute, type Metrics } from './metrics.js';

/** What every resolver context starts from. */
export interface RequestContext {
  viewer: Viewer | null;
  requestId: string;
  log: Logger;
  /** The client's address as the gateway saw it (trusted proxies only). */
  ip: string;
}

/** Logs each unexpected error once, with the request id, before formatError masks it. */
export function errorLoggingPlugin<Ctx extends { log: Logger }>(): ApolloServerPlugin<Ctx> {
  // One listener for every request (it reads all it needs from the hook's arguments): nothing allocated per request.
  const listener: GraphQLRequestListener<Ctx> = {
    async didEncounterErrors({ errors, contextValue }) {
      for (const error of errors) {
        if (!isPublicError(error)) contextValue.log.error({ err: error.originalError ?? error }, error.message);
      }
    },
  };
  return { requestDidStart: () => Promise.resolve(listener) };
}

export interface SubgraphServerOptions<Ctx extends BaseContext> {
  service: string;
  typeDefs: DocumentNode;
  resolvers: GraphQLResolverMap<Ctx>;
  logger: Logger;
  verifier: TokenVerifier;
  production: boolean;
  /** Express `trust proxy`: whose X-Forwarded-For to believe (the gateway's). */
  trustProxy: string;
  /** After SIGTERM, how long requests in flight may take before their connections are cut (default 10 s). */
  shutdownGraceMs?: number;
  readiness: ReadinessChecks;
  context: (base: RequestContext) => Ctx;
  /** Extra routes (JWKS, files, internal APIs), mounted before /graphql. */
  routes?: (app: Express) => void;
  /** Runs on /graphql before the JSON parser, e.g. the multipart (file upload) parser. */
  graphqlMiddleware?: RequestHandler[];
  /** HTTP and GraphQL figures are recorded here and served on `/metrics` (unless disabled). */
  metrics?: Metrics;
  /** How long request bodies may take (`httpTimeouts(config, maxUploadBytes)`); default: JSON bodies only. */
  timeouts?: HttpTimeouts;
}

export interface RunningServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

export interface RunningSubgraph extends RunningServer {
  /** The executable subgraph schema, for transports besides HTTP (graphql-ws). */
  schema: GraphQLSchema;
}

/** The HTTP shell every subgraph shares: request ids, health, auth, error masking, graceful drain. */
export async function startSubgraphServer<Ctx extends RequestContext>(
  options: SubgraphServerOptions<Ctx>,
  listenOn: { port: number; host: string },
): Promise<RunningSubgraph> {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', options.trustProxy);
  const httpServer = createServer(app);
  const timeouts = options.timeouts ?? defaultHttpTimeouts();
  applyServerTimeouts(httpServer, timeouts);
  // The resolver map is typed with this service's context; Apollo's signature only knows `unknown`.
  const schema = buildSubgraphSchema({
    typeDefs: options.typeDefs,
    resolvers: options.resolvers as GraphQLResolverMap<unknown>,
  });
  const apollo = new ApolloServer<Ctx>({
    schema,
    introspection: !options.production,
    includeStacktraceInErrorResponses: false,
    // SIGTERM is the service's (onShutdown). Apollo's own handler, installed whenever NODE_ENV is not `test`, stops
    // the server too and then raises the signal again, which onShutdown takes for a second one: exit 1, mid-close.
    stopOnTerminationSignals: false,
    formatError: createFormatError({ exposeInternals: !options.production }),
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer, stopGracePeriodMillis: options.shutdownGraceMs ?? 10_000 }),
      ApolloServerPluginLandingPageDisabled(),
      // Per-field timings are for Apollo Studio, which this deployment does not report to.
      ApolloServerPluginInlineTraceDisabled(),
      errorLoggingPlugin<Ctx>(),
      ...(options.metrics ? [new GraphQLMetrics(options.metrics).plugin<Ctx>()] : []),
    ],
  });
  await apollo.start();

  app.use(requestContext(options.logger));
  app.use(requestBodyDeadline(timeouts));
  app.use(closeAfterEarlyAnswer());
  app.use(accessLog());
  if (options.metrics) {
    app.use(httpMetrics(options.metrics));
    metricsRoute(app, options.metrics);
  }
  healthRoutes(app, options.readiness);
  options.routes?.(app);
  app.use(
    '/graphql',
    ...(options.graphqlMiddleware ?? []),
    express.json({ limit: '1mb' }),
    expressMiddleware(apollo, {
      context: async ({ req }) => options.context(await baseContext(req, options.verifier)),
    }),
  );

  const url = await listen(httpServer, listenOn.port, listenOn.host);
  options.logger.info({ url: `${url}/graphql` }, `${options.service} subgraph ready`);
  return { url, server: httpServer, schema, close: () => apollo.stop() };
}

async function baseContext(req: Request, verifier: TokenVerifier): Promise<RequestContext> {
  const res = req.res!;
  return {
    viewer: await verifier.authenticate(req.header('authorization')),
    requestId: res.locals.requestId,
    log: res.locals.log,
    ip: req.ip ?? 'unknown',
  };
}
