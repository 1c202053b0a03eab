// Composes supergraph.yaml into supergraph.graphql and api-schema.graphql (`npm run compose`).
// Rover's binary cannot be downloaded on the project's machines; @apollo/composition is the same composer.
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { composeFromConfig, outputs } from './lib/compose.js';

const root = fileURLToPath(new URL('..', import.meta.url));

try {
  const { supergraphSdl, apiSchema } = await composeFromConfig(`${root}supergraph.yaml`);
  await writeFile(`${root}${outputs.supergraph}`, supergraphSdl);
  await writeFile(`${root}${outputs.apiSchema}`, apiSchema);
  process.stdout.write(`wrote ${outputs.supergraph} and ${outputs.apiSchema}\n`);
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
