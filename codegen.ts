import type { CodegenConfig } from '@graphql-codegen/cli';

// Resolver types for each subgraph, generated from its SDL (the contract) into src/generated/ at build time.
const subgraph = (
  name: string,
  mappers: Record<string, string>,
  scalars: Record<string, string> = {},
): CodegenConfig['generates'] => ({
  [`subgraphs/${name}/src/generated/graphql.ts`]: {
    schema: `subgraphs/${name}/schema.graphql`,
    plugins: ['typescript', 'typescript-resolvers'],
    config: {
      federation: true,
      useIndexSignature: true,
      useTypeImports: true,
      enumsAsTypes: true,
      contextType: '../context.js#Context',
      scalars: { DateTime: 'Date', ...scalars },
      mappers,
    },
  },
});

const config: CodegenConfig = {
  overwrite: true,
  silent: true,
  generates: {
    ...subgraph('users', {
      User: '../adapters/user-repo.js#UserRecord',
      AuthPayload: '../services/accounts.js#AuthResult',
    }),
    ...subgraph(
      'media',
      { Media: '../adapters/media-repo.js#MediaRecord', User: '../context.js#UserRef' },
      // graphql-upload-minimal's scalar hands resolvers a promise of the file.
      { Upload: "Promise<import('graphql-upload-minimal').FileUpload>" },
    ),
    ...subgraph('jobs', {
      Job: '../adapters/jobs-repo.js#JobRecord',
      User: '../context.js#Ref',
      Media: '../context.js#Ref',
    }),
  },
};

export default config;
