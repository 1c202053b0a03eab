import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';

type Db = Pool | PoolConnection;

/** A write for an account that has been deleted (its tombstone exists); thrown by the adapters that check. */
export class AccountDeletedError extends Error {
  override readonly name = 'AccountDeletedError';
  constructor(readonly userId: string) {
    super(`account ${userId} has been deleted`);
  }
}

/** The tombstones of deleted accounts; SQL lives here and nowhere else. */
export const deletedAccountsSql = {
  /** Idempotent: a redelivered event keeps the first time. */
  async add(db: Db, userId: string, at: Date): Promise<void> {
    await db.execute('INSERT IGNORE INTO deleted_accounts (user_id, deleted_at) VALUES (?, ?)', [userId, at]);
  },

  /** `has` as an SQL expression (1 or 0) for another statement to read along; its one parameter is the user id. */
  hasExpression: 'EXISTS (SELECT 1 FROM deleted_accounts WHERE user_id = ?)',

  async has(db: Db, userId: string): Promise<boolean> {
    const [rows] = await db.execute<RowDataPacket[]>('SELECT 1 FROM deleted_accounts WHERE user_id = ?', [userId]);
    return rows.length > 0;
  },
};

export class DeletedAccountsRepository {
  constructor(private readonly pool: Pool) {}

  add(userId: string, at: Date): Promise<void> {
    return deletedAccountsSql.add(this.pool, userId, at);
  }

  has(userId: string): Promise<boolean> {
    return deletedAccountsSql.has(this.pool, userId);
  }
}
