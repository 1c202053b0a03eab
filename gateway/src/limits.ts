import type { ApolloServerPlugin } from '@apollo/server';
import { ApolloArmor } from '@escape.tech/graphql-armor';
import {
  GraphQLError,
  getNamedType,
  isCompositeType,
  isEnumType,
  isInterfaceType,
  isListType,
  isNonNullType,
  isObjectType,
  Kind,
  typeFromAST,
  type ASTVisitor,
  type FieldNode,
  type GraphQLCompositeType,
  type GraphQLField,
  type GraphQLOutputType,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from '@vidmp3/shared';
import type { Config } from './config.js';
import type { GatewayContext } from './context.js';

export interface OperationLimits {
  /** Run while validating every operation; the WebSocket path applies the same rules. */
  validationRules: ValidationRule[];
  plugins: ApolloServerPlugin<GatewayContext>[];
}

/**
 * Depth, alias, directive and token limits (graphql-armor), list-aware cost and cycles (ours), checked while
 * validating the operation, before the query planner or any subgraph sees it. Refusals are validation errors:
 * `GRAPHQL_VALIDATION_FAILED` with a message that names the limit, on HTTP (status 400) and WebSocket alike.
 */
export function operationLimits(config: Config): OperationLimits {
  const { validationRules, plugins } = new ApolloArmor({
    maxDepth: { n: config.MAX_DEPTH, ignoreIntrospection: true },
    maxAliases: { n: config.MAX_ALIASES },
    // Its cost counts a list once unless `first` is a literal (a variable or a missing `first` costs 1 item),
    // so `job { input { conversions { … } } }` nested three times passed: listCostRule replaces it.
    costLimit: { enabled: false },
    maxTokens: { n: config.MAX_TOKENS },
    maxDirectives: { n: config.MAX_DIRECTIVES },
    // Apollo Server's own hideSchemaDetailsFromClientErrors does this job (server.ts).
    blockFieldSuggestion: { enabled: false },
  }).protect();
  return {
    validationRules: [...validationRules, listCostRule(config.MAX_COST)],
    // graphql-armor is CommonJS, so its plugin type names @apollo/server's CJS declarations while we import
    // the ESM ones: the same interface, declared twice. The cast bridges the two declarations, nothing else.
    plugins: plugins as unknown as ApolloServerPlugin<GatewayContext>[],
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Cost that counts list sizes, and selections that go round in circles

/**
 * How many items a list field may return, as far as validation can know. Validation runs before variables are
 * read (and its result is cached per document), so a `first` given as a variable counts as the largest page.
 */
function listSize(field: GraphQLField<unknown, unknown>, node: FieldNode, parent: GraphQLCompositeType): number {
  if (field.args.some((arg) => arg.name === 'first')) {
    const first = node.arguments?.find((arg) => arg.name.value === 'first')?.value;
    if (!first || first.kind === Kind.NULL) return DEFAULT_PAGE_SIZE;
    if (first.kind === Kind.INT) return Math.max(1, Number.parseInt(first.value, 10));
    return MAX_PAGE_SIZE;
  }
  if (!isListOutput(field.type)) return 1;
  // A connection's `edges` are the page its field already counted.
  if (isConnection(parent)) return 1;
  // A list of enum values (`ApiKey.scopes`) is a value of its item, resolved with it: nothing fans out.
  if (isEnumType(getNamedType(field.type))) return 1;
  // A list without paging: assume the longest page any list may have.
  return MAX_PAGE_SIZE;
}

function isListOutput(type: GraphQLOutputType): boolean {
  return isListType(isNonNullType(type) ? type.ofType : type);
}

/** Relay-style plumbing between an entity and its list (`JobConnection.edges`, `JobEdge.node`). */
const isConnection = (type: GraphQLCompositeType) => type.name.endsWith('Connection');
const isPlumbing = (type: GraphQLCompositeType) => isConnection(type) || type.name.endsWith('Edge');

/** A step on the path from the root, answered under `key`; `coordinate` (`Job.input`) unless it is plumbing. */
interface Step {
  coordinate: string | null;
  key: string;
}

class Refusal extends Error {
  constructor(readonly error: GraphQLError) {
    super(error.message);
  }
}

/**
 * Refuses two kinds of operation before anything runs:
 *
 * - **Cost over `maxCost`.** cost(field) = (1 + cost of its selections) × the number of items it may return:
 *   `first` for a paged field (20 when absent, 100 when a variable), 100 for an unpaged list, 1 otherwise;
 *   `__typename` and introspection are free. Every returned record costs at least 1, so the limit bounds the
 *   records one operation can make the subgraphs read.
 * - **A selection that re-enters itself.** A field leading to another object (`Job.input`, `Media.conversions`,
 *   `User.jobs`…) may appear once on any path from the root: `job { input { conversions { edges { node {
 *   input { … } } } } } }` asks again for what it already has, and each round multiplies the work. The
 *   connection plumbing (`edges`, `node`, `pageInfo`) is not counted, so two different lists of jobs on one
 *   path stay possible.
 *
 * The walk stops as soon as the cost passes the limit, so fragments that expand exponentially cost the
 * validator no more than `maxCost` steps.
 */
export function listCostRule(maxCost: number): ValidationRule {
  return (context: ValidationContext): ASTVisitor => ({
    OperationDefinition(operation) {
      const root = context.getSchema().getRootType(operation.operation);
      if (!root) return false;
      try {
        new CostWalk(context, maxCost).selectionSet(operation.selectionSet, root, [], new Set());
      } catch (err) {
        if (!(err instanceof Refusal)) throw err;
        context.reportError(err.error);
      }
      // The walk has seen the whole operation; nothing below needs this visitor.
      return false;
    },
  });
}

class CostWalk {
  constructor(
    private readonly context: ValidationContext,
    private readonly maxCost: number,
  ) {}

  /** The cost of a selection set on `parent`; `path` leads here from the root, `expanding` lists open fragments. */
  selectionSet(
    selectionSet: SelectionSetNode,
    parent: GraphQLCompositeType,
    path: readonly Step[],
    expanding: ReadonlySet<string>,
  ): number {
    let cost = 0;
    for (const selection of selectionSet.selections) {
      switch (selection.kind) {
        case Kind.FIELD:
          cost += this.field(selection, parent, path, expanding);
          break;
        case Kind.INLINE_FRAGMENT: {
          const type = selection.typeCondition
            ? typeFromAST(this.context.getSchema(), selection.typeCondition)
            : parent;
          if (type && isCompositeType(type)) cost += this.selectionSet(selection.selectionSet, type, path, expanding);
          break;
        }
        case Kind.FRAGMENT_SPREAD: {
          const name = selection.name.value;
          // A fragment that spreads itself is NoFragmentCyclesRule's to report.
          const fragment = expanding.has(name) ? undefined : this.context.getFragment(name);
          const type = fragment && typeFromAST(this.context.getSchema(), fragment.typeCondition);
          if (fragment && type && isCompositeType(type)) {
            cost += this.selectionSet(fragment.selectionSet, type, path, new Set([...expanding, name]));
          }
          break;
        }
      }
      this.check(cost);
    }
    return cost;
  }

  private field(
    node: FieldNode,
    parent: GraphQLCompositeType,
    path: readonly Step[],
    expanding: ReadonlySet<string>,
  ): number {
    const name = node.name.value;
    // Introspection is not federated work (and is switched off outside development).
    if (name.startsWith('__')) return 0;
    // Unknown fields are FieldsOnCorrectTypeRule's to report.
    const field = isObjectType(parent) || isInterfaceType(parent) ? parent.getFields()[name] : undefined;
    if (!field) return 0;
    const type = getNamedType(field.type);
    const coordinate = isCompositeType(type) && !isPlumbing(parent) ? `${parent.name}.${name}` : null;
    const here = [...path, { coordinate, key: node.alias?.value ?? name }];
    if (coordinate && path.some((s) => s.coordinate === coordinate)) {
      throw new Refusal(cycleError(coordinate, here, node));
    }
    const children =
      node.selectionSet && isCompositeType(type) ? this.selectionSet(node.selectionSet, type, here, expanding) : 0;
    const cost = (1 + children) * listSize(field, node, parent);
    this.check(cost);
    return cost;
  }

  private check(cost: number): void {
    if (cost <= this.maxCost) return;
    throw new Refusal(
      new GraphQLError(
        `Query cost limit of ${this.maxCost} exceeded (${cost} or more): each field counts once per item its lists ` +
          `may return (\`first\`, ${DEFAULT_PAGE_SIZE} when absent, ${MAX_PAGE_SIZE} when a variable). ` +
          'Ask for smaller pages or fewer nested lists.',
        { extensions: { limit: 'MAX_COST', maxCost: this.maxCost } },
      ),
    );
  }
}

function cycleError(coordinate: string, path: readonly Step[], node: FieldNode): GraphQLError {
  return new GraphQLError(
    `Cyclic selection: ${coordinate} is selected inside itself (${path.map((s) => s.key).join('.')}). ` +
      'A field that leads to another object may appear once on a path; select what you need at the outer level.',
    { nodes: [node], extensions: { limit: 'CYCLE', field: coordinate } },
  );
}
