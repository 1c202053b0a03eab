import type { Pool, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { withTransaction } from '@vidmp3/shared';
import { revokeAllOf } from './session-repo.js';

export interface UserRecord {
  id: string;
  email: string;
  createdAt: Date;
}

export interface UserWithSecret extends UserRecord {
  passwordHash: string;
}

export class EmailTakenError extends Error {
  constructor() {
    super('email taken');
  }
}

interface UserRow extends RowDataPacket {
  id: string;
  email: string;
  password_hash: string;
  created_at: Date;
}

/** The account without its secret, as it may leave the service. */
export const withoutSecret = ({ passwordHash: _secret, ...user }: UserWithSecret): UserRecord => user;

const toRecord = (row: UserRow): UserWithSecret => ({
  id: row.id,
  email: row.email,
  createdAt: row.created_at,
  passwordHash: row.password_hash,
});

/** The users table; SQL lives here and nowhere else. */
export class UserRepository {
  constructor(private readonly pool: Pool) {}

  async insert(user: UserWithSecret): Promise<void> {
    try {
      await this.pool.execute('INSERT INTO users (id, email, password_hash, created_at) VALUES (?, ?, ?, ?)', [
        user.id,
        user.email,
        user.passwordHash,
        user.createdAt,
      ]);
    } catch (err) {
      if ((err as { code?: string }).code === 'ER_DUP_ENTRY') throw new EmailTakenError();
      throw err;
    }
  }

  async findByEmail(email: string): Promise<UserWithSecret | null> {
    const [rows] = await this.pool.execute<UserRow[]>('SELECT * FROM users WHERE email = ?', [email]);
    return rows[0] ? toRecord(rows[0]) : null;
  }

  /**
   * The user, if `sessionId` is one of their sessions and has not ended: the users service's check of every
   * access token, in the same query that reads the account.
   */
  async findBySession(id: string, sessionId: string): Promise<UserWithSecret | null> {
    const [rows] = await this.pool.execute<UserRow[]>(
      `SELECT u.* FROM users u JOIN sessions s ON s.user_id = u.id
       WHERE u.id = ? AND s.id = ? AND s.revoked_at IS NULL`,
      [id, sessionId],
    );
    return rows[0] ? toRecord(rows[0]) : null;
  }

  /**
   * The user, if `apiKeyId` is one of their API keys and has not been revoked: the check of every access token
   * issued for a key (a revoked key's row is gone).
   */
  async findByApiKey(id: string, apiKeyId: string): Promise<UserWithSecret | null> {
    const [rows] = await this.pool.execute<UserRow[]>(
      `SELECT u.* FROM users u JOIN api_keys k ON k.user_id = u.id
       WHERE u.id = ? AND k.id = ?`,
      [id, apiKeyId],
    );
    return rows[0] ? toRecord(rows[0]) : null;
  }

  /**
   * Replaces the password hash if it is still `currentHash`, and ends every session of the user, in one
   * transaction: no moment exists where the new password is set and an old session still works. False when
   * the hash had changed meanwhile (a concurrent change).
   */
  async changePassword(id: string, currentHash: string, newHash: string, at: Date): Promise<boolean> {
    return withTransaction(this.pool, async (conn) => {
      const [result] = await conn.execute<ResultSetHeader>(
        'UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?',
        [newHash, id, currentHash],
      );
      if (result.affectedRows === 0) return false;
      await revokeAllOf(conn, id, at, 'password_change');
      return true;
    });
  }

  async findById(id: string): Promise<UserRecord | null> {
    const [rows] = await this.pool.execute<UserRow[]>('SELECT * FROM users WHERE id = ?', [id]);
    return rows[0] ? withoutSecret(toRecord(rows[0])) : null;
  }
}
