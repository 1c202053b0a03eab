import { createHmac, createPublicKey, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GraphQLError } from 'graphql';
import jwt from 'jsonwebtoken';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { createTokenVerifier, jwksKeyResolver, type KeyResolver } from './auth.js';

const ISSUER = 'vidmp3';
const AUDIENCE = 'vidmp3-api';
const KID = 'signing-key-1';

const newKeyPair = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = newKeyPair();
const publicPem = signingKey.publicKey.export({ type: 'spki', format: 'pem' }) as string;
const now = () => Math.floor(Date.now() / 1000);

interface TokenOptions {
  key?: KeyObject;
  /** null: no kid header at all. */
  kid?: string | null;
  issuer?: string;
  audience?: string;
}

/** A token as the users service issues it (ES256, kid, iss, aud, sub, exp), with overrides for the test. */
function signToken(claims: Record<string, unknown> = {}, options: TokenOptions = {}): string {
  const kid = options.kid === undefined ? KID : options.kid;
  return jwt.sign({ sub: 'user-1', exp: now() + 300, ...claims }, options.key ?? signingKey.privateKey, {
    algorithm: 'ES256',
    ...(kid === null ? {} : { keyid: kid }),
    issuer: options.issuer ?? ISSUER,
    audience: options.audience ?? AUDIENCE,
  });
}

const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A token put together by hand, the way an attacker would. */
function craftToken(header: Record<string, unknown>, payload: Record<string, unknown>, signature = ''): string {
  return `${base64url(header)}.${base64url(payload)}.${signature}`;
}

const validClaims = () => ({ sub: 'user-1', iss: ISSUER, aud: AUDIENCE, iat: now(), exp: now() + 300 });

function verifierWith(keys: KeyResolver = async (kid) => (kid === KID ? signingKey.publicKey : undefined)) {
  return createTokenVerifier({ keys, issuer: ISSUER, audience: AUDIENCE });
}

/** The error a promise rejects with; fails the test if it resolves. */
async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** Asserts the client is told UNAUTHENTICATED (HTTP 401) and returns the message it sees. */
async function unauthenticated(promise: Promise<unknown>): Promise<string> {
  const error = await rejectionOf(promise);
  expect(error).toBeInstanceOf(GraphQLError);
  expect((error as GraphQLError).extensions).toEqual({ code: 'UNAUTHENTICATED', http: { status: 401 } });
  return (error as GraphQLError).message;
}

describe('createTokenVerifier', () => {
  it('turns a valid token into the viewer it was issued for', async () => {
    const exp = now() + 600;
    const token = signToken({ sub: 'user-42', exp });

    expect(await verifierWith().verify(token)).toEqual({
      userId: 'user-42',
      token,
      expiresAt: new Date(exp * 1000),
    });
  });

  it('carries the session a token was issued for (its sid claim) into the viewer', async () => {
    const exp = now() + 600;
    const token = signToken({ sub: 'user-42', sid: 'session-7', exp });

    expect(await verifierWith().verify(token)).toStrictEqual({
      userId: 'user-42',
      token,
      expiresAt: new Date(exp * 1000),
      sessionId: 'session-7',
    });
    expect(await verifierWith().verify(signToken({ sub: 'user-42' }))).not.toHaveProperty('sessionId');
  });

  it('carries an API key token’s key id (akid) and known scopes into the viewer, ignoring unknown scopes', async () => {
    const token = signToken({ sub: 'user-42', akid: 'key-9', scope: 'read convert admin' });
    expect(await verifierWith().verify(token)).toMatchObject({
      userId: 'user-42',
      apiKeyId: 'key-9',
      scopes: ['read', 'convert'],
    });
    const session = await verifierWith().verify(signToken({ sub: 'user-42', sid: 's', scope: 'read' }));
    expect(session).not.toHaveProperty('apiKeyId');
    expect(session).not.toHaveProperty('scopes');
  });

  it('refuses an expired token, saying it expired', async () => {
    const token = signToken({ iat: now() - 3_600, exp: now() - 60 });

    expect(await unauthenticated(verifierWith().verify(token))).toMatch(/expired/i);
  });

  it('allows a few seconds of clock skew around the expiry', async () => {
    const token = signToken({ iat: now() - 3_600, exp: now() - 2 });

    expect((await verifierWith().verify(token)).userId).toBe('user-1');
  });

  it('refuses a token that is not valid yet', async () => {
    const token = signToken({ nbf: now() + 600, exp: now() + 900 });

    await unauthenticated(verifierWith().verify(token));
  });

  it('refuses a token from another issuer', async () => {
    expect(await unauthenticated(verifierWith().verify(signToken({}, { issuer: 'someone-else' })))).toMatch(/issuer/i);
  });

  it('refuses a token meant for another audience', async () => {
    expect(await unauthenticated(verifierWith().verify(signToken({}, { audience: 'another-api' })))).toMatch(
      /audience/i,
    );
  });

  it('refuses a token signed with a key it does not know', async () => {
    expect(await unauthenticated(verifierWith().verify(signToken({}, { kid: 'retired-long-ago' })))).toMatch(
      /unknown signing key/i,
    );
  });

  it('refuses a token without a key id', async () => {
    expect(await unauthenticated(verifierWith().verify(signToken({}, { kid: null })))).toMatch(/key id/i);
  });

  it('refuses a token signed by another key under a known key id', async () => {
    const forged = signToken({ sub: 'admin' }, { key: newKeyPair().privateKey });

    expect(await unauthenticated(verifierWith().verify(forged))).toMatch(/signature/i);
  });

  it('refuses an unsigned token (alg "none")', async () => {
    const token = craftToken({ alg: 'none', typ: 'JWT', kid: KID }, validClaims());

    await unauthenticated(verifierWith().verify(token));
    await unauthenticated(verifierWith().authenticate(`Bearer ${token}`));
  });

  it('refuses an HS256 token whose secret is the public key (algorithm confusion)', async () => {
    // A JWKS-backed resolver hands out PEM strings, which is what an HMAC verify would take as the secret.
    const verifier = verifierWith(async (kid) => (kid === KID ? publicPem : undefined));
    const unsigned = `${base64url({ alg: 'HS256', typ: 'JWT', kid: KID })}.${base64url(validClaims())}`;
    const signature = createHmac('sha256', publicPem).update(unsigned).digest('base64url');

    await unauthenticated(verifier.verify(`${unsigned}.${signature}`));
  });

  it('refuses a token whose header claims ES256 but whose signature is an HMAC', async () => {
    const verifier = verifierWith(async (kid) => (kid === KID ? publicPem : undefined));
    const unsigned = `${base64url({ alg: 'ES256', typ: 'JWT', kid: KID })}.${base64url(validClaims())}`;
    const signature = createHmac('sha256', publicPem).update(unsigned).digest('base64url');

    await unauthenticated(verifier.verify(`${unsigned}.${signature}`));
  });

  it('refuses a token whose payload was changed after signing', async () => {
    const [header, , signature] = signToken({ sub: 'user-1' }).split('.');
    const tampered = `${header}.${base64url({ ...validClaims(), sub: 'user-2' })}.${signature}`;

    expect(await unauthenticated(verifierWith().verify(tampered))).toMatch(/signature/i);
  });

  it('refuses a token with one character added to its signature, without crashing', async () => {
    const token = `${signToken()}A`;

    await unauthenticated(verifierWith().verify(token));
    await unauthenticated(verifierWith().authenticate(`Bearer ${token}`));
  });

  it('refuses a token with one character of its signature changed', async () => {
    const token = signToken();
    const last = token.at(-2) === 'A' ? 'B' : 'A';
    const tampered = `${token.slice(0, -2)}${last}${token.at(-1)}`;

    await unauthenticated(verifierWith().verify(tampered));
  });

  it('refuses a token with no subject', async () => {
    const token = jwt.sign({ exp: now() + 300 }, signingKey.privateKey, {
      algorithm: 'ES256',
      keyid: KID,
      issuer: ISSUER,
      audience: AUDIENCE,
    });

    expect(await unauthenticated(verifierWith().verify(token))).toMatch(/missing claims/i);
  });

  it('refuses a token that never expires', async () => {
    const token = jwt.sign({ sub: 'user-1' }, signingKey.privateKey, {
      algorithm: 'ES256',
      keyid: KID,
      issuer: ISSUER,
      audience: AUDIENCE,
    });

    expect(await unauthenticated(verifierWith().verify(token))).toMatch(/missing claims/i);
  });

  it.each(['', 'not-a-jwt', 'a.b.c', '..'])('refuses the malformed token "%s"', async (token) => {
    await unauthenticated(verifierWith().verify(token));
  });

  it('lets a failure to look up keys through as our own error, not the client’s', async () => {
    const outage = new Error('connect ECONNREFUSED 127.0.0.1:4001');
    const verifier = verifierWith(async () => {
      throw outage;
    });

    expect(await rejectionOf(verifier.verify(signToken()))).toBe(outage);
  });

  describe('authenticate', () => {
    it('treats a request without an Authorization header as anonymous', async () => {
      expect(await verifierWith().authenticate(undefined)).toBeNull();
      expect(await verifierWith().authenticate('')).toBeNull();
    });

    it('reads the viewer from "Authorization: Bearer <token>"', async () => {
      const token = signToken({ sub: 'user-7' });

      expect(await verifierWith().authenticate(`Bearer ${token}`)).toMatchObject({ userId: 'user-7', token });
    });

    it('accepts the scheme name in any letter case (RFC 7235 §2.1: the auth-scheme is case-insensitive)', async () => {
      const token = signToken({ sub: 'user-7' });

      expect(await verifierWith().authenticate(`bearer ${token}`)).toMatchObject({ userId: 'user-7' });
    });

    it.each(['Basic dXNlcjpwYXNz', 'Basic x', 'Bearer', 'Bearer ', 'Token abc.def.ghi', 'Bearer a b'])(
      'refuses the header "%s"',
      async (header) => {
        expect(await unauthenticated(verifierWith().authenticate(header))).toMatch(/Bearer/);
      },
    );

    it('refuses a bearer token that does not verify', async () => {
      const token = signToken({}, { issuer: 'someone-else' });

      await unauthenticated(verifierWith().authenticate(`Bearer ${token}`));
    });
  });
});

describe('the verified-token cache', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  /** A verifier with a clock the test moves, over a key set the test changes; counts signature checks. */
  function cachingVerifier(cacheSize?: number) {
    const clock = { ms: Date.now() };
    const keys = new Map<string, KeyObject>([[KID, signingKey.publicKey]]);
    const verifier = createTokenVerifier({
      keys: async (kid) => keys.get(kid),
      issuer: ISSUER,
      audience: AUDIENCE,
      now: () => clock.ms,
      ...(cacheSize === undefined ? {} : { cacheSize }),
    });
    const signatureChecks = vi.spyOn(jwt, 'verify');
    return { verifier, clock, keys, signatureChecks };
  }

  it('checks a token’s signature once and answers the same token again from the cache', async () => {
    const { verifier, signatureChecks } = cachingVerifier();
    const token = signToken({ sub: 'user-9' });

    const first = await verifier.verify(token);
    const again = await verifier.authenticate(`Bearer ${token}`);

    expect(again).toEqual(first);
    expect(again).toMatchObject({ userId: 'user-9', token });
    expect(signatureChecks).toHaveBeenCalledTimes(1);
  });

  it('stops answering a token from the cache at its expiry, and refuses it as expired', async () => {
    const { verifier, clock, signatureChecks } = cachingVerifier();
    const exp = Math.floor(clock.ms / 1000) + 60;
    const token = signToken({ exp });
    await verifier.verify(token);

    clock.ms = exp * 1000 - 1;
    await verifier.verify(token);
    expect(signatureChecks).toHaveBeenCalledTimes(1);

    clock.ms = exp * 1000 + 60_000;
    expect(await unauthenticated(verifier.verify(token))).toBe('Access token expired');
    expect(signatureChecks).toHaveBeenCalledTimes(2);
  });

  it('remembers at most cacheSize tokens, forgetting the least recently used first', async () => {
    const { verifier, signatureChecks } = cachingVerifier(2);
    const [a, b, c] = ['user-a', 'user-b', 'user-c'].map((sub) => signToken({ sub })) as [string, string, string];
    await verifier.verify(a);
    await verifier.verify(b);
    await verifier.verify(a); // a is now the most recently used: b goes first
    await verifier.verify(c);
    expect(signatureChecks).toHaveBeenCalledTimes(3);

    await verifier.verify(a);
    await verifier.verify(c);
    expect(signatureChecks).toHaveBeenCalledTimes(3);
    await verifier.verify(b);
    expect(signatureChecks).toHaveBeenCalledTimes(4);
  });

  it('stops accepting a cached token once its key is no longer in the key set', async () => {
    const { verifier, keys } = cachingVerifier();
    const token = signToken();
    await verifier.verify(token);

    keys.delete(KID);

    expect(await unauthenticated(verifier.verify(token))).toMatch(/unknown signing key/);
  });

  it('stops accepting a cached token once another key is published under its key id', async () => {
    const { verifier, keys } = cachingVerifier();
    const token = signToken();
    await verifier.verify(token);

    keys.set(KID, newKeyPair().publicKey);

    expect(await unauthenticated(verifier.verify(token))).toMatch(/invalid signature/);
  });

  it('never remembers a token that failed: it is checked, and refused, every time', async () => {
    const { verifier, signatureChecks } = cachingVerifier();
    const forged = signToken({}, { key: newKeyPair().privateKey });

    await unauthenticated(verifier.verify(forged));
    await unauthenticated(verifier.verify(forged));

    expect(signatureChecks).toHaveBeenCalledTimes(2);
  });

  it('checks every time when the cache is turned off (cacheSize 0)', async () => {
    const { verifier, signatureChecks } = cachingVerifier(0);
    const token = signToken();

    await verifier.verify(token);
    await verifier.verify(token);

    expect(signatureChecks).toHaveBeenCalledTimes(2);
  });
});

describe('jwksKeyResolver', () => {
  const servers: Server[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  });

  /**
   * A JWKS endpoint on 127.0.0.1 serving whatever `keys` holds at the time of the request; `state.answer`
   * switches it to an outage (503) or to a useless document.
   */
  async function jwksServer(keys: Map<string, KeyObject>) {
    const served = { requests: 0, answer: 'keys' as 'keys' | 'outage' | 'no keys' };
    const server = createServer((req, res) => {
      served.requests += 1;
      if (req.url !== '/.well-known/jwks.json') {
        res.writeHead(404).end();
        return;
      }
      if (served.answer === 'outage') {
        res.writeHead(503).end('users service is down');
        return;
      }
      const jwks =
        served.answer === 'no keys'
          ? []
          : [...keys].map(([kid, key]) => ({ ...key.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' }));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: jwks }));
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return { url: `http://127.0.0.1:${port}/.well-known/jwks.json`, served };
  }

  /** A clock the test moves by hand, so the key set can age by an hour without anyone sleeping. */
  const manualClock = () => {
    const clock = { ms: Date.UTC(2026, 0, 1), now: () => clock.ms, advance: (ms: number) => (clock.ms += ms) };
    return clock;
  };

  const REFRESH_MS = 60_000;
  const COOLDOWN_MS = 10_000;

  /** A resolver and a verifier on it, with short ages and the test's clock. */
  async function verifierOverJwks(keys = new Map([[KID, signingKey.publicKey]])) {
    const { url, served } = await jwksServer(keys);
    const clock = manualClock();
    /** The key sets loaded so far (each a list of kids), in order. */
    const loads: string[][] = [];
    const failures: unknown[] = [];
    const resolve = jwksKeyResolver(url, {
      onKeysLoaded: (kids) => loads.push(kids),
      onFetchError: (error) => failures.push(error),
      refreshIntervalMs: REFRESH_MS,
      retryIntervalMs: 1_000,
      unknownKidCooldownMs: COOLDOWN_MS,
      now: clock.now,
    });
    const verifier = createTokenVerifier({ keys: resolve, issuer: ISSUER, audience: AUDIENCE });
    /** Waits (polling, bounded) until the resolver has loaded `count` key sets. */
    const loaded = (count: number) => expect.poll(() => loads.length, { timeout: 5_000 }).toBe(count);
    /** Waits (polling, bounded) until `count` fetches have failed. */
    const failed = (count: number) => expect.poll(() => failures.length, { timeout: 5_000 }).toBe(count);
    return { url, served, clock, resolve, verifier, keys, loaded, failed };
  }

  /** What an attacker sends: a well-formed token under a random kid, with a signature nobody checks. */
  const randomKidToken = () => craftToken({ alg: 'ES256', typ: 'JWT', kid: randomUUID() }, validClaims(), 'AAAA');

  const sameKey = (resolved: KeyObject | string | undefined, expected: KeyObject) =>
    resolved !== undefined && (typeof resolved === 'string' ? createPublicKey(resolved) : resolved).equals(expected);

  it('resolves a key id the JWKS lists to that public key', async () => {
    const { url } = await jwksServer(new Map([[KID, signingKey.publicKey]]));

    expect(sameKey(await jwksKeyResolver(url)(KID), signingKey.publicKey)).toBe(true);
  });

  it('resolves an unknown key id to undefined', async () => {
    const { url } = await jwksServer(new Map([[KID, signingKey.publicKey]]));

    expect(await jwksKeyResolver(url)('no-such-kid')).toBeUndefined();
  });

  it('lets a verifier accept tokens signed with a published key', async () => {
    const { url } = await jwksServer(new Map([[KID, signingKey.publicKey]]));
    const verifier = createTokenVerifier({ keys: jwksKeyResolver(url), issuer: ISSUER, audience: AUDIENCE });

    expect((await verifier.authenticate(`Bearer ${signToken({ sub: 'user-9' })}`))?.userId).toBe('user-9');
    await unauthenticated(verifier.verify(signToken({}, { kid: 'no-such-kid' })));
  });

  it('fetches the JWKS once for a key it has already seen', async () => {
    const { url, served } = await jwksServer(new Map([[KID, signingKey.publicKey]]));
    const resolve = jwksKeyResolver(url);

    await resolve(KID);
    await resolve(KID);
    await resolve(KID);

    expect(served.requests).toBe(1);
  });

  it('finds a key published after it first fetched the JWKS (key rotation)', async () => {
    const keys = new Map([[KID, signingKey.publicKey]]);
    const { url } = await jwksServer(keys);
    const resolve = jwksKeyResolver(url);
    await resolve(KID);
    const next = newKeyPair();

    keys.set('signing-key-2', next.publicKey);

    expect(sameKey(await resolve('signing-key-2'), next.publicKey)).toBe(true);
  });

  it('fails loudly, rather than answering "unknown key", when the JWKS endpoint is unreachable', async () => {
    const { url } = await jwksServer(new Map());
    const closing = servers.pop() as Server;
    await new Promise((resolve) => closing.close(resolve));

    const error = await rejectionOf(jwksKeyResolver(url)(KID));

    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(GraphQLError);
  });

  it('keeps verifying valid tokens through a flood of random-kid tokens while the key set ages past its refresh', async () => {
    const { verifier, clock, served } = await verifierOverJwks();
    expect((await verifier.verify(signToken({ sub: 'alice' }))).userId).toBe('alice');

    for (let round = 0; round < 6; round += 1) {
      clock.advance(REFRESH_MS / 2); // the set ages out every other round
      const flood = Array.from({ length: 100 }, () => unauthenticated(verifier.verify(randomKidToken())));
      const users = Array.from({ length: 10 }, (_, i) => verifier.verify(signToken({ sub: `user-${i}` })));

      expect(await Promise.all(flood)).toEqual(Array(100).fill('Invalid access token: unknown signing key'));
      expect((await Promise.all(users)).map((viewer) => viewer.userId)).toEqual(
        Array.from({ length: 10 }, (_, i) => `user-${i}`),
      );
    }
    // The first load, then per round at most one refetch for unknown kids and one refresh by age.
    expect(served.requests).toBeLessThanOrEqual(1 + 6 * 2);
  });

  it('refetches at most once per cooldown for unknown kids, concurrent lookups sharing one fetch', async () => {
    const { resolve, clock, served } = await verifierOverJwks();
    const lookUpRandomKids = async () => {
      const found = await Promise.all(Array.from({ length: 200 }, () => resolve(randomUUID())));
      expect(found.every((key) => key === undefined)).toBe(true);
    };

    await lookUpRandomKids(); // all 200 wait for the first load
    expect(served.requests).toBe(1);
    await lookUpRandomKids(); // one refetch, shared
    expect(served.requests).toBe(2);
    clock.advance(COOLDOWN_MS - 1);
    await lookUpRandomKids(); // still cooling down: no fetch at all
    expect(served.requests).toBe(2);
    clock.advance(1);
    await lookUpRandomKids();
    expect(served.requests).toBe(3);
  });

  it('keeps serving the keys it has while the JWKS endpoint is down, however old they get', async () => {
    const { verifier, resolve, clock, served } = await verifierOverJwks();
    await verifier.verify(signToken());

    served.answer = 'outage';
    for (let minutes = 0; minutes < 60; minutes += 5) {
      clock.advance(5 * 60_000);
      expect((await verifier.verify(signToken({ sub: 'alice' }))).userId).toBe('alice');
      // An unknown kid is still the client's problem (401), not a server error, during the outage.
      expect(await unauthenticated(verifier.verify(randomKidToken()))).toMatch(/unknown signing key/);
    }
    expect(served.requests).toBeGreaterThan(1); // it did try to refresh
    expect(resolve.hasKeys()).toBe(true);
  });

  it('keeps the last good keys when a refresh answers with no usable key', async () => {
    const { verifier, clock, served, failed } = await verifierOverJwks();
    await verifier.verify(signToken());

    served.answer = 'no keys';
    clock.advance(REFRESH_MS);
    await verifier.verify(signToken()); // starts the refresh in the background
    await failed(1);

    expect((await verifier.verify(signToken({ sub: 'alice' }))).userId).toBe('alice');
  });

  it('picks up a rotated-in key once the unknown-kid cooldown has passed, even during a flood', async () => {
    const { verifier, clock, keys } = await verifierOverJwks();
    await verifier.verify(signToken());
    await Promise.all(Array.from({ length: 50 }, () => unauthenticated(verifier.verify(randomKidToken()))));
    const next = newKeyPair();
    keys.set('signing-key-2', next.publicKey);
    const rotated = signToken({ sub: 'alice' }, { key: next.privateKey, kid: 'signing-key-2' });

    await unauthenticated(verifier.verify(rotated)); // the flood spent this cooldown's refetch
    clock.advance(COOLDOWN_MS);

    expect((await verifier.verify(rotated)).userId).toBe('alice');
    expect((await verifier.verify(signToken({ sub: 'bob' }))).userId).toBe('bob');
  });

  it('picks up a rotated-in key with the scheduled refresh, and drops a key the JWKS no longer lists', async () => {
    const { resolve, clock, served, keys, loaded } = await verifierOverJwks();
    await resolve(KID);
    const next = newKeyPair();
    keys.set('signing-key-2', next.publicKey);
    keys.delete(KID);

    clock.advance(REFRESH_MS);
    expect(sameKey(await resolve(KID), signingKey.publicKey)).toBe(true); // answered from the cache meanwhile
    await loaded(2);

    expect(sameKey(await resolve('signing-key-2'), next.publicKey)).toBe(true);
    expect(served.requests).toBe(2); // found in the refreshed set, no fetch of its own
    expect(await resolve(KID)).toBeUndefined();
  });

  it('parses each key once, not once per verification or per refresh', async () => {
    const { resolve, clock, loaded } = await verifierOverJwks();
    const first = await resolve(KID);

    clock.advance(REFRESH_MS);
    await resolve(KID);
    await loaded(2);

    expect(await resolve(KID)).toBe(first);
  });

  it('retries a failed first load after the retry interval, not on every request', async () => {
    const { resolve, clock, served } = await verifierOverJwks();
    served.answer = 'outage';

    await rejectionOf(resolve(KID));
    await rejectionOf(resolve(KID));
    expect(served.requests).toBe(1);
    expect(resolve.hasKeys()).toBe(false);

    served.answer = 'keys';
    clock.advance(1_000);
    expect(sameKey(await resolve(KID), signingKey.publicKey)).toBe(true);
    expect(resolve.hasKeys()).toBe(true);
  });

  it('is ready once it holds keys, and stays ready through a JWKS outage', async () => {
    const { resolve, clock, served } = await verifierOverJwks();
    served.answer = 'outage';
    await rejectionOf(resolve.ready());
    served.answer = 'keys';
    clock.advance(1_000);

    await resolve.ready(); // loads the keys itself: no token has to come first
    expect(served.requests).toBe(2);
    served.answer = 'outage';
    clock.advance(REFRESH_MS * 10);

    await resolve.ready();
    expect(sameKey(await resolve(KID), signingKey.publicKey)).toBe(true);
  });
});
