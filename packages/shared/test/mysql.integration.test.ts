import { randomBytes } from 'node:crypto';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, openDatabase, transactionHooks, withTransaction, type Pool } from '../src/index.js';

const SERVER = 'mysql://root@127.0.0.1:3306';
const DATABASE = `vidmp3_shared_test_${randomBytes(6).toString('hex')}`;
let pool: Pool;

beforeAll(async () => {
  // One connection: every transaction below reuses the same session.
  pool = await openDatabase({
    url: `${SERVER}/${DATABASE}`,
    migrations: [{ id: 1, name: 'notes', statements: ['CREATE TABLE IF NOT EXISTS notes (id INT PRIMARY KEY)'] }],
    logger: createLogger('test', 'silent'),
    connectionLimit: 1,
  });
});

afterAll(async () => {
  await pool.end();
  const conn = await mysql.createConnection(SERVER);
  await conn.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
  await conn.end();
});

/** The isolation level the transaction runs under, as MariaDB reports it. */
async function isolationIn(level?: 'READ COMMITTED' | 'REPEATABLE READ'): Promise<string> {
  return withTransaction(
    pool,
    async (conn) => {
      const [rows] = await conn.query<RowDataPacket[]>('SELECT @@session.tx_isolation AS level');
      return String(rows[0]?.level);
    },
    level,
  );
}

describe('withTransaction', () => {
  it('runs each transaction at the level it asks for, on a session reused by the next', async () => {
    expect(await isolationIn()).toBe('REPEATABLE-READ');
    expect(await isolationIn('READ COMMITTED')).toBe('READ-COMMITTED');
    expect(await isolationIn('READ COMMITTED')).toBe('READ-COMMITTED');
    // Unset means the server's default again, whatever the session ran before.
    expect(await isolationIn()).toBe('REPEATABLE-READ');
  });

  it('runs before-commit hooks inside the transaction and after-commit hooks only once it committed', async () => {
    const order: string[] = [];
    await withTransaction(pool, async (conn) => {
      const hooks = transactionHooks(conn)!;
      hooks.beforeCommit.push(async () => {
        await conn.query('INSERT INTO notes (id) VALUES (1)');
        order.push('before');
      });
      hooks.afterCommit.push(() => order.push('after'));
      order.push('work');
    });
    expect(order).toEqual(['work', 'before', 'after']);
    const [rows] = await pool.query<RowDataPacket[]>('SELECT id FROM notes');
    expect(rows.map((r) => Number(r.id))).toEqual([1]);

    // A failing before-commit hook rolls everything back, and no after-commit hook runs.
    const after: string[] = [];
    await expect(
      withTransaction(pool, async (conn) => {
        await conn.query('INSERT INTO notes (id) VALUES (2)');
        transactionHooks(conn)!.beforeCommit.push(() => Promise.reject(new Error('refused before commit')));
        transactionHooks(conn)!.afterCommit.push(() => after.push('after'));
      }),
    ).rejects.toThrow('refused before commit');
    expect(after).toEqual([]);
    const [left] = await pool.query<RowDataPacket[]>('SELECT id FROM notes ORDER BY id');
    expect(left.map((r) => Number(r.id))).toEqual([1]);
    expect(transactionHooks(pool)).toBeUndefined();
  });
});
