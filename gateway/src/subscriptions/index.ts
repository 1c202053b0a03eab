// The public API of the gateway's GraphQL subscriptions (graphql-ws, DESIGN.md design B).
export {
  apolloExecutor,
  startSubscriptionServer,
  webSocketUrl,
  type JobQueryExecutor,
  type SubscriptionServer,
  type SubscriptionServerOptions,
} from './server.js';
export { UpstreamPlanner } from './carry.js';
