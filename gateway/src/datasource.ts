import { RemoteGraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { REQUEST_ID_HEADER } from '@vidmp3/shared';
import type { GatewayContext } from './context.js';

/**
 * Calls one subgraph on behalf of the client: the bearer token the gateway verified is forwarded (each
 * subgraph verifies it again), with the request id and the client's address.
 */
export class SubgraphDataSource extends RemoteGraphQLDataSource<GatewayContext> {
  override willSendRequest({ request, context }: GraphQLDataSourceProcessOptions<GatewayContext>): void {
    const headers = request.http?.headers;
    if (!headers || !('viewer' in context)) return; // gateway-internal requests (health) carry no context
    if (context.viewer) headers.set('authorization', `Bearer ${context.viewer.token}`);
    headers.set(REQUEST_ID_HEADER, context.requestId);
    headers.set('x-forwarded-for', context.ip);
  }
}
