import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { withTransaction } from '@vidmp3/shared';

export type MediaKind = 'VIDEO' | 'AUDIO';

export interface MediaRecord {
  id: string;
  ownerId: string;
  kind: MediaKind;
  filename: string;
  contentType: string;
  byteSize: number;
  sha256: string;
  durationSeconds: number | null;
  sourceMediaId: string | null;
  jobId: string | null;
  createdAt: Date;
}

/** A position in an owner's newest-first list. */
export interface ListPosition {
  createdAt: Date;
  id: string;
}

export class DuplicateJobOutputError extends Error {
  constructor(readonly jobId: string) {
    super(`job ${jobId} already has an output`);
  }
}

interface MediaRow extends RowDataPacket {
  id: string;
  owner_id: string;
  kind: MediaKind;
  filename: string;
  content_type: string;
  byte_size: string | number;
  sha256: string;
  duration_seconds: number | null;
  source_media_id: string | null;
  job_id: string | null;
  created_at: Date;
}

const toRecord = (row: MediaRow): MediaRecord => ({
  id: row.id,
  ownerId: row.owner_id,
  kind: row.kind,
  filename: row.filename,
  contentType: row.content_type,
  byteSize: Number(row.byte_size),
  sha256: row.sha256,
  durationSeconds: row.duration_seconds,
  sourceMediaId: row.source_media_id,
  jobId: row.job_id,
  createdAt: row.created_at,
});

/** The media table; SQL lives here and nowhere else. */
export class MediaRepository {
  constructor(private readonly pool: Pool) {}

  async insert(m: MediaRecord): Promise<void> {
    try {
      await this.pool.execute(
        `INSERT INTO media (id, owner_id, kind, filename, content_type, byte_size, sha256, duration_seconds,
           source_media_id, job_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [
          m.id,
          m.ownerId,
          m.kind,
          m.filename,
          m.contentType,
          m.byteSize,
          m.sha256,
          m.durationSeconds,
          m.sourceMediaId,
          m.jobId,
          m.createdAt,
        ],
      );
    } catch (err) {
      if ((err as { code?: string }).code === 'ER_DUP_ENTRY' && m.jobId) throw new DuplicateJobOutputError(m.jobId);
      throw err;
    }
  }

  /** A media that has not been deleted. */
  async findById(id: string): Promise<MediaRecord | null> {
    const [rows] = await this.pool.execute<MediaRow[]>('SELECT * FROM media WHERE id = ? AND deleted_at IS NULL', [id]);
    return rows[0] ? toRecord(rows[0]) : null;
  }

  /** A media, deleted or not: for references from jobs, which outlive the bytes. */
  async findIncludingDeleted(id: string): Promise<MediaRecord | null> {
    const [rows] = await this.pool.execute<MediaRow[]>('SELECT * FROM media WHERE id = ?', [id]);
    return rows[0] ? toRecord(rows[0]) : null;
  }

  async findByJob(jobId: string): Promise<MediaRecord | null> {
    const [rows] = await this.pool.execute<MediaRow[]>('SELECT * FROM media WHERE job_id = ?', [jobId]);
    return rows[0] ? toRecord(rows[0]) : null;
  }

  /** Up to `limit` of an owner's media after `after`, newest first. */
  async listByOwner(
    ownerId: string,
    options: { kind?: MediaKind | null; after?: ListPosition | null; limit: number },
  ): Promise<MediaRecord[]> {
    const where = ['owner_id = ?', 'deleted_at IS NULL'];
    const params: (string | number | Date)[] = [ownerId];
    if (options.kind) {
      where.push('kind = ?');
      params.push(options.kind);
    }
    if (options.after) {
      where.push('(created_at < ? OR (created_at = ? AND id < ?))');
      params.push(options.after.createdAt, options.after.createdAt, options.after.id);
    }
    // LIMIT is an integer we computed, inlined because prepared statements reject a bound LIMIT in MySQL 8.
    const [rows] = await this.pool.execute<MediaRow[]>(
      `SELECT * FROM media WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id DESC LIMIT ${Math.trunc(options.limit)}`,
      params,
    );
    return rows.map(toRecord);
  }

  /**
   * Marks the media deleted; false when it already was. `announce` runs in the same transaction, only when this
   * call marked it (the outbox message of the deletion: written if and only if the deletion is).
   */
  async markDeleted(id: string, announce?: (conn: PoolConnection) => Promise<void>): Promise<boolean> {
    return withTransaction(this.pool, async (conn) => {
      const [result] = await conn.execute<ResultSetHeader>(
        'UPDATE media SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL',
        [new Date(), id],
      );
      const marked = result.affectedRows > 0;
      if (marked && announce) await announce(conn);
      return marked;
    });
  }

  /** Up to `limit` ids of the owner's media, deleted ones included: for removing a deleted account, batch by batch. */
  async idsOfOwner(ownerId: string, limit: number): Promise<string[]> {
    const [rows] = await this.pool.execute<RowDataPacket[]>(
      `SELECT id FROM media WHERE owner_id = ? ORDER BY id LIMIT ${Math.trunc(limit)}`,
      [ownerId],
    );
    return rows.map((r) => String(r.id));
  }

  /** Removes rows for good (a deleted account's; their blobs are removed first). */
  async remove(ids: string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const [result] = await this.pool.query<ResultSetHeader>('DELETE FROM media WHERE id IN (?)', [ids]);
    return result.affectedRows;
  }
}
