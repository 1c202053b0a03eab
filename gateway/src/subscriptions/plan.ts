// Planning: turns a client's subscription into an upstream subscription and a per-event job query.
import {
  Kind,
  OperationTypeNode,
  getArgumentValues,
  getOperationAST,
  getVariableValues,
  parse,
  print,
  validate,
  visit,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLError,
  type GraphQLSchema,
  type SelectionNode,
  type ValidationRule,
} from 'graphql';
import type { SubscribePayload } from 'graphql-ws';
import { ErrorCode } from '@vidmp3/shared';
import type { UpstreamPlanner } from './carry.js';
import { badRequest, withCode } from './support.js';

// ---------------------------------------------------------------------------------------------------------------
// Planning: from the client's subscription to an upstream subscription (carrying the jobs fields, or ids only) and a
// per-event query

/** Root subscription fields this gateway knows how to relay, with what to subscribe to upstream. */
const upstreamSubscriptions = {
  jobUpdated: (args: Record<string, unknown>): SubscribePayload => ({
    query: 'subscription JobUpdated($id: ID!) { jobUpdated(id: $id) { id } }',
    variables: { id: args.id },
  }),
  myJobUpdates: (): SubscribePayload => ({ query: 'subscription MyJobUpdates { myJobUpdates { id } }' }),
} as const;
type RelayedField = keyof typeof upstreamSubscriptions;

export interface SubscriptionPlan {
  document: DocumentNode;
  /** The root field as upstream names it, and the key the client expects (its alias, if any). */
  field: RelayedField;
  responseKey: string;
  upstream: SubscribePayload;
  /** Set when the upstream subscription carries the jobs fields the per-event query would fetch (carry.ts). */
  carried?: { fetch: string; idVariable: string };
  /** `query ($<idVariable>: ID!, <client variables it uses>) { job(id: $<idVariable>) { <selection> } } …` */
  query: string;
  idVariable: string;
  /** The client's values of the variables the query uses. */
  variables: Record<string, unknown>;
}

interface PlanOptions {
  rules: readonly ValidationRule[];
  maxTokens: number;
  hideSchemaDetails: boolean;
  /** Plans upstream subscriptions that carry the jobs fields; without it, they ask for ids only. */
  carry?: UpstreamPlanner;
}

export function planSubscription(
  schema: GraphQLSchema,
  payload: SubscribePayload,
  options: PlanOptions,
): SubscriptionPlan | GraphQLError[] {
  let document: DocumentNode;
  try {
    document = parse(payload.query, { maxTokens: options.maxTokens });
  } catch (err) {
    return [withCode(err, 'GRAPHQL_PARSE_FAILED')];
  }
  const operation = getOperationAST(document, payload.operationName);
  if (!operation) {
    return [
      badRequest(
        payload.operationName
          ? `Unknown operation named "${payload.operationName}"`
          : 'Must provide operationName if the document contains several operations',
      ),
    ];
  }
  if (operation.operation !== OperationTypeNode.SUBSCRIPTION) {
    return [
      badRequest(
        `Only subscriptions are served over WebSocket: send ${operation.operation === OperationTypeNode.QUERY ? 'queries' : 'mutations'} over HTTP (POST /graphql)`,
      ),
    ];
  }
  const invalid = validate(schema, document, options.rules);
  if (invalid.length > 0) {
    return invalid.map((error) => {
      const located = withCode(error, 'GRAPHQL_VALIDATION_FAILED');
      if (options.hideSchemaDetails) located.message = located.message.replace(/ ?Did you mean(.+?)\?$/, '');
      return located;
    });
  }

  const fragments = new Map(
    document.definitions
      .filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION)
      .map((d) => [d.name.value, d]),
  );
  // Validation guarantees one response key at the root; the same field may still be written several times.
  const fields = rootFields(operation.selectionSet.selections, fragments);
  if (!Array.isArray(fields)) return [fields];
  const [first] = fields;
  if (!first) return [badRequest('A subscription selects one field')];
  const field = first.name.value;
  if (!isRelayedField(field)) return [badRequest(`The gateway cannot serve the subscription field "${field}"`)];

  const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], payload.variables ?? {});
  if (coerced.errors) return coerced.errors.map((error) => withCode(error, ErrorCode.BAD_USER_INPUT));
  const fieldDef = schema.getSubscriptionType()?.getFields()[field];
  if (!fieldDef) return [badRequest(`The schema has no subscription field "${field}"`)];
  let args: Record<string, unknown>;
  try {
    args = getArgumentValues(fieldDef, first, coerced.coerced);
  } catch (err) {
    return [withCode(err, ErrorCode.BAD_USER_INPUT)];
  }

  const selections = fields.flatMap((f) => f.selectionSet?.selections ?? []);
  const usedFragments = reachableFragments(selections, fragments);
  const usedVariables = variablesIn([...selections, ...usedFragments]);
  const definitions = (operation.variableDefinitions ?? []).filter((d) => usedVariables.has(d.variable.name.value));
  let idVariable = '__id';
  while (definitions.some((d) => d.variable.name.value === idVariable)) idVariable += '_';
  const query = [
    `query (${[`$${idVariable}: ID!`, ...definitions.map((d) => print(d))].join(', ')})`,
    `{ job(id: $${idVariable}) { ${selections.map((s) => print(s)).join(' ')} } }`,
    ...usedFragments.map((f) => print(f)),
  ].join(' ');
  const variables = Object.fromEntries(
    definitions
      .map((d) => d.variable.name.value)
      .filter((name) => payload.variables && name in payload.variables)
      .map((name) => [name, payload.variables?.[name]]),
  );

  const carried = options.carry?.plan({ field, query, idVariable, variables, jobId: args.id });
  return {
    document,
    field,
    responseKey: first.alias?.value ?? field,
    upstream: carried?.upstream ?? upstreamSubscriptions[field](args),
    ...(carried ? { carried: { fetch: carried.fetch, idVariable } } : {}),
    query,
    idVariable,
    variables,
  };
}

function isRelayedField(name: string): name is RelayedField {
  return Object.hasOwn(upstreamSubscriptions, name);
}

/** The root field nodes, through fragments; a conditional root field is refused (events would have nowhere to go). */
function rootFields(
  selections: readonly SelectionNode[],
  fragments: ReadonlyMap<string, FragmentDefinitionNode>,
): FieldNode[] | GraphQLError {
  const fields: FieldNode[] = [];
  for (const selection of selections) {
    if (selection.directives?.some((d) => d.name.value === 'skip' || d.name.value === 'include')) {
      return badRequest('@skip and @include are not allowed on the root field of a subscription');
    }
    let nested: readonly SelectionNode[];
    switch (selection.kind) {
      case Kind.FIELD:
        fields.push(selection);
        continue;
      case Kind.INLINE_FRAGMENT:
        nested = selection.selectionSet.selections;
        break;
      case Kind.FRAGMENT_SPREAD:
        nested = fragments.get(selection.name.value)?.selectionSet.selections ?? [];
        break;
    }
    const inner = rootFields(nested, fragments);
    if (!Array.isArray(inner)) return inner;
    fields.push(...inner);
  }
  return fields;
}

/** The fragment definitions the selections use, directly or through other fragments. */
function reachableFragments(
  selections: readonly SelectionNode[],
  fragments: ReadonlyMap<string, FragmentDefinitionNode>,
): FragmentDefinitionNode[] {
  const found = new Map<string, FragmentDefinitionNode>();
  const walk = (nodes: readonly (SelectionNode | FragmentDefinitionNode)[]) => {
    for (const node of nodes) {
      visit(node, {
        FragmentSpread(spread) {
          const name = spread.name.value;
          const fragment = fragments.get(name);
          if (!fragment || found.has(name)) return;
          found.set(name, fragment);
          walk([fragment]);
        },
      });
    }
  };
  walk(selections);
  return [...found.values()];
}

function variablesIn(nodes: readonly (SelectionNode | FragmentDefinitionNode)[]): Set<string> {
  const names = new Set<string>();
  for (const node of nodes) {
    visit(node, {
      Variable(variable) {
        names.add(variable.name.value);
      },
    });
  }
  return names;
}

/** Subscriptions longer than this (query and variables, as JSON) are planned every time rather than kept. */
const MAX_CACHED_KEY_LENGTH = 16 * 1024;

/**
 * Plans of the subscriptions seen lately, by their text and variables: a thousand tabs of one page send the same
 * subscription, and each would otherwise parse, validate and keep its own copy of the same document. Plans are
 * read-only and carry no viewer, so every client may share one; they are forgotten when the schema changes.
 */
export class PlanCache {
  private schema: GraphQLSchema | undefined;
  private readonly plans = new Map<string, SubscriptionPlan>();

  constructor(private readonly size = 500) {}

  plan(schema: GraphQLSchema, payload: SubscribePayload, options: PlanOptions): SubscriptionPlan | GraphQLError[] {
    if (schema !== this.schema) {
      this.plans.clear();
      this.schema = schema;
    }
    const key = JSON.stringify([payload.query, payload.operationName ?? null, payload.variables ?? null]);
    const cached = this.plans.get(key);
    if (cached) {
      // Most recently used last: the oldest is the first to go.
      this.plans.delete(key);
      this.plans.set(key, cached);
      return cached;
    }
    const planned = planSubscription(schema, payload, options);
    if (!Array.isArray(planned) && key.length <= MAX_CACHED_KEY_LENGTH) {
      this.plans.set(key, planned);
      if (this.plans.size > this.size) {
        const oldest = this.plans.keys().next().value;
        if (oldest !== undefined) this.plans.delete(oldest);
      }
    }
    return planned;
  }
}
