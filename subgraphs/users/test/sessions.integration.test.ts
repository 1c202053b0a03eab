import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { GraphQLError } from 'graphql';
import jwt from 'jsonwebtoken';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, createTokenVerifier, openDatabase, type Pool, type Viewer } from '@vidmp3/shared';
import { SessionRepository } from '../src/adapters/session-repo.js';
import { buildSigningKeys } from '../src/adapters/signing-keys.js';
import { MySqlCounterStore } from '../src/adapters/throttle-store.js';
import { UserRepository } from '../src/adapters/user-repo.js';
import { migrations } from '../src/migrations.js';
import { AccountService, type AuthResult } from '../src/services/accounts.js';
import { LoginThrottle, type ThrottlePolicy } from '../src/services/login-throttle.js';
import type { SessionPolicy } from '../src/services/session-policy.js';
import { SessionService } from '../src/services/sessions.js';
import { TokenIssuer } from '../src/services/tokens.js';

const SERVER = 'mysql://root@127.0.0.1:3306';
const DATABASE = `vidmp3_users_sessions_test_${randomBytes(6).toString('hex')}`;
const ISSUER = 'vidmp3-test';
const AUDIENCE = 'vidmp3-test-api';
const PASSWORD = 'correct horse battery staple';
const NEW_PASSWORD = 'a whole new passphrase';
const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const MAX_FAILURES = 3;

const logger = createLogger('test', 'silent');
const keys = buildSigningKeys(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
const verifier = createTokenVerifier({
  keys: async (kid) => keys.publicKeys.get(kid),
  issuer: ISSUER,
  audience: AUDIENCE,
  cacheSize: 0,
});
const policy: SessionPolicy = { refreshTtlMs: 30 * DAY, maxAgeMs: 90 * DAY };
const throttlePolicy: ThrottlePolicy = {
  attemptsPerAddress: { limit: 100, windowMs: 15 * MINUTE },
  perAddressAndEmail: {
    freeFailures: MAX_FAILURES,
    baseDelayMs: 30_000,
    maxDelayMs: 15 * MINUTE,
    windowMs: 15 * MINUTE,
  },
  perEmail: { freeFailures: 10, baseDelayMs: 1_000, maxDelayMs: MINUTE, windowMs: 15 * MINUTE },
  knownAddressMs: 30 * DAY,
  signUpsPerAddress: { limit: 1000, windowMs: 60 * MINUTE },
};

let pool: Pool;

beforeAll(async () => {
  pool = await openDatabase({ url: `${SERVER}/${DATABASE}`, migrations, logger, connectionLimit: 6 });
});

afterAll(async () => {
  await pool?.end();
  const conn = await mysql.createConnection(SERVER);
  await conn.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
  await conn.end();
});

/**
 * The users service as app.ts wires it, its sessions on a clock the test moves by hand (no test sleeps
 * through a lifetime).
 */
async function usersService() {
  const clock = { now: new Date(), advance: (ms: number) => (clock.now = new Date(clock.now.getTime() + ms)) };
  const sessions = new SessionService(
    new SessionRepository(pool),
    new TokenIssuer(keys, { issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 900 }),
    policy,
    () => clock.now,
  );
  const accounts = await AccountService.create(
    new UserRepository(pool),
    sessions,
    new LoginThrottle(new MySqlCounterStore(pool), throttlePolicy),
  );
  return { accounts, sessions, clock };
}

const freshEmail = () => `sessions-${randomBytes(4).toString('hex')}@example.com`;
const freshIp = () => `2001:db8:${randomBytes(2).toString('hex')}:${randomBytes(2).toString('hex')}::1`;

async function signUp(accounts: AccountService) {
  const email = freshEmail();
  const auth = await accounts.signUp(email, PASSWORD, freshIp());
  return { ...auth, email };
}

/** The viewer a request carrying this access token would have. */
const viewerFor = (auth: Pick<AuthResult, 'accessToken'>): Promise<Viewer> => verifier.verify(auth.accessToken);
const sessionIdOf = (auth: Pick<AuthResult, 'accessToken'>) => (jwt.decode(auth.accessToken) as { sid: string }).sid;

/** The GraphQL error a call fails with; fails the test if the call succeeds. */
async function failureOf(promise: Promise<unknown>): Promise<GraphQLError> {
  const error = await promise.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(GraphQLError);
  return error as GraphQLError;
}

const codeOf = async (promise: Promise<unknown>) => (await failureOf(promise)).extensions.code;

/** Whether `me` answers for this access token (the users service's check of its session). */
async function meWith(accounts: AccountService, auth: Pick<AuthResult, 'accessToken'>): Promise<string> {
  try {
    await accounts.me(await viewerFor(auth));
    return 'ok';
  } catch (err) {
    return String((err as GraphQLError).extensions.code);
  }
}

async function sessionRow(id: string) {
  const [rows] = await pool.query<RowDataPacket[]>('SELECT * FROM sessions WHERE id = ?', [id]);
  return rows[0];
}

describe('a sign-in', () => {
  it('starts a session: an access token naming it (sid) and a refresh token stored only as its sha256', async () => {
    const { accounts } = await usersService();
    const ip = freshIp();
    const email = freshEmail();

    const auth = await accounts.signUp(email, PASSWORD, ip);

    const session = await sessionRow(sessionIdOf(auth));
    expect(session).toMatchObject({ user_id: auth.user.id, created_ip: ip, last_used_ip: ip, revoked_at: null });
    expect(session?.expires_at).toEqual(auth.refreshTokenExpiresAt);
    const [tokens] = await pool.query<RowDataPacket[]>('SELECT * FROM refresh_tokens WHERE session_id = ?', [
      session?.id,
    ]);
    expect(tokens).toHaveLength(1);
    expect(tokens[0]?.token_hash).toEqual(createHash('sha256').update(auth.refreshToken).digest());
    expect(JSON.stringify([session, tokens])).not.toContain(auth.refreshToken);
  });

  it('gives each logIn a session of its own', async () => {
    const { accounts } = await usersService();
    const { email, accessToken } = await signUp(accounts);

    const other = await accounts.logIn(email, PASSWORD, freshIp());

    expect(sessionIdOf(other)).not.toBe(sessionIdOf({ accessToken }));
    expect(other.refreshToken).not.toBe((await accounts.logIn(email, PASSWORD, freshIp())).refreshToken);
  });

  it('gives the refresh token the configured lifetime', async () => {
    const { accounts, clock } = await usersService();

    const auth = await signUp(accounts);

    expect(auth.refreshTokenExpiresAt).toEqual(new Date(clock.now.getTime() + 30 * DAY));
  });
});

describe('refreshSession', () => {
  it('trades a refresh token for new tokens of the same session, from which me answers', async () => {
    const { accounts } = await usersService();
    const first = await signUp(accounts);

    const next = await accounts.refreshSession(first.refreshToken, freshIp());

    expect(next.user).toEqual(first.user);
    expect(next.refreshToken).not.toBe(first.refreshToken);
    expect(next.accessToken).not.toBe(first.accessToken);
    expect(sessionIdOf(next)).toBe(sessionIdOf(first));
    expect(await meWith(accounts, next)).toBe('ok');
  });

  it('slides the expiry: each refresh token gets a full lifetime from its own refresh', async () => {
    const { accounts, clock } = await usersService();
    let auth: AuthResult = await signUp(accounts);
    for (const days of [20, 20, 20]) {
      clock.advance(days * DAY);
      auth = await accounts.refreshSession(auth.refreshToken, freshIp());

      expect(auth.refreshTokenExpiresAt).toEqual(new Date(clock.now.getTime() + 30 * DAY));
    }
    expect((await sessionRow(sessionIdOf(auth)))?.expires_at).toEqual(auth.refreshTokenExpiresAt);
  });

  it('records when and from where the session was last used', async () => {
    const { accounts, clock } = await usersService();
    const first = await signUp(accounts);
    const ip = freshIp();
    clock.advance(MINUTE);

    await accounts.refreshSession(first.refreshToken, ip);

    expect(await sessionRow(sessionIdOf(first))).toMatchObject({ last_used_at: clock.now, last_used_ip: ip });
  });

  it('refuses a token that was already used, and ends its session: the newest tokens stop working too', async () => {
    const { accounts } = await usersService();
    const first = await signUp(accounts);
    const other = await accounts.logIn(first.email, PASSWORD, freshIp());
    const next = await accounts.refreshSession(first.refreshToken, freshIp());

    const reuse = await failureOf(accounts.refreshSession(first.refreshToken, freshIp()));

    expect(reuse.extensions).toEqual({ code: 'UNAUTHENTICATED' });
    expect(reuse.message).toMatch(/already used/);
    expect(await codeOf(accounts.refreshSession(next.refreshToken, freshIp()))).toBe('UNAUTHENTICATED');
    expect(await meWith(accounts, next)).toBe('UNAUTHENTICATED');
    expect(await sessionRow(sessionIdOf(first))).toMatchObject({ revoked_reason: 'refresh_reuse' });
    // The family is the session: the user's other sign-in is not touched.
    expect(await meWith(accounts, other)).toBe('ok');
    await accounts.refreshSession(other.refreshToken, freshIp());
  });

  it('recognises any spent token of the chain, not only the one before the newest', async () => {
    const { accounts } = await usersService();
    const first = await signUp(accounts);
    const second = await accounts.refreshSession(first.refreshToken, freshIp());
    const third = await accounts.refreshSession(second.refreshToken, freshIp());

    await failureOf(accounts.refreshSession(first.refreshToken, freshIp()));

    expect(await codeOf(accounts.refreshSession(third.refreshToken, freshIp()))).toBe('UNAUTHENTICATED');
  });

  it('lets exactly one of two concurrent refreshes with one token rotate; the other is a reuse and ends the session', async () => {
    const [a, b] = [await usersService(), await usersService()]; // two replicas
    const first = await signUp(a.accounts);

    const results = await Promise.allSettled([
      a.accounts.refreshSession(first.refreshToken, freshIp()),
      b.accounts.refreshSession(first.refreshToken, freshIp()),
    ]);

    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    const winner = (won[0] as PromiseFulfilledResult<AuthResult>).value;
    expect(await codeOf(a.accounts.refreshSession(winner.refreshToken, freshIp()))).toBe('UNAUTHENTICATED');
  });

  it('refuses a refresh token past its lifetime, without ending the session', async () => {
    const { accounts, clock } = await usersService();
    const first = await signUp(accounts);
    clock.advance(30 * DAY);

    const expired = await failureOf(accounts.refreshSession(first.refreshToken, freshIp()));

    expect(expired.extensions.code).toBe('UNAUTHENTICATED');
    expect(expired.message).toMatch(/expired/);
    expect((await sessionRow(sessionIdOf(first)))?.revoked_at).toBeNull();
  });

  it('refuses to carry a session past its maximum age, however often it was refreshed', async () => {
    const { accounts, clock } = await usersService();
    let auth: AuthResult = await signUp(accounts);
    for (let day = 25; day < 90; day += 25) {
      clock.advance(25 * DAY);
      auth = await accounts.refreshSession(auth.refreshToken, freshIp());
    }
    clock.advance(15 * DAY); // day 90

    expect(await codeOf(accounts.refreshSession(auth.refreshToken, freshIp()))).toBe('UNAUTHENTICATED');
  });

  it.each([
    ['an unknown token', randomBytes(32).toString('base64url')],
    ['a malformed token', 'not a refresh token'],
  ])('refuses %s with UNAUTHENTICATED', async (_, token) => {
    const { accounts } = await usersService();

    expect(await codeOf(accounts.refreshSession(token, freshIp()))).toBe('UNAUTHENTICATED');
  });

  it('refuses an access token in place of a refresh token', async () => {
    const { accounts } = await usersService();
    const { accessToken } = await signUp(accounts);

    expect(await codeOf(accounts.refreshSession(accessToken, freshIp()))).toBe('UNAUTHENTICATED');
  });
});

describe('logOut', () => {
  it('ends the current session: its access and refresh tokens are refused at once, other sessions go on', async () => {
    const { accounts } = await usersService();
    const here = await signUp(accounts);
    const elsewhere = await accounts.logIn(here.email, PASSWORD, freshIp());

    expect(await accounts.logOut(await viewerFor(here))).toBe(true);

    expect(await meWith(accounts, here)).toBe('UNAUTHENTICATED');
    expect(await codeOf(accounts.refreshSession(here.refreshToken, freshIp()))).toBe('UNAUTHENTICATED');
    expect(await sessionRow(sessionIdOf(here))).toMatchObject({ revoked_reason: 'logout' });
    expect(await meWith(accounts, elsewhere)).toBe('ok');
    await accounts.refreshSession(elsewhere.refreshToken, freshIp());
  });

  it('refuses an anonymous caller and a session that has already ended', async () => {
    const { accounts } = await usersService();
    const auth = await signUp(accounts);
    await accounts.logOut(await viewerFor(auth));

    expect(await codeOf(accounts.logOut(null))).toBe('UNAUTHENTICATED');
    expect(await codeOf(accounts.logOut(await viewerFor(auth)))).toBe('UNAUTHENTICATED');
  });
});

describe('logOutEverywhere', () => {
  it("ends every session of the user, and no one else's; logging in again works", async () => {
    const { accounts } = await usersService();
    const here = await signUp(accounts);
    const elsewhere = await accounts.logIn(here.email, PASSWORD, freshIp());
    const refreshed = await accounts.refreshSession(elsewhere.refreshToken, freshIp());
    const stranger = await signUp(accounts);

    expect(await accounts.logOutEverywhere(await viewerFor(here))).toBe(true);

    for (const auth of [here, elsewhere, refreshed]) expect(await meWith(accounts, auth)).toBe('UNAUTHENTICATED');
    for (const auth of [here, refreshed]) {
      expect(await codeOf(accounts.refreshSession(auth.refreshToken, freshIp()))).toBe('UNAUTHENTICATED');
    }
    expect(await meWith(accounts, stranger)).toBe('ok');
    expect(await meWith(accounts, await accounts.logIn(here.email, PASSWORD, freshIp()))).toBe('ok');
  });
});

describe('changePassword', () => {
  it('sets the new password, ends every session (this one too) and returns a new one that works', async () => {
    const { accounts } = await usersService();
    const here = await signUp(accounts);
    const elsewhere = await accounts.logIn(here.email, PASSWORD, freshIp());

    const changed = await accounts.changePassword(await viewerFor(here), PASSWORD, NEW_PASSWORD, freshIp());

    expect(changed.user).toEqual(here.user);
    expect(await meWith(accounts, changed)).toBe('ok');
    for (const auth of [here, elsewhere]) {
      expect(await meWith(accounts, auth)).toBe('UNAUTHENTICATED');
      expect(await codeOf(accounts.refreshSession(auth.refreshToken, freshIp()))).toBe('UNAUTHENTICATED');
    }
    expect(await sessionRow(sessionIdOf(elsewhere))).toMatchObject({ revoked_reason: 'password_change' });
    expect(await codeOf(accounts.logIn(here.email, PASSWORD, freshIp()))).toBe('UNAUTHENTICATED');
    expect((await accounts.logIn(here.email, NEW_PASSWORD, freshIp())).user.id).toBe(here.user.id);
    await accounts.refreshSession(changed.refreshToken, freshIp());
  });

  it('refuses a wrong current password on the currentPassword field, and changes nothing', async () => {
    const { accounts } = await usersService();
    const here = await signUp(accounts);

    const error = await failureOf(
      accounts.changePassword(await viewerFor(here), 'not my password', NEW_PASSWORD, freshIp()),
    );

    expect(error.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'currentPassword' });
    expect(await meWith(accounts, here)).toBe('ok');
    expect((await accounts.logIn(here.email, PASSWORD, freshIp())).user.id).toBe(here.user.id);
  });

  it.each([
    ['too short', 'short1!'],
    ['common', 'password123'],
    ['the same as the current one', PASSWORD],
  ])('refuses a new password that is %s on the newPassword field', async (_, newPassword) => {
    const { accounts } = await usersService();
    const here = await signUp(accounts);

    const error = await failureOf(accounts.changePassword(await viewerFor(here), PASSWORD, newPassword, freshIp()));

    expect(error.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'newPassword' });
    expect(await meWith(accounts, here)).toBe('ok');
  });

  it(`counts wrong current passwords as failed logins: after ${MAX_FAILURES}, even the right one waits`, async () => {
    const { accounts } = await usersService();
    const here = await signUp(accounts);
    const viewer = await viewerFor(here);
    const ip = freshIp();
    for (let i = 0; i < MAX_FAILURES; i += 1) {
      expect(await codeOf(accounts.changePassword(viewer, `guess ${i}`, NEW_PASSWORD, ip))).toBe('BAD_USER_INPUT');
    }

    expect(await codeOf(accounts.changePassword(viewer, PASSWORD, NEW_PASSWORD, ip))).toBe('RATE_LIMITED');
    expect(await codeOf(accounts.logIn(here.email, PASSWORD, ip))).toBe('RATE_LIMITED');
  });

  it('refuses an anonymous caller and an ended session', async () => {
    const { accounts } = await usersService();
    const here = await signUp(accounts);
    await accounts.logOut(await viewerFor(here));

    expect(await codeOf(accounts.changePassword(null, PASSWORD, NEW_PASSWORD, freshIp()))).toBe('UNAUTHENTICATED');
    expect(await codeOf(accounts.changePassword(await viewerFor(here), PASSWORD, NEW_PASSWORD, freshIp()))).toBe(
      'UNAUTHENTICATED',
    );
  });

  it('gives no session to a sign-in that checked the password before it changed', async () => {
    const { accounts, sessions } = await usersService();
    const here = await signUp(accounts);
    const [before] = await pool.query<RowDataPacket[]>('SELECT password_hash FROM users WHERE id = ?', [here.user.id]);

    await accounts.changePassword(await viewerFor(here), PASSWORD, NEW_PASSWORD, freshIp());

    expect(await sessions.start(here.user.id, before[0]?.password_hash as string, freshIp())).toBeNull();
  });
});

describe('access tokens at the users service', () => {
  it('refuses a validly signed token that names no session (issued before sessions existed)', async () => {
    const { accounts } = await usersService();
    const { user } = await signUp(accounts);
    const sessionless = jwt.sign({}, keys.privateKey, {
      algorithm: 'ES256',
      keyid: keys.kid,
      issuer: ISSUER,
      audience: AUDIENCE,
      subject: user.id,
      expiresIn: 300,
    });

    expect(await meWith(accounts, { accessToken: sessionless })).toBe('UNAUTHENTICATED');
  });

  it("refuses a token naming another user's session", async () => {
    const { accounts } = await usersService();
    const alice = await signUp(accounts);
    const bob = await signUp(accounts);
    const crossed = jwt.sign({ sid: sessionIdOf(bob) }, keys.privateKey, {
      algorithm: 'ES256',
      keyid: keys.kid,
      issuer: ISSUER,
      audience: AUDIENCE,
      subject: alice.user.id,
      expiresIn: 300,
    });

    expect(await meWith(accounts, { accessToken: crossed })).toBe('UNAUTHENTICATED');
  });

  it('refuses references to the user from a session that has ended (Job.owner, Media.owner)', async () => {
    const { accounts } = await usersService();
    const auth = await signUp(accounts);
    const viewer = await viewerFor(auth);
    expect(await accounts.resolveReference(viewer, auth.user.id)).toEqual(auth.user);

    await accounts.logOut(viewer);

    expect(await codeOf(accounts.resolveReference(viewer, auth.user.id))).toBe('UNAUTHENTICATED');
  });
});

describe('User.sessions and endSession', () => {
  it("lists the user's sessions going, most recently used first, with where they were last used and which is this one", async () => {
    const { accounts, clock } = await usersService();
    const email = freshEmail();
    const signedUpAt = clock.now;
    const laptop = await accounts.signUp(email, PASSWORD, freshIp());
    clock.advance(MINUTE);
    const phoneAt = clock.now;
    const phoneIp = freshIp();
    const phone = await accounts.logIn(email, PASSWORD, phoneIp);
    const ended = await accounts.logIn(email, PASSWORD, freshIp());
    await accounts.logOut(await viewerFor(ended));
    await signUp(accounts); // someone else's sessions are not listed
    clock.advance(MINUTE);
    const refreshIp = freshIp();
    await accounts.refreshSession(laptop.refreshToken, refreshIp);

    const listed = await accounts.listSessions(await viewerFor(phone), phone.user.id);

    expect(listed).toEqual([
      { id: sessionIdOf(laptop), createdAt: signedUpAt, lastUsedAt: clock.now, lastUsedIp: refreshIp, current: false },
      { id: sessionIdOf(phone), createdAt: phoneAt, lastUsedAt: phoneAt, lastUsedIp: phoneIp, current: true },
    ]);
  });

  it('leaves out sessions past their expiry', async () => {
    const { accounts, clock } = await usersService();
    const old = await signUp(accounts);
    clock.advance(policy.refreshTtlMs + MINUTE);
    const recent = await accounts.logIn(old.email, PASSWORD, freshIp());

    const listed = await accounts.listSessions(await viewerFor(recent), recent.user.id);

    expect(listed.map((s) => s.id)).toEqual([sessionIdOf(recent)]);
  });

  it('ends another session of the user: its tokens are refused at once, this one goes on', async () => {
    const { accounts } = await usersService();
    const here = await signUp(accounts);
    const other = await accounts.logIn(here.email, PASSWORD, freshIp());

    expect(await accounts.endSession(await viewerFor(here), sessionIdOf(other))).toBe(true);

    expect(await meWith(accounts, other)).toBe('UNAUTHENTICATED');
    expect(await codeOf(accounts.refreshSession(other.refreshToken, freshIp()))).toBe('UNAUTHENTICATED');
    expect(await sessionRow(sessionIdOf(other))).toMatchObject({ revoked_reason: 'ended_by_user' });
    expect(await meWith(accounts, here)).toBe('ok');
    const listed = await accounts.listSessions(await viewerFor(here), here.user.id);
    expect(listed.map((s) => s.id)).toEqual([sessionIdOf(here)]);
  });

  it("answers NOT_FOUND for someone else's session, an unknown or ended one, and ends nothing", async () => {
    const { accounts } = await usersService();
    const alice = await signUp(accounts);
    const bob = await signUp(accounts);
    const ended = await accounts.logIn(alice.email, PASSWORD, freshIp());
    await accounts.logOut(await viewerFor(ended));
    const viewer = await viewerFor(alice);

    for (const id of [sessionIdOf(bob), sessionIdOf(ended), '00000000-0000-0000-0000-000000000000', 'not an id']) {
      expect(await codeOf(accounts.endSession(viewer, id))).toBe('NOT_FOUND');
    }
    expect(await meWith(accounts, bob)).toBe('ok');
    expect(await sessionRow(sessionIdOf(ended))).toMatchObject({ revoked_reason: 'logout' });
  });

  it('can end the current session, as logOut does', async () => {
    const { accounts } = await usersService();
    const here = await signUp(accounts);

    await accounts.endSession(await viewerFor(here), sessionIdOf(here));

    expect(await meWith(accounts, here)).toBe('UNAUTHENTICATED');
  });

  it('refuses an anonymous caller and an ended session', async () => {
    const { accounts } = await usersService();
    const auth = await signUp(accounts);
    const other = await accounts.logIn(auth.email, PASSWORD, freshIp());
    const viewer = await viewerFor(auth);
    await accounts.logOut(viewer);

    expect(await codeOf(accounts.listSessions(null, auth.user.id))).toBe('UNAUTHENTICATED');
    expect(await codeOf(accounts.listSessions(viewer, auth.user.id))).toBe('UNAUTHENTICATED');
    expect(await codeOf(accounts.endSession(viewer, sessionIdOf(other)))).toBe('UNAUTHENTICATED');
    expect(await meWith(accounts, other)).toBe('ok');
  });
});

describe('the session tables', () => {
  it('forget expired sessions and tokens and sessions ended a day ago, and keep the rest', async () => {
    const { accounts, clock } = await usersService();
    const live = await signUp(accounts);
    const ended = await signUp(accounts);
    await accounts.logOut(await viewerFor(ended));
    const idle = await signUp(accounts);
    const repo = new SessionRepository(pool);
    clock.advance(2 * DAY);
    const refreshed = await accounts.refreshSession(live.refreshToken, freshIp());

    await repo.sweep(clock.now);
    expect(await sessionRow(sessionIdOf(ended))).toBeUndefined();
    expect(await sessionRow(sessionIdOf(idle))).toBeDefined();

    await repo.sweep(new Date(idle.refreshTokenExpiresAt.getTime() + 1));
    expect(await sessionRow(sessionIdOf(idle))).toBeUndefined();
    const [tokens] = await pool.query<RowDataPacket[]>(
      'SELECT session_id FROM refresh_tokens WHERE session_id IN (?)',
      [[sessionIdOf(live), sessionIdOf(idle), sessionIdOf(ended)]],
    );
    // live's spent first token expired with idle's; the one it was refreshed to lives on, and so does live.
    expect(tokens.map((t) => t.session_id as string)).toEqual([sessionIdOf(live)]);
    expect(await meWith(accounts, refreshed)).toBe('ok');
  });
});
