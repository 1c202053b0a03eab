import { randomBytes } from 'node:crypto';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, openDatabase, type Pool } from '@vidmp3/shared';
import { MySqlCounterStore } from '../src/adapters/throttle-store.js';
import { migrations } from '../src/migrations.js';
import type { Counter } from '../src/services/throttle-policy.js';

const SERVER = 'mysql://root@127.0.0.1:3306';
const DATABASE = `vidmp3_users_throttle_test_${randomBytes(6).toString('hex')}`;
const NOW = Date.UTC(2026, 0, 1);

let pool: Pool;

beforeAll(async () => {
  pool = await openDatabase({
    url: `${SERVER}/${DATABASE}`,
    migrations,
    logger: createLogger('test', 'silent'),
    connectionLimit: 6,
  });
});

afterAll(async () => {
  await pool?.end();
  const conn = await mysql.createConnection(SERVER);
  await conn.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
  await conn.end();
});

const fresh = (label: string) => `${label}:${randomBytes(4).toString('hex')}`;

/** Adds one to each of `keys`, reading and writing inside the store's transaction. */
const increment = (store: MySqlCounterStore, keys: string[]) =>
  store.update(
    keys,
    () => NOW,
    (counters) => {
      const writes = new Map<string, Counter | null>();
      for (const key of keys) {
        const count = (counters.get(key)?.count ?? 0) + 1;
        writes.set(key, { count, blockedUntil: 0, expiresAt: NOW + 60_000 });
      }
      return [undefined, writes];
    },
  );

async function countOf(key: string): Promise<number | undefined> {
  const [rows] = await pool.query<RowDataPacket[]>('SELECT count FROM auth_throttle WHERE k = ?', [key]);
  return rows[0] ? Number(rows[0].count) : undefined;
}

describe('MySqlCounterStore', () => {
  it('loses no update when many replicas update overlapping keys at once, and never deadlocks', async () => {
    const [a, b, c] = [fresh('a'), fresh('b'), fresh('c')];
    const replicas = [new MySqlCounterStore(pool), new MySqlCounterStore(pool), new MySqlCounterStore(pool)];
    // Every order of overlapping key sets: without one locking order these deadlock.
    const keySets = [
      [a, b, c],
      [c, b, a],
      [b, a],
      [c, a],
    ];

    await Promise.all(
      Array.from({ length: 40 }, (_, i) => increment(replicas[i % replicas.length]!, keySets[i % keySets.length]!)),
    );

    expect(await countOf(a)).toBe(40);
    expect(await countOf(b)).toBe(30);
    expect(await countOf(c)).toBe(30);
  });

  it('deletes a counter the decision forgets', async () => {
    const store = new MySqlCounterStore(pool);
    const key = fresh('gone');
    await increment(store, [key]);

    await store.update(
      [key],
      () => NOW,
      () => [undefined, new Map([[key, null]])],
    );

    expect(await countOf(key)).toBeUndefined();
  });

  it('hands the decision the counters as stored (expiry is the policy’s call), and sweeps expired ones away', async () => {
    const store = new MySqlCounterStore(pool);
    const key = fresh('old');
    await increment(store, [key]); // expires at NOW + 60 s

    const seen = await store.update(
      [key],
      () => NOW + 60_000,
      (counters) => [counters.get(key), new Map<string, Counter | null>()],
    );
    await store.sweep(NOW + 60_001);

    expect(seen).toMatchObject({ count: 1 }); // the store does not judge expiry: the policy does
    expect(await countOf(key)).toBeUndefined();
  });

  it('reads the clock only once it holds the locks, so an attempt that waited does not decide with an old time', async () => {
    const store = new MySqlCounterStore(pool);
    const key = fresh('waited');
    await increment(store, [key]);
    const holder = await pool.getConnection();
    const events: string[] = [];
    try {
      await holder.beginTransaction();
      await holder.query('SELECT * FROM auth_throttle WHERE k = ? FOR UPDATE', [key]);
      const waiting = store.update(
        [key],
        () => {
          events.push('clock read');
          return NOW;
        },
        () => [undefined, new Map<string, Counter | null>()],
      );
      // Until the update's statement on this key is running on the server: with the row locked by the holder,
      // it can only be waiting for that lock. (INNODB_TRX's 'LOCK WAIT' state proved unreliable for this.)
      await expect
        .poll(
          async () => {
            const [rows] = await pool.query<RowDataPacket[]>(
              `SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST
               WHERE ID <> CONNECTION_ID() AND COMMAND = 'Query' AND INFO LIKE '%auth_throttle%' AND INFO LIKE ?`,
              [`%${key}%`],
            );
            return Number(rows[0]?.n);
          },
          { timeout: 10_000 },
        )
        .toBeGreaterThan(0);
      events.push('lock released');
      await holder.commit();
      await waiting;
    } finally {
      holder.release();
    }

    expect(events).toEqual(['lock released', 'clock read']);
  });
});
