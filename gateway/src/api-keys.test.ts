import { randomBytes } from 'node:crypto';
import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import type { TokenVerifier, Viewer } from '@vidmp3/shared';
import { createApiKeyExchange, withApiKeys } from './api-keys.js';

const MINUTE = 60_000;
const URL = 'http://users.test/api-keys/token';
const newKey = () => `vmp3_${randomBytes(32).toString('base64url')}`;

/** A users service stand-in: answers each exchange with a numbered token valid for 5 minutes of `clock`. */
function usersStandIn(clock: { now: number }, refuse = new Set<string>()) {
  const calls: { key: string; forwardedFor: string | null }[] = [];
  let issued = 0;
  const fetch = (async (_url: string, init: RequestInit) => {
    const headers = new Headers(init.headers);
    const key = (headers.get('authorization') ?? '').replace(/^Bearer /, '');
    calls.push({ key, forwardedFor: headers.get('x-forwarded-for') });
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (refuse.has(key)) return new Response(JSON.stringify({ error: 'UNAUTHENTICATED' }), { status: 401 });
    issued += 1;
    const expiresAt = new Date(clock.now + 5 * MINUTE).toISOString();
    return Response.json({ accessToken: `token-${issued}`, expiresAt });
  }) as typeof globalThis.fetch;
  return { fetch, calls };
}

const errorCode = (err: unknown) => (err instanceof GraphQLError ? err.extensions.code : err);

describe('the API key exchange', () => {
  it('remembers a token until a minute before it expires, then exchanges the key again', async () => {
    const clock = { now: Date.now() };
    const users = usersStandIn(clock);
    const keys = createApiKeyExchange({ url: URL, fetch: users.fetch, now: () => clock.now });
    const key = newKey();
    expect(await keys.exchange(key, '198.51.100.4')).toBe('token-1');
    clock.now += 3 * MINUTE;
    expect(await keys.exchange(key)).toBe('token-1');
    expect(users.calls).toEqual([{ key, forwardedFor: '198.51.100.4' }]);
    clock.now += MINUTE + 1;
    expect(await keys.exchange(key)).toBe('token-2');
    expect(users.calls).toHaveLength(2);
  });

  it('makes one exchange for concurrent requests with the same key', async () => {
    const clock = { now: Date.now() };
    const users = usersStandIn(clock);
    const keys = createApiKeyExchange({ url: URL, fetch: users.fetch, now: () => clock.now });
    const key = newKey();
    const tokens = await Promise.all(Array.from({ length: 10 }, () => keys.exchange(key)));
    expect(new Set(tokens)).toEqual(new Set(['token-1']));
    expect(users.calls).toHaveLength(1);
  });

  it('refuses an unknown key with UNAUTHENTICATED and remembers nothing of it', async () => {
    const clock = { now: Date.now() };
    const key = newKey();
    const users = usersStandIn(clock, new Set([key]));
    const keys = createApiKeyExchange({ url: URL, fetch: users.fetch, now: () => clock.now });
    expect(errorCode(await keys.exchange(key).catch((err: unknown) => err))).toBe('UNAUTHENTICATED');
    expect(errorCode(await keys.exchange(key).catch((err: unknown) => err))).toBe('UNAUTHENTICATED');
    expect(users.calls).toHaveLength(2);
    expect(keys.size()).toBe(0);
  });

  it('never sends a malformed key to the users service', async () => {
    const users = usersStandIn({ now: Date.now() });
    const keys = createApiKeyExchange({ url: URL, fetch: users.fetch });
    for (const bad of ['vmp3_short', `vmp3_${'a'.repeat(42)}!`, `vmp3_${'a'.repeat(44)}`]) {
      expect(errorCode(await keys.exchange(bad).catch((err: unknown) => err))).toBe('UNAUTHENTICATED');
    }
    expect(users.calls).toEqual([]);
  });

  it('keeps at most cacheSize tokens, forgetting the least recently used', async () => {
    const clock = { now: Date.now() };
    const users = usersStandIn(clock);
    const keys = createApiKeyExchange({ url: URL, fetch: users.fetch, now: () => clock.now, cacheSize: 2 });
    const [a, b, c] = [newKey(), newKey(), newKey()];
    await keys.exchange(a);
    await keys.exchange(b);
    await keys.exchange(a); // a is now the most recently used
    await keys.exchange(c); // b goes
    expect(keys.size()).toBe(2);
    expect(users.calls.map((call) => call.key)).toEqual([a, b, c]);
    await keys.exchange(a);
    await keys.exchange(b);
    expect(users.calls.map((call) => call.key)).toEqual([a, b, c, b]);
  });
});

describe('a verifier with API keys', () => {
  const viewerOf = (token: string): Viewer => ({ userId: 'u1', token, expiresAt: new Date(Date.now() + MINUTE) });
  const inner: TokenVerifier = {
    verify: async (token) => viewerOf(token),
    authenticate: async (authorization) => (authorization ? viewerOf(`inner:${authorization}`) : null),
  };

  it('verifies the exchanged token for a key, and leaves other bearers to the token verifier', async () => {
    const users = usersStandIn({ now: Date.now() });
    const verifier = withApiKeys(inner, createApiKeyExchange({ url: URL, fetch: users.fetch }));
    const key = newKey();
    expect((await verifier.authenticate(`Bearer ${key}`, '192.0.2.3'))?.token).toBe('token-1');
    expect(users.calls).toEqual([{ key, forwardedFor: '192.0.2.3' }]);
    expect((await verifier.verify(key))?.token).toBe('token-1');
    expect((await verifier.authenticate('Bearer eyJhbGciOi.x.y'))?.token).toBe('inner:Bearer eyJhbGciOi.x.y');
    expect(await verifier.authenticate(undefined)).toBeNull();
    expect(users.calls).toHaveLength(1);
  });
});
