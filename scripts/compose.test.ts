import { readFile, writeFile, mkdtemp, cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { composeFromConfig, outputs } from './lib/compose.js';

const root = fileURLToPath(new URL('..', import.meta.url));

describe('supergraph composition', () => {
  it('composes the subgraphs named in supergraph.yaml into exactly the committed supergraph and API schema', async () => {
    const composed = await composeFromConfig(join(root, 'supergraph.yaml'));
    const hint = 'stale: run `npm run compose` and commit the result';
    expect(await readFile(join(root, outputs.supergraph), 'utf8'), hint).toBe(composed.supergraphSdl);
    expect(await readFile(join(root, outputs.apiSchema), 'utf8'), hint).toBe(composed.apiSchema);
  });

  it('exposes the users contract in the API schema without federation internals', async () => {
    const { apiSchema } = await composeFromConfig(join(root, 'supergraph.yaml'));
    expect(apiSchema).toContain('signUp(email: String!, password: String!): AuthPayload!');
    expect(apiSchema).toContain('logIn(email: String!, password: String!): AuthPayload!');
    expect(apiSchema).toMatch(/type Query \{[^}]*me: User/);
    expect(apiSchema).not.toContain('join__');
    expect(apiSchema).not.toContain('_entities');
  });

  it('fails with the composition errors when two subgraphs disagree', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'compose-'));
    await cp(join(root, 'subgraphs/users/schema.graphql'), join(dir, 'users.graphql'));
    // A second subgraph defining User.email with another type, without sharing it: composition must refuse.
    await writeFile(
      join(dir, 'other.graphql'),
      'extend schema @link(url: "https://specs.apollo.dev/federation/v2.9", import: ["@key"])\n' +
        'type User @key(fields: "id") { id: ID! email: Int }\ntype Query { other: User }\n',
    );
    await writeFile(
      join(dir, 'supergraph.yaml'),
      'federation_version: =2.9.0\nsubgraphs:\n' +
        '  users: { routing_url: "http://127.0.0.1:1/graphql", schema: { file: ./users.graphql } }\n' +
        '  other: { routing_url: "http://127.0.0.1:2/graphql", schema: { file: ./other.graphql } }\n',
    );
    await expect(composeFromConfig(join(dir, 'supergraph.yaml'))).rejects.toThrow(/composition failed/);
  });
});
