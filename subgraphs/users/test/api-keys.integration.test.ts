import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { GraphQLError } from 'graphql';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, createTokenVerifier, openDatabase, type Pool, type Viewer } from '@vidmp3/shared';
import { ApiKeyRepository } from '../src/adapters/api-key-repo.js';
import { SessionRepository } from '../src/adapters/session-repo.js';
import { buildSigningKeys } from '../src/adapters/signing-keys.js';
import { MySqlCounterStore } from '../src/adapters/throttle-store.js';
import { UserRepository } from '../src/adapters/user-repo.js';
import { migrations } from '../src/migrations.js';
import { AccountService } from '../src/services/accounts.js';
import { ApiKeyService, ExchangeRefused } from '../src/services/api-keys.js';
import { LoginThrottle, type ThrottlePolicy } from '../src/services/login-throttle.js';
import { NotificationSettingsRepository } from '../src/adapters/notification-settings-repo.js';
import { NotificationSettingsService } from '../src/services/notification-settings.js';
import { SessionService } from '../src/services/sessions.js';
import { TokenIssuer } from '../src/services/tokens.js';

const SERVER = 'mysql://root@127.0.0.1:3306';
const DATABASE = `vidmp3_users_api_keys_test_${randomBytes(6).toString('hex')}`;
const ISSUER = 'vidmp3-test';
const AUDIENCE = 'vidmp3-test-api';
const PASSWORD = 'correct horse battery staple';
const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const KEYS_PER_USER = 3;
const FAILURES_PER_ADDRESS = 4;

const logger = createLogger('test', 'silent');
const keys = buildSigningKeys(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
const verifier = createTokenVerifier({
  keys: async (kid) => keys.publicKeys.get(kid),
  issuer: ISSUER,
  audience: AUDIENCE,
  cacheSize: 0,
});
const throttlePolicy: ThrottlePolicy = {
  attemptsPerAddress: { limit: 1000, windowMs: 15 * MINUTE },
  perAddressAndEmail: { freeFailures: 5, baseDelayMs: 30_000, maxDelayMs: 15 * MINUTE, windowMs: 15 * MINUTE },
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

/** The users service as app.ts wires it, on a clock the test moves by hand. */
async function usersService() {
  const clock = { now: new Date(), advance: (ms: number) => (clock.now = new Date(clock.now.getTime() + ms)) };
  const tokens = new TokenIssuer(keys, { issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 900, apiKeyTtlSeconds: 300 });
  const counters = new MySqlCounterStore(pool);
  const accounts = await AccountService.create(
    new UserRepository(pool),
    new SessionService(new SessionRepository(pool), tokens, { refreshTtlMs: 30 * DAY, maxAgeMs: 90 * DAY }),
    new LoginThrottle(counters, throttlePolicy),
  );
  const apiKeys = new ApiKeyService(
    new ApiKeyRepository(pool),
    tokens,
    accounts,
    counters,
    { perUser: KEYS_PER_USER, failuresPerAddress: { limit: FAILURES_PER_ADDRESS, windowMs: 15 * MINUTE } },
    () => clock.now,
  );
  const notifications = new NotificationSettingsService(new NotificationSettingsRepository(pool), accounts);
  return { accounts, apiKeys, notifications, clock };
}

type Service = Awaited<ReturnType<typeof usersService>>;

/** A fresh account, signed in: its session's viewer. */
async function signUpUser({ accounts }: Service): Promise<Viewer> {
  const email = `keys-${randomBytes(6).toString('hex')}@example.com`;
  const auth = await accounts.signUp(email, PASSWORD, `10.${randomBytes(3).join('.')}`);
  return verifier.verify(auth.accessToken);
}

/** What the gateway gets for a key: the exchanged access token, verified as every service verifies it. */
async function exchange({ apiKeys }: Service, key: string, ip = '192.0.2.1'): Promise<Viewer> {
  return verifier.verify((await apiKeys.exchange(key, ip)).accessToken);
}

async function codeOf(promise: Promise<unknown>): Promise<unknown> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(GraphQLError);
  return (error as GraphQLError).extensions.code;
}

describe('API keys', () => {
  it('creates a key shown once, stores only its sha256, and lists it without the secret', async () => {
    const service = await usersService();
    const viewer = await signUpUser(service);
    const created = await service.apiKeys.create(viewer, '  nightly backup ', ['read']);
    expect(created.key).toMatch(/^vmp3_[A-Za-z0-9_-]{43}$/);
    expect(created.apiKey).toMatchObject({ name: 'nightly backup', scopes: ['read'], lastUsedAt: null });

    const [rows] = await pool.query<RowDataPacket[]>('SELECT * FROM api_keys WHERE user_id = ?', [viewer.userId]);
    expect(rows).toHaveLength(1);
    const stored = JSON.stringify(rows[0]);
    expect(stored).not.toContain(created.key);
    expect(stored).not.toContain(created.key.slice(5));
    expect(Buffer.from(rows[0]!.key_hash as Buffer)).toEqual(createHash('sha256').update(created.key).digest());

    const listed = await service.apiKeys.list(viewer, viewer.userId);
    expect(listed).toEqual([created.apiKey]);
    expect(JSON.stringify(listed)).not.toContain(created.key);
  });

  it('gives CONVERT keys READ too, and refuses empty scopes and bad names', async () => {
    const service = await usersService();
    const viewer = await signUpUser(service);
    expect((await service.apiKeys.create(viewer, 'ci', ['convert'])).apiKey.scopes).toEqual(['read', 'convert']);
    expect(await codeOf(service.apiKeys.create(viewer, 'none', []))).toBe('BAD_USER_INPUT');
    expect(await codeOf(service.apiKeys.create(viewer, '   ', ['read']))).toBe('BAD_USER_INPUT');
    expect(await codeOf(service.apiKeys.create(viewer, 'x'.repeat(101), ['read']))).toBe('BAD_USER_INPUT');
    expect(await codeOf(service.apiKeys.create(viewer, 'tab\there', ['read']))).toBe('BAD_USER_INPUT');
    expect(await service.apiKeys.list(viewer, viewer.userId)).toHaveLength(1);
  });

  it('caps the keys per user, also when created concurrently', async () => {
    const service = await usersService();
    const viewer = await signUpUser(service);
    const results = await Promise.allSettled(
      Array.from({ length: KEYS_PER_USER + 3 }, (_, i) => service.apiKeys.create(viewer, `key ${i}`, ['read'])),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(KEYS_PER_USER);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect((refused.reason as GraphQLError).extensions).toMatchObject({
      code: 'QUOTA_EXCEEDED',
      quota: 'apiKeys',
      limit: KEYS_PER_USER,
    });
    expect(await service.apiKeys.list(viewer, viewer.userId)).toHaveLength(KEYS_PER_USER);
  });

  it('exchanges a key for a short-lived token with its scopes and id, and records the last use once a minute', async () => {
    const service = await usersService();
    const viewer = await signUpUser(service);
    const { key, apiKey } = await service.apiKeys.create(viewer, 'ci', ['convert']);
    const keyViewer = await exchange(service, key);
    expect(keyViewer).toMatchObject({ userId: viewer.userId, apiKeyId: apiKey.id, scopes: ['read', 'convert'] });
    expect(keyViewer.sessionId).toBeUndefined();
    expect(keyViewer.expiresAt.getTime() - service.clock.now.getTime()).toBeLessThanOrEqual(5 * MINUTE);
    const firstUse = (await service.apiKeys.list(viewer, viewer.userId))[0]!.lastUsedAt;
    expect(firstUse?.getTime()).toBe(service.clock.now.getTime());

    service.clock.advance(30_000);
    await exchange(service, key);
    expect((await service.apiKeys.list(viewer, viewer.userId))[0]!.lastUsedAt).toEqual(firstUse);
    service.clock.advance(31_000);
    await exchange(service, key);
    expect((await service.apiKeys.list(viewer, viewer.userId))[0]!.lastUsedAt?.getTime()).toBe(
      service.clock.now.getTime(),
    );
  });

  it('lets a key read `me` but never manage the account', async () => {
    const service = await usersService();
    const viewer = await signUpUser(service);
    const { key } = await service.apiKeys.create(viewer, 'ci', ['convert']);
    const keyViewer = await exchange(service, key);
    expect((await service.accounts.me(keyViewer))?.id).toBe(viewer.userId);
    expect(await service.accounts.resolveReference(keyViewer, viewer.userId)).toMatchObject({ id: viewer.userId });

    expect(await codeOf(service.apiKeys.create(keyViewer, 'another', ['read']))).toBe('FORBIDDEN');
    expect(await codeOf(service.apiKeys.revoke(keyViewer, 'anything'))).toBe('FORBIDDEN');
    expect(await codeOf(service.accounts.logOut(keyViewer))).toBe('FORBIDDEN');
    expect(await codeOf(service.accounts.logOutEverywhere(keyViewer))).toBe('FORBIDDEN');
    expect(await codeOf(service.accounts.changePassword(keyViewer, PASSWORD, 'another long passphrase', '::1'))).toBe(
      'FORBIDDEN',
    );
    expect(await codeOf(service.notifications.update(keyViewer, { conversionEmails: true }))).toBe('FORBIDDEN');
  });

  it('refuses a revoked key at once: its exchange, and the tokens it was exchanged for', async () => {
    const service = await usersService();
    const viewer = await signUpUser(service);
    const { key, apiKey } = await service.apiKeys.create(viewer, 'ci', ['read']);
    const keyViewer = await exchange(service, key);

    expect(await service.apiKeys.revoke(viewer, apiKey.id)).toBe(true);
    expect(await service.apiKeys.list(viewer, viewer.userId)).toEqual([]);
    // The token is still signed and unexpired, but this service knows the key is gone.
    expect(await codeOf(service.accounts.me(keyViewer))).toBe('UNAUTHENTICATED');
    await expect(service.apiKeys.exchange(key, '192.0.2.9')).rejects.toMatchObject({ status: 401 });
    // Revoking it again, or someone else's key, is NOT_FOUND.
    expect(await codeOf(service.apiKeys.revoke(viewer, apiKey.id))).toBe('NOT_FOUND');
    const stranger = await signUpUser(service);
    const theirs = await service.apiKeys.create(stranger, 'theirs', ['read']);
    expect(await codeOf(service.apiKeys.revoke(viewer, theirs.apiKey.id))).toBe('NOT_FOUND');
    expect(await service.apiKeys.list(stranger, stranger.userId)).toHaveLength(1);
    expect(await codeOf(service.apiKeys.list(viewer, stranger.userId))).toBe('NOT_FOUND');
  });

  it('throttles failed exchanges per client address, and not other addresses', async () => {
    const service = await usersService();
    const viewer = await signUpUser(service);
    const { key } = await service.apiKeys.create(viewer, 'ci', ['read']);
    const address = `198.51.100.${randomBytes(1)[0]}`;
    for (let i = 0; i < FAILURES_PER_ADDRESS; i++) {
      const wrong = `vmp3_${randomBytes(32).toString('base64url')}`;
      await expect(service.apiKeys.exchange(wrong, address)).rejects.toMatchObject({ status: 401 });
    }
    const refused = await service.apiKeys.exchange(key, address).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(ExchangeRefused);
    expect(refused).toMatchObject({ status: 429 });
    expect((refused as ExchangeRefused).retryAfterSeconds).toBeGreaterThan(0);
    // Elsewhere the key still works; here it does again once the window has passed.
    expect((await exchange(service, key, '203.0.113.7')).userId).toBe(viewer.userId);
    service.clock.advance(15 * MINUTE + 1000);
    expect((await exchange(service, key, address)).userId).toBe(viewer.userId);
  });

  it('goes with its account', async () => {
    const service = await usersService();
    const viewer = await signUpUser(service);
    await service.apiKeys.create(viewer, 'ci', ['read']);
    await pool.query('DELETE FROM users WHERE id = ?', [viewer.userId]);
    const [rows] = await pool.query<RowDataPacket[]>('SELECT id FROM api_keys WHERE user_id = ?', [viewer.userId]);
    expect(rows).toEqual([]);
  });
});
