import type { Server } from 'node:http';
import type { GraphQLSchema } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { createFormatError, requestIdFrom, type Logger, type TokenVerifier, type Viewer } from '@vidmp3/shared';
import type { Context } from './context.js';
import type { JobsService } from './services/jobs.js';

type ConnectionParams = Record<string, unknown> & {
  authorization?: string;
  token?: string;
  requestId?: string;
};

/**
 * `Subscription.jobUpdated` / `myJobUpdates` over graphql-ws on this subgraph's `/graphql`. The gateway is the
 * client: it subscribes for ids only and runs each client's selection as a query (docs/ARCHITECTURE.md). The
 * bearer token travels in `connectionParams` and is verified here as on HTTP.
 */
export function serveSubscriptions(options: {
  server: Server;
  schema: GraphQLSchema;
  verifier: TokenVerifier;
  jobs: JobsService;
  logger: Logger;
  production: boolean;
}): { close(): Promise<void> } {
  const wss = new WebSocketServer({ server: options.server, path: '/graphql' });
  const viewers = new WeakMap<object, Viewer | null>();
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
      context: (ctx): Context => {
        const requestId = ctx.extra.requestId ?? requestIdFrom(undefined);
        return {
          viewer: viewers.get(ctx.extra.socket) ?? null,
          requestId,
          log: options.logger.child({ requestId }),
          ip: ctx.extra.request.socket.remoteAddress ?? 'unknown',
          services: { jobs: options.jobs },
        };
      },
      // Same masking as HTTP: user errors keep their code, anything else becomes INTERNAL.
      onNext: (_ctx, _id, _payload, _args, result) =>
        result.errors ? { ...result, errors: result.errors.map((e) => format(e.toJSON())) } : result,
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
