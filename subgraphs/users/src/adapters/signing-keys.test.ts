import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type * as Fs from 'node:fs/promises';
import { access, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import jwt from 'jsonwebtoken';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger, createTokenVerifier, jwksKeyResolver } from '@vidmp3/shared';
import { buildSigningKeys, loadOrCreateDevKey, parsePublicKeys, thumbprint } from './signing-keys.js';

// A pass-through fs whose link() a test can hold back, to replay a race deterministically.
const fsHooks = vi.hoisted(() => ({ beforeLink: undefined as ((source: string) => Promise<void>) | undefined }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof Fs>();
  return {
    ...actual,
    link: async (source: string, target: string) => {
      await fsHooks.beforeLink?.(String(source));
      return actual.link(source, target);
    },
  };
});
afterEach(() => {
  fsHooks.beforeLink = undefined;
});

const execFileAsync = promisify(execFile);
const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const modulePath = fileURLToPath(new URL('./signing-keys.ts', import.meta.url));

const logger = createLogger('test', 'silent');
const newEcKey = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pem = (key: KeyObject) => key.export({ type: 'spki', format: 'pem' }) as string;

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});
const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );
/** Waits until the condition holds; fails after 5 s (a bound that only catches a hang, never a slow machine). */
async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  for (let waited = 0; !(await condition()); waited += 10) {
    if (waited >= 5_000) throw new Error('until: the condition did not hold within 5 s');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'vidmp3-keys-'));
  dirs.push(dir);
  return dir;
}

describe('thumbprint', () => {
  it('is the RFC 7638 SHA-256 thumbprint (checked on the RFC 7517 appendix A.1 EC key)', () => {
    // Public key from RFC 7517 A.1; the expected value was computed independently (jose's
    // calculateJwkThumbprint and a hand-written SHA-256 of the RFC 7638 canonical JSON agree on it).
    const key = createPublicKey({
      key: {
        kty: 'EC',
        crv: 'P-256',
        x: 'MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4',
        y: '4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM',
      },
      format: 'jwk',
    });

    expect(thumbprint(key)).toBe('cn-I_WNMClehiVp51i_0VpOENW1upEerA8sEam5hn-s');
  });

  it('is the same for the same key, however it was loaded', () => {
    const { publicKey } = newEcKey();

    expect(thumbprint(createPublicKey(pem(publicKey)))).toBe(thumbprint(publicKey));
  });

  it('differs between keys', () => {
    expect(thumbprint(newEcKey().publicKey)).not.toBe(thumbprint(newEcKey().publicKey));
  });

  it('is a 43-character base64url string, safe as a kid header', () => {
    expect(thumbprint(newEcKey().publicKey)).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('refuses keys that cannot sign ES256', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey;

    expect(() => thumbprint(rsa)).toThrow(/EC P-256/);
    expect(() => thumbprint(p384)).toThrow(/EC P-256/);
  });
});

describe('buildSigningKeys', () => {
  it('names the signing key by its thumbprint and signs tokens its public key verifies', () => {
    const { privateKey, publicKey } = newEcKey();
    const keys = buildSigningKeys(privateKey);

    expect(keys.kid).toBe(thumbprint(publicKey));
    const token = jwt.sign({ sub: 'user-1' }, keys.privateKey, { algorithm: 'ES256', keyid: keys.kid });
    const verifyWith = keys.publicKeys.get(keys.kid);
    expect(verifyWith).toBeDefined();
    expect(jwt.verify(token, verifyWith as KeyObject, { algorithms: ['ES256'] })).toMatchObject({ sub: 'user-1' });
  });

  it('publishes only public parts in the JWKS', () => {
    const keys = buildSigningKeys(newEcKey().privateKey);

    expect(keys.jwks.keys).toHaveLength(1);
    const [jwk] = keys.jwks.keys;
    expect(Object.keys(jwk ?? {}).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    expect(jwk).toMatchObject({ kty: 'EC', crv: 'P-256', kid: keys.kid, alg: 'ES256', use: 'sig' });
    expect(JSON.stringify(keys.jwks)).not.toContain('"d"');
  });

  it('lists retired public keys beside the current one, so tokens they signed still verify', async () => {
    const retired = [newEcKey(), newEcKey()];
    const keys = buildSigningKeys(
      newEcKey().privateKey,
      retired.map((k) => k.publicKey),
    );

    const kids = keys.jwks.keys.map((k) => k.kid);
    expect(kids).toEqual([keys.kid, thumbprint(retired[0]!.publicKey), thumbprint(retired[1]!.publicKey)]);
    expect([...keys.publicKeys.keys()]).toEqual(kids);

    // Verified as the gateway and the other subgraphs verify: their verifier over the JWKS, fetched over HTTP
    // from a route serving keys.jwks as the users service's /.well-known/jwks.json does.
    const server = createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(keys.jwks));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const verifier = createTokenVerifier({
        keys: jwksKeyResolver(`http://127.0.0.1:${port}/.well-known/jwks.json`),
        issuer: 'vidmp3',
        audience: 'vidmp3-api',
      });
      const sign = (key: KeyObject, kid: string, sub: string) =>
        jwt.sign({}, key, {
          algorithm: 'ES256',
          keyid: kid,
          issuer: 'vidmp3',
          audience: 'vidmp3-api',
          subject: sub,
          expiresIn: 60,
        });

      const old = sign(retired[1]!.privateKey, thumbprint(retired[1]!.publicKey), 'user-1');
      expect(await verifier.verify(old)).toMatchObject({ userId: 'user-1' });
      // The controls: the kid picks the key, so the retired key's signature under another listed kid fails,
      // and so does a key the JWKS does not list.
      await expect(verifier.verify(sign(retired[1]!.privateKey, keys.kid, 'user-2'))).rejects.toMatchObject({
        extensions: { code: 'UNAUTHENTICATED' },
      });
      const stranger = newEcKey();
      await expect(
        verifier.verify(sign(stranger.privateKey, thumbprint(stranger.publicKey), 'user-3')),
      ).rejects.toThrow(/unknown signing key/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('lists the current key once even when it is also given as a previous key', () => {
    const { privateKey, publicKey } = newEcKey();

    expect(buildSigningKeys(privateKey, [publicKey]).jwks.keys).toHaveLength(1);
  });

  it('builds the JWKS from public keys a verifier can import', () => {
    const keys = buildSigningKeys(newEcKey().privateKey);
    const [jwk] = keys.jwks.keys;
    const imported = createPublicKey({ key: { kty: jwk!.kty, crv: jwk!.crv, x: jwk!.x, y: jwk!.y }, format: 'jwk' });

    expect(imported.equals(keys.publicKeys.get(keys.kid) as KeyObject)).toBe(true);
  });
});

describe('parsePublicKeys', () => {
  it('finds no keys in an unset or empty setting', () => {
    expect(parsePublicKeys(undefined)).toEqual([]);
    expect(parsePublicKeys('')).toEqual([]);
  });

  it('splits a bundle of concatenated PEM public keys, in order', () => {
    const a = newEcKey().publicKey;
    const b = newEcKey().publicKey;

    const parsed = parsePublicKeys(`${pem(a)}${pem(b)}`);

    expect(parsed).toHaveLength(2);
    expect(parsed[0]!.equals(a)).toBe(true);
    expect(parsed[1]!.equals(b)).toBe(true);
  });

  it('tolerates text and blank lines between the keys (as an env file or secret may hold them)', () => {
    const a = newEcKey().publicKey;
    const b = newEcKey().publicKey;

    const parsed = parsePublicKeys(`# retired 2024-01\n${pem(a)}\n\n# retired 2024-06\r\n${pem(b)}`);

    expect(parsed.map(thumbprint)).toEqual([thumbprint(a), thumbprint(b)]);
  });

  it('reads a single key', () => {
    const a = newEcKey().publicKey;

    expect(parsePublicKeys(pem(a)).map(thumbprint)).toEqual([thumbprint(a)]);
  });
});

describe('loadOrCreateDevKey', () => {
  it('creates the key file, readable by its owner only, in a directory it creates', async () => {
    const dir = join(await tempDir(), 'data', 'keys');

    const key = await loadOrCreateDevKey(dir, logger);

    const file = join(dir, 'jwt-es256.pem');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(createPrivateKey(await readFile(file, 'utf8')).equals(key)).toBe(true);
    expect(key.type).toBe('private');
    expect(key.asymmetricKeyType).toBe('ec');
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
  });

  it('leaves nothing but the key file behind', async () => {
    const dir = await tempDir();

    await loadOrCreateDevKey(dir, logger);

    expect(await readdir(dir)).toEqual(['jwt-es256.pem']);
  });

  it('returns the same key on the next start', async () => {
    const dir = await tempDir();

    const first = await loadOrCreateDevKey(dir, logger);
    const second = await loadOrCreateDevKey(dir, logger);

    expect(second.equals(first)).toBe(true);
    expect(thumbprint(createPublicKey(second))).toBe(thumbprint(createPublicKey(first)));
  });

  it('gives two concurrent callers in one process the same key', async () => {
    const dir = await tempDir();
    // Force the interleaving that otherwise happens now and then: the second caller has written its
    // temporary file when the first one links its own into place and cleans up.
    const arrived: string[] = [];
    fsHooks.beforeLink = async (source) => {
      arrived.push(source);
      if (arrived.length === 1) await until(() => arrived.length === 2);
      else await until(async () => !(await exists(arrived[0] as string)));
    };

    const [a, b] = await Promise.all([loadOrCreateDevKey(dir, logger), loadOrCreateDevKey(dir, logger)]);

    expect(a.equals(b)).toBe(true);
    expect(await readdir(dir)).toEqual(['jwt-es256.pem']);
    expect(createPrivateKey(await readFile(join(dir, 'jwt-es256.pem'), 'utf8')).equals(a)).toBe(true);
  });

  it('gives processes starting together the same key', async () => {
    const dir = await tempDir();
    const script = [
      `const { loadOrCreateDevKey, thumbprint } = await import(${JSON.stringify(modulePath)});`,
      `const { createPublicKey } = await import('node:crypto');`,
      `const key = await loadOrCreateDevKey(process.argv[1], { info() {} });`,
      `process.stdout.write(thumbprint(createPublicKey(key)));`,
    ].join('\n');
    const start = () =>
      execFileAsync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, dir], {
        cwd: repoRoot,
      });

    const results = await Promise.all(Array.from({ length: 4 }, start));

    const kids = new Set(results.map((r) => r.stdout));
    expect(kids.size).toBe(1);
    const onDisk = createPrivateKey(await readFile(join(dir, 'jwt-es256.pem'), 'utf8'));
    expect(kids).toEqual(new Set([thumbprint(createPublicKey(onDisk))]));
    expect(await readdir(dir)).toEqual(['jwt-es256.pem']);
  });

  it('refuses to start on a key file that is not a key, rather than replacing it', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'jwt-es256.pem'), 'not a key');

    await expect(loadOrCreateDevKey(dir, logger)).rejects.toThrow();
    expect(await readFile(join(dir, 'jwt-es256.pem'), 'utf8')).toBe('not a key');
  });
});
