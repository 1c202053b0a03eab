import { RemoteGraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { GraphQLError } from 'graphql';
import { postStream } from './post-stream.js';
import type { GatewayGraphQLResponse } from '@apollo/server-gateway-interface';
import { ErrorCode, REQUEST_ID_HEADER, uploadFailure, userError } from '@vidmp3/shared';
import type { GatewayContext } from './context.js';
import { findUploads, multipartBody, withoutUploads } from './uploads.js';

/** What every subgraph request carries for the client: its verified token, the request id, its address. */
function forwardedHeaders(context: GatewayContext): Record<string, string> {
  return {
    ...(context.viewer ? { authorization: `Bearer ${context.viewer.token}` } : {}),
    [REQUEST_ID_HEADER]: context.requestId,
    'x-forwarded-for': context.ip,
  };
}

/**
 * Calls one subgraph on behalf of the client: the bearer token the gateway verified is forwarded (each
 * subgraph verifies it again), with the request id and the client's address.
 */
export class SubgraphDataSource extends RemoteGraphQLDataSource<GatewayContext> {
  override async process(options: GraphQLDataSourceProcessOptions<GatewayContext>): Promise<GatewayGraphQLResponse> {
    // A subscription event carries what this fetch would return, read by jobs for this viewer (carry.ts).
    const carried = 'incomingRequestContext' in options ? options.context.carried : undefined;
    if (
      carried &&
      options.request.query === carried.fetch &&
      options.request.variables?.[carried.idVariable] === carried.jobId
    ) {
      return { data: { job: carried.data } };
    }
    return super.process(options);
  }

  override willSendRequest(options: GraphQLDataSourceProcessOptions<GatewayContext>): void {
    // Health checks and schema loading are the gateway's own requests, made for no client.
    if (!('incomingRequestContext' in options)) return;
    const headers = options.request.http?.headers;
    if (!headers) return;
    for (const [name, value] of Object.entries(forwardedHeaders(options.context))) headers.set(name, value);
  }
}

/**
 * The media subgraph's data source: Apollo Gateway would JSON-encode an `Upload` variable (and lose it), so
 * an operation carrying a file is forwarded as a GraphQL multipart request instead, streamed: the client's
 * file flows through to media as it arrives, and is aborted upstream if the client goes away.
 */
export class UploadingDataSource extends SubgraphDataSource {
  constructor(
    config: ConstructorParameters<typeof RemoteGraphQLDataSource>[0],
    private readonly maxUploadBytes: number,
  ) {
    super(config);
  }

  override async process(options: GraphQLDataSourceProcessOptions<GatewayContext>): Promise<GatewayGraphQLResponse> {
    const uploads = findUploads(options.request.variables ?? {});
    if (uploads.length === 0 || !('incomingRequestContext' in options)) return super.process(options);
    if (uploads.length > 1) throw userError(ErrorCode.BAD_USER_INPUT, 'Send one file per request');
    const [{ path, upload }] = uploads as [(typeof uploads)[0]];

    const { request, context } = options;
    const file = await upload.promise.catch((err: unknown) => {
      throw uploadFailure(err, this.maxUploadBytes);
    });
    const operations = JSON.stringify({
      query: request.query,
      operationName: request.operationName,
      variables: withoutUploads(request.variables ?? {}),
    });
    const { contentType, body } = multipartBody(operations, JSON.stringify({ 0: [path] }), file, this.maxUploadBytes);

    const response = await postStream(
      new URL(this.url),
      {
        ...forwardedHeaders(context),
        'content-type': contentType,
        'apollo-require-preflight': 'true', // the subgraph's CSRF prevention expects it on multipart
      },
      body,
      context.signal,
    ).catch((err: unknown) => {
      // The body failed on our side (file over the limit, client gone): report why, not "socket hang up".
      throw err instanceof GraphQLError ? err : uploadFailure(err, this.maxUploadBytes);
    });
    try {
      return JSON.parse(response.body) as GatewayGraphQLResponse;
    } catch {
      throw new Error(`media answered ${response.status} without a GraphQL response`);
    }
  }
}
