// An image installs only its deployable's production dependencies (`npm ci --omit=dev --workspace=…`, see the
// Dockerfile), while here every package of the monorepo is hoisted into one node_modules: a service importing a
// package that only the root (or another workspace) declares works in tests and crashes in its image. This
// checks what each deployable's compiled code imports against what its package.json promises.
import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

interface Manifest {
  name: string;
  dependencies?: Record<string, string>;
}

const manifest = (dir: string) => JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8')) as Manifest;

function jsFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.js'))
    .map((e) => join(e.parentPath, e.name));
}

const IMPORT =
  /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|^import\s*['"]([^'"]+)['"]/gm;
const builtins = new Set(builtinModules);

/** The packages a compiled folder imports, by package name (`@scope/name` or `name`). */
function importedPackages(source: string): Set<string> {
  const found = new Set<string>();
  for (const match of source.matchAll(IMPORT)) {
    const specifier = match[1] ?? match[2] ?? match[3]!;
    if (specifier.startsWith('.') || specifier.startsWith('node:') || builtins.has(specifier.split('/')[0]!)) continue;
    const parts = specifier.split('/');
    found.add(specifier.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!);
  }
  return found;
}

/** What a workspace imports at run time but does not declare as a dependency (types-only imports are erased). */
function undeclared(dir: string): string[] {
  const { name, dependencies = {} } = manifest(dir);
  const imported = new Set<string>();
  for (const file of jsFiles(join(dir, 'dist'))) {
    for (const pkg of importedPackages(readFileSync(file, 'utf8'))) imported.add(pkg);
  }
  return [...imported].filter((pkg) => pkg !== name && !(pkg in dependencies)).sort();
}

describe('what each image runs with', () => {
  for (const dir of [
    'packages/shared',
    'gateway',
    'subgraphs/users',
    'subgraphs/media',
    'subgraphs/jobs',
    'workers/converter',
    'workers/notifier',
    'sdk',
    'cli',
  ]) {
    it(`${dir} declares every package its compiled code imports`, () => {
      expect(undeclared(dir)).toEqual([]);
    });
  }

  it('notices an import that is not declared', () => {
    const source =
      "import { x } from 'left-pad';\nconst y = await import('@scope/pkg/sub');\nimport fs from 'node:fs';";
    expect([...importedPackages(source)].sort()).toEqual(['@scope/pkg', 'left-pad']);
  });
});
