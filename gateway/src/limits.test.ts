import { readFileSync, readdirSync } from 'node:fs';
import { buildSchema, parse, validate, specifiedRules, type GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { defaultQuery } from '../../web/src/playground/default-query.js';
import { ConfigSchema } from './config.js';
import { operationLimits } from './limits.js';

const apiSchema = buildSchema(readFileSync(new URL('../../api-schema.graphql', import.meta.url), 'utf8'));

function errors(query: string, env: Record<string, string> = {}): readonly GraphQLError[] {
  const { validationRules } = operationLimits(ConfigSchema.parse(env));
  return validate(apiSchema, parse(query), [...specifiedRules, ...validationRules]);
}

function check(query: string, env: Record<string, string> = {}) {
  return errors(query, env).map((e) => e.message);
}

/** Which of our limits refused the operation (`MAX_COST`, `CYCLE`), or `accepted`. */
function verdict(query: string, env: Record<string, string> = {}): string {
  const found = errors(query, env);
  if (found.length === 0) return 'accepted';
  const limits = found.map((e) => e.extensions.limit);
  if (limits.some((l) => typeof l !== 'string')) throw new Error(found.map((e) => e.message).join('\n'));
  return limits.join();
}

describe('operation limits', () => {
  it('accepts an ordinary operation under the default limits', () => {
    expect(check('{ me { id email createdAt } }')).toEqual([]);
  });

  it('rejects an operation deeper than MAX_DEPTH', () => {
    expect(check('{ me { id } }', { MAX_DEPTH: '1' }).join()).toMatch(/depth limit of 1 exceeded/i);
  });

  it('rejects more aliases than MAX_ALIASES', () => {
    const aliases = Array.from({ length: 4 }, (_, i) => `a${i}: me { id }`).join(' ');
    expect(check(`{ ${aliases} }`, { MAX_ALIASES: '3' }).join()).toMatch(/aliases limit of 3 exceeded/i);
  });

  it('rejects an operation costlier than MAX_COST', () => {
    expect(check('{ me { id email createdAt } }', { MAX_COST: '2' }).join()).toMatch(/cost limit/i);
  });

  it('rejects more directives than MAX_DIRECTIVES', () => {
    expect(check('{ me @include(if: true) @skip(if: false) { id } }', { MAX_DIRECTIVES: '1' }).join()).toMatch(
      /directives limit/i,
    );
  });
});

describe('cost that counts list sizes', () => {
  // me: 1 + jobs; jobs: (1 + edges) × 3; edges: 1 + node; node: 1 + id (1)  →  1 + (1 + 3) × 3 = 13
  const threeJobs = '{ me { jobs(first: 3) { edges { node { id } } } } }';

  it('multiplies a paged field by its `first`: the cost is exactly (1 + selections) × page size', () => {
    expect(verdict(threeJobs, { MAX_COST: '13' })).toBe('accepted');
    expect(verdict(threeJobs, { MAX_COST: '12' })).toBe('MAX_COST');
    expect(check(threeJobs, { MAX_COST: '12' }).join()).toMatch(/Query cost limit of 12 exceeded/);
  });

  it('counts a paged field without `first` as its default page (20) and a `first` variable as the largest (100)', () => {
    // 1 + (1 + 3) × 20 = 81 and 1 + (1 + 3) × 100 = 401
    const absent = '{ me { jobs { edges { node { id } } } } }';
    const variable = 'query ($n: Int) { me { jobs(first: $n) { edges { node { id } } } } }';
    expect(verdict(absent, { MAX_COST: '81' })).toBe('accepted');
    expect(verdict(absent, { MAX_COST: '80' })).toBe('MAX_COST');
    expect(verdict(variable, { MAX_COST: '401' })).toBe('accepted');
    expect(verdict(variable, { MAX_COST: '400' })).toBe('MAX_COST');
  });

  it('counts a list of enum values (API key scopes) as one item: it fans out to nothing', () => {
    // 1 (me) + 100 (an unpaged list) × (1 + id, name, scopes) = 401
    const keys = '{ me { apiKeys { id name scopes } } }';
    expect(verdict(keys, { MAX_COST: '401' })).toBe('accepted');
    expect(verdict(keys, { MAX_COST: '400' })).toBe('MAX_COST');
  });

  it('counts fields reached through fragments, and __typename as free', () => {
    const viaFragments = `{ me { ...Jobs } }
      fragment Jobs on User { jobs(first: 3) { edges { ... on JobEdge { node { id __typename } } } } }`;
    expect(verdict(viaFragments, { MAX_COST: '13' })).toBe('accepted');
    expect(verdict(viaFragments, { MAX_COST: '12' })).toBe('MAX_COST');
  });

  it.each([
    [
      'two nested pages of 100',
      '{ me { jobs(first: 100) { edges { node { input { conversions(first: 100) { edges { node { id } } } } } } } } }',
    ],
    [
      'two nested pages given as variables',
      'query ($n: Int) { me { media(first: $n) { edges { node { conversions(first: $n) { edges { node { id } } } } } } } }',
    ],
    [
      'every video with the default page of its conversions and their outputs',
      '{ me { media(first: 100) { edges { node { conversions { edges { node { id status output { id filename downloadUrl } } } } } } } } }',
    ],
  ])('refuses %s under the default MAX_COST', (_name, query) => {
    expect(verdict(query)).toBe('MAX_COST');
  });

  it('stops early on fragments that expand exponentially (2^40 fields)', () => {
    const fragments = Array.from(
      { length: 40 },
      (_, i) => `fragment F${i} on User { ${i === 39 ? 'id' : `... on User { ...F${i + 1} } ...F${i + 1}`} }`,
    );
    // MAX_DEPTH would refuse it too (fragments count as levels there): lifted to test the cost walk alone.
    expect(verdict(`{ me { ...F0 } } ${fragments.join(' ')}`, { MAX_DEPTH: '1000' })).toBe('MAX_COST');
  });
});

describe('selections that re-enter themselves', () => {
  it.each([
    [
      'job → input → conversions → input',
      'query ($id: ID!) { job(id: $id) { input { conversions { edges { node { input { id } } } } } } }',
    ],
    [
      'media → conversions → output → conversions',
      'query ($id: ID!) { media(id: $id) { conversions { edges { node { output { conversions { edges { node { id } } } } } } } } }',
    ],
    [
      'media → conversions → input → conversions',
      'query ($id: ID!) { media(id: $id) { conversions(first: 1) { edges { node { input { conversions(first: 1) { edges { node { id } } } } } } } } }',
    ],
    [
      'the same loop under aliases',
      'query ($id: ID!) { job(id: $id) { a: input { b: conversions { edges { node { c: input { id } } } } } } }',
    ],
    [
      'the same loop through fragments',
      'query ($id: ID!) { job(id: $id) { input { ...Conversions } } } fragment Conversions on Media { conversions { edges { node { ...Input } } } } fragment Input on Job { input { id } }',
    ],
    [
      'myJobUpdates → input → conversions → input',
      'subscription { myJobUpdates { input { conversions { edges { node { input { filename } } } } } } }',
    ],
    [
      'jobUpdated → input → conversions → input',
      'subscription ($id: ID!) { jobUpdated(id: $id) { input { conversions(first: 1) { edges { node { input { id } } } } } } }',
    ],
    [
      'me → media → owner → media',
      '{ me { media(first: 1) { edges { node { owner { media(first: 1) { edges { node { id } } } } } } } } }',
    ],
  ])('refuses %s as a cycle', (_name, query) => {
    // MAX_DEPTH counts fragments as levels and would refuse the one through fragments too: lifted here.
    expect(verdict(query, { MAX_DEPTH: '100' })).toBe('CYCLE');
  });

  it('says which field re-entered itself and where', () => {
    const [message] = check(
      'query ($id: ID!) { job(id: $id) { input { conversions { edges { node { input { id } } } } } } }',
    );
    expect(message).toBe(
      'Cyclic selection: Job.input is selected inside itself (job.input.conversions.edges.node.input). ' +
        'A field that leads to another object may appear once on a path; select what you need at the outer level.',
    );
  });

  it.each([
    [
      'a page of conversions with their outputs',
      'query ($id: ID!) { media(id: $id) { conversions(first: 2) { edges { cursor node { id status output { downloadUrl } } } pageInfo { hasNextPage endCursor } } } }',
    ],
    [
      'the conversions of a job’s input, once',
      'query ($id: ID!) { job(id: $id) { input { filename conversions(first: 5) { edges { node { id status } } } } } }',
    ],
    [
      'two different lists of jobs on one path',
      '{ me { jobs(first: 5) { edges { node { input { conversions(first: 5) { edges { node { id } } } } } } } } }',
    ],
    ['the same field side by side', 'query ($id: ID!) { job(id: $id) { input { id } again: input { filename } } }'],
    [
      'a subscription selecting from all three subgraphs',
      'subscription ($id: ID!) { jobUpdated(id: $id) { status progress owner { email } input { filename } output { downloadUrl } } }',
    ],
  ])('accepts %s', (_name, query) => {
    expect(verdict(query)).toBe('accepted');
  });
});

describe('the default limits', () => {
  // The SDK's documents: its operations and the fragments they share, across files.
  const sdkDir = new URL('../../sdk/src/operations/', import.meta.url);
  const sdkDocument = readdirSync(sdkDir)
    .filter((name) => name.endsWith('.graphql'))
    .map((name) => readFileSync(new URL(name, sdkDir), 'utf8'))
    .join('\n');

  it('accept every operation the SDK (and through it the page and the CLI) sends', () => {
    expect(check(sdkDocument)).toEqual([]);
  });

  it('accept the playground’s example operations', () => {
    expect(check(defaultQuery)).toEqual([]);
  });

  it('refuse a paged list of jobs with the SDK’s fields inside a page of 100 videos', () => {
    const sdkJobs = sdkDocument.replace(
      /query Jobs\(.*?\n}\n/s,
      'query Jobs { me { media(first: 100) { edges { node { conversions(first: 20) { edges { node { ...JobFields } } } } } } } }\n',
    );
    expect(check(sdkJobs).join()).toMatch(/Query cost limit of 5000 exceeded/);
  });
});
