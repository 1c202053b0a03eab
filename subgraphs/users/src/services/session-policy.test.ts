import { describe, expect, it } from 'vitest';
import {
  hashRefreshToken,
  isRefreshTokenShaped,
  judgeRefresh,
  newRefreshToken,
  refreshTokenExpiry,
  sessionPolicy,
  type PresentedToken,
  type SessionPolicy,
} from './session-policy.js';

const DAY = 86_400_000;
const policy: SessionPolicy = { refreshTtlMs: 30 * DAY, maxAgeMs: 90 * DAY };
const signIn = new Date(Date.UTC(2026, 0, 1));
const at = (days: number) => new Date(signIn.getTime() + days * DAY);

/** A refresh token of a session signed in at `signIn`, as found in the tables. */
function presented(token: Partial<PresentedToken['token']> = {}, session: Partial<PresentedToken['session']> = {}) {
  return {
    token: { expiresAt: at(30), spentAt: null, ...token },
    session: { createdAt: signIn, revokedAt: null, ...session },
  };
}

describe('judgeRefresh', () => {
  it.each([
    ['a live token of a live session', presented(), at(1), { outcome: 'rotate', expiresAt: at(31) }],
    ['a token a moment before it expires', presented(), at(30 - 1e-6), { outcome: 'rotate' }],
    ['a token at its expiry', presented(), at(30), { outcome: 'refuse', reason: 'expired' }],
    ['a token past its expiry', presented(), at(45), { outcome: 'refuse', reason: 'expired' }],
    ['a spent token', presented({ spentAt: at(1) }), at(2), { outcome: 'reuse' }],
    ['a spent token past its expiry (still a copy)', presented({ spentAt: at(1) }), at(40), { outcome: 'reuse' }],
    [
      'a token of a session that ended',
      presented({}, { revokedAt: at(1) }),
      at(2),
      { outcome: 'refuse', reason: 'revoked' },
    ],
    [
      'a spent token of a session that ended (nothing left to end)',
      presented({ spentAt: at(1) }, { revokedAt: at(1) }),
      at(2),
      { outcome: 'refuse', reason: 'revoked' },
    ],
  ] as const)('%s', (_, found, now, verdict) => {
    expect(judgeRefresh(found, now, policy)).toMatchObject(verdict);
  });

  it('gives each rotation a full lifetime from its own time (sliding expiry)', () => {
    let found = presented();
    for (const day of [20, 40, 60]) {
      const verdict = judgeRefresh(found, at(day), policy);

      expect(verdict).toEqual({ outcome: 'rotate', expiresAt: at(day + 30) });
      found = presented({ expiresAt: at(day + 30) });
    }
  });

  it('never lets a rotation carry a session past its maximum age, and refuses it there', () => {
    const late = judgeRefresh(presented({ expiresAt: at(85) }), at(80), policy);

    expect(late).toEqual({ outcome: 'rotate', expiresAt: at(90) });
    expect(judgeRefresh(presented({ expiresAt: at(90) }), at(90), policy)).toEqual({
      outcome: 'refuse',
      reason: 'expired',
    });
  });
});

describe('refreshTokenExpiry', () => {
  it('is a full refresh lifetime from now, capped at the session maximum age', () => {
    expect(refreshTokenExpiry(signIn, signIn, policy)).toEqual(at(30));
    expect(refreshTokenExpiry(signIn, at(59), policy)).toEqual(at(89));
    expect(refreshTokenExpiry(signIn, at(61), policy)).toEqual(at(90));
  });
});

describe('sessionPolicy', () => {
  it('reads the lifetimes from the configuration, in seconds', () => {
    expect(sessionPolicy({ REFRESH_TOKEN_TTL_SECONDS: 600, SESSION_MAX_AGE_SECONDS: 3_600 })).toEqual({
      refreshTtlMs: 600_000,
      maxAgeMs: 3_600_000,
    });
  });
});

describe('refresh tokens', () => {
  it('carry 256 random bits, are never the same twice, and are stored only as their sha256', () => {
    const tokens = Array.from({ length: 100 }, newRefreshToken);

    expect(new Set(tokens.map((t) => t.token)).size).toBe(100);
    for (const { token, hash } of tokens) {
      expect(Buffer.from(token, 'base64url')).toHaveLength(32);
      expect(hash).toEqual(hashRefreshToken(token));
      expect(hash).toHaveLength(32);
      expect(hash.toString('hex')).not.toContain(Buffer.from(token, 'base64url').toString('hex'));
      expect(isRefreshTokenShaped(token)).toBe(true);
    }
  });

  it.each(['', 'short', 'a'.repeat(44), `${'a'.repeat(42)}=`, `${'a'.repeat(42)}/`, 'eyJhbGciOiJFUzI1NiJ9.e30.sig'])(
    'refuses "%s" as not a refresh token, before any lookup',
    (token) => {
      expect(isRefreshTokenShaped(token)).toBe(false);
    },
  );
});
