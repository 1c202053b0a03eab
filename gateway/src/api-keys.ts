import {
  ApiKeyTokenResponse,
  ErrorCode,
  hashApiKey,
  isApiKeyShaped,
  API_KEY_PREFIX,
  userError,
  type TokenVerifier,
  type Viewer,
} from '@vidmp3/shared';

/**
 * API keys at the gateway (docs/SECURITY.md, "API keys"): a bearer that starts with `vmp3_` is exchanged at the
 * users service for a short-lived access token, and from then on the request is that token's. The gateway
 * keeps no secret and no key: it remembers exchanged tokens by the key's sha256, until shortly before they
 * expire, so that a script's requests cost the users service one exchange every few minutes.
 */
export interface ApiKeyExchangeOptions {
  /** The users service's exchange route (ApiKeyExchange.route on its origin). */
  url: string;
  /** How many exchanged tokens are remembered (LRU). */
  cacheSize?: number;
  /**
   * A remembered token is exchanged again this long before it expires (so none is forwarded about to lapse), or
   * a quarter of its life before, if that is shorter.
   */
  renewBeforeMs?: number;
  timeoutMs?: number;
  now?: () => number;
  fetch?: typeof fetch;
}

export interface ApiKeyExchange {
  /** The access token for `key`; UNAUTHENTICATED (HTTP 401) for an unknown or revoked key. */
  exchange(key: string, clientAddress?: string): Promise<string>;
  /** How many tokens are remembered (tests, metrics). */
  size(): number;
}

interface Exchanged {
  token: string;
  renewAtMs: number;
}

const invalidKey = () => userError(ErrorCode.UNAUTHENTICATED, 'Invalid API key', { http: { status: 401 } });

export function createApiKeyExchange(options: ApiKeyExchangeOptions): ApiKeyExchange {
  const now = options.now ?? (() => Date.now());
  const cacheSize = options.cacheSize ?? 10_000;
  const renewBeforeMs = options.renewBeforeMs ?? 60_000;
  const timeoutMs = options.timeoutMs ?? 5_000;
  const doFetch = options.fetch ?? fetch;
  // Insertion-ordered: the first entry is the least recently used (a hit moves its entry to the end).
  const cache = new Map<string, Exchanged>();
  // Concurrent requests with the same key share one exchange.
  const inFlight = new Map<string, Promise<string>>();

  const ask = async (key: string, id: string, clientAddress: string | undefined): Promise<string> => {
    const res = await doFetch(options.url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${key}`,
        accept: 'application/json',
        ...(clientAddress ? { 'x-forwarded-for': clientAddress } : {}),
      },
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (res.status === 401) throw invalidKey();
    if (res.status === 429) {
      const retryAfterSeconds = Number(res.headers.get('retry-after')) || 60;
      throw userError(ErrorCode.RATE_LIMITED, `Too many invalid API keys; try again in ${retryAfterSeconds} s`, {
        retryAfterSeconds,
        http: { status: 429 },
      });
    }
    if (!res.ok) throw new Error(`API key exchange answered HTTP ${res.status}`);
    const answer = ApiKeyTokenResponse.parse(await res.json());
    const expiresAtMs = Date.parse(answer.expiresAt);
    // A short-lived token (tests configure seconds) is still remembered for most of its life.
    const renewAtMs = expiresAtMs - Math.min(renewBeforeMs, (expiresAtMs - now()) / 4);
    if (cacheSize > 0 && renewAtMs > now()) {
      cache.delete(id);
      cache.set(id, { token: answer.accessToken, renewAtMs });
      if (cache.size > cacheSize) cache.delete(cache.keys().next().value as string);
    }
    return answer.accessToken;
  };

  return {
    async exchange(key, clientAddress) {
      // Malformed keys never reach the users service.
      if (!isApiKeyShaped(key)) throw invalidKey();
      const id = hashApiKey(key).toString('base64url');
      const hit = cache.get(id);
      if (hit) {
        cache.delete(id);
        if (now() < hit.renewAtMs) {
          cache.set(id, hit);
          return hit.token;
        }
      }
      let pending = inFlight.get(id);
      if (!pending) {
        pending = ask(key, id, clientAddress).finally(() => inFlight.delete(id));
        inFlight.set(id, pending);
      }
      return pending;
    },
    size: () => cache.size,
  };
}

/**
 * A verifier that also takes API keys: a key is exchanged for an access token, which the inner verifier then
 * checks like any other. The viewer's `token` is the exchanged one, so subgraphs only ever see access tokens.
 */
export function withApiKeys(verifier: TokenVerifier, keys: ApiKeyExchange): TokenVerifier {
  const verify = async (token: string, clientAddress?: string): Promise<Viewer> =>
    token.startsWith(API_KEY_PREFIX)
      ? verifier.verify(await keys.exchange(token, clientAddress))
      : verifier.verify(token, clientAddress);
  return {
    verify,
    async authenticate(authorization, clientAddress) {
      if (authorization === undefined || authorization === '') return null;
      const match = /^Bearer (vmp3_\S+)$/i.exec(authorization.trim());
      if (match?.[1]) return verify(match[1], clientAddress);
      return verifier.authenticate(authorization, clientAddress);
    },
  };
}
