import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse, print } from 'graphql';
import type { QueryPlanner } from '@apollo/query-planner';
import { describe, expect, it, vi } from 'vitest';
import { CARRIED_ID, carriedJob, UpstreamPlanner } from './carry.js';

// The committed supergraph: the one Apollo Gateway plans over in production.
const planner = new UpstreamPlanner(
  readFileSync(fileURLToPath(new URL('../../../supergraph.graphql', import.meta.url)), 'utf8'),
);
const compact = (query: string) => print(parse(query)).replace(/\s+/g, ' ');

describe('upstream subscriptions that carry the jobs fields', () => {
  it("subscribes to jobs' part of a selection over three subgraphs, keys of the others included", () => {
    const planned = planner.plan({
      field: 'jobUpdated',
      query: 'query ($__id: ID!) { job(id: $__id) { status progress owner { email } input { filename } } }',
      idVariable: '__id',
      variables: {},
      jobId: 'j1',
    });
    expect(compact(planned!.upstream.query)).toBe(
      compact(`subscription ($__id: ID!) { jobUpdated(id: $__id) {
        status progress owner { __typename id } input { __typename id } ${CARRIED_ID}: id } }`),
    );
    expect(planned!.upstream.variables).toEqual({ __id: 'j1' });
    // The fetch Apollo's plan of the per-event query makes: the same selection under `job`.
    expect(compact(planned!.fetch)).toBe(
      compact(
        'query ($__id: ID!) { job(id: $__id) { status progress owner { __typename id } input { __typename id } } }',
      ),
    );
  });

  it('keeps aliases, fragments and conditions, and passes only the variables the selection uses', () => {
    const planned = planner.plan({
      field: 'myJobUpdates',
      query: `query ($__id: ID!, $p: Boolean!) { job(id: $__id) { s: status ...F done: progress @include(if: $p) } }
        fragment F on Job { id }`,
      idVariable: '__id',
      variables: { p: true, unused: 1 },
      jobId: undefined,
    });
    const upstream = compact(planned!.upstream.query);
    expect(upstream).toMatch(/^subscription \(\$p: Boolean!\) \{ myJobUpdates \{/);
    expect(upstream).toContain('s: status');
    expect(upstream).toContain('done: progress @include(if: $p)');
    expect(upstream).not.toContain('$__id');
    expect(planned!.upstream.variables).toEqual({ p: true });
  });

  it('plans nothing for a query the planner refuses (the usual path reports its errors)', () => {
    const planned = planner.plan({
      field: 'jobUpdated',
      query: 'query ($__id: ID!) { job(id: $__id) { noSuchField } }',
      idVariable: '__id',
      variables: {},
      jobId: 'j1',
    });
    expect(planned).toBeUndefined();
  });

  it('plans a query once whatever job it watches: the variables change, the planning does not', () => {
    const fresh = new UpstreamPlanner(
      readFileSync(fileURLToPath(new URL('../../../supergraph.graphql', import.meta.url)), 'utf8'),
    );
    const planning = vi.spyOn((fresh as unknown as { planner: QueryPlanner }).planner, 'buildQueryPlan');
    const query = 'query ($__id: ID!) { job(id: $__id) { status } }';
    const one = fresh.plan({ field: 'jobUpdated', query, idVariable: '__id', variables: {}, jobId: 'j1' });
    const two = fresh.plan({ field: 'jobUpdated', query, idVariable: '__id', variables: {}, jobId: 'j2' });
    expect(planning).toHaveBeenCalledTimes(1);
    expect([one!.upstream.variables, two!.upstream.variables]).toEqual([{ __id: 'j1' }, { __id: 'j2' }]);
    expect(two!.upstream.query).toBe(one!.upstream.query);
  });

  it("reads an event's job id from its alias and hands on the job without it", () => {
    expect(carriedJob({ status: 'RUNNING', [CARRIED_ID]: 'j1' })).toEqual({ id: 'j1', data: { status: 'RUNNING' } });
    expect(carriedJob({ status: 'RUNNING' })).toBeUndefined();
  });
});
