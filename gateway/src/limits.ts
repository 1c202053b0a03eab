import type { ApolloServerPlugin } from '@apollo/server';
import { ApolloArmor } from '@escape.tech/graphql-armor';
import type { ValidationRule } from 'graphql';
import type { Config } from './config.js';
import type { GatewayContext } from './context.js';

export interface OperationLimits {
  /** Run while validating every operation; the WebSocket path applies the same rules. */
  validationRules: ValidationRule[];
  plugins: ApolloServerPlugin<GatewayContext>[];
}

/**
 * Depth, cost, alias, directive and token limits (graphql-armor), checked while validating the operation,
 * before the query planner or any subgraph sees it.
 */
export function operationLimits(config: Config): OperationLimits {
  const { validationRules, plugins } = new ApolloArmor({
    maxDepth: { n: config.MAX_DEPTH, ignoreIntrospection: true },
    maxAliases: { n: config.MAX_ALIASES },
    costLimit: { maxCost: config.MAX_COST, ignoreIntrospection: true },
    maxTokens: { n: config.MAX_TOKENS },
    maxDirectives: { n: config.MAX_DIRECTIVES },
    // Apollo Server's own hideSchemaDetailsFromClientErrors does this job (server.ts).
    blockFieldSuggestion: { enabled: false },
  }).protect();
  // graphql-armor is CommonJS, so its plugin type names @apollo/server's CJS declarations while we import
  // the ESM ones: the same interface, declared twice. The cast bridges the two declarations, nothing else.
  return { validationRules, plugins: plugins as unknown as ApolloServerPlugin<GatewayContext>[] };
}
