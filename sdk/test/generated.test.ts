// The committed typed documents must be what GraphQL Code Generator makes from today's operations and API schema.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generate } from '@graphql-codegen/cli';
import { describe, expect, it } from 'vitest';
import { sdkTypedDocuments } from '../../codegen.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('the generated typed documents', () => {
  it('are up to date with sdk/src/operations and api-schema.graphql (else run: npm run codegen -w @vidmp3/sdk)', async () => {
    const outputs = (await generate({ generates: sdkTypedDocuments, silent: true, cwd: root }, false)) as {
      filename: string;
      content: string;
    }[];
    expect(outputs.map((o) => o.filename)).toEqual(['sdk/src/generated/graphql.ts']);
    const committed = await readFile(join(root, 'sdk/src/generated/graphql.ts'), 'utf8');
    expect(committed === outputs[0]!.content, 'sdk/src/generated/graphql.ts is stale').toBe(true);
  });
});
