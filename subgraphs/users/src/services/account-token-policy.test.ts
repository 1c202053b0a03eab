import { describe, expect, it } from 'vitest';
import {
  accountLink,
  hashAccountToken,
  isAccountTokenShaped,
  judgeToken,
  newAccountToken,
  TOKEN_TTL_MS,
  type StoredToken,
  type TokenPurpose,
} from './account-token-policy.js';

const now = new Date('2026-12-06T12:00:00.000Z');
const later = new Date(now.getTime() + 60_000);
const earlier = new Date(now.getTime() - 60_000);

describe('judgeToken', () => {
  const cases: Array<[string, StoredToken | null, TokenPurpose, ReturnType<typeof judgeToken>]> = [
    [
      'accepts a live, unused token of its purpose',
      { purpose: 'verify-email', expiresAt: later, usedAt: null },
      'verify-email',
      { ok: true },
    ],
    ['refuses an unknown token', null, 'reset-password', { ok: false, reason: 'unknown' }],
    [
      'refuses a token of another purpose',
      { purpose: 'verify-email', expiresAt: later, usedAt: null },
      'reset-password',
      { ok: false, reason: 'wrong-purpose' },
    ],
    [
      'refuses a used token',
      { purpose: 'change-email', expiresAt: later, usedAt: earlier },
      'change-email',
      { ok: false, reason: 'used' },
    ],
    [
      'refuses an expired token',
      { purpose: 'reset-password', expiresAt: earlier, usedAt: null },
      'reset-password',
      { ok: false, reason: 'expired' },
    ],
    [
      'refuses a token at the instant it expires',
      { purpose: 'reset-password', expiresAt: now, usedAt: null },
      'reset-password',
      { ok: false, reason: 'expired' },
    ],
  ];
  it.each(cases)('%s', (_name, found, purpose, verdict) => {
    expect(judgeToken(found, purpose, now)).toEqual(verdict);
  });
});

describe('account tokens', () => {
  it('are 256 random bits, stored by their sha256, and recognised by shape', () => {
    const a = newAccountToken();
    const b = newAccountToken();
    expect(a.token).not.toBe(b.token);
    expect(isAccountTokenShaped(a.token)).toBe(true);
    expect(isAccountTokenShaped(`${a.token}x`)).toBe(false);
    expect(isAccountTokenShaped("' OR 1=1 --")).toBe(false);
    expect(a.hash).toEqual(hashAccountToken(a.token));
    expect(a.hash).toHaveLength(32);
  });

  it('live 24 h for a verification, 30 min for a reset, 1 h for a change of address', () => {
    expect(TOKEN_TTL_MS['verify-email']).toBe(24 * 3_600_000);
    expect(TOKEN_TTL_MS['reset-password']).toBe(30 * 60_000);
    expect(TOKEN_TTL_MS['change-email']).toBe(3_600_000);
  });

  it('travel in the page link under the parameter of their purpose', () => {
    expect(accountLink('https://vidmp3.example', 'verify-email', 'abc')).toBe(
      'https://vidmp3.example/?verify-email=abc',
    );
    expect(accountLink('https://vidmp3.example/app/', 'reset-password', 'abc')).toBe(
      'https://vidmp3.example/app/?reset-password=abc',
    );
    expect(accountLink('http://127.0.0.1:4000', 'change-email', 'abc')).toBe(
      'http://127.0.0.1:4000/?confirm-email=abc',
    );
  });
});
