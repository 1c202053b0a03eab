import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { withTransaction } from '@vidmp3/shared';
import { revokeAllOf } from './session-repo.js';

export interface UserRecord {
  id: string;
  email: string;
  createdAt: Date;
  /** The address has been shown to reach its owner (a link mailed to it was used). */
  emailVerified: boolean;
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
  email_verified_at: Date | null;
}

/** The account without its secret, as it may leave the service. */
export const withoutSecret = ({ passwordHash: _secret, ...user }: UserWithSecret): UserRecord => user;

const toRecord = (row: UserRow): UserWithSecret => ({
  id: row.id,
  email: row.email,
  createdAt: row.created_at,
  emailVerified: row.email_verified_at !== null,
  passwordHash: row.password_hash,
});

/** The users table; SQL lives here and nowhere else. */
export class UserRepository {
  constructor(private readonly pool: Pool) {}

  /**
   * Creates the account; `also` writes what goes with it (the verification mail) in the same transaction, so
   * that there is no account whose mail was never asked for.
   */
  async insert(user: UserWithSecret, also?: (conn: PoolConnection) => Promise<void>): Promise<void> {
    try {
      await withTransaction(this.pool, async (conn) => {
        await conn.execute('INSERT INTO users (id, email, password_hash, created_at) VALUES (?, ?, ?, ?)', [
          user.id,
          user.email,
          user.passwordHash,
          user.createdAt,
        ]);
        await also?.(conn);
      });
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

  /**
   * Deletes the user if their password hash is still `currentHash`, and runs `alongside` (the outbox write) in
   * the same transaction. Every other table of this service that refers to users does so with ON DELETE CASCADE,
   * so their rows go with it; the sign-in throttle's counters, keyed by email rather than by account (they exist
   * for emails without one too), are removed here: which addresses the user signed in from goes with them.
   * False when there was no such user (deleted, or the password changed meanwhile).
   */
  async delete(
    user: { id: string; email: string },
    currentHash: string,
    alongside: (conn: PoolConnection) => Promise<void>,
  ): Promise<boolean> {
    return withTransaction(this.pool, async (conn) => {
      const [result] = await conn.execute<ResultSetHeader>('DELETE FROM users WHERE id = ? AND password_hash = ?', [
        user.id,
        currentHash,
      ]);
      if (result.affectedRows === 0) return false;
      // The throttle's keys (services/login-throttle.ts): `email:<email>`, `ip-email:<address>|<email>`,
      // `known:<address>|<email>`.
      const email = user.email.replace(/[\\%_]/g, (c) => `\\${c}`);
      await conn.execute(
        "DELETE FROM auth_throttle WHERE k = ? OR k LIKE CONCAT('ip-email:%|', ?) OR k LIKE CONCAT('known:%|', ?)",
        [`email:${user.email}`, email, email],
      );
      await alongside(conn);
      return true;
    });
  }

  // ---- account mails (services/account-emails.ts): each runs in the caller's transaction ----

  /** The account, locked until the transaction ends. */
  async lockById(conn: PoolConnection, id: string): Promise<UserWithSecret | null> {
    const [rows] = await conn.execute<UserRow[]>('SELECT * FROM users WHERE id = ? FOR UPDATE', [id]);
    return rows[0] ? toRecord(rows[0]) : null;
  }

  /** Marks the address verified (keeps the first time it was). */
  async markEmailVerified(conn: PoolConnection, id: string, at: Date): Promise<void> {
    await conn.execute('UPDATE users SET email_verified_at = COALESCE(email_verified_at, ?) WHERE id = ?', [at, id]);
  }

  /**
   * Sets a new password (a reset: no current one to check) and ends every session of the user. The address
   * is verified too: the reset link reached it.
   */
  async resetPassword(conn: PoolConnection, id: string, newHash: string, at: Date): Promise<void> {
    await conn.execute(
      'UPDATE users SET password_hash = ?, email_verified_at = COALESCE(email_verified_at, ?) WHERE id = ?',
      [newHash, at, id],
    );
    await revokeAllOf(conn, id, at, 'password_reset');
  }

  /** Moves the account to a new, verified address; EmailTakenError when another account has it. */
  async changeEmail(conn: PoolConnection, id: string, email: string, at: Date): Promise<void> {
    try {
      await conn.execute('UPDATE users SET email = ?, email_verified_at = ? WHERE id = ?', [email, at, id]);
    } catch (err) {
      if ((err as { code?: string }).code === 'ER_DUP_ENTRY') throw new EmailTakenError();
      throw err;
    }
  }
}
