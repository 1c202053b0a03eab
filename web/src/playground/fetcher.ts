// GraphiQL's fetcher: queries and mutations as JSON POSTs to /graphql, subscriptions over graphql-ws on the same
// path. The access token reaches both: as the Authorization header, and in graphql-ws connectionParams
// ({ authorization }), which is where the gateway reads it for a WebSocket.
import { createGraphiQLFetcher, type Fetcher, type FetcherOpts, type FetcherParams } from '@graphiql/toolkit';
import { getOperationAST, OperationTypeNode, type DocumentNode } from 'graphql';
import { createClient, type Client, type ExecutionResult } from 'graphql-ws';

export interface PlaygroundFetcherOptions {
  url: string;
  subscriptionUrl: string;
  /** The token set in the playground's bar, if any; an Authorization header in GraphiQL's editor wins. */
  token: () => string | undefined;
}

type Headers = Record<string, unknown>;

export function createPlaygroundFetcher(options: PlaygroundFetcherOptions): Fetcher {
  // No incremental delivery: the gateway answers plain JSON, and the multipart reader adds nothing here.
  const http = createGraphiQLFetcher({ url: options.url, enableIncrementalDelivery: false });
  // One socket per token: a new token means a new connection (graphql-ws authenticates once, when it connects).
  let socket: { authorization: string | undefined; client: Client } | undefined;
  const wsClient = (authorization: string | undefined): Client => {
    if (!socket || socket.authorization !== authorization) {
      // dispose() rejects when the old socket closed before it was acknowledged (wrong token): nothing to report.
      if (socket) Promise.resolve(socket.client.dispose()).catch(() => undefined);
      socket = {
        authorization,
        client: createClient({
          url: options.subscriptionUrl,
          connectionParams: authorization ? { authorization } : {},
          retryAttempts: 2,
        }),
      };
    }
    return socket.client;
  };
  return (params: FetcherParams, opts?: FetcherOpts) => {
    const headers = withAuthorization(opts?.headers, options.token());
    if (opts?.documentAST && isSubscription(opts.documentAST, params.operationName)) {
      return subscribe(wsClient(authorizationOf(headers)), params);
    }
    return http(params, { ...opts, headers });
  };
}

/** Whether the operation GraphiQL runs is a subscription, named or not (the toolkit only sees named ones). */
export function isSubscription(document: DocumentNode, operationName: string | null | undefined): boolean {
  return getOperationAST(document, operationName ?? undefined)?.operation === OperationTypeNode.SUBSCRIPTION;
}

/** The headers to send: the editor's, plus `Authorization: Bearer <token>` unless the editor sets one. */
export function withAuthorization(headers: Headers | undefined, token: string | undefined): Headers {
  const merged: Headers = { ...headers };
  const bare = token?.trim().replace(/^bearer\s+/i, '');
  if (bare && authorizationOf(merged) === undefined) merged.authorization = `Bearer ${bare}`;
  return merged;
}

export function authorizationOf(headers: Headers): string | undefined {
  const entry = Object.entries(headers).find(([name]) => name.toLowerCase() === 'authorization');
  return typeof entry?.[1] === 'string' && entry[1] !== '' ? entry[1] : undefined;
}

async function* subscribe(client: Client, params: FetcherParams): AsyncGenerator<ExecutionResult> {
  const events = client.iterate({
    query: params.query,
    operationName: params.operationName ?? null,
    variables: params.variables as Record<string, unknown> | undefined,
  });
  try {
    // GraphiQL's Fetcher type says ExecutionResult; what arrives is its JSON form, which is all GraphiQL shows.
    for await (const result of events) yield result as ExecutionResult;
  } catch (error) {
    // graphql-ws rejects with the server's GraphQL errors (shown as a response) or with the socket's close event.
    if (Array.isArray(error)) {
      yield { errors: error as ExecutionResult['errors'] };
      return;
    }
    throw new Error(describeFailure(error));
  }
}

function describeFailure(error: unknown): string {
  if (typeof CloseEvent !== 'undefined' && error instanceof CloseEvent) {
    return `The subscription socket closed (${error.code}${error.reason ? `: ${error.reason}` : ''})`;
  }
  if (error instanceof Error) return error.message;
  return 'The subscription socket failed (is the gateway running?)';
}
