// API keys (docs/SECURITY.md, "API keys"): the parts the gateway and every service share. A key is exchanged
// at the users service for a short-lived access token that carries its scopes; what a token may do is
// decided here, once, for media, jobs and users alike.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Viewer } from './auth.js';
import { ErrorCode, userError } from './errors.js';

/**
 * Every key starts with this, so that the gateway tells a key from a token without a lookup, and secret
 * scanners (and people) recognise one pasted where it should not be.
 */
export const API_KEY_PREFIX = 'vmp3_';

/** The prefix and 32 random bytes in base64url (43 characters, no padding). */
const apiKeyShape = /^vmp3_[A-Za-z0-9_-]{43}$/;

export const isApiKeyShaped = (value: string): boolean => apiKeyShape.test(value);

/** What is stored and what caches are keyed by: the key's sha256, never the key. */
export const hashApiKey = (key: string): Buffer => createHash('sha256').update(key, 'utf8').digest();

/** A key's scopes, as they travel in the access token's `scope` claim (space-separated, RFC 9068 §2.2.3). */
export const ApiKeyScope = { READ: 'read', CONVERT: 'convert' } as const;
export type ApiKeyScope = (typeof ApiKeyScope)[keyof typeof ApiKeyScope];

const knownScopes = new Set<string>(Object.values(ApiKeyScope));

/** The known scopes of a `scope` claim; anything else is ignored (it grants nothing). */
export function parseScopeClaim(claim: unknown): ApiKeyScope[] {
  if (typeof claim !== 'string') return [];
  return [...new Set(claim.split(' ').filter((s): s is ApiKeyScope => knownScopes.has(s)))];
}

/**
 * What an operation needs:
 * - `read`: queries and subscriptions (every key has it: `convert` includes it);
 * - `convert`: uploading, converting, cancelling, retrying and deleting;
 * - `account`: managing the account itself (password, sessions, keys, settings, deletion, webhooks): only a
 *   signed-in session, never an API key, so that a leaked key cannot take the account over.
 */
export type Capability = 'read' | 'convert' | 'account';

/** Whether the viewer's token allows `capability`. A session's token allows everything. */
export function viewerMay(viewer: Viewer, capability: Capability): boolean {
  if (viewer.apiKeyId === undefined) return true;
  const scopes = viewer.scopes ?? [];
  switch (capability) {
    case 'read':
      return scopes.includes(ApiKeyScope.READ) || scopes.includes(ApiKeyScope.CONVERT);
    case 'convert':
      return scopes.includes(ApiKeyScope.CONVERT);
    case 'account':
      return false;
  }
}

/** FORBIDDEN unless the viewer's token allows `capability`; call it after the viewer is known to be signed in. */
export function requireCapability(viewer: Viewer, capability: Capability): void {
  if (viewerMay(viewer, capability)) return;
  throw userError(
    ErrorCode.FORBIDDEN,
    capability === 'account'
      ? 'API keys cannot manage the account; log in to do this'
      : `This API key lacks the "${capability}" scope`,
    { capability },
  );
}

/**
 * The exchange of a key for an access token, on the users service (never routed by the gateway): POST with the
 * key as `Authorization: Bearer <key>`, no body. 200 with `ApiKeyTokenResponse`; 401 for an unknown or revoked
 * key; 429 with `retry-after` after too many failures from one client address (sent in `x-forwarded-for` by
 * the gateway, a trusted proxy).
 */
export const ApiKeyExchange = { route: '/api-keys/token' } as const;

export const ApiKeyTokenResponse = z.object({
  accessToken: z.string().min(1),
  expiresAt: z.iso.datetime(),
});
export type ApiKeyTokenResponse = z.infer<typeof ApiKeyTokenResponse>;
