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

/**
 * The SDK's typed documents, from the composed API schema and the SDK's operations. Unlike the resolver types
 * they are committed (the published package is reproducible from the repository), so the build leaves them
 * alone: `CODEGEN_SDK=1 npm run codegen` rewrites them, and sdk/test/generated.test.ts fails while they are stale.
 */
export const sdkTypedDocuments: CodegenConfig['generates'] = {
  'sdk/src/generated/graphql.ts': {
    schema: 'api-schema.graphql',
    documents: 'sdk/src/operations/*.graphql',
    // typescript-operations (v6) emits the enums and inputs the operations use; the typescript plugin is not needed.
    plugins: ['typescript-operations', 'typed-document-node'],
    config: {
      // Plain strings, not DocumentNodes: browsers need no graphql-js to send them.
      documentMode: 'string',
      useTypeImports: true,
      enumsAsTypes: true,
      skipTypename: true,
      avoidOptionals: { field: true, inputValue: false, object: true, defaultValue: false },
      scalars: { DateTime: 'string', Upload: 'unknown' },
    },
  },
};

const config: CodegenConfig = {
  overwrite: true,
  silent: true,
  generates: {
    ...subgraph('users', {
      User: '../adapters/user-repo.js#UserRecord',
      AuthPayload: '../services/accounts.js#AuthResult',
      ApiKey: '../adapters/api-key-repo.js#ApiKeyRecord',
      CreatedApiKey: '../services/api-keys.js#NewApiKeyResult',
      Webhook: '../adapters/webhook-repo.js#WebhookRecord',
      CreatedWebhook: '../services/webhooks.js#CreatedWebhookResult',
      WebhookDelivery: '../adapters/webhook-repo.js#DeliveryRecord',
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
    ...(process.env.CODEGEN_SDK === '1' ? sdkTypedDocuments : {}),
  },
};

export default config;
