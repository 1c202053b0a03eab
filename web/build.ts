// Bundles the browser doors into web/dist: the conversion page (index.html) and the GraphQL playground
// (playground/index.html). Everything they load is in dist/assets under content-hashed names (served with a
// long cache); the HTML files are small and always revalidated. Nothing is fetched from a CDN.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';
import * as esbuild from 'esbuild';

const root = fileURLToPath(new URL('.', import.meta.url));
const dist = join(root, 'dist');
const assets = join(dist, 'assets');

const pages = [
  { name: 'page', entry: 'src/page/main.ts', template: 'src/page/index.html', html: 'index.html' },
  {
    name: 'playground',
    entry: 'src/playground/main.ts',
    template: 'src/playground/index.html',
    html: 'playground/index.html',
  },
] as const;

await rm(dist, { recursive: true, force: true });
const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: Object.fromEntries(pages.map((p) => [p.name, p.entry])),
  outdir: assets,
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022', 'chrome100', 'firefox100', 'safari15'],
  minify: true,
  sourcemap: 'linked',
  // Licences of the bundled libraries, in a file of their own beside each bundle.
  legalComments: 'linked',
  metafile: true,
  define: { 'process.env.NODE_ENV': '"production"' },
  logLevel: 'warning',
});

// The icon, hashed like everything else under assets/ (and no request for a missing /favicon.ico).
const icon = await readFile(join(root, 'src/favicon.svg'));
const iconName = `favicon-${createHash('sha256').update(icon).digest('hex').slice(0, 8).toUpperCase()}.svg`;
await writeFile(join(assets, iconName), icon);

// Each page's HTML names its own hashed script and stylesheet.
for (const page of pages) {
  const [file, output] =
    Object.entries(result.metafile.outputs).find(([, o]) => o.entryPoint === page.entry) ??
    failed(`esbuild wrote no bundle for ${page.entry}`);
  const url = (path: string) => `/${relative(dist, join(root, path)).split('\\').join('/')}`;
  const css = output.cssBundle ? `<link rel="stylesheet" href="${url(output.cssBundle)}" />` : '';
  const js = `<script type="module" src="${url(file)}"></script>`;
  const template = await readFile(join(root, page.template), 'utf8');
  if (!template.includes('<!-- assets -->')) failed(`${page.template} has no <!-- assets --> marker`);
  const target = join(dist, page.html);
  await mkdir(dirname(target), { recursive: true });
  const links = [`<link rel="icon" type="image/svg+xml" href="/assets/${iconName}" />`, css, js].filter(Boolean);
  await writeFile(target, template.replace('<!-- assets -->', links.join('\n    ')));
}

// Compressed once here rather than on every request: the gateway sends the .br or .gz twin when the browser
// accepts it (the playground's script is about 1.4 MB as it is, under 0.4 MB as brotli).
const brotli = promisify(brotliCompress);
const gzipped = promisify(gzip);
await Promise.all(
  Object.keys(result.metafile.outputs)
    .filter((file) => /\.(js|css)$/.test(file))
    .map(async (file) => {
      const path = join(root, file);
      const bytes = await readFile(path);
      const quality = { [constants.BROTLI_PARAM_QUALITY]: 9, [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length };
      await writeFile(`${path}.br`, await brotli(bytes, { params: quality }));
      await writeFile(`${path}.gz`, await gzipped(bytes, { level: 9 }));
    }),
);

const size = (bytes: number) => `${(bytes / 1024).toFixed(0)} KiB`;
for (const [file, output] of Object.entries(result.metafile.outputs)) {
  if (!file.endsWith('.map')) console.log(`web: ${relative(root, join(root, file))} ${size(output.bytes)}`);
}

function failed(message: string): never {
  throw new Error(`web build: ${message}`);
}
