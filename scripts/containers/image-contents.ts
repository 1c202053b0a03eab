// What an image may carry, judged from its file list (walked from `podman image mount`): under /app only what
// runs (compiled JavaScript, schemas, the web bundle, production dependencies), and no secrets anywhere.
import { lstat, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface ImageFile {
  /** Absolute in the image, e.g. /app/gateway/dist/main.js. */
  path: string;
  kind: 'file' | 'dir' | 'link';
}

/** Every file and directory of an image's filesystem, mounted at `mount` (symlinks are listed, not followed). */
export async function listImage(mount: string, under = '/'): Promise<ImageFile[]> {
  const out: ImageFile[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(join(mount, dir), { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const path = join(dir, e.name);
      if (e.isSymbolicLink()) out.push({ path, kind: 'link' });
      else if (e.isDirectory()) {
        out.push({ path, kind: 'dir' });
        await walk(path);
      } else out.push({ path, kind: 'file' });
    }
  };
  await walk(under);
  return out;
}

/**
 * Packages that only build or test the code; none belongs in an image. (Type packages may: mysql2 and protobufjs
 * depend on @types/node. The lockfile decides those.)
 */
export const DEV_TOOLS = [
  'typescript',
  'vitest',
  'eslint',
  'prettier',
  'tsx',
  'esbuild',
  '@graphql-codegen/cli',
  'playwright-core',
  'typescript-eslint',
] as const;

interface Lockfile {
  packages: Record<string, { dev?: boolean; link?: boolean }>;
}

/** The package directories under /app: `node_modules/x`, `node_modules/@s/x`, `gateway/node_modules/x`, nested too. */
export function installedPackages(files: ImageFile[]): string[] {
  return files
    .filter((f) => f.kind !== 'file')
    .map((f) => f.path.replace(/^\/app\//, ''))
    .filter((p) => /(^|\/)node_modules\/(@[^/]+\/)?[^@/.][^/]*$/.test(p));
}

/** The packages of an image that are dev dependencies (package-lock.json says `dev: true`) or no package of the lock. */
export function devDependencies(files: ImageFile[], lock: Lockfile): string[] {
  const out: string[] = [];
  for (const key of installedPackages(files)) {
    const name = key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length);
    const entry = lock.packages[key];
    if ((DEV_TOOLS as readonly string[]).includes(name)) out.push(`${key}: a build or test tool`);
    else if (!entry) out.push(`${key}: not in package-lock.json`);
    else if (entry.dev) out.push(`${key}: a dev dependency`);
  }
  return out;
}

/** Files under /app that do not run: TypeScript, build info, sources, tests, configuration of the build. */
export function notRunning(files: ImageFile[]): string[] {
  const out: string[] = [];
  for (const f of files) {
    if (!f.path.startsWith('/app/') || f.kind !== 'file') continue;
    const rel = f.path.slice('/app/'.length);
    if (/(^|\/)node_modules\//.test(rel)) continue;
    if (/\.(c|m)?tsx?$/.test(rel)) out.push(`${rel}: TypeScript`);
    else if (/\.tsbuildinfo$/.test(rel)) out.push(`${rel}: TypeScript build info`);
    else if (/(^|\/)(src|test|tests|__tests__|e2e)\//.test(rel)) out.push(`${rel}: sources or tests`);
    else if (/\.(test|spec)\.[cm]?js$/.test(rel)) out.push(`${rel}: a test`);
    else if (
      /(^|\/)(tsconfig[^/]*\.json|vitest\.config\.[^/]+|eslint\.config\.[^/]+|codegen\.ts|Dockerfile)$/.test(rel)
    ) {
      out.push(`${rel}: build configuration`);
    }
  }
  return out;
}

const SECRET_NAME = /(^|\/)(\.env(\.[^/]*)?|\.npmrc|\.netrc|id_(rsa|ecdsa|ed25519)[^/]*|[^/]+\.(key|pem|p12|pfx|jks))$/;

/**
 * Files that hold or may hold secrets: private keys (a .key or .pem holding a PRIVATE KEY; certificates are
 * public), keystores, .env files, npm or netrc credentials. `read` gives a file's text.
 */
export async function secrets(files: ImageFile[], read: (path: string) => Promise<string>): Promise<string[]> {
  const out: string[] = [];
  for (const f of files) {
    if (f.kind !== 'file' || !SECRET_NAME.test(f.path)) continue;
    if (/\.(key|pem)$/.test(f.path)) {
      if ((await read(f.path)).includes('PRIVATE KEY')) out.push(`${f.path}: a private key`);
    } else out.push(`${f.path}: may hold credentials`);
  }
  return out;
}

/** Reads a file of a mounted image (not following a symlink out of it). */
export async function readImageFile(mount: string, path: string): Promise<string> {
  const full = join(mount, path);
  if ((await lstat(full)).isSymbolicLink()) return '';
  return readFile(full, 'utf8');
}
