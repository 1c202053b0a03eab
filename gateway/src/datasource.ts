import { RemoteGraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { REQUEST_ID_HEADER } from '@vidmp3/shared';
import type { GatewayContext } from './context.js';

/**
 * Calls one subgraph on behalf of the client: the bearer token the gateway verified is forwarded (each
 * subgraph verifies it again), with the request id and the client's address.
 */
export class SubgraphDataSource extends RemoteGraphQLDataSource<GatewayContext> {
  override willSendRequest(options: GraphQLDataSourceProcessOptions<GatewayContext>): void {
    // Health checks and schema loading are the gateway's own requests, made for no client.
    if (!('incomingRequestContext' in options)) return;
    const { request, context } = options;
    const headers = request.http?.headers;
    if (!headers) return;
    if (context.viewer) headers.set('authorization', `Bearer ${context.viewer.token}`);
    headers.set(REQUEST_ID_HEADER, context.requestId);
    headers.set('x-forwarded-for', context.ip);
  }
}
