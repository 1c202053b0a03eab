import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { GraphQLError } from 'graphql';
import jwt from 'jsonwebtoken';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, createTokenVerifier, openDatabase, type Pool, type Viewer } from '@vidmp3/shared';
import { buildSigningKeys } from '../src/adapters/signing-keys.js';
import { UserRepository } from '../src/adapters/user-repo.js';
import { migrations } from '../src/migrations.js';
import { AccountService } from '../src/services/accounts.js';
import { MySqlCounterStore } from '../src/adapters/throttle-store.js';
import { LoginThrottle, type ThrottlePolicy } from '../src/services/login-throttle.js';
import { SessionRepository } from '../src/adapters/session-repo.js';
import { SessionService } from '../src/services/sessions.js';
import { TokenIssuer } from '../src/services/tokens.js';

const SERVER = 'mysql://root@127.0.0.1:3306';
const DATABASE = `vidmp3_users_test_${randomBytes(6).toString('hex')}`;
const DATABASE_URL = `${SERVER}/${DATABASE}`;
const ISSUER = 'vidmp3-test';
const AUDIENCE = 'vidmp3-test-api';
const TTL_SECONDS = 900;
const MAX_FAILURES = 3;
const PASSWORD = 'correct horse battery staple';

const logger = createLogger('test', 'silent');
const keys = buildSigningKeys(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
const verifier = createTokenVerifier({
  keys: async (kid) => keys.publicKeys.get(kid),
  issuer: ISSUER,
  audience: AUDIENCE,
});

let pool: Pool;

beforeAll(async () => {
  pool = await openDatabase({ url: DATABASE_URL, migrations, logger, connectionLimit: 4 });
});

afterAll(async () => {
  await pool?.end();
  const conn = await mysql.createConnection(SERVER);
  await conn.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
  await conn.end();
});

const MINUTE = 60_000;
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

/** The throttle's clock, moved by hand so that no test sleeps through a delay. */
const clock = { ms: Date.now(), advance: (ms: number) => (clock.ms += ms) };

/**
 * An AccountService wired as app.ts wires it: a replica of the users service, its throttle counting in the
 * database (tests keep apart by using fresh emails and client addresses).
 */
function accounts(
  overrides: Partial<ThrottlePolicy> = {},
  options: { verifications?: { count: number }; tickingClock?: boolean } = {},
) {
  const users = new UserRepository(pool);
  if (options.verifications) {
    // Counts the password checks that got past the throttle (each one an argon2 verification).
    const counter = options.verifications;
    const findByEmail = users.findByEmail.bind(users);
    users.findByEmail = (email) => {
      counter.count += 1;
      return findByEmail(email);
    };
  }
  return AccountService.create(
    users,
    new SessionService(
      new SessionRepository(pool),
      new TokenIssuer(keys, { issuer: ISSUER, audience: AUDIENCE, ttlSeconds: TTL_SECONDS }),
      { refreshTtlMs: 30 * 24 * 60 * MINUTE, maxAgeMs: 90 * 24 * 60 * MINUTE },
    ),
    new LoginThrottle(
      new MySqlCounterStore(pool),
      { ...policy, ...overrides },
      // A ticking clock moves on at every reading, as real time does while attempts wait for each other.
      options.tickingClock ? () => clock.advance(1) : () => clock.ms,
    ),
  );
}

/** An address nobody else in this run uses. */
const freshEmail = (name = 'user') => `${name}-${randomBytes(4).toString('hex')}@example.com`;
/** A client address nobody else in this run uses: a /64 of its own in the IPv6 documentation range. */
const freshIp = () => `2001:db8:${randomBytes(2).toString('hex')}:${randomBytes(2).toString('hex')}::1`;
/** Another address in the same /64 as `ip`. */
const sameNetwork = (ip: string) => ip.replace(/::1$/, `:${randomBytes(2).toString('hex')}::7`);

async function signUpUser(service?: AccountService, email = freshEmail(), password = PASSWORD) {
  const result = await (service ?? (await accounts())).signUp(email, password, freshIp());
  return { ...result, email, password };
}

/** The viewer a request carrying this token would have. */
const viewerFor = (accessToken: string): Promise<Viewer> => verifier.verify(accessToken);

async function rowsFor(email: string): Promise<Array<{ id: string; email: string; password_hash: string }>> {
  const [rows] = await pool.query<RowDataPacket[]>('SELECT id, email, password_hash FROM users WHERE email = ?', [
    email,
  ]);
  return rows as Array<{ id: string; email: string; password_hash: string }>;
}

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

describe('signUp', () => {
  it('creates the account and stores an argon2id hash, never the password', async () => {
    const { user, email } = await signUpUser();

    const [row] = await rowsFor(email);
    expect(row?.id).toBe(user.id);
    expect(row?.password_hash).toMatch(/^\$argon2id\$/);
    expect(row?.password_hash).not.toContain(PASSWORD);
  });

  it('returns the new user with an id, the normalised email and the creation time', async () => {
    const before = Date.now();
    const email = freshEmail('carol');

    const { user } = await signUpUser(undefined, email);

    expect(user.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(user.email).toBe(email);
    expect(user.createdAt.getTime()).toBeGreaterThanOrEqual(before);
    expect(user.createdAt.getTime()).toBeLessThanOrEqual(Date.now());
    expect(user).not.toHaveProperty('passwordHash');
  });

  it('normalises the email, so the person can log in with the plain form of it', async () => {
    const service = await accounts();
    const local = `alice-${randomBytes(4).toString('hex')}`;

    const { user } = await service.signUp(`  ${local.toUpperCase()}@Example.COM `, PASSWORD, freshIp());

    expect(user.email).toBe(`${local}@example.com`);
    const loggedIn = await service.logIn(`${local}@example.com`, PASSWORD, freshIp());
    expect(loggedIn.user.id).toBe(user.id);
  });

  it('refuses a second account for the same email, however it is spelled, and keeps the first', async () => {
    const service = await accounts();
    const { email, user } = await signUpUser(service);

    const error = await failureOf(service.signUp(` ${email.toUpperCase()}`, 'another good passphrase', freshIp()));

    expect(error.extensions).toEqual({ code: 'CONFLICT', field: 'email' });
    expect((await rowsFor(email)).map((r) => r.id)).toEqual([user.id]);
    expect((await service.logIn(email, PASSWORD, freshIp())).user.id).toBe(user.id);
  });

  it('creates exactly one account when two sign-ups for one email race', async () => {
    const service = await accounts();
    const email = freshEmail('racer');

    const results = await Promise.allSettled([
      service.signUp(email, PASSWORD, freshIp()),
      service.signUp(email, PASSWORD, freshIp()),
    ]);

    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const [rejected] = results.filter((r) => r.status === 'rejected');
    expect(((rejected as PromiseRejectedResult).reason as GraphQLError).extensions.code).toBe('CONFLICT');
    expect(await rowsFor(email)).toHaveLength(1);
  });

  it.each([
    ['too short', 'short1!'],
    ['a common password', 'password123'],
    ['too few different characters', 'aaaaaaaaaaaa'],
  ])('refuses a password that is %s and writes nothing', async (_, password) => {
    const email = freshEmail();

    const error = await failureOf((await accounts()).signUp(email, password, freshIp()));

    expect(error.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'password' });
    expect(await rowsFor(email)).toEqual([]);
  });

  it('refuses the email itself as the password', async () => {
    const email = freshEmail();

    const error = await failureOf((await accounts()).signUp(email, email, freshIp()));

    expect(error.extensions.code).toBe('BAD_USER_INPUT');
    expect(await rowsFor(email)).toEqual([]);
  });

  it('refuses a malformed email and writes nothing', async () => {
    const before = await countUsers();

    const error = await failureOf((await accounts()).signUp('not-an-email', PASSWORD, freshIp()));

    expect(error.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'email' });
    expect(await countUsers()).toBe(before);
  });
});

describe('logIn', () => {
  it('logs in with the right password', async () => {
    const service = await accounts();
    const { email, user } = await signUpUser(service);

    const result = await service.logIn(email, PASSWORD, freshIp());

    expect(result.user).toEqual(user);
    expect((await viewerFor(result.accessToken)).userId).toBe(user.id);
  });

  it('gives the same error for a wrong password as for an unknown email', async () => {
    const service = await accounts();
    const { email } = await signUpUser(service);

    const wrongPassword = await failureOf(service.logIn(email, 'not the password at all', freshIp()));
    const unknownEmail = await failureOf(service.logIn(freshEmail('nobody'), PASSWORD, freshIp()));

    expect(wrongPassword.extensions).toEqual({ code: 'UNAUTHENTICATED' });
    expect(unknownEmail.extensions).toEqual(wrongPassword.extensions);
    expect(unknownEmail.message).toBe(wrongPassword.message);
    expect(wrongPassword.message).toBe('Email or password is incorrect');
  });

  it(`slows the guesser down after ${MAX_FAILURES} failures from one address, even for the right password`, async () => {
    const service = await accounts();
    const { email } = await signUpUser(service);
    const ip = freshIp();
    for (let i = 0; i < MAX_FAILURES; i += 1) {
      expect((await failureOf(service.logIn(email, `wrong guess ${i}`, ip))).extensions.code).toBe('UNAUTHENTICATED');
    }

    const error = await failureOf(service.logIn(email, PASSWORD, ip));

    expect(error.extensions.code).toBe('RATE_LIMITED');
    expect(error.extensions.retryAfterSeconds).toBe(30);
    expect(error.message).toBe('Too many attempts; try again in 30 s');
  });

  it('lets the guesser try again once the delay has passed, and doubles the next one', async () => {
    const service = await accounts();
    const { email, user } = await signUpUser(service);
    const ip = freshIp();
    for (let i = 0; i <= MAX_FAILURES; i += 1) await failureOf(service.logIn(email, `wrong guess ${i}`, ip));

    clock.advance(30_000);
    await failureOf(service.logIn(email, 'still wrong', ip));
    expect((await failureOf(service.logIn(email, PASSWORD, ip))).extensions.retryAfterSeconds).toBe(60);
    clock.advance(60_000);

    expect((await service.logIn(email, PASSWORD, ip)).user.id).toBe(user.id);
  });

  it(`checks exactly ${MAX_FAILURES} of 12 concurrent wrong guesses for one email, while the clock moves on`, async () => {
    const verifications = { count: 0 };
    const service = await accounts({}, { verifications, tickingClock: true });
    const { email } = await signUpUser(service);
    const ip = freshIp();
    verifications.count = 0;

    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) => service.logIn(email, `parallel guess ${i}`, ip)),
    );

    const codes = results.map((r) => ((r as PromiseRejectedResult).reason as GraphQLError).extensions.code);
    expect(codes.filter((code) => code === 'UNAUTHENTICATED')).toHaveLength(MAX_FAILURES);
    expect(codes.filter((code) => code === 'RATE_LIMITED')).toHaveLength(12 - MAX_FAILURES);
    expect(verifications.count).toBe(MAX_FAILURES);
  });

  it('counts concurrent guesses on several replicas together', async () => {
    const replicas = await Promise.all([accounts(), accounts(), accounts()]);
    const { email } = await signUpUser(replicas[0]);
    const ip = freshIp();

    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) => replicas[i % replicas.length]!.logIn(email, `guess ${i}`, ip)),
    );

    const codes = results.map((r) => ((r as PromiseRejectedResult).reason as GraphQLError).extensions.code);
    expect(codes.filter((code) => code === 'UNAUTHENTICATED')).toHaveLength(MAX_FAILURES);
  });

  it("does not stop the owner logging in from their address because of a stranger's failures from another", async () => {
    const service = await accounts();
    const { email, user } = await signUpUser(service);
    const stranger = freshIp();
    for (let i = 0; i < MAX_FAILURES; i += 1) await failureOf(service.logIn(email, `guess ${i}`, stranger));
    expect((await failureOf(service.logIn(email, PASSWORD, stranger))).extensions.code).toBe('RATE_LIMITED');

    expect((await service.logIn(email, PASSWORD, freshIp())).user.id).toBe(user.id);
  });

  it('counts every address of one IPv6 /64 as one address', async () => {
    const service = await accounts();
    const { email } = await signUpUser(service);
    const ip = freshIp();
    for (let i = 0; i < MAX_FAILURES; i += 1) await failureOf(service.logIn(email, `guess ${i}`, sameNetwork(ip)));

    expect((await failureOf(service.logIn(email, PASSWORD, sameNetwork(ip)))).extensions.code).toBe('RATE_LIMITED');
  });

  it('slows guessing from many addresses at one email briefly, but not an address the owner used before', async () => {
    const service = await accounts();
    const { email, user } = await signUpUser(service);
    const owner = freshIp();
    await service.logIn(email, PASSWORD, owner);
    for (let i = 0; i < policy.perEmail.freeFailures; i += 1) {
      await failureOf(service.logIn(email, `guess ${i}`, freshIp()));
    }

    const slowed = await failureOf(service.logIn(email, PASSWORD, freshIp()));

    expect(slowed.extensions.code).toBe('RATE_LIMITED');
    expect(slowed.extensions.retryAfterSeconds).toBeLessThanOrEqual(60);
    expect((await service.logIn(email, PASSWORD, owner)).user.id).toBe(user.id);
  });

  it('throttles guesses against an unknown email the same way, so throttling does not reveal accounts', async () => {
    const service = await accounts();
    const email = freshEmail('nobody');
    const ip = freshIp();
    for (let i = 0; i < MAX_FAILURES; i += 1) await failureOf(service.logIn(email, `guess ${i}`, ip));

    expect((await failureOf(service.logIn(email, PASSWORD, ip))).extensions.code).toBe('RATE_LIMITED');
  });

  it('throttles the email, not the spelling: case and spaces do not buy more guesses', async () => {
    const service = await accounts();
    const { email } = await signUpUser(service);
    const ip = freshIp();
    for (let i = 0; i < MAX_FAILURES; i += 1) {
      await failureOf(service.logIn(i % 2 ? email.toUpperCase() : ` ${email} `, `guess ${i}`, ip));
    }

    expect((await failureOf(service.logIn(email, PASSWORD, ip))).extensions.code).toBe('RATE_LIMITED');
  });

  it('counts failures on every replica together, so more replicas do not mean more guesses', async () => {
    const replicas = await Promise.all([accounts(), accounts(), accounts()]);
    const { email } = await signUpUser(replicas[0]);
    const ip = freshIp();
    for (let i = 0; i < MAX_FAILURES; i += 1) {
      await failureOf(replicas[i % replicas.length]!.logIn(email, `guess ${i}`, ip));
    }

    for (const replica of replicas) {
      expect((await failureOf(replica.logIn(email, PASSWORD, ip))).extensions.code).toBe('RATE_LIMITED');
    }
  });

  it('forgets earlier failures from an address after a successful login from it', async () => {
    const service = await accounts();
    const { email, user } = await signUpUser(service);
    const ip = freshIp();
    for (let i = 0; i < MAX_FAILURES - 1; i += 1) await failureOf(service.logIn(email, `guess ${i}`, ip));
    await service.logIn(email, PASSWORD, ip);
    for (let i = 0; i < MAX_FAILURES - 1; i += 1) await failureOf(service.logIn(email, `guess ${i}`, ip));

    expect((await service.logIn(email, PASSWORD, ip)).user.id).toBe(user.id);
  });

  it('limits attempts per client address across different emails, and leaves other addresses alone', async () => {
    const service = await accounts({ attemptsPerAddress: { limit: 3, windowMs: 15 * MINUTE } });
    const { email } = await signUpUser(await accounts());
    const attacker = freshIp();
    for (let i = 0; i < 3; i += 1) await failureOf(service.logIn(freshEmail('victim'), `guess ${i}`, attacker));

    const blocked = await failureOf(service.logIn(email, PASSWORD, attacker));

    expect(blocked.extensions.code).toBe('RATE_LIMITED');
    expect(blocked.extensions.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect((await service.logIn(email, PASSWORD, freshIp())).user.email).toBe(email);
  });
});

describe('sign-ups per client address', () => {
  it('creates at most the hourly number of accounts from one address (IPv6 /64), then RATE_LIMITED', async () => {
    const service = await accounts({ signUpsPerAddress: { limit: 2, windowMs: 60 * MINUTE } });
    const ip = freshIp();
    await service.signUp(freshEmail(), PASSWORD, ip);
    await service.signUp(freshEmail(), PASSWORD, sameNetwork(ip));
    const email = freshEmail();

    const error = await failureOf(service.signUp(email, PASSWORD, sameNetwork(ip)));

    expect(error.extensions).toEqual({ code: 'RATE_LIMITED', retryAfterSeconds: 3_600 });
    expect(error.message).toBe('Too many sign-ups from this address; try again in 3600 s');
    expect(await rowsFor(email)).toEqual([]);
    expect((await service.signUp(email, PASSWORD, freshIp())).user.email).toBe(email);
  });

  it('counts concurrent sign-ups from one address exactly, on several replicas', async () => {
    const replicas = await Promise.all(
      [1, 2].map(() => accounts({ signUpsPerAddress: { limit: 3, windowMs: 60 * MINUTE } })),
    );
    const ip = freshIp();

    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => replicas[i % 2]!.signUp(freshEmail('bulk'), PASSWORD, ip)),
    );

    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
  });

  it('lets the address sign up again an hour later', async () => {
    const service = await accounts({ signUpsPerAddress: { limit: 1, windowMs: 60 * MINUTE } });
    const ip = freshIp();
    await service.signUp(freshEmail(), PASSWORD, ip);
    await failureOf(service.signUp(freshEmail(), PASSWORD, ip));

    clock.advance(60 * MINUTE);

    await expect(service.signUp(freshEmail(), PASSWORD, ip)).resolves.toBeDefined();
  });

  it('does not count a sign-up refused for a bad password', async () => {
    const service = await accounts({ signUpsPerAddress: { limit: 1, windowMs: 60 * MINUTE } });
    const ip = freshIp();
    await failureOf(service.signUp(freshEmail(), 'short', ip));

    await expect(service.signUp(freshEmail(), PASSWORD, ip)).resolves.toBeDefined();
  });
});

describe('the issued access token', () => {
  it('verifies, with the user as subject and the configured issuer, audience and lifetime', async () => {
    const { accessToken, expiresAt, user } = await signUpUser();
    const now = Math.floor(Date.now() / 1000);

    const viewer = await viewerFor(accessToken);

    expect(viewer).toMatchObject({ userId: user.id, token: accessToken, expiresAt });
    expect(viewer.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    const { header, payload } = jwt.decode(accessToken, { complete: true }) as jwt.Jwt & { payload: jwt.JwtPayload };
    expect(header).toMatchObject({ alg: 'ES256', kid: keys.kid });
    expect(payload).toMatchObject({ sub: user.id, iss: ISSUER, aud: AUDIENCE, sid: viewer.sessionId });
    expect(payload.exp).toBeGreaterThanOrEqual(now + TTL_SECONDS - 5);
    expect(payload.exp).toBeLessThanOrEqual(now + TTL_SECONDS + 5);
    expect(expiresAt.getTime()).toBe((payload.exp as number) * 1000);
  });

  it('is different on every login', async () => {
    const service = await accounts();
    const { email } = await signUpUser(service);

    const first = await service.logIn(email, PASSWORD, freshIp());
    const second = await service.logIn(email, PASSWORD, freshIp());

    expect(second.accessToken).not.toBe(first.accessToken);
  });
});

describe('me', () => {
  it('is null for an anonymous request', async () => {
    expect(await (await accounts()).me(null)).toBeNull();
  });

  it('is the signed-in user, as they signed up, without the password hash', async () => {
    const service = await accounts();
    const { accessToken, user } = await signUpUser(service);

    const me = await service.me(await viewerFor(accessToken));

    expect(me).toEqual(user);
  });

  it('refuses a still-valid token once the account behind it is gone (its sessions went with it)', async () => {
    const service = await accounts();
    const { accessToken, user } = await signUpUser(service);
    await pool.query('DELETE FROM users WHERE id = ?', [user.id]);

    expect((await failureOf(service.me(await viewerFor(accessToken)))).extensions.code).toBe('UNAUTHENTICATED');
  });
});

describe('resolveReference', () => {
  it("resolves a user for that user's own viewer", async () => {
    const service = await accounts();
    const { accessToken, user } = await signUpUser(service);

    expect(await service.resolveReference(await viewerFor(accessToken), user.id)).toEqual(user);
  });

  it('resolves another user to null, as if they did not exist', async () => {
    const service = await accounts();
    const alice = await signUpUser(service);
    const bob = await signUpUser(service);

    expect(await service.resolveReference(await viewerFor(bob.accessToken), alice.user.id)).toBeNull();
  });

  it('resolves to null for an anonymous request', async () => {
    const service = await accounts();
    const { user } = await signUpUser(service);

    expect(await service.resolveReference(null, user.id)).toBeNull();
  });
});

describe('migrations', () => {
  it('run again on the same database without error, keeping the data', async () => {
    const { email, user } = await signUpUser();

    const again = await openDatabase({ url: DATABASE_URL, migrations, logger, connectionLimit: 1 });
    try {
      const [applied] = await again.query<RowDataPacket[]>('SELECT id FROM schema_migrations ORDER BY id');
      expect(applied.map((r) => Number(r.id))).toEqual(migrations.map((m) => m.id));
      expect((await new UserRepository(again).findByEmail(email))?.id).toBe(user.id);
    } finally {
      await again.end();
    }
  });

  it('can be applied by two services starting at the same time', async () => {
    const url = `${SERVER}/${DATABASE}_x`;
    try {
      const [first, second] = await Promise.all(
        [1, 2].map(() => openDatabase({ url, migrations, logger, connectionLimit: 1 })),
      );
      try {
        // Each migration applied once, and the schema it built serves both: a user one writes, the other reads.
        const [applied] = await first!.query<RowDataPacket[]>('SELECT id FROM schema_migrations ORDER BY id');
        expect(applied.map((r) => Number(r.id))).toEqual(migrations.map((m) => m.id));
        const user = {
          id: randomUUID(),
          email: freshEmail(),
          passwordHash: 'not a real hash',
          createdAt: new Date(Math.floor(Date.now() / 1000) * 1000),
          emailVerified: false,
        };
        await new UserRepository(first!).insert(user);
        expect(await new UserRepository(second!).findByEmail(user.email)).toEqual(user);
      } finally {
        await Promise.all([first!.end(), second!.end()]);
      }
    } finally {
      const conn = await mysql.createConnection(SERVER);
      await conn.query(`DROP DATABASE IF EXISTS \`${DATABASE}_x\``);
      await conn.end();
    }
  });
});

async function countUsers(): Promise<number> {
  const [[row]] = await pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM users');
  return Number(row?.n);
}
