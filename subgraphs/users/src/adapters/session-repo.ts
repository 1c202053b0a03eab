import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { withTransaction } from '@vidmp3/shared';
import type { PresentedToken } from '../services/session-policy.js';

/** Why a session ended; kept on the row for whoever investigates. */
export type RevokeReason =
  'logout' | 'logout_everywhere' | 'password_change' | 'password_reset' | 'refresh_reuse' | 'ended_by_user';

export interface NewSession {
  id: string;
  userId: string;
  createdAt: Date;
  ip: string;
}

export interface NewRefreshToken {
  hash: Buffer;
  issuedAt: Date;
  expiresAt: Date;
}

/** A presented refresh token, its session locked until the transaction ends. */
export interface LockedToken extends PresentedToken {
  sessionId: string;
  userId: string;
}

interface LockedRow extends RowDataPacket {
  session_id: string;
  user_id: string;
  token_expires_at: Date;
  spent_at: Date | null;
  created_at: Date;
  revoked_at: Date | null;
}

/** A session still going, as its user sees it (`User.sessions`). */
export interface ActiveSession {
  id: string;
  createdAt: Date;
  lastUsedAt: Date;
  lastUsedIp: string;
}

interface ActiveRow extends RowDataPacket {
  id: string;
  created_at: Date;
  last_used_at: Date;
  last_used_ip: string;
}

const affected = (result: ResultSetHeader) => result.affectedRows;

/**
 * The tables `sessions` (one row per sign-in: the token family) and `refresh_tokens` (every token of each
 * family, by sha256; spent ones are kept until their own expiry, so that reuse is recognised).
 */
export class SessionRepository {
  constructor(private readonly pool: Pool) {}

  /**
   * Creates a session and its first refresh token, but only while the user's password hash is still the one
   * the caller checked: a sign-in racing a password change must not leave a session the change did not end.
   * False when it changed (or the user is gone).
   */
  async create(session: NewSession, token: NewRefreshToken, passwordHash: string): Promise<boolean> {
    return withTransaction(this.pool, async (conn) => {
      const [inserted] = await conn.execute<ResultSetHeader>(
        `INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, created_ip, last_used_ip)
         SELECT ?, id, ?, ?, ?, ?, ? FROM users WHERE id = ? AND password_hash = ?`,
        [
          session.id,
          session.createdAt,
          session.createdAt,
          token.expiresAt,
          session.ip,
          session.ip,
          session.userId,
          passwordHash,
        ],
      );
      if (affected(inserted) === 0) return false;
      await insertToken(conn, session.id, token);
      return true;
    });
  }

  /**
   * Runs `decide` on the presented token and its session, both locked (a concurrent refresh of the same token,
   * or a revocation of the session, waits), and commits what it did, also when it then refuses the token.
   */
  async withPresentedToken<T>(
    hash: Buffer,
    decide: (found: LockedToken | null, tx: SessionTx) => Promise<T>,
  ): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.presentedTokenTransaction(hash, decide);
      } catch (err) {
        // InnoDB may pick this transaction as a deadlock victim (against a sweep or a revocation of many
        // sessions); nothing of it was committed, so it is safe to run again.
        if ((err as { code?: string }).code !== 'ER_LOCK_DEADLOCK' || attempt >= 3) throw err;
      }
    }
  }

  private async presentedTokenTransaction<T>(
    hash: Buffer,
    decide: (found: LockedToken | null, tx: SessionTx) => Promise<T>,
  ): Promise<T> {
    return withTransaction(this.pool, async (conn) => {
      const [rows] = await conn.execute<LockedRow[]>(
        `SELECT t.session_id, s.user_id, t.expires_at AS token_expires_at, t.spent_at, s.created_at, s.revoked_at
         FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
         WHERE t.token_hash = ? FOR UPDATE`,
        [hash],
      );
      const row = rows[0];
      const found: LockedToken | null = row
        ? {
            sessionId: row.session_id,
            userId: row.user_id,
            token: { expiresAt: row.token_expires_at, spentAt: row.spent_at },
            session: { createdAt: row.created_at, revokedAt: row.revoked_at },
          }
        : null;
      return decide(found, new SessionTx(conn));
    });
  }

  /** The user's sessions neither ended nor expired at `now`, most recently used first. */
  async listActive(userId: string, now: Date, limit: number): Promise<ActiveSession[]> {
    const [rows] = await this.pool.query<ActiveRow[]>(
      `SELECT id, created_at, last_used_at, last_used_ip FROM sessions
       WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?
       ORDER BY last_used_at DESC, id LIMIT ?`,
      [userId, now, limit],
    );
    return rows.map((r) => ({
      id: r.id,
      createdAt: r.created_at,
      lastUsedAt: r.last_used_at,
      lastUsedIp: r.last_used_ip,
    }));
  }

  /** Ends one session of a user; false when it had ended already (or is not theirs). */
  async revoke(userId: string, sessionId: string, at: Date, reason: RevokeReason): Promise<boolean> {
    const [result] = await this.pool.execute<ResultSetHeader>(
      `UPDATE sessions SET revoked_at = ?, revoked_reason = ?
       WHERE id = ? AND user_id = ? AND revoked_at IS NULL`,
      [at, reason, sessionId, userId],
    );
    return affected(result) > 0;
  }

  /** Ends every session of a user; how many were still going. */
  async revokeAll(userId: string, at: Date, reason: RevokeReason): Promise<number> {
    return revokeAllOf(this.pool, userId, at, reason);
  }

  /**
   * Forgets what can no longer matter: sessions past their expiry or ended a day ago (their tokens go with
   * them), and refresh tokens past their own expiry (a spent one presented after that is merely unknown).
   */
  async sweep(now: Date): Promise<void> {
    const dayAgo = new Date(now.getTime() - 86_400_000);
    await this.pool.execute('DELETE FROM sessions WHERE expires_at < ? LIMIT 1000', [now]);
    await this.pool.execute('DELETE FROM sessions WHERE revoked_at < ? LIMIT 1000', [dayAgo]);
    await this.pool.execute('DELETE FROM refresh_tokens WHERE expires_at < ? LIMIT 1000', [now]);
  }
}

/** What a refresh may write while it holds the token's locks. */
export class SessionTx {
  constructor(private readonly conn: PoolConnection) {}

  /** Spends the presented token and adds the next one of its chain; the session moves its expiry along. */
  async rotate(sessionId: string, spent: Buffer, next: NewRefreshToken, ip: string): Promise<void> {
    await this.conn.execute('UPDATE refresh_tokens SET spent_at = ? WHERE token_hash = ?', [next.issuedAt, spent]);
    await insertToken(this.conn, sessionId, next);
    await this.conn.execute('UPDATE sessions SET last_used_at = ?, last_used_ip = ?, expires_at = ? WHERE id = ?', [
      next.issuedAt,
      ip,
      next.expiresAt,
      sessionId,
    ]);
  }

  async revoke(sessionId: string, at: Date, reason: RevokeReason): Promise<void> {
    await this.conn.execute('UPDATE sessions SET revoked_at = ?, revoked_reason = ? WHERE id = ?', [
      at,
      reason,
      sessionId,
    ]);
  }
}

async function insertToken(conn: PoolConnection, sessionId: string, token: NewRefreshToken): Promise<void> {
  await conn.execute('INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at) VALUES (?, ?, ?, ?)', [
    token.hash,
    sessionId,
    token.issuedAt,
    token.expiresAt,
  ]);
}

/** Ends every session of a user, on the pool or inside a transaction (a password change). */
export async function revokeAllOf(
  db: Pool | PoolConnection,
  userId: string,
  at: Date,
  reason: RevokeReason,
): Promise<number> {
  const [result] = await db.execute<ResultSetHeader>(
    'UPDATE sessions SET revoked_at = ?, revoked_reason = ? WHERE user_id = ? AND revoked_at IS NULL',
    [at, reason, userId],
  );
  return affected(result);
}
