// Sessions through the gateway: refresh-token rotation with reuse detection, logging out, changing the password.
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { errorCode, graphql, PASSWORD, uniqueEmail, type GraphQLResponse } from './client.js';
import { startSystem, type System } from './harness.js';

const SESSION = 'accessToken expiresAt refreshToken refreshTokenExpiresAt user { id email }';
const SIGN_UP = `mutation ($email: String!, $password: String!) { signUp(email: $email, password: $password) { ${SESSION} } }`;
const LOG_IN = `mutation ($email: String!, $password: String!) { logIn(email: $email, password: $password) { ${SESSION} } }`;
const REFRESH = `mutation ($refreshToken: String!) { refreshSession(refreshToken: $refreshToken) { ${SESSION} } }`;
const CHANGE_PASSWORD = `mutation ($currentPassword: String!, $newPassword: String!) {
  changePassword(currentPassword: $currentPassword, newPassword: $newPassword) { ${SESSION} }
}`;
const NEW_PASSWORD = 'a whole new passphrase';

interface Session {
  accessToken: string;
  expiresAt: string;
  refreshToken: string;
  refreshTokenExpiresAt: string;
  user: { id: string; email: string };
}

let system: System;

beforeAll(async () => {
  system = await startSystem();
});
afterAll(async () => {
  await system?.stop();
});

/** The session a mutation returned; fails the test with the errors otherwise. */
function sessionOf(res: GraphQLResponse<Record<string, Session>>): Session {
  const session = Object.values(res.data ?? {})[0];
  if (!session) throw new Error(`expected a session, got ${JSON.stringify(res.errors)}`);
  return session;
}

async function signUp(email = uniqueEmail('session')): Promise<Session> {
  return sessionOf(
    await graphql<Record<string, Session>>(system.gatewayUrl, SIGN_UP, { variables: { email, password: PASSWORD } }),
  );
}

const logIn = (email: string, password = PASSWORD) =>
  graphql<Record<string, Session>>(system.gatewayUrl, LOG_IN, { variables: { email, password } });

/** refreshSession as a client sends it: the refresh token only, no Authorization header. */
const refresh = (refreshToken: string) =>
  graphql<Record<string, Session>>(system.gatewayUrl, REFRESH, { variables: { refreshToken } });

/** What `me` answers for an access token: 'ok' (with the user) or the error code. */
async function me(session: Pick<Session, 'accessToken' | 'user'>): Promise<string> {
  const res = await graphql<{ me: { id: string } | null }>(system.gatewayUrl, '{ me { id } }', {
    token: session.accessToken,
  });
  if (res.data?.me?.id === session.user.id && !res.errors) return 'ok';
  return `${res.status} ${errorCode(res)}`;
}

const REFUSED = '200 UNAUTHENTICATED';

const mutate = (token: string, field: 'logOut' | 'logOutEverywhere') =>
  graphql<Record<string, boolean>>(system.gatewayUrl, `mutation { ${field} }`, { token });

const sid = (session: Session) => (jwt.decode(session.accessToken) as { sid: string }).sid;

describe('sessions through the gateway', () => {
  beforeEach(() => onTestFailed(() => console.error(system.logs())));

  it('signs up with an access token of the configured life (15 min by default) and a refresh token', async () => {
    const session = await signUp();

    const claims = jwt.decode(session.accessToken) as { iat: number; exp: number; sid: string };
    expect(claims.exp - claims.iat).toBe(15 * 60);
    expect(claims.sid).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Date(session.expiresAt).getTime()).toBe(claims.exp * 1000);
    expect(session.refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const refreshLife = new Date(session.refreshTokenExpiresAt).getTime() - Date.now();
    expect(refreshLife).toBeGreaterThan(29 * 86_400_000);
    expect(refreshLife).toBeLessThanOrEqual(30 * 86_400_000);
    expect(await me(session)).toBe('ok');
  });

  it('rotates the refresh token; a spent one is refused and ends the session, its newest tokens included', async () => {
    const first = await signUp();
    const other = sessionOf(await logIn(first.user.email));

    const second = sessionOf(await refresh(first.refreshToken));
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect(sid(second)).toBe(sid(first));
    expect(await me(second)).toBe('ok');

    const reuse = await refresh(first.refreshToken);
    expect(errorCode(reuse)).toBe('UNAUTHENTICATED');
    expect(reuse.errors?.[0]?.message).toMatch(/already used/);
    expect(errorCode(await refresh(second.refreshToken))).toBe('UNAUTHENTICATED');
    expect(await me(second)).toBe(REFUSED);
    expect(await me(first)).toBe(REFUSED);
    // The family is this session; the user's other sign-in goes on.
    expect(await me(other)).toBe('ok');
    expect(await me(sessionOf(await refresh(other.refreshToken)))).toBe('ok');
  });

  it('refuses a refresh token it never issued', async () => {
    const res = await refresh('A'.repeat(43));

    expect(errorCode(res)).toBe('UNAUTHENTICATED');
    expect(res.data ?? null).toBeNull();
  });

  it('logOut ends this session only: its access and refresh tokens are refused, the other session works', async () => {
    const here = await signUp();
    const elsewhere = sessionOf(await logIn(here.user.email));

    expect((await mutate(here.accessToken, 'logOut')).data).toEqual({ logOut: true });

    expect(await me(here)).toBe(REFUSED);
    expect(errorCode(await refresh(here.refreshToken))).toBe('UNAUTHENTICATED');
    expect(errorCode(await mutate(here.accessToken, 'logOut'))).toBe('UNAUTHENTICATED');
    expect(await me(elsewhere)).toBe('ok');
    expect(await me(sessionOf(await refresh(elsewhere.refreshToken)))).toBe('ok');
  });

  it('logOutEverywhere ends every session of the user, and the user can log in again', async () => {
    const here = await signUp();
    const elsewhere = sessionOf(await logIn(here.user.email));
    const stranger = await signUp();

    expect((await mutate(here.accessToken, 'logOutEverywhere')).data).toEqual({ logOutEverywhere: true });

    for (const session of [here, elsewhere]) {
      expect(await me(session)).toBe(REFUSED);
      expect(errorCode(await refresh(session.refreshToken))).toBe('UNAUTHENTICATED');
    }
    expect(await me(stranger)).toBe('ok');
    expect(await me(sessionOf(await logIn(here.user.email)))).toBe('ok');
  });

  it('refuses logOut and logOutEverywhere without a token', async () => {
    for (const field of ['logOut', 'logOutEverywhere'] as const) {
      const res = await graphql(system.gatewayUrl, `mutation { ${field} }`);
      expect(errorCode(res)).toBe('UNAUTHENTICATED');
    }
  });

  it('changePassword ends the other sessions; the new password logs in, the old one does not', async () => {
    const here = await signUp();
    const elsewhere = sessionOf(await logIn(here.user.email));

    const changed = sessionOf(
      await graphql<Record<string, Session>>(system.gatewayUrl, CHANGE_PASSWORD, {
        token: here.accessToken,
        variables: { currentPassword: PASSWORD, newPassword: NEW_PASSWORD },
      }),
    );

    expect(changed.user).toEqual(here.user);
    expect(await me(changed)).toBe('ok');
    for (const session of [elsewhere, here]) {
      expect(await me(session)).toBe(REFUSED);
      expect(errorCode(await refresh(session.refreshToken))).toBe('UNAUTHENTICATED');
    }
    expect(errorCode(await logIn(here.user.email, PASSWORD))).toBe('UNAUTHENTICATED');
    expect(await me(sessionOf(await logIn(here.user.email, NEW_PASSWORD)))).toBe('ok');
    expect(await me(sessionOf(await refresh(changed.refreshToken)))).toBe('ok');
  });

  it('changePassword refuses a wrong current password and a weak new one, naming the field', async () => {
    const here = await signUp();
    const change = (currentPassword: string, newPassword: string) =>
      graphql(system.gatewayUrl, CHANGE_PASSWORD, {
        token: here.accessToken,
        variables: { currentPassword, newPassword },
      });

    const wrong = await change('not my password', NEW_PASSWORD);
    const weak = await change(PASSWORD, 'short');

    expect(wrong.errors?.[0]?.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'currentPassword' });
    expect(weak.errors?.[0]?.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'newPassword' });
    expect(await me(here)).toBe('ok');
    expect(await me(sessionOf(await logIn(here.user.email, PASSWORD)))).toBe('ok');
  });

  it('lets the other subgraphs accept an ended session’s access token only until it expires (the stated bound)', async () => {
    const here = await signUp();
    await mutate(here.accessToken, 'logOut');

    // jobs verifies the token's signature and expiry and cannot know the session ended: the token still
    // identifies its user there (NOT_FOUND for a job that is not theirs), for at most the rest of its life.
    const jobs = await graphql(system.gatewayUrl, '{ job(id: "00000000-0000-4000-8000-000000000000") { id } }', {
      token: here.accessToken,
    });
    expect(errorCode(jobs)).toBe('NOT_FOUND');
    // Anything that reaches users is refused at once, also as part of another subgraph's answer.
    expect(await me(here)).toBe(REFUSED);
  });
});
