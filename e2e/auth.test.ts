import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { errorCode, graphql, PASSWORD, signUpUser, uniqueEmail } from './client.js';
import { startSystem, type System } from './harness.js';

const SIGN_UP = `mutation ($email: String!, $password: String!) {
  signUp(email: $email, password: $password) { accessToken expiresAt user { id email createdAt } }
}`;
const LOG_IN = `mutation ($email: String!, $password: String!) {
  logIn(email: $email, password: $password) { accessToken expiresAt user { id email } }
}`;
const ME = '{ me { id email createdAt } }';

let system: System;

beforeAll(async () => {
  // Configured as in production: no introspection, so no schema details in error messages either. Every
  // user here signs up from 127.0.0.1, more than a free instance's hourly sign-ups per address.
  system = await startSystem({ gateway: { INTROSPECTION: 'false' }, users: { SIGNUP_MAX_PER_IP_PER_HOUR: '1000' } });
});
afterAll(async () => {
  await system?.stop();
});

/** Signs a token the way the users service does, with whatever key and claims the test wants. */
async function forgeToken(claims: { sub: string; exp: number }, key?: KeyObject) {
  const jwks = (await (await fetch(`${system.services.users!.url}/.well-known/jwks.json`)).json()) as {
    keys: { kid: string }[];
  };
  const ownKey = createPrivateKey(await readFile(join(system.keysDir, 'jwt-es256.pem'), 'utf8'));
  return jwt.sign({ exp: claims.exp }, key ?? ownKey, {
    algorithm: 'ES256',
    keyid: jwks.keys[0]!.kid,
    issuer: 'vidmp3',
    audience: 'vidmp3-api',
    subject: claims.sub,
  });
}

describe('accounts through the gateway', () => {
  beforeEach(() => onTestFailed(() => console.error(system.logs())));

  it('signs up, logs in and tells the user who they are', async () => {
    const email = uniqueEmail('alice');
    const signUp = await graphql<{ signUp: { accessToken: string; expiresAt: string; user: { id: string } } }>(
      system.gatewayUrl,
      SIGN_UP,
      { variables: { email, password: PASSWORD } },
    );
    expect(signUp.errors).toBeUndefined();
    expect(new Date(signUp.data!.signUp.expiresAt).getTime()).toBeGreaterThan(Date.now());

    const logIn = await graphql<{ logIn: { accessToken: string; user: { id: string; email: string } } }>(
      system.gatewayUrl,
      LOG_IN,
      { variables: { email, password: PASSWORD } },
    );
    expect(logIn.data?.logIn.user).toEqual({ id: signUp.data!.signUp.user.id, email });

    const me = await graphql<{ me: { id: string; email: string; createdAt: string } }>(system.gatewayUrl, ME, {
      token: logIn.data!.logIn.accessToken,
    });
    expect(me.data?.me).toMatchObject({ id: signUp.data!.signUp.user.id, email });
    expect(Date.now() - new Date(me.data!.me.createdAt).getTime()).toBeLessThan(60_000);
  });

  it('answers me with null when the request has no token', async () => {
    const me = await graphql(system.gatewayUrl, ME);
    expect(me.status).toBe(200);
    expect(me.errors).toBeUndefined();
    expect(me.data).toEqual({ me: null });
  });

  it('normalises emails, so the same address in other letter case is a duplicate (CONFLICT)', async () => {
    const email = uniqueEmail('bob');
    await signUpUser(system.gatewayUrl, email);
    const again = await graphql(system.gatewayUrl, SIGN_UP, {
      variables: { email: `  ${email.toUpperCase()} `, password: PASSWORD },
    });
    expect(errorCode(again)).toBe('CONFLICT');
    const logIn = await graphql(system.gatewayUrl, LOG_IN, {
      variables: { email: email.toUpperCase(), password: PASSWORD },
    });
    expect(logIn.errors).toBeUndefined();
  });

  it('refuses a malformed email and a short password with BAD_USER_INPUT', async () => {
    const badEmail = await graphql(system.gatewayUrl, SIGN_UP, {
      variables: { email: 'not-an-email', password: PASSWORD },
    });
    expect(errorCode(badEmail)).toBe('BAD_USER_INPUT');
    expect(badEmail.errors?.[0]?.message).toMatch(/email/i);
    const shortPassword = await graphql(system.gatewayUrl, SIGN_UP, {
      variables: { email: uniqueEmail(), password: 'short' },
    });
    expect(errorCode(shortPassword)).toBe('BAD_USER_INPUT');
    expect(shortPassword.errors?.[0]?.message).toMatch(/at least 10 characters/);
  });

  it('fails a wrong password exactly like an unknown email, revealing neither', async () => {
    const { email } = await signUpUser(system.gatewayUrl);
    const wrongPassword = await graphql(system.gatewayUrl, LOG_IN, {
      variables: { email, password: 'not the password' },
    });
    const unknownEmail = await graphql(system.gatewayUrl, LOG_IN, {
      variables: { email: uniqueEmail('nobody'), password: PASSWORD },
    });
    expect(errorCode(wrongPassword)).toBe('UNAUTHENTICATED');
    expect(wrongPassword.errors?.[0]?.message).toBe(unknownEmail.errors?.[0]?.message);
    expect(wrongPassword.errors?.[0]?.extensions).toEqual(unknownEmail.errors?.[0]?.extensions);
    expect(JSON.stringify(wrongPassword)).not.toContain('127.0.0.1'); // no upstream URL leaks
  });

  it('throttles an email after repeated wrong passwords, even for the right one', async () => {
    const { email } = await signUpUser(system.gatewayUrl);
    for (let i = 0; i < 5; i++) {
      const res = await graphql(system.gatewayUrl, LOG_IN, { variables: { email, password: `wrong password ${i}` } });
      expect(errorCode(res)).toBe('UNAUTHENTICATED');
    }
    const limited = await graphql(system.gatewayUrl, LOG_IN, { variables: { email, password: PASSWORD } });
    expect(errorCode(limited)).toBe('RATE_LIMITED');
    expect(limited.errors?.[0]?.extensions?.retryAfterSeconds).toBeGreaterThan(0);
  });
});

describe('tokens the gateway refuses', () => {
  beforeEach(() => onTestFailed(() => console.error(system.logs())));

  const expectRefused = async (token: string, message: RegExp) => {
    const res = await graphql(system.gatewayUrl, ME, { token });
    expect(res.status).toBe(401);
    expect(errorCode(res)).toBe('UNAUTHENTICATED');
    expect(res.errors?.[0]?.message).toMatch(message);
    expect(res.data ?? null).toBeNull();
  };

  it('refuses a token whose payload was tampered with', async () => {
    const { token } = await signUpUser(system.gatewayUrl);
    const [header, payload, signature] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>;
    const tampered = Buffer.from(JSON.stringify({ ...claims, sub: 'someone-else' })).toString('base64url');
    await expectRefused(`${header}.${tampered}.${signature}`, /invalid/i);
  });

  it('refuses a token whose signature was altered', async () => {
    const { token } = await signUpUser(system.gatewayUrl);
    await expectRefused(`${token}x`, /invalid/i);
  });

  it('refuses an expired token signed with the real key', async () => {
    const { id } = await signUpUser(system.gatewayUrl);
    const expired = await forgeToken({ sub: id, exp: Math.floor(Date.now() / 1000) - 60 });
    await expectRefused(expired, /expired/i);
  });

  it('refuses a token signed by a key the users service does not hold, even under its kid', async () => {
    const { id } = await signUpUser(system.gatewayUrl);
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const forged = await forgeToken({ sub: id, exp: Math.floor(Date.now() / 1000) + 600 }, privateKey);
    await expectRefused(forged, /invalid/i);
  });

  it('refuses an unsigned token (alg none)', async () => {
    const { id } = await signUpUser(system.gatewayUrl);
    const unsigned = jwt.sign({ sub: id, iss: 'vidmp3', aud: 'vidmp3-api' }, null, { algorithm: 'none' });
    await expectRefused(unsigned, /invalid/i);
  });

  it('refuses an Authorization header that is not a bearer token', async () => {
    const res = await graphql(system.gatewayUrl, ME, { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    expect(res.status).toBe(401);
    expect(errorCode(res)).toBe('UNAUTHENTICATED');
  });
});

describe('the gateway as an edge', () => {
  it('blocks a request a browser could send cross-site without a preflight (CSRF prevention)', async () => {
    const res = await fetch(`${system.gatewayUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: JSON.stringify({ query: ME }),
    });
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/Cross-Site Request Forgery/);
  });

  it('rejects an operation over the alias limit before any subgraph runs it', async () => {
    const aliases = Array.from({ length: 40 }, (_, i) => `a${i}: me { id }`).join(' ');
    const tooManyAliases = await graphql(system.gatewayUrl, `{ ${aliases} }`);
    expect(tooManyAliases.data ?? null).toBeNull();
    expect(errorCode(tooManyAliases)).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(tooManyAliases.errors?.[0]?.message).toMatch(/Aliases limit of 15 exceeded/);
  });

  it('refuses introspection and field suggestions when introspection is off', async () => {
    const introspection = await graphql(system.gatewayUrl, '{ __schema { types { name } } }');
    expect(errorCode(introspection)).toBe('GRAPHQL_VALIDATION_FAILED');
    const typo = await graphql(system.gatewayUrl, '{ me { emial } }');
    expect(errorCode(typo)).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(typo.errors?.[0]?.message).not.toMatch(/Did you mean/);
  });

  it('answers a body that is not JSON with 400 BAD_REQUEST, whether sent whole or chunked', async () => {
    const whole = await fetch(`${system.gatewayUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"query":',
    });
    // A streamed body has no length: it takes the Express path rather than the lean JSON lane.
    const chunked = await fetch(`${system.gatewayUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: new Blob(['{"query":']).stream(),
      duplex: 'half',
    } as RequestInit);
    for (const res of [whole, chunked]) {
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({
        errors: [{ message: 'The request body is not valid JSON', extensions: { code: 'BAD_REQUEST' } }],
      });
    }
  });

  it('carries a request id, echoing the caller’s', async () => {
    const res = await graphql(system.gatewayUrl, ME, { headers: { 'x-request-id': 'e2e-trace-1' } });
    expect(res.headers.get('x-request-id')).toBe('e2e-trace-1');
  });

  it('reports every service alive and ready', async () => {
    for (const service of Object.values(system.services)) {
      expect((await fetch(`${service.url}/healthz`)).status, service.name).toBe(200);
      const ready = await fetch(`${service.url}/readyz`);
      expect(ready.status, `${service.name}: ${await ready.clone().text()}`).toBe(200);
    }
  });
});
