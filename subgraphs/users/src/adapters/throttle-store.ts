import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import { withTransaction } from '@vidmp3/shared';
import type { Counter } from '../services/throttle-policy.js';

/** What a decision wants written back: a counter, or null to forget the key. Keys left out stay as they are. */
export type CounterWrites = Map<string, Counter | null>;

/** Decides from the current counters and the time, read once the counters are locked. */
export type Decide<T> = (counters: ReadonlyMap<string, Counter>, now: number) => [T, CounterWrites];

/**
 * The throttle's counters, read and written atomically: `update` hands `decide` the current counters of
 * `keys` while no one else can change them, then writes what it returns. This is what makes twelve
 * concurrent guesses take their turns instead of all reading "0 failures so far". The clock is read after
 * the locks are taken: a time read before waiting for them would be older than what the attempt ahead wrote.
 */
export interface CounterStore {
  /** `now` is the caller's clock (epoch ms), the one the counters' times are in. */
  /** `clock` is the caller's (epoch ms), the one the counters' times are in. */
  update<T>(keys: string[], clock: () => number, decide: Decide<T>): Promise<T>;
}

/** One process's counters (unit tests, tools); `update` runs synchronously, so it is atomic. */
export class MemoryCounterStore implements CounterStore {
  private readonly counters = new Map<string, Counter>();

  update<T>(keys: string[], clock: () => number, decide: Decide<T>): Promise<T> {
    const current = new Map<string, Counter>();
    for (const key of keys) {
      const counter = this.counters.get(key);
      if (counter) current.set(key, counter);
    }
    const [result, writes] = decide(current, clock());
    for (const [key, counter] of writes) {
      if (counter) this.counters.set(key, counter);
      else this.counters.delete(key);
    }
    return Promise.resolve(result);
  }
}

interface CounterRow extends RowDataPacket {
  k: string;
  count: number;
  blocked_until: number | string;
  expires_at: number | string;
}

const DEADLOCK = 'ER_LOCK_DEADLOCK';

/**
 * The counters in the users database (table `auth_throttle`), shared by every replica so that N replicas
 * do not give an attacker N budgets. Times are the caller's clock (epoch ms), never the database's.
 */
export class MySqlCounterStore implements CounterStore {
  private updates = 0;

  constructor(
    private readonly pool: Pool,
    /** Rows past their expiry are deleted every this many updates. */
    private readonly sweepEvery = 200,
  ) {}

  async update<T>(keys: string[], clock: () => number, decide: Decide<T>): Promise<T> {
    // Locked in one order everywhere, so two attempts sharing keys queue instead of deadlocking.
    const sorted = [...new Set(keys)].sort();
    for (let attempt = 1; ; attempt += 1) {
      try {
        const result = await this.transaction(sorted, clock, decide);
        this.updates += 1;
        // Housekeeping: a failed sweep is retried by the next one, and must not fail the attempt.
        if (this.updates % this.sweepEvery === 0) await this.sweep(clock()).catch(() => undefined);
        return result;
      } catch (err) {
        // InnoDB may still pick a victim when new rows are inserted side by side; the attempt is safe to redo.
        if ((err as { code?: string }).code !== DEADLOCK || attempt >= 3) throw err;
      }
    }
  }

  private async transaction<T>(keys: string[], clock: () => number, decide: Decide<T>): Promise<T> {
    // READ COMMITTED: no gap locks, so attempts on different keys never wait for each other.
    return withTransaction(
      this.pool,
      async (conn) => {
        // Creates the missing rows and locks all of them (exclusively: INSERT IGNORE would take shared locks,
        // and two shared holders both upgrading is a deadlock).
        await conn.query(
          `INSERT INTO auth_throttle (k, count, blocked_until, expires_at) VALUES ${keys.map(() => '(?, 0, 0, 0)').join(', ')}
         ON DUPLICATE KEY UPDATE k = k`,
          keys,
        );
        const [rows] = await conn.query<CounterRow[]>(
          'SELECT k, count, blocked_until, expires_at FROM auth_throttle WHERE k IN (?) FOR UPDATE',
          [keys],
        );
        const current = new Map<string, Counter>();
        for (const row of rows) {
          const counter = {
            count: row.count,
            blockedUntil: Number(row.blocked_until),
            expiresAt: Number(row.expires_at),
          };
          if (counter.expiresAt > 0) current.set(row.k, counter);
        }
        const [result, writes] = decide(current, clock());
        await this.write(conn, writes);
        return result;
      },
      'READ COMMITTED',
    );
  }

  private async write(conn: PoolConnection, writes: CounterWrites): Promise<void> {
    for (const [key, counter] of writes) {
      if (counter) {
        await conn.execute('UPDATE auth_throttle SET count = ?, blocked_until = ?, expires_at = ? WHERE k = ?', [
          counter.count,
          counter.blockedUntil,
          counter.expiresAt,
          key,
        ]);
      } else {
        await conn.execute('DELETE FROM auth_throttle WHERE k = ?', [key]);
      }
    }
  }

  /** Forgets counters past their expiry (every attempt leaves a row per address and email tried). */
  async sweep(now: number): Promise<void> {
    await this.pool.execute('DELETE FROM auth_throttle WHERE expires_at < ? LIMIT 1000', [now]);
  }
}
