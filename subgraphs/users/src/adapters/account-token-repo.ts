import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { withTransaction } from '@vidmp3/shared';
import type { StoredToken, TokenPurpose } from '../services/account-token-policy.js';

type Db = Pool | PoolConnection;

export interface NewAccountToken {
  hash: Buffer;
  purpose: TokenPurpose;
  userId: string;
  /** For `change-email`: the address the account moves to once the link is used. */
  newEmail: string | null;
  createdAt: Date;
  expiresAt: Date;
}

/** A presented token as stored, with its account's id. */
export interface FoundToken extends StoredToken {
  userId: string;
  newEmail: string | null;
}

interface TokenRow extends RowDataPacket {
  purpose: string;
  user_id: string;
  new_email: string | null;
  expires_at: Date;
  used_at: Date | null;
}

const toFound = (row: TokenRow): FoundToken => ({
  purpose: row.purpose,
  userId: row.user_id,
  newEmail: row.new_email,
  expiresAt: row.expires_at,
  usedAt: row.used_at,
});

/** The table `account_tokens` (single-use links mailed to an account, by sha256); SQL lives here. */
export class AccountTokenRepository {
  constructor(readonly pool: Pool) {}

  /** Writes a new token, in the caller's transaction (with the mail that carries it). */
  async insert(db: Db, token: NewAccountToken): Promise<void> {
    await db.execute(
      `INSERT INTO account_tokens (token_hash, purpose, user_id, new_email, created_at, expires_at)
       VALUES (?, ?, ?, ?, ?, ?)`,
      [token.hash, token.purpose, token.userId, token.newEmail, token.createdAt, token.expiresAt],
    );
  }

  /** The token, unlocked: a look before the real use (which locks it). */
  async find(hash: Buffer): Promise<FoundToken | null> {
    const [rows] = await this.pool.execute<TokenRow[]>(
      'SELECT purpose, user_id, new_email, expires_at, used_at FROM account_tokens WHERE token_hash = ?',
      [hash],
    );
    return rows[0] ? toFound(rows[0]) : null;
  }

  /**
   * Runs `use` on the presented token, locked (a concurrent use of the same token waits, then finds it used),
   * in one transaction with what `use` writes; what it throws rolls everything back.
   */
  async withPresentedToken<T>(
    hash: Buffer,
    use: (found: FoundToken | null, conn: PoolConnection) => Promise<T>,
  ): Promise<T> {
    return withTransaction(this.pool, async (conn) => {
      const [rows] = await conn.execute<TokenRow[]>(
        'SELECT purpose, user_id, new_email, expires_at, used_at FROM account_tokens WHERE token_hash = ? FOR UPDATE',
        [hash],
      );
      return use(rows[0] ? toFound(rows[0]) : null, conn);
    });
  }

  /** Marks every unused token of the user for these purposes used (the one presented, and any older link). */
  async spendAll(conn: PoolConnection, userId: string, purposes: TokenPurpose[], at: Date): Promise<number> {
    const [result] = await conn.query<ResultSetHeader>(
      'UPDATE account_tokens SET used_at = ? WHERE user_id = ? AND purpose IN (?) AND used_at IS NULL',
      [at, userId, purposes],
    );
    return result.affectedRows;
  }

  /** Forgets tokens past their expiry (used or not, they can only be refused). */
  async sweep(now: Date): Promise<number> {
    const [result] = await this.pool.execute<ResultSetHeader>(
      'DELETE FROM account_tokens WHERE expires_at < ? LIMIT 1000',
      [now],
    );
    return result.affectedRows;
  }
}
