import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SecretBox } from './secret-box.js';

describe('SecretBox', () => {
  const box = new SecretBox(randomBytes(32));

  it('gives back what it sealed, and seals the same secret differently each time', () => {
    const a = box.seal('whsec_abc', 'webhook-1');
    const b = box.seal('whsec_abc', 'webhook-1');
    expect(a.equals(b)).toBe(false);
    expect(a.toString('latin1')).not.toContain('whsec_abc');
    expect(box.open(a, 'webhook-1')).toBe('whsec_abc');
  });

  it('refuses a ciphertext moved to another row, altered, or sealed under another key', () => {
    const sealed = box.seal('whsec_abc', 'webhook-1');
    expect(() => box.open(sealed, 'webhook-2')).toThrow();
    const altered = Buffer.from(sealed);
    altered[20] = altered[20]! ^ 1;
    expect(() => box.open(altered, 'webhook-1')).toThrow();
    expect(() => new SecretBox(randomBytes(32)).open(sealed, 'webhook-1')).toThrow();
  });

  it('takes only 32-byte keys', () => {
    expect(() => new SecretBox(randomBytes(16))).toThrow();
  });
});
