// deleteAccount in the users service (issue #15), against a real MariaDB: what goes, what is announced, and that
// nothing of the account keeps working.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { GraphQLError } from 'graphql';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AccountDeleted,
  createLogger,
  createTokenVerifier,
  openDatabase,
  outboxSql,
  Topology,
  type OutboxPublisher,
  type Pool,
  type Viewer,
} from '@vidmp3/shared';
import { NotificationSettingsRepository } from '../src/adapters/notification-settings-repo.js';
import { SessionRepository } from '../src/adapters/session-repo.js';
import { buildSigningKeys } from '../src/adapters/signing-keys.js';
import { MySqlCounterStore } from '../src/adapters/throttle-store.js';
import { UserRepository } from '../src/adapters/user-repo.js';
import { migrations } from '../src/migrations.js';
import { AccountService } from '../src/services/accounts.js';
import { LoginThrottle, type ThrottlePolicy } from '../src/services/login-throttle.js';
import { SessionService } from '../src/services/sessions.js';
import { TokenIssuer } from '../src/services/tokens.js';

const SERVER = 'mysql://root@127.0.0.1:3306';
const DATABASE = `vidmp3_users_deletion_test_${randomBytes(6).toString('hex')}`;
const ISSUER = 'vidmp3-test';
const AUDIENCE = 'vidmp3-test-api';
const PASSWORD = 'correct horse battery staple';
const MAX_FAILURES = 3;
const MINUTE = 60_000;

const keys = buildSigningKeys(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
const verifier = createTokenVerifier({
  keys: async (kid) => keys.publicKeys.get(kid),
  issuer: ISSUER,
  audience: AUDIENCE,
});
const policy: ThrottlePolicy = {
  attemptsPerAddress: { limit: 100, windowMs: 15 * MINUTE },
  perAddressAndEmail: {
    freeFailures: MAX_FAILURES,
    baseDelayMs: 30_000,
    maxDelayMs: 15 * MINUTE,
    windowMs: 15 * MINUTE,
  },
  perEmail: { freeFailures: 10, baseDelayMs: 1_000, maxDelayMs: MINUTE, windowMs: 15 * MINUTE },
  knownAddressMs: 30 * 24 * 60 * MINUTE,
  signUpsPerAddress: { limit: 100, windowMs: 60 * MINUTE },
};

let pool: Pool;
let kicks = 0;
/** The outbox as app.ts gives it (the shared table), with the relay's kick counted instead. */
const outbox: Pick<OutboxPublisher, 'add' | 'kick'> = {
  add: (db, exchange, routingKey, payload) => outboxSql.add(db, exchange, routingKey, payload),
  kick: () => {
    kicks += 1;
  },
};

beforeAll(async () => {
  pool = await openDatabase({ url: `${SERVER}/${DATABASE}`, migrations, logger: createLogger('test', 'silent') });
});
afterAll(async () => {
  await pool?.end();
  const conn = await mysql.createConnection(SERVER);
  await conn.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
  await conn.end();
});

function accounts(announce = outbox) {
  return AccountService.create(
    new UserRepository(pool),
    new SessionService(
      new SessionRepository(pool),
      new TokenIssuer(keys, { issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 900 }),
      { refreshTtlMs: 30 * 24 * 60 * MINUTE, maxAgeMs: 90 * 24 * 60 * MINUTE },
    ),
    new LoginThrottle(new MySqlCounterStore(pool), policy),
    announce,
  );
}

const freshEmail = () => `deleted-${randomBytes(4).toString('hex')}@example.com`;
const freshIp = () => `2001:db8:${randomBytes(2).toString('hex')}:${randomBytes(2).toString('hex')}::1`;
const viewerFor = (accessToken: string): Promise<Viewer> => verifier.verify(accessToken);

/** A user with two sessions (two sign-ins), notification settings, and a known sign-in address. */
async function userWithData(service: AccountService, ip = freshIp()) {
  const email = freshEmail();
  const first = await service.signUp(email, PASSWORD, ip);
  const second = await service.logIn(email, PASSWORD, ip);
  await new NotificationSettingsRepository(pool).save(first.user.id, { conversionEmails: true }, new Date());
  return { email, ip, userId: first.user.id, first, second, viewer: await viewerFor(second.accessToken) };
}

/** Rows about the user in every table of the users database that could hold them. */
async function rowsAbout(userId: string, email: string): Promise<Record<string, number>> {
  const count = async (sql: string, params: unknown[]) => {
    const [rows] = await pool.query<RowDataPacket[]>(sql, params);
    return Number(rows[0]?.n);
  };
  return {
    users: await count('SELECT COUNT(*) AS n FROM users WHERE id = ? OR email = ?', [userId, email]),
    sessions: await count('SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?', [userId]),
    refresh_tokens: await count(
      'SELECT COUNT(*) AS n FROM refresh_tokens r LEFT JOIN sessions s ON s.id = r.session_id WHERE s.id IS NULL OR s.user_id = ?',
      [userId],
    ),
    notification_settings: await count('SELECT COUNT(*) AS n FROM notification_settings WHERE user_id = ?', [userId]),
    auth_throttle: await count('SELECT COUNT(*) AS n FROM auth_throttle WHERE k LIKE ?', [`%${email}`]),
  };
}

async function announced(userId: string): Promise<AccountDeleted[]> {
  const [rows] = await pool.query<RowDataPacket[]>(
    `SELECT payload FROM outbox WHERE exchange = ? AND routing_key = '' AND JSON_VALUE(payload, '$.userId') = ?`,
    [Topology.accountsExchange, userId],
  );
  return rows.map((r) => AccountDeleted.parse(JSON.parse(String(r.payload))));
}

async function failureOf(promise: Promise<unknown>): Promise<GraphQLError> {
  const error = await promise.then(
    () => new Error('expected the call to fail'),
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(GraphQLError);
  return error as GraphQLError;
}

describe('deleteAccount', () => {
  it('asks anonymous callers to log in', async () => {
    const service = await accounts();
    expect((await failureOf(service.deleteAccount(null, PASSWORD, freshIp()))).extensions.code).toBe('UNAUTHENTICATED');
  });

  it('removes the account with its sessions, refresh tokens, settings and sign-in history, and announces it once', async () => {
    const service = await accounts();
    const user = await userWithData(service);
    const other = await userWithData(service);
    expect(await rowsAbout(user.userId, user.email)).toMatchObject({ users: 1, sessions: 2, notification_settings: 1 });
    kicks = 0;

    expect(await service.deleteAccount(user.viewer, PASSWORD, user.ip)).toBe(true);

    expect(await rowsAbout(user.userId, user.email)).toEqual({
      users: 0,
      sessions: 0,
      refresh_tokens: 0,
      notification_settings: 0,
      auth_throttle: 0,
    });
    const events = await announced(user.userId);
    expect(events).toEqual([expect.objectContaining({ type: 'account-deleted', userId: user.userId })]);
    expect(kicks).toBe(1);
    // The other user keeps everything.
    expect(await rowsAbout(other.userId, other.email)).toMatchObject({
      users: 1,
      sessions: 2,
      notification_settings: 1,
    });
    expect(await service.me(other.viewer)).toMatchObject({ id: other.userId });
  });

  it('leaves nothing of the account working: its tokens, refresh tokens and password are refused at once', async () => {
    const service = await accounts();
    const user = await userWithData(service);
    const firstViewer = await viewerFor(user.first.accessToken);
    await service.deleteAccount(user.viewer, PASSWORD, user.ip);

    for (const viewer of [user.viewer, firstViewer]) {
      expect((await failureOf(service.me(viewer))).extensions.code).toBe('UNAUTHENTICATED');
    }
    for (const refreshToken of [user.first.refreshToken, user.second.refreshToken]) {
      expect((await failureOf(service.refreshSession(refreshToken, user.ip))).extensions.code).toBe('UNAUTHENTICATED');
    }
    expect((await failureOf(service.logIn(user.email, PASSWORD, user.ip))).extensions.code).toBe('UNAUTHENTICATED');
    expect((await failureOf(service.deleteAccount(user.viewer, PASSWORD, user.ip))).extensions.code).toBe(
      'UNAUTHENTICATED',
    );
    expect(await announced(user.userId)).toHaveLength(1);
  });

  it('refuses a wrong password with BAD_USER_INPUT on `password`, keeps the account, and counts it as a failed login', async () => {
    const service = await accounts();
    const user = await userWithData(service);
    for (let i = 0; i < MAX_FAILURES; i++) {
      const error = await failureOf(service.deleteAccount(user.viewer, 'not the password', user.ip));
      expect(error.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'password' });
    }
    // The free failures are spent: the next try waits, whichever way the password is tried.
    expect((await failureOf(service.deleteAccount(user.viewer, PASSWORD, user.ip))).extensions.code).toBe(
      'RATE_LIMITED',
    );
    expect((await failureOf(service.logIn(user.email, PASSWORD, user.ip))).extensions.code).toBe('RATE_LIMITED');
    expect(await service.me(user.viewer)).toMatchObject({ id: user.userId });
    expect(await announced(user.userId)).toEqual([]);
  });

  it('deletes nothing when the announcement cannot be written (one transaction)', async () => {
    const failing: Pick<OutboxPublisher, 'add' | 'kick'> = {
      add: () => Promise.reject(new Error('outbox insert failed')),
      kick: () => undefined,
    };
    const service = await accounts(failing);
    const user = await userWithData(service);
    await expect(service.deleteAccount(user.viewer, PASSWORD, user.ip)).rejects.toThrow('outbox insert failed');
    expect(await rowsAbout(user.userId, user.email)).toMatchObject({ users: 1, sessions: 2, notification_settings: 1 });
    expect(await (await accounts()).me(user.viewer)).toMatchObject({ id: user.userId });
  });
});

describe('the users schema', () => {
  // A table added later (API keys, webhooks, account tokens…) must go with its account too: by a foreign key
  // with ON DELETE CASCADE to users, directly or through a table that has one (refresh_tokens → sessions).
  it('has every table that refers to a user or a user’s row deleted with the account (ON DELETE CASCADE)', async () => {
    // Tables that hold nothing of one account: the outbox (messages, pruned a day after publishing), the sign-in
    // counters (keyed by email and address, removed by deleteAccount itself), and the migrations.
    const unowned = new Set(['users', 'outbox', 'auth_throttle', 'schema_migrations']);
    const [tables] = await pool.query<RowDataPacket[]>(
      "SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'",
      [DATABASE],
    );
    const [cascades] = await pool.query<RowDataPacket[]>(
      `SELECT TABLE_NAME AS child, REFERENCED_TABLE_NAME AS parent FROM information_schema.REFERENTIAL_CONSTRAINTS
       WHERE CONSTRAINT_SCHEMA = ? AND DELETE_RULE = 'CASCADE'`,
      [DATABASE],
    );
    const parentsOf = new Map<string, string[]>();
    for (const c of cascades)
      parentsOf.set(String(c.child), [...(parentsOf.get(String(c.child)) ?? []), String(c.parent)]);
    const goesWithUsers = (table: string, seen = new Set<string>()): boolean =>
      table === 'users' ||
      (!seen.has(table) && (parentsOf.get(table) ?? []).some((p) => goesWithUsers(p, new Set([...seen, table]))));
    const names = tables.map((t) => String(t.name));
    expect(names).toEqual(expect.arrayContaining(['sessions', 'refresh_tokens', 'notification_settings']));
    const stranded = names.filter((t) => !unowned.has(t) && !goesWithUsers(t));
    expect(stranded).toEqual([]);
  });
});
