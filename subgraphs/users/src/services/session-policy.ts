import { createHash, randomBytes } from 'node:crypto';

/**
 * Sessions and refresh tokens (docs/SECURITY.md, "Sessions"): the decisions, as pure functions. A session is
 * one sign-in and the chain of refresh tokens rotated from it — the "token family" of the OAuth 2.0 Security
 * BCP (RFC 9700 §4.14.2): each refresh token works once, and one presented again ends the whole session.
 */
export interface SessionPolicy {
  /** How long a refresh token lives unused; each rotation issues one with a full lifetime (sliding). */
  refreshTtlMs: number;
  /** The most a session lives from its sign-in, however often it is refreshed (absolute timeout). */
  maxAgeMs: number;
}

/** The policy the configuration asks for. */
export function sessionPolicy(config: {
  REFRESH_TOKEN_TTL_SECONDS: number;
  SESSION_MAX_AGE_SECONDS: number;
}): SessionPolicy {
  return { refreshTtlMs: config.REFRESH_TOKEN_TTL_SECONDS * 1000, maxAgeMs: config.SESSION_MAX_AGE_SECONDS * 1000 };
}

/** When a refresh token issued `now` for a session that started at `createdAt` expires. */
export function refreshTokenExpiry(createdAt: Date, now: Date, policy: SessionPolicy): Date {
  return new Date(Math.min(now.getTime() + policy.refreshTtlMs, createdAt.getTime() + policy.maxAgeMs));
}

/** A presented refresh token as stored, with its session. */
export interface PresentedToken {
  token: { expiresAt: Date; spentAt: Date | null };
  session: { createdAt: Date; revokedAt: Date | null };
}

export type RefreshVerdict =
  /** Spend the token and issue the next one of the chain, expiring at `expiresAt`. */
  | { outcome: 'rotate'; expiresAt: Date }
  /** A spent token came back: end the session (every token of the family and its access tokens). */
  | { outcome: 'reuse' }
  | { outcome: 'refuse'; reason: 'revoked' | 'expired' };

/** What to do with a refresh token that was found (an unknown one is simply refused). */
export function judgeRefresh(found: PresentedToken, now: Date, policy: SessionPolicy): RefreshVerdict {
  if (found.session.revokedAt) return { outcome: 'refuse', reason: 'revoked' };
  // A spent token can only come back if it was copied: the legitimate client or the thief holds the chain's
  // newest token, and we cannot tell which, so neither keeps the session. Checked before the expiry: a copy
  // that went stale is still a copy.
  if (found.token.spentAt) return { outcome: 'reuse' };
  if (found.token.expiresAt.getTime() <= now.getTime()) return { outcome: 'refuse', reason: 'expired' };
  // A token's expiry never passes the session's maximum age, so a live token always has a next one.
  return { outcome: 'rotate', expiresAt: refreshTokenExpiry(found.session.createdAt, now, policy) };
}

// 32 random bytes, base64url without padding.
const REFRESH_TOKEN = /^[A-Za-z0-9_-]{43}$/;

/** A new refresh token (256 random bits) and the hash it is stored under; the token itself is never stored. */
export function newRefreshToken(): { token: string; hash: Buffer } {
  const token = randomBytes(32).toString('base64url');
  return { token, hash: hashRefreshToken(token) };
}

/**
 * The stored form of a refresh token. A fast hash is enough: with 256 random bits there is nothing to guess, so
 * the hash only has to keep a copy of the table from being a list of working tokens.
 */
export function hashRefreshToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** Whether a string could be a refresh token at all (anything else is refused without a lookup). */
export const isRefreshTokenShaped = (token: string): boolean => REFRESH_TOKEN.test(token);
