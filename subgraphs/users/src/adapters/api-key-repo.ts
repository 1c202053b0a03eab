import type { Pool, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { parseScopeClaim, withTransaction, type ApiKeyScope } from '@vidmp3/shared';

export interface ApiKeyRecord {
  id: string;
  userId: string;
  name: string;
  scopes: ApiKeyScope[];
  createdAt: Date;
  lastUsedAt: Date | null;
}

export interface NewApiKey extends Omit<ApiKeyRecord, 'lastUsedAt'> {
  hash: Buffer;
}

interface ApiKeyRow extends RowDataPacket {
  id: string;
  user_id: string;
  name: string;
  scopes: string;
  created_at: Date;
  last_used_at: Date | null;
}

const columns = 'id, user_id, name, scopes, created_at, last_used_at';

const toRecord = (row: ApiKeyRow): ApiKeyRecord => ({
  id: row.id,
  userId: row.user_id,
  name: row.name,
  scopes: parseScopeClaim(row.scopes),
  createdAt: row.created_at,
  lastUsedAt: row.last_used_at,
});

/** The table `api_keys`: one row per live key, found by the sha256 of the key. */
export class ApiKeyRepository {
  constructor(private readonly pool: Pool) {}

  /**
   * Adds a key unless the user has `limit` already; false then (or when the user is gone). The user's row is
   * locked meanwhile, so that concurrent creations cannot both pass the count.
   */
  async insert(key: NewApiKey, limit: number): Promise<boolean> {
    return withTransaction(this.pool, async (conn) => {
      const [users] = await conn.execute<RowDataPacket[]>('SELECT id FROM users WHERE id = ? FOR UPDATE', [key.userId]);
      if (users.length === 0) return false;
      const [counted] = await conn.execute<RowDataPacket[]>('SELECT COUNT(*) AS n FROM api_keys WHERE user_id = ?', [
        key.userId,
      ]);
      if (Number(counted[0]?.n ?? 0) >= limit) return false;
      await conn.execute(
        'INSERT INTO api_keys (id, user_id, name, key_hash, scopes, created_at) VALUES (?, ?, ?, ?, ?, ?)',
        [key.id, key.userId, key.name, key.hash, key.scopes.join(' '), key.createdAt],
      );
      return true;
    });
  }

  /** The user's keys, newest first. */
  async listByUser(userId: string): Promise<ApiKeyRecord[]> {
    const [rows] = await this.pool.execute<ApiKeyRow[]>(
      `SELECT ${columns} FROM api_keys WHERE user_id = ? ORDER BY created_at DESC, id DESC`,
      [userId],
    );
    return rows.map(toRecord);
  }

  async findByHash(hash: Buffer): Promise<ApiKeyRecord | null> {
    const [rows] = await this.pool.execute<ApiKeyRow[]>(`SELECT ${columns} FROM api_keys WHERE key_hash = ?`, [hash]);
    return rows[0] ? toRecord(rows[0]) : null;
  }

  /** Deletes one key of the user; false when there is none by that id (or it is someone else's). */
  async delete(userId: string, id: string): Promise<boolean> {
    const [result] = await this.pool.execute<ResultSetHeader>('DELETE FROM api_keys WHERE id = ? AND user_id = ?', [
      id,
      userId,
    ]);
    return result.affectedRows > 0;
  }

  /** Sets the last use to `at` unless it was recorded after `notBefore` already (one write a minute per key). */
  async touch(id: string, at: Date, notBefore: Date): Promise<void> {
    await this.pool.execute(
      'UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)',
      [at, id, notBefore],
    );
  }
}
