import mysql, { type Pool, type PoolConnection } from 'mysql2/promise';
import type { Logger } from './logger.js';
import { connectTo } from './startup.js';

export type { Pool, PoolConnection };

/** One schema change; statements must be safe to run again (`IF NOT EXISTS`), since DDL is not transactional. */
export interface Migration {
  id: number;
  name: string;
  statements: string[];
}

export interface DatabaseOptions {
  /** `mysql://user:pass@host:port/database`: the database (schema) this service owns. */
  url: string;
  migrations: Migration[];
  logger: Logger;
  connectionLimit?: number;
}

/** The database a MySQL URL names (its path), checked to be a plain identifier. */
export function databaseName(url: string): string {
  const name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  if (!/^[A-Za-z0-9_]{1,64}$/.test(name)) throw new Error(`MYSQL_URL must name a database (got "${name}")`);
  return name;
}

/**
 * Opens the service's pool, creating its database when the account may, then applies pending migrations.
 * Several replicas may start at once: a named lock makes them migrate one after another.
 */
export async function openDatabase(options: DatabaseOptions): Promise<Pool> {
  const name = databaseName(options.url);
  const server = new URL(options.url);
  server.pathname = '/';
  const admin = await connectTo('MySQL', options.url, () =>
    mysql.createConnection({ uri: server.toString(), connectTimeout: 5_000 }),
  );
  try {
    await admin.query(`CREATE DATABASE IF NOT EXISTS \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  } catch (err) {
    // Production accounts usually may not create databases; the database then exists already.
    options.logger.debug({ err }, 'could not create database; assuming it exists');
  } finally {
    await admin.end();
  }
  const pool = mysql.createPool({
    uri: options.url,
    connectionLimit: options.connectionLimit ?? 10,
    timezone: 'Z',
    dateStrings: false,
    connectTimeout: 5_000,
    enableKeepAlive: true,
  });
  try {
    await migrate(pool, name, options.migrations, options.logger);
  } catch (err) {
    await pool.end();
    throw err;
  }
  return pool;
}

export async function migrate(pool: Pool, name: string, migrations: Migration[], logger: Logger): Promise<void> {
  const conn = await pool.getConnection();
  const lock = `vidmp3_migrate_${name}`;
  try {
    const [[row]] = await conn.query<mysql.RowDataPacket[]>('SELECT GET_LOCK(?, 60) AS got', [lock]);
    if (row?.got !== 1) throw new Error(`timed out waiting for the migration lock of ${name}`);
    await conn.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      id INT PRIMARY KEY, name VARCHAR(200) NOT NULL,
      applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3))`);
    const [applied] = await conn.query<mysql.RowDataPacket[]>('SELECT id FROM schema_migrations');
    const done = new Set(applied.map((r) => Number(r.id)));
    for (const m of [...migrations].sort((a, b) => a.id - b.id)) {
      if (done.has(m.id)) continue;
      for (const statement of m.statements) await conn.query(statement);
      await conn.query('INSERT INTO schema_migrations (id, name) VALUES (?, ?)', [m.id, m.name]);
      logger.info({ migration: m.id, name: m.name }, 'migration applied');
    }
  } finally {
    await conn.query('SELECT RELEASE_LOCK(?)', [lock]).catch(() => undefined);
    conn.release();
  }
}

/** True when the database answers; for `/readyz`. */
export async function pingDatabase(pool: Pool): Promise<boolean> {
  try {
    await pool.query('SELECT 1');
    return true;
  } catch {
    return false;
  }
}

export type IsolationLevel = 'READ COMMITTED' | 'REPEATABLE READ' | 'SERIALIZABLE';

/**
 * What runs around a commit of `withTransaction`: work a participant deferred to the end of the transaction
 * (e.g. the outbox writes its rows in one statement), and what it does once the transaction has committed (e.g.
 * publishes those rows). Not run when the transaction rolls back.
 */
export interface TransactionHooks {
  /** The pool the transaction's connection came from. */
  pool: Pool;
  /** Run in order, inside the transaction, right before COMMIT; a hook that throws rolls the transaction back. */
  beforeCommit: (() => Promise<void>)[];
  /** Run in order once COMMIT has succeeded; they must not throw (their errors are theirs to handle). */
  afterCommit: (() => void)[];
}

const openTransactions = new WeakMap<Pool | PoolConnection, TransactionHooks>();

/** The hooks of the `withTransaction` that `db` is running, or undefined (a pool, or a connection outside one). */
export function transactionHooks(db: Pool | PoolConnection): TransactionHooks | undefined {
  return openTransactions.get(db);
}

/**
 * The isolation level each connection's session is set to, once a transaction asked for one; keyed by the
 * driver's connection, which outlives the promise wrapper `getConnection` makes anew on every call.
 */
const sessionIsolation = new WeakMap<object, IsolationLevel>();
const sessionOf = (conn: PoolConnection): object => (conn as unknown as { connection?: object }).connection ?? conn;
/** MariaDB's and MySQL's default, which a session that was never set has. */
const SERVER_DEFAULT: IsolationLevel = 'REPEATABLE READ';

/**
 * Sets the session's isolation level only when it differs from what the connection already has: a `SET` per
 * transaction was one more round trip to MariaDB for each of them (and a pooled connection is mostly reused for
 * the same kind of work).
 */
async function useIsolation(conn: PoolConnection, wanted: IsolationLevel | undefined): Promise<void> {
  const current = sessionIsolation.get(sessionOf(conn)) ?? SERVER_DEFAULT;
  const level = wanted ?? SERVER_DEFAULT;
  if (current === level) return;
  await conn.query(`SET SESSION TRANSACTION ISOLATION LEVEL ${level}`);
  sessionIsolation.set(sessionOf(conn), level);
}

/**
 * Runs `fn` in one transaction on one connection: committed if it resolves, rolled back if it throws. Unset,
 * `isolation` is the server's default, REPEATABLE READ.
 */
export async function withTransaction<T>(
  pool: Pool,
  fn: (conn: PoolConnection) => Promise<T>,
  isolation?: IsolationLevel,
): Promise<T> {
  const conn = await pool.getConnection();
  const hooks: TransactionHooks = { pool, beforeCommit: [], afterCommit: [] };
  try {
    await useIsolation(conn, isolation);
    await conn.beginTransaction();
    openTransactions.set(conn, hooks);
    const result = await fn(conn);
    // Hooks may add hooks: run until none is left.
    for (let i = 0; i < hooks.beforeCommit.length; i++) await hooks.beforeCommit[i]!();
    openTransactions.delete(conn);
    await conn.commit();
    for (const hook of hooks.afterCommit) hook();
    return result;
  } catch (err) {
    openTransactions.delete(conn);
    await conn.rollback().catch(() => undefined);
    throw err;
  } finally {
    conn.release();
  }
}
