// Email verification, password reset and change of address against the real MariaDB: the tokens (single-use,
// expiring, one purpose each, stored as sha256 only), the mails they travel in (read from the users outbox,
// where they are written in the same transaction), no enumeration and the throttles.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { GraphQLError } from 'graphql';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AccountMail,
  createLogger,
  createTokenVerifier,
  openDatabase,
  outboxSql,
  type Pool,
  type Viewer,
} from '@vidmp3/shared';
import { AccountTokenRepository } from '../src/adapters/account-token-repo.js';
import { SessionRepository } from '../src/adapters/session-repo.js';
import { buildSigningKeys } from '../src/adapters/signing-keys.js';
import { MySqlCounterStore } from '../src/adapters/throttle-store.js';
import { UserRepository } from '../src/adapters/user-repo.js';
import { migrations } from '../src/migrations.js';
import { AccountEmailService } from '../src/services/account-emails.js';
import { AccountService } from '../src/services/accounts.js';
import { LoginThrottle, type ThrottlePolicy } from '../src/services/login-throttle.js';
import { MailThrottle } from '../src/services/mail-throttle.js';
import { SessionService } from '../src/services/sessions.js';
import { TokenIssuer } from '../src/services/tokens.js';

const SERVER = 'mysql://root@127.0.0.1:3306';
const DATABASE = `vidmp3_users_test_${randomBytes(6).toString('hex')}`;
const ISSUER = 'vidmp3-test';
const AUDIENCE = 'vidmp3-test-api';
const PASSWORD = 'correct horse battery staple';
const NEW_PASSWORD = 'a brand new passphrase';
const PUBLIC_URL = 'https://vidmp3.example';
const MAILS_PER_ADDRESS = 3;
const RESETS_PER_CLIENT = 5;
const MINUTE = 60_000;

const logger = createLogger('test', 'silent');
const keys = buildSigningKeys(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
const verifier = createTokenVerifier({
  keys: async (kid) => keys.publicKeys.get(kid),
  issuer: ISSUER,
  audience: AUDIENCE,
});

let pool: Pool;

beforeAll(async () => {
  pool = await openDatabase({ url: `${SERVER}/${DATABASE}`, migrations, logger, connectionLimit: 4 });
});

afterAll(async () => {
  await pool?.end();
  const conn = await mysql.createConnection(SERVER);
  await conn.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
  await conn.end();
});

const loginPolicy: ThrottlePolicy = {
  attemptsPerAddress: { limit: 100, windowMs: 15 * MINUTE },
  perAddressAndEmail: { freeFailures: 3, baseDelayMs: 30_000, maxDelayMs: 15 * MINUTE, windowMs: 15 * MINUTE },
  perEmail: { freeFailures: 10, baseDelayMs: 1_000, maxDelayMs: MINUTE, windowMs: 15 * MINUTE },
  knownAddressMs: 30 * 24 * 60 * MINUTE,
  signUpsPerAddress: { limit: 1000, windowMs: 60 * MINUTE },
};

/** The token services' clock, moved by hand so that no test waits out an expiry. */
const clock = { ms: Date.now(), advance: (ms: number) => (clock.ms += ms) };

/** The users service as app.ts wires it, with the outbox table written for real and kicks counted. */
async function system() {
  const users = new UserRepository(pool);
  const sessions = new SessionService(
    new SessionRepository(pool),
    new TokenIssuer(keys, { issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 900 }),
    { refreshTtlMs: 30 * 24 * 60 * MINUTE, maxAgeMs: 90 * 24 * 60 * MINUTE },
  );
  const store = new MySqlCounterStore(pool);
  const loginThrottle = new LoginThrottle(store, loginPolicy);
  const kicks = { count: 0 };
  const emails: AccountEmailService = new AccountEmailService(
    users,
    new AccountTokenRepository(pool),
    { signedIn: (viewer) => accounts.signedIn(viewer) },
    sessions,
    loginThrottle,
    new MailThrottle(store, {
      perAddress: { limit: MAILS_PER_ADDRESS, windowMs: 60 * MINUTE },
      resetsPerClient: { limit: RESETS_PER_CLIENT, windowMs: 60 * MINUTE },
    }),
    { add: (db, exchange, key, payload) => outboxSql.add(db, exchange, key, payload), kick: () => (kicks.count += 1) },
    { publicUrl: PUBLIC_URL },
    () => new Date(clock.ms),
  );
  const accounts = await AccountService.create(users, sessions, loginThrottle, undefined, emails);
  return { accounts, emails, kicks };
}

let shared: Awaited<ReturnType<typeof system>>;
beforeAll(async () => {
  shared = await system();
});

const freshEmail = (name = 'user') => `${name}-${randomBytes(4).toString('hex')}@example.com`;
const freshIp = () => `2001:db8:${randomBytes(2).toString('hex')}:${randomBytes(2).toString('hex')}::1`;
const viewerFor = (accessToken: string): Promise<Viewer> => verifier.verify(accessToken);

async function signUp(email = freshEmail()) {
  const result = await shared.accounts.signUp(email, PASSWORD, freshIp());
  return { ...result, email, viewer: await viewerFor(result.accessToken) };
}

/** The account mails written to the outbox for an address, oldest first. */
async function mailsTo(to: string): Promise<AccountMail[]> {
  const [rows] = await pool.query<RowDataPacket[]>('SELECT payload FROM outbox ORDER BY id');
  return rows
    .map((r) => JSON.parse(String(r.payload)) as unknown)
    .filter((p): p is AccountMail => AccountMail.safeParse(p).success)
    .filter((m) => m.to === to);
}

/** The token in the last mail of `kind` to `to`, taken from its link's query parameter, as the page does. */
async function tokenFrom(to: string, kind: AccountMail['kind'], parameter: string): Promise<string> {
  const mail = (await mailsTo(to)).filter((m) => m.kind === kind).at(-1);
  expect(mail?.link, `a ${kind} mail to ${to}`).toBeTruthy();
  const url = new URL(mail!.link!);
  expect(url.origin + url.pathname).toBe(`${PUBLIC_URL}/`);
  return url.searchParams.get(parameter)!;
}

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

const BAD_LINK = { code: 'BAD_USER_INPUT', field: 'token' };

describe('email verification', () => {
  it('mails a link with sign-up, in its transaction, and the link verifies the address once', async () => {
    const kicksBefore = shared.kicks.count;
    const { user, email, viewer } = await signUp();
    expect(user.emailVerified).toBe(false);
    expect(shared.kicks.count).toBeGreaterThan(kicksBefore);

    const [mail] = await mailsTo(email);
    expect(mail).toMatchObject({ type: 'account-mail', kind: 'verify-email', userId: user.id, to: email });
    expect(new Date(mail!.expiresAt!).getTime() - new Date(mail!.at).getTime()).toBe(24 * 60 * MINUTE);
    const token = await tokenFrom(email, 'verify-email', 'verify-email');

    expect(await shared.emails.verifyEmail(token)).toMatchObject({ id: user.id, emailVerified: true });
    expect(await shared.accounts.me(viewer)).toMatchObject({ emailVerified: true });
    expect((await failureOf(shared.emails.verifyEmail(token))).extensions).toEqual(BAD_LINK);
  });

  it('writes no mail for a sign-up refused because the address is taken', async () => {
    const email = freshEmail('taken');
    await signUp(email);
    await failureOf(shared.accounts.signUp(email, PASSWORD, freshIp()));
    expect(await mailsTo(email)).toHaveLength(1);
  });

  it('stores the token as its sha256 only', async () => {
    const { email, user } = await signUp();
    const token = await tokenFrom(email, 'verify-email', 'verify-email');
    const [rows] = await pool.query<RowDataPacket[]>(
      'SELECT token_hash, HEX(token_hash) AS hex FROM account_tokens WHERE user_id = ?',
      [user.id],
    );
    expect(rows).toHaveLength(1);
    const stored = JSON.stringify(rows);
    expect(stored).not.toContain(token);
    expect(String(rows[0]!.hex).toLowerCase()).toBe(
      (await import('node:crypto')).createHash('sha256').update(token).digest('hex'),
    );
  });

  it('refuses an expired link, and resending mails a new one that works', async () => {
    const { email, viewer } = await signUp();
    const first = await tokenFrom(email, 'verify-email', 'verify-email');
    clock.advance(24 * 60 * MINUTE);
    try {
      expect((await failureOf(shared.emails.verifyEmail(first))).extensions).toEqual(BAD_LINK);
      expect(await shared.emails.resendVerificationEmail(viewer)).toBe(true);
      const second = await tokenFrom(email, 'verify-email', 'verify-email');
      expect(second).not.toBe(first);
      expect((await shared.emails.verifyEmail(second)).emailVerified).toBe(true);
    } finally {
      clock.advance(-24 * 60 * MINUTE);
    }
  });

  it('sends nothing again once verified, and throttles resending', async () => {
    const { email, viewer } = await signUp();
    for (let n = 0; n < MAILS_PER_ADDRESS; n++) expect(await shared.emails.resendVerificationEmail(viewer)).toBe(true);
    const error = await failureOf(shared.emails.resendVerificationEmail(viewer));
    expect(error.extensions.code).toBe('RATE_LIMITED');
    expect(error.extensions.retryAfterSeconds).toBeGreaterThan(0);
    expect(await mailsTo(email)).toHaveLength(1 + MAILS_PER_ADDRESS);

    await shared.emails.verifyEmail(await tokenFrom(email, 'verify-email', 'verify-email'));
    expect(await shared.emails.resendVerificationEmail(viewer)).toBe(false);
    expect((await failureOf(shared.emails.resendVerificationEmail(null))).extensions.code).toBe('UNAUTHENTICATED');
  });

  it('refuses tokens that are malformed, unknown, or of another purpose (which stay good for their own)', async () => {
    const { email } = await signUp();
    expect((await failureOf(shared.emails.verifyEmail("' OR 1=1 --"))).extensions).toEqual(BAD_LINK);
    expect((await failureOf(shared.emails.verifyEmail(randomBytes(32).toString('base64url')))).extensions).toEqual(
      BAD_LINK,
    );

    await shared.emails.requestPasswordReset(email, freshIp());
    const reset = await tokenFrom(email, 'reset-password', 'reset-password');
    expect((await failureOf(shared.emails.verifyEmail(reset))).extensions).toEqual(BAD_LINK);
    expect((await failureOf(shared.emails.confirmEmailChange(reset))).extensions).toEqual(BAD_LINK);
    const verify = await tokenFrom(email, 'verify-email', 'verify-email');
    expect((await failureOf(shared.emails.resetPassword(verify, NEW_PASSWORD, freshIp()))).extensions).toEqual(
      BAD_LINK,
    );
    expect((await shared.emails.resetPassword(reset, NEW_PASSWORD, freshIp())).user.email).toBe(email);
  });
});

describe('password reset', () => {
  it('answers the same for an unknown address, and mails nothing', async () => {
    const unknown = freshEmail('nobody');
    const { email } = await signUp();

    expect(await shared.emails.requestPasswordReset(unknown, freshIp())).toBe(true);
    expect(await shared.emails.requestPasswordReset(email.toUpperCase(), freshIp())).toBe(true);

    expect(await mailsTo(unknown)).toHaveLength(0);
    const resets = (await mailsTo(email)).filter((m) => m.kind === 'reset-password');
    expect(resets).toHaveLength(1);
    expect(new Date(resets[0]!.expiresAt!).getTime() - new Date(resets[0]!.at).getTime()).toBe(30 * MINUTE);
  });

  it('sets the password once, ends every session, verifies the address and tells the owner', async () => {
    const { email, user, refreshToken, viewer } = await signUp();
    await shared.emails.requestPasswordReset(email, freshIp());
    const token = await tokenFrom(email, 'reset-password', 'reset-password');

    const result = await shared.emails.resetPassword(token, NEW_PASSWORD, freshIp());
    expect(result.user).toMatchObject({ id: user.id, emailVerified: true });
    // The new session works; the old one is over, its refresh token and its access token alike.
    expect((await shared.accounts.me(await viewerFor(result.accessToken)))?.id).toBe(user.id);
    expect((await failureOf(shared.accounts.refreshSession(refreshToken, freshIp()))).extensions.code).toBe(
      'UNAUTHENTICATED',
    );
    expect((await failureOf(shared.accounts.me(viewer))).extensions.code).toBe('UNAUTHENTICATED');
    // Only the new password logs in.
    await failureOf(shared.accounts.logIn(email, PASSWORD, freshIp()));
    expect((await shared.accounts.logIn(email, NEW_PASSWORD, freshIp())).user.id).toBe(user.id);
    const notice = (await mailsTo(email)).filter((m) => m.kind === 'password-changed');
    expect(notice).toHaveLength(1);
    expect(notice[0]!.link).toBeNull();

    expect(
      (await failureOf(shared.emails.resetPassword(token, 'yet another passphrase', freshIp()))).extensions,
    ).toEqual(BAD_LINK);
    expect((await shared.accounts.logIn(email, NEW_PASSWORD, freshIp())).user.id).toBe(user.id);
  });

  it('lets one of two concurrent uses of a link through', async () => {
    const { email } = await signUp();
    await shared.emails.requestPasswordReset(email, freshIp());
    const token = await tokenFrom(email, 'reset-password', 'reset-password');
    const results = await Promise.allSettled([
      shared.emails.resetPassword(token, NEW_PASSWORD, freshIp()),
      shared.emails.resetPassword(token, 'yet another passphrase', freshIp()),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect((await mailsTo(email)).filter((m) => m.kind === 'password-changed')).toHaveLength(1);
  });

  it('refuses a link after 30 minutes, and an older link once a newer one was used', async () => {
    const { email } = await signUp();
    await shared.emails.requestPasswordReset(email, freshIp());
    const older = await tokenFrom(email, 'reset-password', 'reset-password');
    clock.advance(31 * MINUTE);
    try {
      expect((await failureOf(shared.emails.resetPassword(older, NEW_PASSWORD, freshIp()))).extensions).toEqual(
        BAD_LINK,
      );
    } finally {
      clock.advance(-31 * MINUTE);
    }
    await shared.emails.requestPasswordReset(email, freshIp());
    const first = await tokenFrom(email, 'reset-password', 'reset-password');
    await shared.emails.requestPasswordReset(email, freshIp());
    const second = await tokenFrom(email, 'reset-password', 'reset-password');
    await shared.emails.resetPassword(second, NEW_PASSWORD, freshIp());
    expect((await failureOf(shared.emails.resetPassword(first, PASSWORD, freshIp()))).extensions).toEqual(BAD_LINK);
  });

  it('refuses a weak new password and leaves the link usable', async () => {
    const { email } = await signUp();
    await shared.emails.requestPasswordReset(email, freshIp());
    const token = await tokenFrom(email, 'reset-password', 'reset-password');
    const weak = await failureOf(shared.emails.resetPassword(token, 'short', freshIp()));
    expect(weak.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'newPassword' });
    expect((await shared.emails.resetPassword(token, NEW_PASSWORD, freshIp())).user.email).toBe(email);
  });

  it('throttles requests per address, known or not alike, and per client address', async () => {
    const ip = freshIp();
    const { email } = await signUp();
    const unknown = freshEmail('nobody');
    for (let n = 0; n < MAILS_PER_ADDRESS; n++) {
      expect(await shared.emails.requestPasswordReset(email, freshIp())).toBe(true);
      expect(await shared.emails.requestPasswordReset(unknown, freshIp())).toBe(true);
    }
    const known = await failureOf(shared.emails.requestPasswordReset(email, freshIp()));
    const stranger = await failureOf(shared.emails.requestPasswordReset(unknown, freshIp()));
    expect(known.extensions.code).toBe('RATE_LIMITED');
    expect(stranger.extensions.code).toBe('RATE_LIMITED');
    expect((await mailsTo(email)).filter((m) => m.kind === 'reset-password')).toHaveLength(MAILS_PER_ADDRESS);

    // One client asking about many addresses.
    for (let n = 0; n < RESETS_PER_CLIENT; n++) {
      expect(await shared.emails.requestPasswordReset(freshEmail('probe'), ip)).toBe(true);
    }
    expect((await failureOf(shared.emails.requestPasswordReset(freshEmail('probe'), ip))).extensions.code).toBe(
      'RATE_LIMITED',
    );
  });

  it('refuses a malformed address as bad input (that tells nothing about accounts)', async () => {
    const error = await failureOf(shared.emails.requestPasswordReset('not an email', freshIp()));
    expect(error.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'email' });
  });
});

describe('change of address', () => {
  it('mails a link to the new address; using it moves the account and tells the old one', async () => {
    const { email, user, viewer } = await signUp();
    const newEmail = freshEmail('moved');
    expect(await shared.emails.requestEmailChange(viewer, ` ${newEmail.toUpperCase()}`, PASSWORD, freshIp())).toBe(
      true,
    );
    const [confirm] = await mailsTo(newEmail);
    expect(confirm).toMatchObject({ kind: 'confirm-email-change', userId: user.id });
    expect(new Date(confirm!.expiresAt!).getTime() - new Date(confirm!.at).getTime()).toBe(60 * MINUTE);
    // Nothing changes until the link is used.
    expect((await shared.accounts.me(viewer))?.email).toBe(email);

    const token = await tokenFrom(newEmail, 'confirm-email-change', 'confirm-email');
    expect(await shared.emails.confirmEmailChange(token)).toMatchObject({
      id: user.id,
      email: newEmail,
      emailVerified: true,
    });
    expect(await shared.accounts.me(viewer)).toMatchObject({ email: newEmail, emailVerified: true });
    const notice = (await mailsTo(email)).filter((m) => m.kind === 'email-changed');
    expect(notice).toHaveLength(1);
    expect(notice[0]!.link).toBeNull();
    expect((await shared.accounts.logIn(newEmail, PASSWORD, freshIp())).user.id).toBe(user.id);
    await failureOf(shared.accounts.logIn(email, PASSWORD, freshIp()));
    expect((await failureOf(shared.emails.confirmEmailChange(token))).extensions).toEqual(BAD_LINK);
  });

  it('refuses a wrong password (as a failed login), a taken address and the current one', async () => {
    const { email, viewer } = await signUp();
    const other = await signUp();
    const ip = freshIp();

    const wrong = await failureOf(shared.emails.requestEmailChange(viewer, freshEmail(), 'not my password', ip));
    expect(wrong.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'password' });
    const taken = await failureOf(shared.emails.requestEmailChange(viewer, other.email, PASSWORD, freshIp()));
    expect(taken.extensions).toMatchObject({ code: 'CONFLICT', field: 'newEmail' });
    const same = await failureOf(shared.emails.requestEmailChange(viewer, email, PASSWORD, freshIp()));
    expect(same.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'newEmail' });
    const anonymous = await failureOf(shared.emails.requestEmailChange(null, freshEmail(), PASSWORD, freshIp()));
    expect(anonymous.extensions.code).toBe('UNAUTHENTICATED');

    // Wrong passwords from one address are slowed down as logIn's are.
    for (let n = 1; n < loginPolicy.perAddressAndEmail.freeFailures; n++) {
      await failureOf(shared.emails.requestEmailChange(viewer, freshEmail(), 'not my password', ip));
    }
    const slowed = await failureOf(shared.emails.requestEmailChange(viewer, freshEmail(), PASSWORD, ip));
    expect(slowed.extensions.code).toBe('RATE_LIMITED');
  });

  it('counts questions about taken addresses in the account’s mail budget', async () => {
    const { viewer } = await signUp();
    const others = await Promise.all(Array.from({ length: MAILS_PER_ADDRESS }, () => signUp()));
    for (const other of others) {
      const taken = await failureOf(shared.emails.requestEmailChange(viewer, other.email, PASSWORD, freshIp()));
      expect(taken.extensions.code).toBe('CONFLICT');
    }
    const probe = await failureOf(shared.emails.requestEmailChange(viewer, freshEmail(), PASSWORD, freshIp()));
    expect(probe.extensions.code).toBe('RATE_LIMITED');
  });

  it('refuses the link when another account took the address meanwhile, and keeps the old address', async () => {
    const { email, viewer } = await signUp();
    const newEmail = freshEmail('contested');
    await shared.emails.requestEmailChange(viewer, newEmail, PASSWORD, freshIp());
    const token = await tokenFrom(newEmail, 'confirm-email-change', 'confirm-email');
    await signUp(newEmail);

    const error = await failureOf(shared.emails.confirmEmailChange(token));
    expect(error.extensions).toMatchObject({ code: 'CONFLICT' });
    expect((await shared.accounts.me(viewer))?.email).toBe(email);
    expect((await mailsTo(email)).filter((m) => m.kind === 'email-changed')).toHaveLength(0);
  });

  it('ends the links sent to the old address when the account moves, and a reset ends pending changes', async () => {
    const { email, viewer } = await signUp();
    await shared.emails.requestPasswordReset(email, freshIp());
    const reset = await tokenFrom(email, 'reset-password', 'reset-password');
    const newEmail = freshEmail('moved');
    await shared.emails.requestEmailChange(viewer, newEmail, PASSWORD, freshIp());
    await shared.emails.confirmEmailChange(await tokenFrom(newEmail, 'confirm-email-change', 'confirm-email'));
    expect((await failureOf(shared.emails.resetPassword(reset, NEW_PASSWORD, freshIp()))).extensions).toEqual(BAD_LINK);

    const second = await signUp();
    const elsewhere = freshEmail('attacker');
    await shared.emails.requestEmailChange(second.viewer, elsewhere, PASSWORD, freshIp());
    await shared.emails.requestPasswordReset(second.email, freshIp());
    await shared.emails.resetPassword(
      await tokenFrom(second.email, 'reset-password', 'reset-password'),
      NEW_PASSWORD,
      freshIp(),
    );
    const change = await tokenFrom(elsewhere, 'confirm-email-change', 'confirm-email');
    expect((await failureOf(shared.emails.confirmEmailChange(change))).extensions).toEqual(BAD_LINK);
  });
});
