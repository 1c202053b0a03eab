import type { Server } from 'node:http';
import { GraphQLError, parse, validate, type DocumentNode, type GraphQLSchema } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import {
  createFormatError,
  ErrorCode,
  requestIdFrom,
  userError,
  type Logger,
  type TokenVerifier,
  type Viewer,
} from '@vidmp3/shared';
import type { Context } from './context.js';

type ConnectionParams = Record<string, unknown> & {
  authorization?: string;
  token?: string;
  requestId?: string;
};

/** What one subscription may carry in its `extensions`: its own caller, on a socket shared by many callers. */
interface SubscriptionCredentials {
  authorization?: unknown;
  requestId?: unknown;
}

/**
 * `Subscription.jobUpdated` / `myJobUpdates` over graphql-ws on this subgraph's `/graphql`. The gateway is the
 * client: it subscribes for the jobs fields of the client's selection and fetches the other subgraphs' fields
 * itself (docs/ARCHITECTURE.md). A bearer token is verified here as on HTTP, from either place: a subscription's
 * own `extensions.authorization` (the gateway multiplexes every user's subscriptions over a few sockets of its
 * own) or, failing that, the socket's `connectionParams` (a client that connects as one user).
 */
export function serveSubscriptions(options: {
  server: Server;
  schema: GraphQLSchema;
  verifier: TokenVerifier;
  services: Context['services'];
  logger: Logger;
  production: boolean;
}): { close(): Promise<void> } {
  const wss = new WebSocketServer({ server: options.server, path: '/graphql' });
  const viewers = new WeakMap<object, Viewer | null>();
  const contextFor = (viewer: Viewer | null, requestId: string, ip: string | undefined): Context => ({
    viewer,
    requestId,
    log: options.logger.child({ requestId }),
    ip: ip ?? 'unknown',
    services: options.services,
  });
  const format = createFormatError({ exposeInternals: !options.production });
  const cleanup = useServer<ConnectionParams | undefined, { requestId?: string }>(
    {
      schema: options.schema,
      onConnect: async (ctx) => {
        const params = ctx.connectionParams;
        const authorization = params?.authorization ?? (params?.token ? `Bearer ${params.token}` : undefined);
        try {
          viewers.set(ctx.extra.socket, await options.verifier.authenticate(authorization));
          ctx.extra.requestId = requestIdFrom(params?.requestId);
          return true;
        } catch {
          return false; // graphql-ws closes with 4403 Forbidden
        }
      },
      // A subscription naming its own caller is set up here, with that caller in its context; any other one
      // by graphql-ws's defaults, with the socket's caller (`context` below).
      onSubscribe: async (ctx, _id, payload) => {
        const own = payload.extensions as SubscriptionCredentials | undefined;
        if (own?.authorization === undefined) return;
        // Refusals concern this subscription only: the socket carries other callers' subscriptions.
        if (typeof own.authorization !== 'string') {
          return [userError(ErrorCode.UNAUTHENTICATED, 'extensions.authorization must be "Bearer <token>"')];
        }
        let viewer: Viewer | null;
        try {
          viewer = await options.verifier.authenticate(own.authorization);
        } catch (err) {
          if (err instanceof GraphQLError && err.extensions.code === ErrorCode.UNAUTHENTICATED) return [err];
          options.logger.error({ err }, 'could not verify a subscription token');
          return [userError(ErrorCode.INTERNAL, 'Could not verify the access token; try again')];
        }
        if (!viewer) return [userError(ErrorCode.UNAUTHENTICATED, 'Sign in first')];
        let document: DocumentNode;
        try {
          document = parse(payload.query);
        } catch (err) {
          return [err instanceof GraphQLError ? err : new GraphQLError('Syntax error')];
        }
        const invalid = validate(options.schema, document);
        if (invalid.length > 0) return invalid;
        const requestId = requestIdFrom(own.requestId);
        return {
          schema: options.schema,
          document,
          operationName: payload.operationName,
          variableValues: payload.variables,
          contextValue: contextFor(viewer, requestId, ctx.extra.request.socket.remoteAddress),
        };
      },
      context: (ctx): Context => {
        const requestId = ctx.extra.requestId ?? requestIdFrom(undefined);
        return contextFor(viewers.get(ctx.extra.socket) ?? null, requestId, ctx.extra.request.socket.remoteAddress);
      },
      // Same masking as HTTP: user errors keep their code, anything else becomes INTERNAL.
      onNext: (_ctx, _id, _payload, _args, result) =>
        result.errors ? { ...result, errors: result.errors.map((e) => format(e.toJSON(), e)) } : result,
    },
    wss,
  );
  return {
    async close() {
      await cleanup.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
