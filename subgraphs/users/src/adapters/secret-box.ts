import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { readOrCreateSecret, type Logger } from '@vidmp3/shared';

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Secrets this service must read back (webhook signing secrets: the sender signs with them), stored encrypted
 * with AES-256-GCM: a version byte, a random 96-bit IV, the ciphertext and the tag. `context` (the webhook's id)
 * is bound as associated data, so a ciphertext copied onto another row does not decrypt there.
 */
export class SecretBox {
  private readonly key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new Error('the secret box key must be 32 bytes');
    this.key = key;
  }

  seal(plaintext: string, context: string): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return Buffer.concat([Buffer.from([VERSION]), iv, body, cipher.getAuthTag()]);
  }

  /** Throws when the data was altered, belongs to another context, or was sealed under another key. */
  open(sealed: Buffer, context: string): string {
    if (sealed.length < 1 + IV_BYTES + TAG_BYTES || sealed[0] !== VERSION) {
      throw new Error('not a sealed secret of a known version');
    }
    const iv = sealed.subarray(1, 1 + IV_BYTES);
    const tag = sealed.subarray(sealed.length - TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', this.key, iv);
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(tag);
    const body = sealed.subarray(1 + IV_BYTES, sealed.length - TAG_BYTES);
    return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
  }
}

/** Development only: the key lives in `dir/webhook-secret.key` (base64), generated on first start. */
export async function loadOrCreateDevSecretKey(dir: string, logger: Logger): Promise<Buffer> {
  const file = join(dir, 'webhook-secret.key');
  let generated = false;
  const value = await readOrCreateSecret(file, () => {
    generated = true;
    return randomBytes(32).toString('base64');
  });
  if (generated) logger.info({ file }, 'generated a development key for webhook secrets');
  return Buffer.from(value.trim(), 'base64');
}
