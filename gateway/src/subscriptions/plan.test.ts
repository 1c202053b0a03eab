import { buildSchema, specifiedRules } from 'graphql';
import { describe, expect, it, vi } from 'vitest';
import { PlanCache } from './plan.js';

// As in subscriptions.test.ts: one copy of graphql (Node's), the way the gateway runs.
vi.mock('graphql', async () => {
  const { createRequire } = await import('node:module');
  return createRequire(import.meta.url)('graphql') as object;
});

const sdl = /* GraphQL */ `
  type Query {
    job(id: ID!): Job
  }
  type Job {
    id: ID!
    status: String!
  }
  type Subscription {
    jobUpdated(id: ID!): Job!
  }
`;
const options = { rules: specifiedRules, maxTokens: 1_000, hideSchemaDetails: true };
const WATCH = 'subscription ($id: ID!) { jobUpdated(id: $id) { status } }';

describe('PlanCache', () => {
  it('plans the same subscription with the same variables once, and keeps refusals out', () => {
    const schema = buildSchema(sdl);
    const cache = new PlanCache();

    const first = cache.plan(schema, { query: WATCH, variables: { id: 'job-1' } }, options);
    const again = cache.plan(schema, { query: WATCH, variables: { id: 'job-1' } }, options);
    const other = cache.plan(schema, { query: WATCH, variables: { id: 'job-2' } }, options);

    expect(again).toBe(first);
    expect(other).not.toBe(first);
    expect(Array.isArray(cache.plan(schema, { query: 'subscription { nope }' }, options))).toBe(true);
  });

  it('plans again against a new schema, and forgets the least recently used plan when full', () => {
    const cache = new PlanCache(2);
    const schema = buildSchema(sdl);
    const plan = (id: string, on = schema) => cache.plan(on, { query: WATCH, variables: { id } }, options);
    const one = plan('1');
    plan('2');
    expect(plan('1')).toBe(one); // used again: now the most recent
    plan('3'); // evicts 2
    expect(plan('1')).toBe(one);
    const two = plan('2');
    expect(plan('2')).toBe(two);

    expect(plan('1', buildSchema(sdl))).not.toBe(one);
  });
});
