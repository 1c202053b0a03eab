// The web page bundles the SDK with esbuild for browsers: that must work without any node: module.
import { fileURLToPath } from 'node:url';
import { build, type BuildOptions } from 'esbuild';
import { describe, expect, it } from 'vitest';

const sdkDir = fileURLToPath(new URL('..', import.meta.url));
const root = fileURLToPath(new URL('../..', import.meta.url));

const entries: [string, BuildOptions][] = [
  [
    "an import of '@vidmp3/sdk'",
    {
      stdin: {
        contents: "import { createClient, Vidmp3Error } from '@vidmp3/sdk'; console.log(createClient, Vidmp3Error);",
        resolveDir: sdkDir,
      },
    },
  ],
  // package.json's "browser" field maps the Node entry to the browser one, even as an entry point.
  ['sdk/dist/index.js itself', { entryPoints: ['sdk/dist/index.js'], absWorkingDir: root }],
];

describe('the browser build', () => {
  it.each(entries)(
    'bundles %s for the browser: the browser entry, no node: module, no ws, no graphql-js',
    async (_, entry) => {
      const result = await build({
        ...entry,
        bundle: true,
        platform: 'browser',
        format: 'esm',
        write: false,
        metafile: true,
        logLevel: 'silent',
      });
      const inputs = Object.keys(result.metafile.inputs);
      expect(inputs).toContain('sdk/dist/browser.js');
      expect(inputs.filter((i) => /node\/platform|node_modules\/(ws|graphql)\//.test(i))).toEqual([]);
      const code = result.outputFiles[0]!.text;
      expect(code).not.toMatch(/from ["']node:|require\(["']node:/);
      // Small enough for a page: the typed documents are strings, graphql-js is not shipped.
      expect(code.length).toBeLessThan(120_000);
    },
  );
});
