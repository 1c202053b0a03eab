import { withTransaction, type Pool, type PoolConnection } from '@vidmp3/shared';
import type { ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { AccountDeletedError, deletedAccountsSql } from './deleted-accounts-repo.js';

export type ReservationKind = 'UPLOAD' | 'OUTPUT';

/** What counts against an owner's storage quota right now. */
export interface StorageUse {
  /** Bytes of media stored (deleted media no longer count). */
  storedBytes: number;
  /** Bytes held by writes in progress (other than the one asking), which are not stored yet. */
  reservedBytes: number;
  /** Uploads in progress (live UPLOAD reservations, the one asking excluded). */
  uploads: number;
}

/** A refusal: which quota, and the use it was measured against. */
export type Refusal = { quota: 'storageBytes' | 'concurrentUploads'; used: number };

export interface ReserveRequest {
  id: string;
  ownerId: string;
  kind: ReservationKind;
  /** Bytes the write has received so far (or announced): it is refused unless these fit. */
  neededBytes: number;
  /** Bytes to hold beyond `neededBytes` (at most half the room left), so the next chunks need no round trip. */
  aheadBytes: number;
  storageLimitBytes: number;
  /** For a new UPLOAD: how many may run at once. */
  concurrentUploadsLimit: number | null;
  ttlMs: number;
}

const LOCK_RETRIES = 3;

/** Storage reservations and usage; SQL lives here and nowhere else. */
export class QuotaRepository {
  constructor(private readonly pool: Pool) {}

  /**
   * Reserves, under the owner's lock, `neededBytes` (plus up to `aheadBytes` more when free) for the write
   * `id`, creating its reservation or growing it; answers the bytes now held, or why it was refused.
   * AccountDeletedError when the owner's account has been deleted: a write still streaming stops at its next
   * reservation, and nothing of the owner is written back (the transaction rolls back).
   */
  async reserve(request: ReserveRequest): Promise<{ reservedBytes: number } | Refusal> {
    return this.underOwnerLock(request.ownerId, async (conn) => {
      // Read under the owner's lock, which the account's deletion takes too (forgetOwner): either this write's
      // rows exist before the deletion removes the owner's, or it sees the tombstone.
      const { deleted, held: isHeld, ...use } = await this.measure(conn, request.ownerId, request.id);
      if (deleted) throw new AccountDeletedError(request.ownerId);
      const isNew = !isHeld;
      if (isNew && request.kind === 'UPLOAD' && request.concurrentUploadsLimit !== null) {
        if (use.uploads >= request.concurrentUploadsLimit) return { quota: 'concurrentUploads', used: use.uploads };
      }
      const used = use.storedBytes + use.reservedBytes;
      const available = request.storageLimitBytes - used;
      // A new write needs room for at least one byte: at or over the limit, it is refused before it is read.
      if (request.neededBytes > available || (isNew && available <= 0)) return { quota: 'storageBytes', used };
      // Ahead by at most half of what is left, so near the limit one write does not hold room another needs.
      // A write that has not received anything yet holds nothing: it may never send a byte.
      const ahead =
        request.neededBytes === 0 ? 0 : Math.min(request.aheadBytes, Math.floor((available - request.neededBytes) / 2));
      const reservedBytes = request.neededBytes + ahead;
      await conn.execute(
        `INSERT INTO storage_reservations (id, owner_id, kind, reserved_bytes, expires_at)
           VALUES (?, ?, ?, ?, NOW(3) + INTERVAL ? MICROSECOND)
         ON DUPLICATE KEY UPDATE reserved_bytes = VALUES(reserved_bytes), expires_at = VALUES(expires_at)`,
        [request.id, request.ownerId, request.kind, reservedBytes, request.ttlMs * 1000],
      );
      return { reservedBytes };
    });
  }

  /** Keeps a live write's reservation from expiring. */
  async keepAlive(id: string, ttlMs: number): Promise<void> {
    await this.pool.execute(
      'UPDATE storage_reservations SET expires_at = NOW(3) + INTERVAL ? MICROSECOND WHERE id = ?',
      [ttlMs * 1000, id],
    );
  }

  async release(id: string): Promise<void> {
    await this.pool.execute('DELETE FROM storage_reservations WHERE id = ?', [id]);
  }

  /** A deleted account's reservations and lock row (its tombstone written before: none come back). */
  async forgetOwner(ownerId: string): Promise<void> {
    await withTransaction(this.pool, async (conn) => {
      await conn.execute('DELETE FROM quota_owners WHERE owner_id = ?', [ownerId]);
      await conn.execute('DELETE FROM storage_reservations WHERE owner_id = ?', [ownerId]);
    });
  }

  /** The owner's stored bytes and uploads in progress, for `Usage`. */
  async usage(ownerId: string): Promise<{ storedBytes: number; uploadsInProgress: number }> {
    const use = await this.measure(this.pool, ownerId, null);
    return { storedBytes: use.storedBytes, uploadsInProgress: use.uploads };
  }

  /**
   * The owner's use, excluding the write `excludeId`, in one round trip; with whether that write holds a live
   * reservation already and whether the owner's account has been deleted.
   */
  private async measure(
    db: Pool | PoolConnection,
    ownerId: string,
    excludeId: string | null,
  ): Promise<StorageUse & { held: boolean; deleted: boolean }> {
    const exclude = excludeId ?? '';
    const [rows] = await db.execute<RowDataPacket[]>(
      `SELECT
         (SELECT COALESCE(SUM(byte_size), 0) FROM media WHERE owner_id = ? AND deleted_at IS NULL) AS stored,
         COALESCE(SUM(IF(id <> ?, reserved_bytes, 0)), 0) AS reserved,
         COALESCE(SUM(kind = 'UPLOAD' AND id <> ?), 0) AS uploads,
         COALESCE(SUM(id = ?), 0) AS held,
         ${deletedAccountsSql.hasExpression} AS deleted
       FROM storage_reservations WHERE owner_id = ? AND expires_at > NOW(3)`,
      [ownerId, exclude, exclude, exclude, ownerId, ownerId],
    );
    const row = rows[0];
    return {
      storedBytes: Number(row?.stored ?? 0),
      reservedBytes: Number(row?.reserved ?? 0),
      uploads: Number(row?.uploads ?? 0),
      held: Number(row?.held ?? 0) > 0,
      deleted: Number(row?.deleted ?? 0) > 0,
    };
  }

  /**
   * Runs `fn` holding the owner's row lock. The upsert takes the row's exclusive lock at once (an INSERT IGNORE
   * followed by SELECT … FOR UPDATE would take a shared lock first, and two such writers deadlock).
   */
  private async underOwnerLock<T>(ownerId: string, fn: (conn: PoolConnection) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await withTransaction(
          this.pool,
          async (conn) => {
            await conn.execute<ResultSetHeader>(
              'INSERT INTO quota_owners (owner_id) VALUES (?) ON DUPLICATE KEY UPDATE owner_id = owner_id',
              [ownerId],
            );
            // Expired reservations (their writer's replica died) are swept while the lock is held anyway.
            await conn.execute('DELETE FROM storage_reservations WHERE owner_id = ? AND expires_at <= NOW(3)', [
              ownerId,
            ]);
            return fn(conn);
          },
          'READ COMMITTED',
        );
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (attempt >= LOCK_RETRIES || (code !== 'ER_LOCK_DEADLOCK' && code !== 'ER_LOCK_WAIT_TIMEOUT')) throw err;
      }
    }
  }
}
