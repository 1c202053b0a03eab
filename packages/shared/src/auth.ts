import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { parseScopeClaim, type ApiKeyScope } from './api-keys.js';
import { ErrorCode, userError } from './errors.js';

/** Access tokens are ES256 only: the algorithm is pinned on verify, so `alg: none`/HS256 tricks fail. */
export const JWT_ALGORITHM = 'ES256' as const;

/** Who is calling: the subject of a verified access token. */
export interface Viewer {
  userId: string;
  /** The verified bearer token, forwarded as it is to the services behind. */
  token: string;
  expiresAt: Date;
  /**
   * The session the token was issued for (its `sid` claim). Only the users service can tell whether that
   * session has ended since (docs/SECURITY.md, "Sessions"); everyone else trusts the token until its `exp`.
   */
  sessionId?: string;
  /**
   * Set when the token was issued for an API key (its `akid` claim): the key's id. Such a token has no session;
   * the users service refuses it at once once the key is revoked, everyone else trusts it until its `exp`.
   */
  apiKeyId?: string;
  /** An API key's scopes (the `scope` claim); what they allow is `viewerMay`'s (api-keys.ts). */
  scopes?: ApiKeyScope[];
}

/** Finds the public key for a `kid`; undefined when no such key is known. */
export type KeyResolver = (kid: string) => Promise<KeyObject | string | undefined>;

export interface VerifierOptions {
  keys: KeyResolver;
  issuer: string;
  audience: string;
  clockToleranceSeconds?: number;
  /**
   * How many verified tokens are remembered (LRU), each until its `exp`; 0 turns the cache off. A hit costs a
   * map lookup instead of a signature check (ECDSA verification was most of a small request's CPU).
   */
  cacheSize?: number;
  /** The clock, in ms; injectable so tests can expire tokens without sleeping. */
  now?: () => number;
}

/** How many verified tokens a verifier remembers by default: a few MB of strings at most. */
export const DEFAULT_TOKEN_CACHE_SIZE = 10_000;

export interface TokenVerifier {
  /**
   * `clientAddress`, where the caller knows it, is the client's address: the gateway's API-key verifier sends it
   * with a key's exchange (its failures are throttled per address); a plain verifier ignores it.
   */
  verify(token: string, clientAddress?: string): Promise<Viewer>;
  /** Reads `Authorization: Bearer …`: no header → null (anonymous), anything wrong → UNAUTHENTICATED. */
  authenticate(authorization: string | undefined, clientAddress?: string): Promise<Viewer | null>;
}

// A bad token fails the whole request, hence HTTP 401 rather than a 200 with an error inside.
const unauthenticated = (message: string) => userError(ErrorCode.UNAUTHENTICATED, message, { http: { status: 401 } });
const invalid = (why: string) => unauthenticated(`Invalid access token: ${why}`);

/** A token that verified: who it names, until when, and the key that checked it. */
interface VerifiedToken {
  viewer: Viewer;
  kid: string;
  key: KeyObject | string;
  expiresAtMs: number;
}

export function createTokenVerifier(options: VerifierOptions): TokenVerifier {
  const now = options.now ?? (() => Date.now());
  const cacheSize = options.cacheSize ?? DEFAULT_TOKEN_CACHE_SIZE;
  // Insertion-ordered, so the first entry is the least recently used one (a hit moves its entry to the end).
  const verified = new Map<string, VerifiedToken>();

  const fromCache = async (token: string): Promise<Viewer | undefined> => {
    const entry = verified.get(token);
    if (!entry) return undefined;
    if (now() >= entry.expiresAtMs) {
      verified.delete(token); // the full check below says why it is refused (or allows the clock skew)
      return undefined;
    }
    // The key is asked for again on every hit: a verification must not outlive its key (a refreshed key set
    // without this kid, or with another key under it, makes the token go through the full check, and fail),
    // and asking is what keeps the resolver refreshing its key set in the background. It is a map lookup.
    if ((await options.keys(entry.kid)) !== entry.key) {
      verified.delete(token);
      return undefined;
    }
    verified.delete(token);
    verified.set(token, entry);
    return entry.viewer;
  };

  const remember = (token: string, entry: VerifiedToken): void => {
    if (cacheSize <= 0) return;
    verified.set(token, entry);
    if (verified.size > cacheSize) verified.delete(verified.keys().next().value as string);
  };

  const verify = async (token: string): Promise<Viewer> => {
    const cached = cacheSize > 0 ? await fromCache(token) : undefined;
    if (cached) return cached;
    const decoded = jwt.decode(token, { complete: true });
    if (!decoded || typeof decoded.payload === 'string') throw invalid('malformed');
    const kid = decoded.header.kid;
    if (!kid) throw invalid('no key id');
    if (decoded.header.alg !== JWT_ALGORITHM) throw invalid('unexpected algorithm');
    const key = await options.keys(kid);
    if (!key) throw invalid('unknown signing key');
    let claims: string | jwt.JwtPayload;
    try {
      claims = jwt.verify(token, key, {
        algorithms: [JWT_ALGORITHM],
        issuer: options.issuer,
        audience: options.audience,
        clockTolerance: options.clockToleranceSeconds ?? 5,
        clockTimestamp: Math.floor(now() / 1000),
      });
    } catch (err) {
      if (err instanceof jwt.TokenExpiredError) throw unauthenticated('Access token expired');
      if (err instanceof jwt.JsonWebTokenError) throw invalid(err.message);
      // Anything else thrown while checking the signature (e.g. a wrong-length ES256 signature) is still the
      // token's fault: verification is local computation, there is no I/O here to fail.
      throw invalid('bad signature');
    }
    if (typeof claims === 'string' || !claims.sub || typeof claims.exp !== 'number') throw invalid('missing claims');
    const viewer: Viewer = { userId: claims.sub, token, expiresAt: new Date(claims.exp * 1000) };
    if (typeof claims.sid === 'string' && claims.sid !== '') viewer.sessionId = claims.sid;
    if (typeof claims.akid === 'string' && claims.akid !== '') {
      viewer.apiKeyId = claims.akid;
      viewer.scopes = parseScopeClaim(claims.scope);
    }
    // Only a token that passed every check is remembered; one that failed is checked again each time.
    remember(token, { viewer, kid, key, expiresAtMs: claims.exp * 1000 });
    return viewer;
  };
  return {
    verify,
    async authenticate(authorization) {
      if (authorization === undefined || authorization === '') return null;
      // The scheme name is case-insensitive (RFC 9110 §11.1).
      const match = /^Bearer ([A-Za-z0-9_.~+/=-]+)$/i.exec(authorization.trim());
      if (!match?.[1]) throw invalid('expected "Authorization: Bearer <token>"');
      return verify(match[1]);
    },
  };
}

export interface JwksResolverOptions {
  /** How long a fetched key set is used before it is refreshed (in the background: callers never wait). */
  refreshIntervalMs?: number;
  /** After a failed fetch, how long until the next try; meanwhile the last good keys keep serving. */
  retryIntervalMs?: number;
  /**
   * At most one refetch per this many ms may be caused by a `kid` we do not know. Such a `kid` comes from a
   * token nobody has verified yet, so anyone can send them by the thousand: they get this small budget, no more.
   */
  unknownKidCooldownMs?: number;
  timeoutMs?: number;
  /** The clock, in ms; injectable so tests can age the key set without sleeping. */
  now?: () => number;
  /** Told about every key set loaded (the kids it lists), e.g. for a log line. */
  onKeysLoaded?: (kids: string[]) => void;
  /** Told about every failed fetch (the resolver itself keeps serving the keys it has). */
  onFetchError?: (error: unknown) => void;
}

/** A KeyResolver backed by a JWKS endpoint, which can say whether it holds any keys at all. */
export type JwksKeyResolver = KeyResolver & {
  /** True once a key set has been loaded (it is then kept whatever happens to the endpoint). */
  hasKeys(): boolean;
  /**
   * The readiness check for token verification: resolves at once when keys are held, otherwise loads them
   * (sharing a fetch in flight, at most one try per retryIntervalMs) and rejects if that fails. This, not
   * "the JWKS endpoint answers right now", is what a service's /readyz should report: with cached keys every
   * valid token verifies, so an outage of the users service must not take every gateway and subgraph
   * replica out of rotation, while a replica that never got a key set cannot verify anyone.
   */
  ready(): Promise<void>;
};

interface CachedKey {
  /** The JWK as served, to tell whether a refetch changed it (and only then parse it again). */
  jwk: string;
  key: KeyObject;
}

/**
 * Public keys from the users service's JWKS endpoint.
 *
 * Built so that nobody can knock sign-in out (issue #10, defect 1; jwks-rsa's cache dropped a key by age and
 * its refetch shared a rate limit with unknown kids, so a flood of random kids turned every valid token into
 * "unknown signing key" once the real key aged out):
 * - the last good key set is kept until a fetch succeeds: keys are never dropped because of age, and a
 *   failed or empty fetch changes nothing (a successful fetch replaces the set, so retired keys do go);
 * - the set is refreshed in the background once it is older than `refreshIntervalMs`; callers are answered
 *   from the cache meanwhile;
 * - an unknown `kid` may cause at most one fetch per `unknownKidCooldownMs`, and concurrent lookups share
 *   one in-flight fetch, so a flood costs the users service a request every few seconds at most;
 * - keys are parsed once per fetch (`createPublicKey` per verification is a large part of a request's CPU).
 */
export function jwksKeyResolver(jwksUri: string, options: JwksResolverOptions = {}): JwksKeyResolver {
  const refreshIntervalMs = options.refreshIntervalMs ?? 5 * 60_000;
  const retryIntervalMs = options.retryIntervalMs ?? 5_000;
  const unknownKidCooldownMs = options.unknownKidCooldownMs ?? 10_000;
  const timeoutMs = options.timeoutMs ?? 5_000;
  const now = options.now ?? (() => Date.now());

  let keys = new Map<string, CachedKey>();
  let loaded = false;
  let lastError: unknown;
  /** When the key set is due for a refresh (or the next try after a failure). */
  let refreshDueAt = 0;
  /** Before this time an unknown kid does not cause a fetch. */
  let unknownKidFetchAllowedAt = 0;
  let inFlight: Promise<void> | undefined;

  const load = async (): Promise<void> => {
    try {
      const res = await fetch(jwksUri, {
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (!res.ok) throw new Error(`JWKS ${jwksUri} answered HTTP ${res.status}`);
      keys = parseJwks(await res.json(), keys);
      loaded = true;
      lastError = undefined;
      refreshDueAt = now() + refreshIntervalMs;
      options.onKeysLoaded?.([...keys.keys()]);
    } catch (err) {
      lastError = err;
      refreshDueAt = now() + retryIntervalMs;
      options.onFetchError?.(err);
      throw err;
    }
  };
  // Every caller that wants a fetch while one is running shares it.
  const fetchKeys = (): Promise<void> =>
    (inFlight ??= load().finally(() => {
      inFlight = undefined;
    }));

  // Nothing to serve yet: wait for the first key set. Failures are retried at most every retryIntervalMs,
  // and until then reported as they are (our fault, not the client's).
  const firstLoad = async (): Promise<void> => {
    if (!inFlight && now() < refreshDueAt) throw lastError;
    await fetchKeys();
  };

  const resolve = async (kid: string): Promise<KeyObject | undefined> => {
    if (!loaded) {
      await firstLoad();
      return keys.get(kid)?.key; // just fetched: an unknown kid stays unknown without a second fetch
    }
    if (!inFlight && now() >= refreshDueAt) {
      // Stale-while-revalidate: this caller is answered from the cache; a failure keeps the cached keys.
      fetchKeys().catch(() => undefined);
    }
    const cached = keys.get(kid);
    if (cached) return cached.key;
    if (!inFlight) {
      if (now() < unknownKidFetchAllowedAt) return undefined;
      unknownKidFetchAllowedAt = now() + unknownKidCooldownMs;
    }
    try {
      await fetchKeys();
    } catch {
      // The endpoint is down: the keys we hold still stand, and this kid is not among them.
      return undefined;
    }
    return keys.get(kid)?.key;
  };
  return Object.assign(resolve, {
    hasKeys: () => loaded,
    ready: async () => {
      if (!loaded) await firstLoad();
    },
  });
}

/**
 * The signing keys of a JWKS document, reusing the parsed key of a kid whose JWK did not change. Entries that
 * cannot be used are skipped; a document with no usable key at all is an error, so that it never replaces
 * a good key set.
 */
function parseJwks(document: unknown, previous: ReadonlyMap<string, CachedKey>): Map<string, CachedKey> {
  const entries = (document as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(entries)) throw new Error('JWKS document has no "keys" array');
  const keys = new Map<string, CachedKey>();
  for (const entry of entries as unknown[]) {
    if (typeof entry !== 'object' || entry === null) continue;
    const jwk = entry as JsonWebKey;
    if (typeof jwk.kid !== 'string' || (jwk.use !== undefined && jwk.use !== 'sig')) continue;
    const text = JSON.stringify(jwk);
    const known = previous.get(jwk.kid);
    if (known?.jwk === text) {
      keys.set(jwk.kid, known);
      continue;
    }
    try {
      const key = createPublicKey({ key: jwk, format: 'jwk' });
      if (key.type === 'public') keys.set(jwk.kid, { jwk: text, key });
    } catch {
      // A key this runtime cannot read verifies nothing; the others still do.
    }
  }
  if (keys.size === 0) throw new Error('JWKS document lists no usable signing key');
  return keys;
}
