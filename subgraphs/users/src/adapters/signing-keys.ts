import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { readOrCreateSecret, type Logger } from '@vidmp3/shared';

export interface PublicJwk {
  kty: string;
  crv?: string;
  x?: string;
  y?: string;
  kid: string;
  alg: 'ES256';
  use: 'sig';
}

/** The one signing key (only this service holds it) and every public key verifiers should accept. */
export interface SigningKeys {
  kid: string;
  privateKey: KeyObject;
  /** kid → public key: the signing key's and retired ones still inside their tokens' lifetime. */
  publicKeys: Map<string, KeyObject>;
  jwks: { keys: PublicJwk[] };
}

/** RFC 7638 thumbprint: a stable kid derived from the key itself. */
export function thumbprint(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' });
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256') throw new Error('signing keys must be EC P-256 (ES256)');
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return createHash('sha256').update(canonical).digest('base64url');
}

function toJwk(publicKey: KeyObject, kid: string): PublicJwk {
  const { kty, crv, x, y } = publicKey.export({ format: 'jwk' });
  return { kty: kty ?? 'EC', crv, x, y, kid, alg: 'ES256', use: 'sig' };
}

export function buildSigningKeys(privateKey: KeyObject, previousPublicKeys: KeyObject[] = []): SigningKeys {
  const publicKey = createPublicKey(privateKey);
  const kid = thumbprint(publicKey);
  const publicKeys = new Map<string, KeyObject>([[kid, publicKey]]);
  for (const key of previousPublicKeys) publicKeys.set(thumbprint(key), key);
  return {
    kid,
    privateKey,
    publicKeys,
    jwks: { keys: [...publicKeys].map(([id, key]) => toJwk(key, id)) },
  };
}

/** Splits a bundle of concatenated PEM public keys. */
export function parsePublicKeys(pems: string | undefined): KeyObject[] {
  if (!pems) return [];
  const blocks = pems.match(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g) ?? [];
  return blocks.map((pem) => createPublicKey(pem));
}

/** Development only: the key lives in `dir/jwt-es256.pem`, generated on first start. */
export async function loadOrCreateDevKey(dir: string, logger: Logger): Promise<KeyObject> {
  const file = join(dir, 'jwt-es256.pem');
  let generated = false;
  const pem = await readOrCreateSecret(file, () => {
    generated = true;
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    return privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  });
  if (generated) logger.info({ file }, 'generated a development JWT signing key');
  return createPrivateKey(pem);
}
