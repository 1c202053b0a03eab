import { createHash, randomBytes } from 'node:crypto';

/**
 * The single-use tokens mailed to an account (docs/SECURITY.md, "Account mails"): the decisions, as pure
 * functions. A token is 256 random bits sent once, in a link, and stored as its sha256 only; it works for one
 * purpose, once, until it expires.
 */
export type TokenPurpose = 'verify-email' | 'reset-password' | 'change-email';

/** How long each kind of link works: a reset is the most dangerous in a stolen mailbox, so the shortest. */
export const TOKEN_TTL_MS: Record<TokenPurpose, number> = {
  'verify-email': 24 * 3_600_000,
  'reset-password': 30 * 60_000,
  'change-email': 3_600_000,
};

/** The page's query parameter for each purpose: `${PUBLIC_URL}/?verify-email=<token>`. */
export const LINK_PARAMETER: Record<TokenPurpose, string> = {
  'verify-email': 'verify-email',
  'reset-password': 'reset-password',
  'change-email': 'confirm-email',
};

// 32 random bytes, base64url without padding.
const ACCOUNT_TOKEN = /^[A-Za-z0-9_-]{43}$/;

export function newAccountToken(): { token: string; hash: Buffer } {
  const token = randomBytes(32).toString('base64url');
  return { token, hash: hashAccountToken(token) };
}

export const hashAccountToken = (token: string): Buffer => createHash('sha256').update(token).digest();

/** Anything else is refused without a database read. */
export const isAccountTokenShaped = (token: string): boolean => ACCOUNT_TOKEN.test(token);

/** The link a mail carries: the page, with the token in the query parameter of its purpose. */
export function accountLink(publicUrl: string, purpose: TokenPurpose, token: string): string {
  const url = new URL('./', publicUrl.endsWith('/') ? publicUrl : `${publicUrl}/`);
  url.searchParams.set(LINK_PARAMETER[purpose], token);
  return url.toString();
}

/** A presented token as stored. */
export interface StoredToken {
  purpose: string;
  expiresAt: Date;
  usedAt: Date | null;
}

export type TokenVerdict = { ok: true } | { ok: false; reason: 'unknown' | 'wrong-purpose' | 'used' | 'expired' };

/**
 * Whether a presented token may be used for `purpose` now. A token of another purpose is refused as if unknown
 * (a reset link cannot verify an address, nor the other way round); used is checked before expired, for the log.
 */
export function judgeToken(found: StoredToken | null, purpose: TokenPurpose, now: Date): TokenVerdict {
  if (!found) return { ok: false, reason: 'unknown' };
  if (found.purpose !== purpose) return { ok: false, reason: 'wrong-purpose' };
  if (found.usedAt) return { ok: false, reason: 'used' };
  if (found.expiresAt.getTime() <= now.getTime()) return { ok: false, reason: 'expired' };
  return { ok: true };
}
