import { randomBytes } from 'node:crypto';
import { readOrCreateSecret } from '@vidmp3/shared';

/** Development only: the download-link HMAC key, generated on first start and kept so links survive restarts. */
export async function loadOrCreateDevKey(file: string): Promise<Buffer> {
  const encoded = await readOrCreateSecret(file, () => randomBytes(32).toString('base64url'));
  return Buffer.from(encoded.trim(), 'base64url');
}
