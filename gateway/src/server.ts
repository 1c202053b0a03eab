import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { ApolloGateway } from '@apollo/gateway';
import { ApolloServer, type ApolloServerPlugin, type GraphQLRequestListener } from '@apollo/server';
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginLandingPageDisabled,
} from '@apollo/server/plugin/disabled';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';
import { expressMiddleware } from '@as-integrations/express5';
import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import { GraphQLError, type GraphQLSchema } from 'graphql';
import {
  accessLog,
  ApiKeyExchange,
  applyServerTimeouts,
  closeAfterEarlyAnswer,
  createFormatError,
  createMetrics,
  createTokenVerifier,
  errorLoggingPlugin,
  ErrorCode,
  GraphQLMetrics,
  healthRoutes,
  httpMetrics,
  httpTimeouts,
  jwksKeyResolver,
  listen,
  metricsRoute,
  multipartUploads,
  requestBodyDeadline,
  requestContext,
  startMetricsServer,
  type Logger,
  type RunningServer,
  type TokenVerifier,
} from '@vidmp3/shared';
import type { Config } from './config.js';
import type { GatewayContext } from './context.js';
import { createApiKeyExchange, withApiKeys } from './api-keys.js';
import { browserSessionRoutes } from './browser-session.js';
import { cors } from './cors.js';
import { SubgraphDataSource, UploadingDataSource } from './datasource.js';
import { filesProxy } from './files-proxy.js';
import { createSubgraphFetcher } from './subgraph-client.js';
import { operationLimits } from './limits.js';
import { webDoors } from './web.js';
import { graphqlPostLane, MAX_JSON_BODY_BYTES } from './graphql-post.js';
import { clientAddress } from './subscriptions/support.js';
import { apolloExecutor, startSubscriptionServer, UpstreamPlanner } from './subscriptions/index.js';

/** The public entry point: Apollo Gateway over the committed supergraph, behind auth and operation limits. */
export async function startGateway(config: Config, logger: Logger): Promise<RunningServer> {
  // The committed, composed supergraph: what runs is what was reviewed (no composition at run time).
  const supergraphSdl = readFileSync(config.SUPERGRAPH_PATH, 'utf8');
  const subgraphUrl = (name: string) => config.subgraphUrls.get(name) ?? routingUrl(supergraphSdl, name);
  // One client for every subgraph (a keep-alive pool per origin), instead of Apollo's make-fetch-happen.
  const fetcher = createSubgraphFetcher({
    maxSockets: config.SUBGRAPH_MAX_SOCKETS,
    idleTimeoutMs: config.SUBGRAPH_IDLE_TIMEOUT_SECONDS * 1000,
    timeoutMs: config.SUBGRAPH_TIMEOUT_SECONDS * 1000,
    dedupe: config.SUBGRAPH_DEDUPE,
  });
  const gateway = new ApolloGateway({
    supergraphSdl,
    buildService: ({ name }) =>
      name === 'media'
        ? new UploadingDataSource({ url: subgraphUrl(name), fetcher }, config.MAX_UPLOAD_BYTES)
        : new SubgraphDataSource({ url: subgraphUrl(name), fetcher }),
    logger: logger.child({ component: 'apollo-gateway' }),
  });
  // The API schema, for the WebSocket path's validation (Apollo Server keeps its copy to itself).
  let apiSchema: GraphQLSchema | undefined;
  gateway.onSchemaLoadOrUpdate((loaded) => {
    apiSchema = loaded.apiSchema;
  });
  const keys = jwksKeyResolver(config.JWKS_URL, {
    onFetchError: (err) => logger.warn({ err }, 'JWKS refresh failed; tokens are verified with the keys held'),
  });
  // API keys are exchanged at the users service for access tokens (api-keys.ts); everything below sees tokens.
  const verifier = withApiKeys(
    createTokenVerifier({
      keys,
      issuer: config.JWT_ISSUER,
      audience: config.JWT_AUDIENCE,
    }),
    createApiKeyExchange({
      url: new URL(ApiKeyExchange.route, subgraphUrl('users')).href,
      cacheSize: config.API_KEY_CACHE_SIZE,
    }),
  );
  const limits = operationLimits(config);
  const metrics = createMetrics('gateway', { enabled: config.METRICS_ENABLED });
  const graphqlMetrics = new GraphQLMetrics(metrics);
  const web = webDoors({ dir: config.WEB_DIR, playground: config.PLAYGROUND }, logger);

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.TRUST_PROXY);
  const trustProxy = app.get('trust proxy fn') as (address: string, hop: number) => boolean;
  // Its request handler is set below, once Apollo Server has started.
  const httpServer = createServer();
  // Uploads last as long as their bytes keep coming (Node's default cut every request at 5 minutes).
  const timeouts = httpTimeouts(config, config.MAX_UPLOAD_BYTES + 1024 * 1024);
  applyServerTimeouts(httpServer, timeouts);
  const apollo = new ApolloServer<GatewayContext>({
    gateway,
    introspection: config.INTROSPECTION,
    // Without introspection, "Did you mean …?" suggestions would still map out the schema.
    hideSchemaDetailsFromClientErrors: !config.INTROSPECTION,
    csrfPrevention: true,
    // SIGTERM is main.ts's (onShutdown). Apollo's own handler, installed whenever NODE_ENV is not `test`, stops the
    // server too and then raises the signal again, which onShutdown takes for a second one: exit 1, mid-close.
    stopOnTerminationSignals: false,
    allowBatchedHttpRequests: false,
    includeStacktraceInErrorResponses: false,
    validationRules: limits.validationRules,
    formatError: createFormatError({ exposeInternals: config.NODE_ENV !== 'production' }),
    plugins: [
      // Apollo's cache-control plugin works out a cache policy per request, and answers `no-store` here every
      // time (the subgraphs set no cache hints): the header is kept, the work is skipped.
      ApolloServerPluginCacheControlDisabled(),
      noStore,
      ...limits.plugins,
      ApolloServerPluginDrainHttpServer({ httpServer, stopGracePeriodMillis: config.SHUTDOWN_GRACE_SECONDS * 1000 }),
      // The bundled playground replaces Apollo's landing page (which loads from a CDN).
      config.PLAYGROUND && !web.servesPlayground
        ? ApolloServerPluginLandingPageLocalDefault({ embed: true, includeCookies: false })
        : ApolloServerPluginLandingPageDisabled(),
      errorLoggingPlugin<GatewayContext>(),
      graphqlMetrics.plugin<GatewayContext>(),
    ],
  });
  const post = graphqlPostLane({
    apollo,
    verifier,
    logger,
    metrics,
    graphqlMetrics,
    allowedOrigins: config.ALLOWED_ORIGINS,
    timeouts,
    clientAddress: (req) => clientAddress(req, trustProxy),
  });
  gateway.onSchemaLoadOrUpdate(() => post.forget());
  await apollo.start();
  // Small JSON POSTs to /graphql take the lean lane (graphql-post.ts); everything else goes through Express.
  httpServer.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!post.lane(req, res)) app(req, res);
  });

  app.use(requestContext(logger));
  app.use(requestBodyDeadline(timeouts));
  app.use(closeAfterEarlyAnswer());
  app.use(accessLog());
  app.use(httpMetrics(metrics));
  if (config.METRICS_PORT === undefined) metricsRoute(app, metrics);
  healthRoutes(app, {
    // Without the users service's public keys no token can be checked, so no request can be served. Once a key
    // set is held the gateway stays ready through a users outage: it keeps verifying with those keys.
    jwks: async () => {
      await keys.ready();
      return true;
    },
  });
  const downloads = filesProxy(new URL(subgraphUrl('media')).origin);
  app.get('/files/:id', downloads);
  app.head('/files/:id', downloads);
  // The page's sessions, its refresh token in an HttpOnly cookie (browser-session.ts).
  app.use(
    '/auth',
    browserSessionRoutes({
      usersUrl: subgraphUrl('users'),
      fetcher,
      allowedOrigins: config.ALLOWED_ORIGINS,
      production: config.NODE_ENV === 'production',
      logger,
    }),
  );
  // Before the web doors: their router answers OPTIONS for its own GET /graphql, which would hide the preflight.
  app.use('/graphql', cors(config.ALLOWED_ORIGINS));
  app.use(web.router);
  app.use(
    '/graphql',
    uploadsNeedAToken(verifier),
    // Multipart uploads: one file, streamed on to media as it arrives. The parser truncates silently at its
    // limit, so it is set one byte above ours and media's meter reports the excess as PAYLOAD_TOO_LARGE.
    multipartUploads({ maxFileSize: config.MAX_UPLOAD_BYTES + 1, maxFiles: 1 }),
    express.json({ limit: MAX_JSON_BODY_BYTES }),
    expressMiddleware(apollo, {
      context: async ({ req, res }) => {
        const viewer = await verifier.authenticate(req.header('authorization'), req.ip);
        const gone = new AbortController();
        res.on('close', () => {
          if (!res.writableFinished) gone.abort();
        });
        return {
          viewer,
          requestId: res.locals.requestId,
          log: res.locals.log,
          ip: req.ip ?? 'unknown',
          signal: gone.signal,
        };
      },
    }),
    unreadableBody,
  );

  const url = await listen(httpServer, config.PORT, config.HOST);
  // A listener of its own keeps /metrics off the port the ingress exposes.
  const metricsServer =
    metrics.enabled && config.METRICS_PORT !== undefined
      ? await startMetricsServer(metrics, config.HOST, config.METRICS_PORT)
      : undefined;
  if (metricsServer) logger.info({ metricsUrl: `${metricsServer.url}/metrics` }, 'metrics listener started');
  // Subscriptions: graphql-ws on the same server and path (Apollo Gateway does not execute them).
  const subscriptions = startSubscriptionServer({
    httpServer,
    schema: () => apiSchema,
    validationRules: limits.validationRules,
    maxTokens: config.MAX_TOKENS,
    verifier,
    allowedOrigins: config.ALLOWED_ORIGINS,
    jobsUrl: subgraphUrl('jobs'),
    execute: apolloExecutor(apollo),
    upstreamSockets: config.SUBSCRIPTION_UPSTREAM_SOCKETS,
    carry: new UpstreamPlanner(supergraphSdl),
    logger,
    exposeInternals: config.NODE_ENV !== 'production',
    hideSchemaDetails: !config.INTROSPECTION,
    trustProxy,
    limits: {
      connectionsPerUser: config.MAX_WS_CONNECTIONS_PER_USER,
      connectionsPerAddress: config.MAX_WS_CONNECTIONS_PER_IP,
      subscriptionsPerUser: config.MAX_SUBSCRIPTIONS_PER_USER,
      subscriptionsPerAddress: config.MAX_SUBSCRIPTIONS_PER_IP,
    },
    metrics: graphqlMetrics,
  });
  logger.info({ url: `${url}/graphql` }, 'gateway ready');
  return {
    url,
    server: httpServer,
    close: async () => {
      await subscriptions.close();
      await apollo.stop();
      await metricsServer?.close();
      fetcher.close();
    },
  };
}

/**
 * Every upload needs a signed-in user, so one without a valid token is refused here, from its headers, before
 * a byte of the file is read or anything is sent to media (issue #10, defect 8: anonymous uploads in a loop
 * used to break other people's uploads). Other failures to authenticate (the key set unreachable) are left to
 * the request's normal path, which reports them.
 */
function uploadsNeedAToken(verifier: TokenVerifier): RequestHandler {
  return async (req, res, next) => {
    if (!req.is('multipart/form-data')) return next();
    let message = 'Sign in to upload a file';
    try {
      if (await verifier.authenticate(req.header('authorization'), req.ip)) return next();
    } catch (err) {
      if (!(err instanceof GraphQLError && err.extensions.code === ErrorCode.UNAUTHENTICATED)) return next();
      message = err.message;
    }
    res.status(401).json({ errors: [{ message, extensions: { code: ErrorCode.UNAUTHENTICATED } }] });
  };
}

/** `cache-control: no-store` on every GraphQL answer that does not carry a cache-control header already. */
const noStoreListener: GraphQLRequestListener<GatewayContext> = {
  willSendResponse: ({ response }) => {
    if (!response.http.headers.has('cache-control')) response.http.headers.set('cache-control', 'no-store');
    return Promise.resolve();
  },
};
const noStore: ApolloServerPlugin<GatewayContext> = { requestDidStart: () => Promise.resolve(noStoreListener) };

/**
 * A JSON body that cannot be read (not JSON, over the limit, an unknown encoding) is answered as a GraphQL error
 * with its HTTP status, as the lean lane answers it, rather than Express's HTML error page.
 */
const unreadableBody: ErrorRequestHandler = (err: unknown, _req, res, next) => {
  const { type, status } = (err ?? {}) as { type?: unknown; status?: unknown };
  // body-parser's errors carry a `type` (entity.parse.failed, entity.too.large, encoding.unsupported, …).
  if (typeof type !== 'string' || typeof status !== 'number' || status < 400 || status >= 500 || res.headersSent) {
    return next(err);
  }
  const [code, message] =
    status === 413
      ? [ErrorCode.PAYLOAD_TOO_LARGE, `The request body is larger than ${MAX_JSON_BODY_BYTES} bytes`]
      : type === 'entity.parse.failed'
        ? ['BAD_REQUEST', 'The request body is not valid JSON']
        : ['BAD_REQUEST', (err as Error).message];
  res.status(status).json({ errors: [{ message, extensions: { code } }] });
};

/** A subgraph's routing URL as composed into the supergraph (`@join__graph(name: …, url: …)`). */
function routingUrl(supergraphSdl: string, name: string): string {
  const match = new RegExp(`@join__graph\\(name: "${name}", url: "([^"]+)"\\)`).exec(supergraphSdl);
  if (!match?.[1]) throw new Error(`the supergraph has no subgraph named ${name}`);
  return match[1];
}
