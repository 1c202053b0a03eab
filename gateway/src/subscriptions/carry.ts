// Carrying: the jobs fields of a client's selection travel in the upstream event, so that each event costs the
// gateway only the other subgraphs' fetches.
import { operationFromDocument, Supergraph } from '@apollo/federation-internals';
import { QueryPlanner, type FetchNode, type PlanNode, type SubscriptionNode } from '@apollo/query-planner';
import {
  Kind,
  OperationTypeNode,
  parse,
  print,
  stripIgnoredCharacters,
  type DocumentNode,
  type FieldNode,
  type OperationDefinitionNode,
} from 'graphql';
import type { SubscribePayload } from 'graphql-ws';

/** The alias under which the upstream subscription also selects the job's id (the client may not select it). */
export const CARRIED_ID = '_carriedJobId';

/** How one planned subscription carries its jobs fields. */
export interface CarriedPlan {
  /** The upstream subscription: jobs' part of the client's selection, exactly as the per-event query fetches it. */
  upstream: SubscribePayload;
  /**
   * The jobs fetch that Apollo's query plan makes for the per-event query (`job(id: $<idVariable>)`): the
   * gateway's data source answers it from the event instead of asking jobs again (datasource.ts).
   */
  fetch: string;
  idVariable: string;
}

/** One event's carried fields, handed to the per-event query through its context. */
export interface CarriedJob {
  fetch: string;
  idVariable: string;
  jobId: string;
  /** The `job` object as jobs' fetch would return it (the carried id alias removed). */
  data: Record<string, unknown>;
}

/**
 * Plans the upstream subscription from the per-event query's own query plan, with the same planner Apollo
 * Gateway uses over the same supergraph (deterministic: the same query gives the same fetch text). When the
 * plan does not start with one jobs fetch of `job` (nothing the gateway serves today), nothing is carried and
 * the upstream subscription asks for the id only.
 */
export class UpstreamPlanner {
  private readonly planner: QueryPlanner;
  private readonly apiSchema: ReturnType<Supergraph['apiSchema']>;
  /**
   * Plans by field and query text (never by variable values, which they do not depend on): a thousand users each
   * watching their own job with one page's subscription cost one planning. Least recently used first.
   */
  private readonly templates = new Map<string, Template | undefined>();

  constructor(
    supergraphSdl: string,
    private readonly size = 500,
  ) {
    const supergraph = Supergraph.build(supergraphSdl);
    this.planner = new QueryPlanner(supergraph);
    this.apiSchema = supergraph.apiSchema();
  }

  plan(options: {
    field: 'jobUpdated' | 'myJobUpdates';
    /** The per-event query (`query ($<idVariable>: ID!, …) { job(id: $<idVariable>) { … } }`) and its variables. */
    query: string;
    idVariable: string;
    variables: Record<string, unknown>;
    jobId: unknown;
  }): CarriedPlan | undefined {
    const key = `${options.field}\n${options.idVariable}\n${options.query}`;
    let template: Template | undefined;
    if (this.templates.has(key)) {
      template = this.templates.get(key);
      this.templates.delete(key);
    } else {
      template = this.template(options.field, options.query, options.idVariable);
    }
    this.templates.set(key, template);
    if (this.templates.size > this.size) this.templates.delete(this.templates.keys().next().value!);
    if (!template) return undefined;

    const variables: Record<string, unknown> = {};
    for (const name of template.variableUsages) {
      if (name === options.idVariable) {
        if (options.field === 'jobUpdated') variables[name] = options.jobId;
      } else if (name in options.variables) {
        variables[name] = options.variables[name];
      }
    }
    return { upstream: { query: template.query, variables }, fetch: template.fetch, idVariable: options.idVariable };
  }

  private template(field: 'jobUpdated' | 'myJobUpdates', query: string, idVariable: string): Template | undefined {
    let fetch: FetchNode | undefined;
    try {
      const operation = operationFromDocument(this.apiSchema, parse(query));
      fetch = rootJobsFetch(this.planner.buildQueryPlan(operation).node);
    } catch {
      return undefined; // planned the usual way: the query still runs, and reports its own errors
    }
    if (!fetch) return undefined;
    const document = parse(fetch.operation);
    const [definition] = document.definitions;
    if (definition?.kind !== Kind.OPERATION_DEFINITION || definition.selectionSet.selections.length !== 1) return;
    const [root] = definition.selectionSet.selections;
    if (root?.kind !== Kind.FIELD || root.name.value !== 'job' || root.alias || !root.selectionSet) return;

    const byId = field === 'jobUpdated';
    const idField: FieldNode = {
      kind: Kind.FIELD,
      alias: { kind: Kind.NAME, value: CARRIED_ID },
      name: { kind: Kind.NAME, value: 'id' },
    };
    const subscription: OperationDefinitionNode = {
      ...definition,
      operation: OperationTypeNode.SUBSCRIPTION,
      variableDefinitions: (definition.variableDefinitions ?? []).filter(
        (d) => byId || d.variable.name.value !== idVariable,
      ),
      selectionSet: {
        kind: Kind.SELECTION_SET,
        selections: [
          {
            ...root,
            name: { kind: Kind.NAME, value: field },
            arguments: byId ? root.arguments : [],
            selectionSet: { ...root.selectionSet, selections: [...root.selectionSet.selections, idField] },
          },
        ],
      },
    };
    const upstream: DocumentNode = { kind: Kind.DOCUMENT, definitions: [subscription] };
    return {
      query: stripIgnoredCharacters(print(upstream)),
      fetch: fetch.operation,
      variableUsages: fetch.variableUsages ?? [],
    };
  }
}

/** A planned upstream subscription without its variables' values. */
interface Template {
  query: string;
  fetch: string;
  variableUsages: readonly string[];
}

/** The plan's first fetch when it is a query of the jobs subgraph that everything else depends on. */
function rootJobsFetch(node: PlanNode | SubscriptionNode | undefined): FetchNode | undefined {
  const first = node?.kind === 'Sequence' ? node.nodes[0] : node;
  if (first?.kind !== 'Fetch' || first.serviceName !== 'jobs' || first.operationKind !== OperationTypeNode.QUERY)
    return undefined;
  const rewrites = [first.requires, first.inputRewrites, first.outputRewrites, first.contextRewrites];
  if (rewrites.some((list) => list && list.length > 0)) return undefined;
  return first;
}

/** The event's job as jobs' fetch of `job` would return it, or undefined when the event carries none. */
export function carriedJob(event: Record<string, unknown>): { id: string; data: Record<string, unknown> } | undefined {
  const { [CARRIED_ID]: id, ...data } = event;
  return typeof id === 'string' ? { id, data } : undefined;
}
