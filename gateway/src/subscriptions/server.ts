// The subscription server: graphql-ws on the gateway's HTTP server, its options, and the production executor.
import type { IncomingMessage, Server } from 'node:http';
import type { ApolloServer } from '@apollo/server';
import {
  getOperationAST,
  GraphQLError,
  specifiedRules,
  type FormattedExecutionResult,
  type GraphQLSchema,
  type ValidationRule,
} from 'graphql';
import { CloseCode } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import WebSocket, { WebSocketServer } from 'ws';
import {
  ErrorCode,
  createFormatError,
  quotaExceeded,
  userError,
  addressKey,
  type GraphQLMetrics,
  type Logger,
  type TokenVerifier,
  type Viewer,
} from '@vidmp3/shared';
import type { GatewayContext } from '../context.js';
import type { UpstreamPlanner } from './carry.js';
import { PlanCache } from './plan.js';
import { JobRelay, RelayTarget } from './relay.js';
import {
  authenticate,
  clientAddress,
  closeReason,
  incomingRequestId,
  originMatcher,
  SlotCounter,
  TOO_MANY_CONNECTIONS,
} from './support.js';
import { Connection, UpstreamHub } from './upstream.js';

/**
 * Runs the client's selection on one job as a query, through the same executor that serves HTTP (in
 * production `apolloExecutor`: the query plan fetches fields of every subgraph, limits and masking apply).
 */
export type JobQueryExecutor = (
  query: string,
  variables: Record<string, unknown>,
  context: GatewayContext,
) => Promise<FormattedExecutionResult>;

export interface SubscriptionServerOptions {
  /** The gateway's HTTP server: WebSocket upgrades on `path` are taken over, everything else stays HTTP. */
  httpServer: Server;
  /** Default `/graphql`, the same path as HTTP. */
  path?: string;
  /** The API schema operations are validated against; undefined while the gateway has not loaded it. */
  schema: () => GraphQLSchema | undefined;
  /** The HTTP path's operation limits (`operationLimits(config).validationRules`), run after graphql's rules. */
  validationRules: readonly ValidationRule[];
  /** Stops the parser early on huge documents, like MAX_TOKENS on HTTP. */
  maxTokens: number;
  /** The verifier the HTTP path uses. */
  verifier: TokenVerifier;
  /** Browser origins allowed to connect (`*`: any); a request without an Origin header (no browser) is allowed. */
  allowedOrigins: readonly string[];
  /** The jobs subgraph's GraphQL URL (http or https); its WebSocket endpoint is the same URL with ws or wss. */
  jobsUrl: string;
  execute: JobQueryExecutor;
  logger: Logger;
  /** Development keeps the message of unexpected errors (never the stack), as on HTTP. */
  exposeInternals: boolean;
  /** Drops "Did you mean …?" from validation errors, as Apollo's hideSchemaDetailsFromClientErrors does. */
  hideSchemaDetails: boolean;
  /** Express's compiled `trust proxy fn`: whose X-Forwarded-For to believe for the client's address. */
  trustProxy?: (address: string, hop: number) => boolean;
  /** Default 50. */
  maxSubscriptionsPerConnection?: number;
  /**
   * Per-user and per-address limits, counted in this process (per replica). Defaults: 10 sockets per user,
   * 50 per address (IPv6: per /64; every socket counts, authenticated or not), 20 subscriptions per user and
   * 100 per address.
   */
  limits?: WebSocketLimits;
  /** Reconnection to jobs after it went away (a replica restarting); then the subscription fails. */
  reconnect?: { attempts?: number; maxDelayMs?: number };
  /** Sockets to jobs that every user's subscriptions share (default 1). */
  upstreamSockets?: number;
  /**
   * Plans upstream subscriptions that carry the jobs fields of the client's selection, so that an event costs
   * only the other subgraphs' fetches (production: over the supergraph). Without it they carry ids only.
   */
  carry?: UpstreamPlanner;
  /** Subscriptions started (and refused) are counted with HTTP's operations; their events by the Apollo plugin. */
  metrics?: GraphQLMetrics;
}

export interface WebSocketLimits {
  connectionsPerUser?: number;
  connectionsPerAddress?: number;
  /** Across all the user's sockets; anonymous callers are counted per address. */
  subscriptionsPerUser?: number;
  /** Across every user at one address (the accounts one address can sign up are limited, not unbounded). */
  subscriptionsPerAddress?: number;
}

export interface SubscriptionServer {
  /** Says "going away" (1001) to every client, ends their upstream subscriptions and stops taking upgrades. */
  close(): Promise<void>;
}

/** Answers subscription operations with graphql-ws on the gateway's HTTP server (DESIGN.md, design B). */
export function startSubscriptionServer(options: SubscriptionServerOptions): SubscriptionServer {
  const log = options.logger.child({ component: 'subscriptions' });
  const format = createFormatError({ exposeInternals: options.exposeInternals });
  const originAllowed = originMatcher(options.allowedOrigins);
  const maxSubscriptions = options.maxSubscriptionsPerConnection ?? 50;
  // A few upstream sockets for everyone and one upstream subscription per distinct subscription of a user, shared
  // by all their client subscriptions (upstream.ts): jobs' cost no longer grows with the number of clients.
  const plans = new PlanCache();
  const hub = new UpstreamHub({
    url: webSocketUrl(options.jobsUrl),
    attempts: options.reconnect?.attempts ?? 30,
    maxDelayMs: options.reconnect?.maxDelayMs ?? 5_000,
    sockets: options.upstreamSockets ?? 1,
    log,
  });

  const perUser = new SlotCounter(options.limits?.connectionsPerUser ?? 10);
  const perAddress = new SlotCounter(options.limits?.connectionsPerAddress ?? 50);
  const subscriptions = new SlotCounter(options.limits?.subscriptionsPerUser ?? 20);
  const subscriptionsPerAddress = new SlotCounter(options.limits?.subscriptionsPerAddress ?? 100);

  // Operations are small; without a cap, ws would buffer messages of up to 100 MiB.
  const wss = new WebSocketServer({
    server: options.httpServer,
    path: options.path ?? '/graphql',
    maxPayload: 1 << 20,
  });
  // Registered before graphql-ws's own listener, so it runs first: every socket is counted against its address
  // from the moment it opens, whether it ever authenticates or not. Refusing with a close code (rather than a
  // 429 at the upgrade) lets graphql-ws clients see why, and 4429 stops them from reconnecting in a loop.
  wss.on('connection', (socket: WebSocket, request: IncomingMessage) => {
    const address = addressKey(clientAddress(request, options.trustProxy));
    const release = perAddress.acquire(address);
    if (!release) {
      log.info({ address }, 'WebSocket refused: too many connections from this address');
      socket.close(
        TOO_MANY_CONNECTIONS,
        closeReason(`Too many connections: at most ${perAddress.limit} from one address`),
      );
      return;
    }
    socket.once('close', release);
  });
  const server = useServer<Record<string, unknown>, { connection: Connection }>(
    {
      isProd: !options.exposeInternals,
      async onConnect(ctx) {
        const { request, socket } = ctx.extra;
        // Refused for its address already (or gone): the client's connection_init may still have arrived.
        if (socket.readyState !== WebSocket.OPEN) return false;
        const requestId = incomingRequestId(request);
        const connectionLog = log.child({ requestId });
        if (!originAllowed(request.headers.origin)) {
          connectionLog.info({ origin: request.headers.origin }, 'WebSocket refused: origin not allowed');
          return false; // graphql-ws closes with 4403 Forbidden
        }
        let viewer: Viewer | null;
        try {
          viewer = await authenticate(
            options.verifier,
            ctx.connectionParams,
            clientAddress(request, options.trustProxy),
          );
        } catch (err) {
          if (err instanceof GraphQLError && err.extensions.code === ErrorCode.UNAUTHENTICATED) {
            socket.close(CloseCode.Unauthorized, closeReason(err.message));
          } else {
            // The users service's keys could not be fetched: our failure, worth a retry by the client.
            connectionLog.error({ err }, 'could not verify an access token');
            socket.close(1013, 'Try again later');
          }
          return false; // the socket is already closing: graphql-ws's own close is then a no-op
        }
        // The client may have left while its token was checked: then nothing is counted (no close event to come).
        if (socket.readyState !== WebSocket.OPEN) return false;
        if (viewer) {
          const release = perUser.acquire(viewer.userId);
          if (!release) {
            connectionLog.info({ userId: viewer.userId }, 'WebSocket refused: too many connections of this user');
            socket.close(TOO_MANY_CONNECTIONS, closeReason(`Too many connections: at most ${perUser.limit} per user`));
            return false;
          }
          socket.once('close', release);
        }
        ctx.extra.connection = new Connection(
          { viewer, requestId, log: connectionLog, ip: clientAddress(request, options.trustProxy) },
          socket,
        );
        return true;
      },

      onSubscribe(ctx, _id, payload) {
        const refused = (errors: GraphQLError[]) => {
          const { metrics } = options;
          if (metrics) {
            metrics.record(
              'subscription',
              'unknown', // refused before validation: the client's names are not labels
              errors.map((e) => e.extensions.code),
            );
          }
          return errors;
        };
        const connection = ctx.extra.connection;
        if (!connection) return refused([userError(ErrorCode.INTERNAL, 'The connection is not initialised')]);
        // The subscription being set up is counted already.
        if (Object.keys(ctx.subscriptions).length > maxSubscriptions) {
          return refused([
            userError(ErrorCode.RATE_LIMITED, `At most ${maxSubscriptions} subscriptions per connection`),
          ]);
        }
        const schema = options.schema();
        if (!schema) return refused([userError(ErrorCode.INTERNAL, 'The schema is not loaded yet')]);
        const planned = plans.plan(schema, payload, {
          rules: [...specifiedRules, ...options.validationRules],
          maxTokens: options.maxTokens,
          hideSchemaDetails: options.hideSchemaDetails,
          ...(options.carry ? { carry: options.carry } : {}),
        });
        if (Array.isArray(planned)) return refused(planned);
        // Counted last, once nothing else can refuse it; released when the relay ends (relay.ts) or, failing
        // that, when the socket closes. Anonymous callers (refused by jobs anyway) are counted by address.
        const { viewer, ip } = connection.identity;
        const address = `address:${addressKey(ip)}`;
        const owner = viewer ? `user:${viewer.userId}` : address;
        const tooMany = (counter: SlotCounter, key: string, per: string) =>
          refused([
            quotaExceeded(
              'subscriptions',
              counter.limit,
              counter.used(key),
              `Too many subscriptions: at most ${counter.limit} active at once per ${per}; end one first`,
            ),
          ]);
        const releaseOwner = subscriptions.acquire(owner);
        if (!releaseOwner) return tooMany(subscriptions, owner, viewer ? 'user' : 'address');
        // A signed-in user's subscription also counts against their address (anonymous ones already do).
        const releaseAddress = viewer ? subscriptionsPerAddress.acquire(address) : () => undefined;
        if (!releaseAddress) {
          releaseOwner();
          return tooMany(subscriptionsPerAddress, address, 'address');
        }
        const release = () => {
          releaseOwner();
          releaseAddress();
        };
        if (options.metrics) {
          const operation = getOperationAST(planned.document, payload.operationName);
          options.metrics.record('subscription', options.metrics.fieldLabel(operation), []);
        }
        return {
          schema,
          document: planned.document,
          operationName: payload.operationName,
          variableValues: payload.variables,
          contextValue: new RelayTarget(planned, connection, options.execute, hub, connection.hold(release)),
        };
      },

      // Only ever reached for subscription operations: onSubscribe refuses the others.
      subscribe: (args) =>
        args.contextValue instanceof RelayTarget
          ? new JobRelay(args.contextValue)
          : { errors: [userError(ErrorCode.INTERNAL, 'Unplanned subscription')] },

      // Every error leaves through one of these two: masked like HTTP errors (no stacks, no internal URLs).
      onNext: (_ctx, _id, _payload, _args, { errors, ...result }) =>
        errors ? { ...result, errors: errors.map((e) => format(e.toJSON())) } : result,
      onError: (_ctx, _id, _payload, errors) => errors.map((e) => format(e.toJSON())),

      onClose(ctx) {
        // Runs after graphql-ws has ended the connection's subscriptions (each leaves its shared upstream one).
        ctx.extra.connection?.close();
      },
    },
    wss,
  );

  return {
    async close() {
      // A client that never answers the close handshake must not hold the shutdown for ws's 30 s.
      const force = setTimeout(() => {
        for (const socket of wss.clients) socket.terminate();
      }, 2_000);
      try {
        await server.dispose();
      } finally {
        clearTimeout(force);
        hub.close();
      }
    },
  };
}

/** The production executor: the same Apollo Server that serves HTTP runs the per-event query. */
export function apolloExecutor(apollo: ApolloServer<GatewayContext>): JobQueryExecutor {
  return async (query, variables, contextValue) => {
    const response = await apollo.executeOperation({ query, variables }, { contextValue });
    if (response.body.kind !== 'single') throw new Error('unexpected incremental response to a job query');
    return response.body.singleResult;
  };
}

/** The jobs subgraph's WebSocket endpoint: its GraphQL URL with http(s) turned into ws(s). */
export function webSocketUrl(httpUrl: string): string {
  const url = new URL(httpUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}
