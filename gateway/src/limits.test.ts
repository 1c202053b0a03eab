import { readFileSync } from 'node:fs';
import { buildSchema, parse, validate, specifiedRules } from 'graphql';
import { describe, expect, it } from 'vitest';
import { ConfigSchema } from './config.js';
import { operationLimits } from './limits.js';

const apiSchema = buildSchema(readFileSync(new URL('../../api-schema.graphql', import.meta.url), 'utf8'));

function check(query: string, env: Record<string, string> = {}) {
  const { validationRules } = operationLimits(ConfigSchema.parse(env));
  return validate(apiSchema, parse(query), [...specifiedRules, ...validationRules]).map((e) => e.message);
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
