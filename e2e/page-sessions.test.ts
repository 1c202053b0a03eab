// The page's session routes on the gateway (/auth/*): the refresh token lives in an HttpOnly cookie, the page
// gets access tokens only; other sites cannot use the cookie. Also `me { sessions }` and `endSession`.
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { errorCode, graphql, PASSWORD, uniqueEmail } from './client.js';
import { startSystem, type System } from './harness.js';

const NEW_PASSWORD = 'a whole new passphrase';

let system: System;
let origin: string;

beforeAll(async () => {
  system = await startSystem();
  origin = new URL(system.gatewayUrl).origin;
});
afterAll(async () => {
  await system?.stop();
});

interface AuthAnswer {
  status: number;
  body: {
    accessToken?: string;
    expiresAt?: string;
    user?: { id: string; email: string };
    refreshToken?: unknown;
    errors?: { message: string; extensions: { code: string; field?: string } }[];
  };
  /** The Set-Cookie headers, whole. */
  setCookies: string[];
  /** The refresh cookie as set: its value ('' when cleared) and attributes. */
  cookie?: { name: string; value: string; attributes: string };
}

/** A request to /auth/<path> as the page makes it, unless `headers` say otherwise (undefined drops a header). */
async function auth(
  path: string,
  options: { cookie?: string; token?: string; body?: unknown; headers?: Record<string, string | undefined> } = {},
): Promise<AuthAnswer> {
  const headers: Record<string, string | undefined> = {
    'content-type': 'application/json',
    origin,
    'x-vidmp3-auth': '1',
    ...(options.cookie !== undefined ? { cookie: `vidmp3-refresh=${options.cookie}` } : {}),
    ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    ...options.headers,
  };
  const res = await fetch(`${system.gatewayUrl}/auth/${path}`, {
    method: 'POST',
    headers: Object.fromEntries(Object.entries(headers).filter((e): e is [string, string] => e[1] !== undefined)),
    body: JSON.stringify(options.body ?? {}),
  });
  const setCookies = res.headers.getSetCookie();
  const match = setCookies.map((c) => /^((?:__Secure-)?vidmp3-refresh)=([^;]*);\s*(.*)$/.exec(c)).find(Boolean);
  return {
    status: res.status,
    body: (await res.json()) as AuthAnswer['body'],
    setCookies,
    ...(match ? { cookie: { name: match[1]!, value: match[2]!, attributes: match[3]! } } : {}),
  };
}

const credentials = (email = uniqueEmail('page')) => ({ email, password: PASSWORD });

/** Signs up through /auth/signup; the access token and the refresh cookie's value. */
async function pageSignUp(email?: string) {
  const answer = await auth('signup', { body: credentials(email) });
  if (answer.status !== 200 || !answer.cookie) throw new Error(`sign-up failed: ${JSON.stringify(answer.body)}`);
  return { accessToken: answer.body.accessToken!, user: answer.body.user!, refresh: answer.cookie.value };
}

/** What `me` answers for an access token: 'ok' or the error code. */
async function me(accessToken: string): Promise<string> {
  const res = await graphql<{ me: { id: string } | null }>(system.gatewayUrl, '{ me { id } }', { token: accessToken });
  return res.data?.me?.id ? 'ok' : String(errorCode(res));
}

const sid = (accessToken: string) => (jwt.decode(accessToken) as { sid: string }).sid;

describe('the page session routes (/auth)', () => {
  beforeEach(() => onTestFailed(() => console.error(system.logs())));

  it('signs up and logs in with the refresh token in an HttpOnly, SameSite=Strict cookie for /auth, never in the body', async () => {
    const email = uniqueEmail('cookie');
    for (const answer of [
      await auth('signup', { body: credentials(email) }),
      await auth('login', { body: credentials(email) }),
    ]) {
      expect(answer.status).toBe(200);
      expect(Object.keys(answer.body).sort()).toEqual(['accessToken', 'expiresAt', 'user']);
      expect(answer.body.user?.email).toBe(email);
      expect(await me(answer.body.accessToken!)).toBe('ok');
      expect(answer.cookie?.name).toBe('vidmp3-refresh');
      expect(answer.cookie?.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const attributes = answer.cookie!.attributes.split('; ');
      expect(attributes).toEqual(expect.arrayContaining(['Path=/auth', 'HttpOnly', 'SameSite=Strict']));
      expect(attributes).not.toContain('Secure'); // plain http on loopback in this test
      const maxAge = Number(attributes.find((a) => a.startsWith('Max-Age='))?.slice(8));
      expect(maxAge).toBeGreaterThan(29 * 86_400);
      expect(maxAge).toBeLessThanOrEqual(30 * 86_400);
      expect(answer.setCookies).toHaveLength(1);
    }
  });

  it('marks the cookie Secure with the __Secure- prefix when the request came over https (through a trusted proxy)', async () => {
    const answer = await auth('signup', {
      body: credentials(),
      headers: { 'x-forwarded-proto': 'https', origin: origin.replace('http:', 'https:') },
    });

    expect(answer.status).toBe(200);
    expect(answer.cookie?.name).toBe('__Secure-vidmp3-refresh');
    expect(answer.cookie?.attributes.split('; ')).toEqual(
      expect.arrayContaining(['Secure', 'HttpOnly', 'SameSite=Strict', 'Path=/auth']),
    );
  });

  it('refuses other sites, form posts and requests without an Origin, before anything reaches users', async () => {
    const email = uniqueEmail('csrf');
    const { refresh } = await pageSignUp(email);
    const refusals = [
      { origin: 'https://evil.example' },
      { origin: 'null' },
      { origin: undefined },
      { 'x-vidmp3-auth': undefined, 'content-type': 'application/x-www-form-urlencoded' },
      { 'sec-fetch-site': 'cross-site' },
    ];
    for (const headers of refusals) {
      for (const path of ['login', 'refresh', 'logout']) {
        const answer = await auth(path, { cookie: refresh, body: credentials(email), headers });
        expect(answer.status, `${path} with ${JSON.stringify(headers)}`).toBe(403);
        expect(answer.body.errors?.[0]?.extensions.code).toBe('FORBIDDEN');
        expect(answer.setCookies).toEqual([]);
      }
    }
    // The cookie still works: none of the refused requests spent or ended it.
    expect((await auth('refresh', { cookie: refresh })).status).toBe(200);
    const get = await fetch(`${system.gatewayUrl}/auth/refresh`, { headers: { origin, 'x-vidmp3-auth': '1' } });
    expect(get.status).toBe(405);
  });

  it('refresh rotates the cookie; the old cookie presented again ends the session, and is cleared', async () => {
    const { refresh: first, accessToken } = await pageSignUp();

    const rotated = await auth('refresh', { cookie: first });
    expect(rotated.status).toBe(200);
    expect(Object.keys(rotated.body).sort()).toEqual(['accessToken', 'expiresAt', 'user']);
    expect(sid(rotated.body.accessToken!)).toBe(sid(accessToken));
    const second = rotated.cookie!.value;
    expect(second).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(second).not.toBe(first);

    const reused = await auth('refresh', { cookie: first });
    expect(reused.status).toBe(401);
    expect(reused.body.errors?.[0]?.extensions.code).toBe('UNAUTHENTICATED');
    expect(reused.cookie).toMatchObject({ value: '', attributes: expect.stringContaining('Max-Age=0') as string });
    // The whole family ended: the newest cookie and access token too.
    expect((await auth('refresh', { cookie: second })).status).toBe(401);
    expect(await me(rotated.body.accessToken!)).toBe('UNAUTHENTICATED');
  });

  it('two refreshes at once with one cookie (two tabs) share one rotation instead of ending the session', async () => {
    const { refresh } = await pageSignUp();

    const [a, b] = await Promise.all([auth('refresh', { cookie: refresh }), auth('refresh', { cookie: refresh })]);

    expect([a.status, b.status]).toEqual([200, 200]);
    expect(a.cookie?.value).toBe(b.cookie?.value);
    expect((await auth('refresh', { cookie: a.cookie!.value })).status).toBe(200);
  });

  it('refresh without a cookie answers 204 (no session here), as the page asks at every start', async () => {
    const res = await fetch(`${system.gatewayUrl}/auth/refresh`, {
      method: 'POST',
      headers: { origin, 'x-vidmp3-auth': '1' },
    });
    expect(res.status).toBe(204);
    expect(await res.text()).toBe('');
    expect(res.headers.getSetCookie()).toEqual([]);
  });

  it('logout ends the session at the users service and clears the cookie; the user’s other sessions go on', async () => {
    const email = uniqueEmail('logout');
    const here = await pageSignUp(email);
    const elsewhere = await auth('login', { body: credentials(email) });

    const answer = await auth('logout', { cookie: here.refresh, token: here.accessToken });

    expect(answer.status).toBe(200);
    expect(answer.cookie).toMatchObject({
      name: 'vidmp3-refresh',
      value: '',
      attributes: expect.stringContaining('Max-Age=0') as string,
    });
    expect(await me(here.accessToken)).toBe('UNAUTHENTICATED');
    expect((await auth('refresh', { cookie: here.refresh })).status).toBe(401);
    expect(await me(elsewhere.body.accessToken!)).toBe('ok');
    // Logging out again (or with nothing) is harmless.
    expect((await auth('logout')).status).toBe(200);
  });

  it('changes the password: the other sessions end, this browser gets a new cookie that works', async () => {
    const email = uniqueEmail('password');
    const here = await pageSignUp(email);
    const elsewhere = await auth('login', { body: credentials(email) });

    const wrong = await auth('password', {
      token: here.accessToken,
      body: { currentPassword: 'not it at all', newPassword: NEW_PASSWORD },
    });
    expect(wrong.status).toBe(400);
    expect(wrong.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'currentPassword' });
    expect(wrong.setCookies).toEqual([]);

    const changed = await auth('password', {
      token: here.accessToken,
      body: { currentPassword: PASSWORD, newPassword: NEW_PASSWORD },
    });
    expect(changed.status).toBe(200);
    expect(Object.keys(changed.body).sort()).toEqual(['accessToken', 'expiresAt', 'user']);
    expect(await me(changed.body.accessToken!)).toBe('ok');
    expect((await auth('refresh', { cookie: changed.cookie!.value })).status).toBe(200);
    expect(await me(elsewhere.body.accessToken!)).toBe('UNAUTHENTICATED');
    expect((await auth('refresh', { cookie: here.refresh })).status).toBe(401);
    expect((await auth('login', { body: { email, password: NEW_PASSWORD } })).status).toBe(200);
    expect((await auth('password', { body: { currentPassword: PASSWORD, newPassword: NEW_PASSWORD } })).status).toBe(
      401,
    );
  });

  it('answers wrong credentials, a taken email and a bad body with the API’s codes', async () => {
    const email = uniqueEmail('codes');
    await pageSignUp(email);
    const wrong = await auth('login', { body: { email, password: 'wrong password!' } });
    expect([wrong.status, wrong.body.errors?.[0]?.extensions.code]).toEqual([401, 'UNAUTHENTICATED']);
    const taken = await auth('signup', { body: credentials(email) });
    expect([taken.status, taken.body.errors?.[0]?.extensions.code]).toEqual([409, 'CONFLICT']);
    const bad = await auth('login', { body: { email } });
    expect([bad.status, bad.body.errors?.[0]?.extensions.code]).toEqual([400, 'BAD_USER_INPUT']);
  });
});

describe('me { sessions } and endSession through the gateway', () => {
  const SESSIONS = '{ me { sessions { id createdAt lastUsedAt lastUsedIp current } } }';
  type Listed = { id: string; createdAt: string; lastUsedAt: string; lastUsedIp: string; current: boolean };

  const sessionsOf = async (token: string) =>
    (await graphql<{ me: { sessions: Listed[] } }>(system.gatewayUrl, SESSIONS, { token })).data?.me.sessions;
  const endSession = (token: string, id: string) =>
    graphql<{ endSession: boolean }>(system.gatewayUrl, 'mutation ($id: ID!) { endSession(id: $id) }', {
      token,
      variables: { id },
    });

  it('lists the sessions going, marks this one, and ends another; NOT_FOUND for a stranger’s', async () => {
    const email = uniqueEmail('list');
    const here = await pageSignUp(email);
    const other = (await auth('login', { body: credentials(email) })).body.accessToken!;
    const stranger = await pageSignUp();

    const listed = await sessionsOf(here.accessToken);
    expect(listed?.map((s) => [s.id, s.current]).sort()).toEqual(
      [
        [sid(here.accessToken), true],
        [sid(other), false],
      ].sort(),
    );
    expect(listed?.[0]?.lastUsedIp).toBe('127.0.0.1');

    expect(errorCode(await endSession(here.accessToken, sid(stranger.accessToken)))).toBe('NOT_FOUND');
    expect(await me(stranger.accessToken)).toBe('ok');
    expect((await endSession(here.accessToken, sid(other))).data?.endSession).toBe(true);
    expect(await me(other)).toBe('UNAUTHENTICATED');
    expect((await sessionsOf(here.accessToken))?.map((s) => s.id)).toEqual([sid(here.accessToken)]);
    expect(errorCode(await endSession(here.accessToken, sid(other)))).toBe('NOT_FOUND');
  });
});
