import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { composeServices } from '@apollo/composition';
import type * as GraphQL from 'graphql';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

// @apollo/composition is CommonJS and checks `instanceof` against its own copy of graphql-js; under ESM
// loaders (vitest) `import 'graphql'` would be the .mjs copy, so parse and print with the CommonJS one.
const { parse, printSchema } = createRequire(import.meta.url)('graphql') as typeof GraphQL;

// The subset of Rover's supergraph.yaml this project uses: local schema files only.
const SupergraphConfig = z.object({
  federation_version: z.string(),
  subgraphs: z.record(
    z.string(),
    z.object({
      routing_url: z.url(),
      schema: z.object({ file: z.string() }),
    }),
  ),
});

export interface Composed {
  supergraphSdl: string;
  apiSchema: string;
}

/** Composes the subgraphs named in a supergraph.yaml, as `rover supergraph compose` would. */
export async function composeFromConfig(configPath: string): Promise<Composed> {
  const config = SupergraphConfig.parse(parseYaml(await readFile(configPath, 'utf8')));
  const base = dirname(configPath);
  const services = await Promise.all(
    Object.entries(config.subgraphs).map(async ([name, subgraph]) => ({
      name,
      url: subgraph.routing_url,
      typeDefs: parse(await readFile(resolve(base, subgraph.schema.file), 'utf8')),
    })),
  );
  const result = composeServices(services);
  if (result.errors) {
    throw new Error(`composition failed:\n${result.errors.map((e) => `  - ${e.message}`).join('\n')}`);
  }
  return {
    supergraphSdl: `${result.supergraphSdl.trim()}\n`,
    apiSchema: `${printSchema(result.schema.toAPISchema().toGraphQLJSSchema())}\n`,
  };
}

export const outputs = { supergraph: 'supergraph.graphql', apiSchema: 'api-schema.graphql' } as const;
