import { describe, expect, it } from 'vitest';
import { devDependencies, notRunning, secrets, type ImageFile } from './image-contents.js';

const file = (path: string): ImageFile => ({ path, kind: 'file' });
const dir = (path: string): ImageFile => ({ path, kind: 'dir' });

describe('what an image may carry', () => {
  it('finds dev dependencies by the lockfile, build tools by name, and packages the lockfile does not know', () => {
    const lock = {
      packages: {
        'node_modules/graphql': {},
        'node_modules/@types/ws': { dev: true },
        'node_modules/typescript': {},
        'gateway/node_modules/ws': {},
      },
    };
    const files = [
      dir('/app/node_modules'),
      dir('/app/node_modules/graphql'),
      dir('/app/node_modules/@types'),
      dir('/app/node_modules/@types/ws'),
      dir('/app/node_modules/.bin'),
      dir('/app/node_modules/typescript'),
      dir('/app/node_modules/left-pad'),
      dir('/app/gateway/node_modules/ws'),
      dir('/app/gateway/node_modules/ws/lib'),
    ];
    expect(devDependencies(files, lock)).toEqual([
      'node_modules/@types/ws: a dev dependency',
      'node_modules/typescript: a build or test tool',
      'node_modules/left-pad: not in package-lock.json',
    ]);
  });

  it('finds TypeScript, build info, sources and tests outside node_modules, and keeps what runs', () => {
    const files = [
      file('/app/gateway/dist/main.js'),
      file('/app/gateway/dist/main.js.map'),
      file('/app/web/dist/index.html'),
      file('/app/supergraph.graphql'),
      file('/app/node_modules/zod/index.d.ts'),
      file('/app/gateway/dist/main.d.ts'),
      file('/app/gateway/dist/.tsbuildinfo'),
      file('/app/gateway/src/readme.md'),
      file('/app/gateway/dist/cors.test.js'),
      file('/app/tsconfig.base.json'),
    ];
    expect(notRunning(files)).toEqual([
      'gateway/dist/main.d.ts: TypeScript',
      'gateway/dist/.tsbuildinfo: TypeScript build info',
      'gateway/src/readme.md: sources or tests',
      'gateway/dist/cors.test.js: a test',
      'tsconfig.base.json: build configuration',
    ]);
  });

  it('finds private keys and credential files, but not certificates', async () => {
    const text: Record<string, string> = {
      '/etc/ssl/certs/ca-certificates.crt': '-----BEGIN CERTIFICATE-----',
      '/app/certs/ca.pem': '-----BEGIN CERTIFICATE-----',
      '/app/data/keys/jwt-es256.pem': '-----BEGIN PRIVATE KEY-----',
      '/app/server.key': '-----BEGIN EC PRIVATE KEY-----',
    };
    const files = [...Object.keys(text), '/app/.env', '/root/.npmrc'].map(file);
    expect(await secrets(files, async (p) => text[p] ?? '')).toEqual([
      '/app/data/keys/jwt-es256.pem: a private key',
      '/app/server.key: a private key',
      '/app/.env: may hold credentials',
      '/root/.npmrc: may hold credentials',
    ]);
  });
});
