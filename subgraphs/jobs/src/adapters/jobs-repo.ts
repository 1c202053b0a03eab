import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { outboxSql, type ConversionOptions } from '@vidmp3/shared';

import type { JobStatus } from '../services/job-state.js';

export { FINAL_STATUSES, isFinal, type JobStatus } from '../services/job-state.js';

export interface JobRecord {
  id: string;
  ownerId: string;
  inputMediaId: string;
  status: JobStatus;
  progress: number;
  attempts: number;
  options: ConversionOptions;
  inputDurationSeconds: number;
  outputMediaId: string | null;
  errorCode: string | null;
  errorMessage: string | null;
  claimedBy: string | null;
  createdAt: Date;
  queuedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** When the current attempt's request was written to the outbox; null while the job waits its turn. */
  dispatchedAt: Date | null;
  /** The last change of any kind (ms precision): `Job.updatedAt`, which clients measure delivery latency with. */
  updatedAt: Date;
  /** RUNNING: until when the attempt is its worker's unless it reports (job-state.ts); null otherwise. */
  leaseExpiresAt: Date | null;
  /** How many times the sweeper re-sent the current request (each wait doubles: job-state.ts `sweep`). */
  sweeps: number;
}

export type JobPatch = Partial<
  Pick<
    JobRecord,
    | 'status'
    | 'progress'
    | 'attempts'
    | 'outputMediaId'
    | 'errorCode'
    | 'errorMessage'
    | 'claimedBy'
    | 'queuedAt'
    | 'startedAt'
    | 'finishedAt'
    | 'dispatchedAt'
    | 'leaseExpiresAt'
    | 'sweeps'
  >
>;

type Db = Pool | PoolConnection;

/** Whether a patch changes anything a user sees (a renewed lease alone does not). */
export const isVisible = (patch: JobPatch): boolean => Object.keys(patch).some((k) => k !== 'leaseExpiresAt');

interface JobRow extends RowDataPacket {
  id: string;
  owner_id: string;
  input_media_id: string;
  status: JobStatus;
  progress: number;
  attempts: number;
  options: string | ConversionOptions;
  input_duration_seconds: number;
  output_media_id: string | null;
  error_code: string | null;
  error_message: string | null;
  claimed_by: string | null;
  created_at: Date;
  queued_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  dispatched_at: Date | null;
  updated_at: Date;
  lease_expires_at: Date | null;
  sweeps: number;
}

const toRecord = (r: JobRow): JobRecord => ({
  id: r.id,
  ownerId: r.owner_id,
  inputMediaId: r.input_media_id,
  status: r.status,
  progress: r.progress,
  attempts: r.attempts,
  // MariaDB's JSON is LONGTEXT underneath: the driver hands back a string.
  options: typeof r.options === 'string' ? (JSON.parse(r.options) as ConversionOptions) : r.options,
  inputDurationSeconds: r.input_duration_seconds,
  outputMediaId: r.output_media_id,
  errorCode: r.error_code,
  errorMessage: r.error_message,
  claimedBy: r.claimed_by,
  createdAt: r.created_at,
  queuedAt: r.queued_at,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  dispatchedAt: r.dispatched_at,
  updatedAt: r.updated_at,
  leaseExpiresAt: r.lease_expires_at,
  sweeps: r.sweeps,
});

const columns: Record<keyof JobPatch, string> = {
  status: 'status',
  progress: 'progress',
  attempts: 'attempts',
  outputMediaId: 'output_media_id',
  errorCode: 'error_code',
  errorMessage: 'error_message',
  claimedBy: 'claimed_by',
  queuedAt: 'queued_at',
  startedAt: 'started_at',
  finishedAt: 'finished_at',
  dispatchedAt: 'dispatched_at',
  leaseExpiresAt: 'lease_expires_at',
  sweeps: 'sweeps',
};

/**
 * A user's QUEUED and RUNNING jobs: how many there are, how many have their request in RabbitMQ or are running
 * (`dispatched`), and how many wait for their turn (QUEUED, no request sent yet).
 */
export interface ActiveJobs {
  active: number;
  dispatched: number;
  waiting: number;
}

const ACTIVE_COLUMNS = `COUNT(*) AS active, COALESCE(SUM(dispatched_at IS NOT NULL), 0) AS dispatched,
  COALESCE(SUM(status = 'QUEUED' AND dispatched_at IS NULL), 0) AS waiting`;
const ACTIVE_OF_OWNER = "WHERE owner_id = ? AND status IN ('QUEUED', 'RUNNING')";
const activeJobs = (row: RowDataPacket | undefined): ActiveJobs => ({
  active: Number(row?.active ?? 0),
  dispatched: Number(row?.dispatched ?? 0),
  waiting: Number(row?.waiting ?? 0),
});

/** The jobs and outbox tables; SQL lives here and nowhere else. */
export class JobsRepository {
  constructor(readonly pool: Pool) {}

  async insert(db: Db, job: JobRecord): Promise<void> {
    await db.execute(
      `INSERT INTO jobs (id, owner_id, input_media_id, status, progress, attempts, options, input_duration_seconds,
         created_at, queued_at, dispatched_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        job.id,
        job.ownerId,
        job.inputMediaId,
        job.status,
        job.progress,
        job.attempts,
        JSON.stringify(job.options),
        job.inputDurationSeconds,
        job.createdAt,
        job.queuedAt,
        job.dispatchedAt,
        job.updatedAt,
      ],
    );
  }

  /** With `lock`, the row stays locked until the transaction ends: state changes are serialised per job. */
  async find(db: Db, id: string, lock = false): Promise<JobRecord | null> {
    const [rows] = await db.execute<JobRow[]>(`SELECT * FROM jobs WHERE id = ?${lock ? ' FOR UPDATE' : ''}`, [id]);
    return rows[0] ? toRecord(rows[0]) : null;
  }

  /**
   * Every change stamps `updated_at` with the application's clock, like every other timestamp of the row; a
   * lease renewed alone is no change a user sees, and leaves it.
   */
  async update(db: Db, id: string, patch: JobPatch, now = new Date()): Promise<void> {
    const entries = Object.entries(patch) as [keyof JobPatch, JobPatch[keyof JobPatch]][];
    if (entries.length === 0) return;
    const sets = entries.map(([k]) => `${columns[k]} = ?`);
    const values = entries.map(([, v]) => v ?? null);
    if (isVisible(patch)) {
      sets.push('updated_at = ?');
      values.push(now);
    }
    await db.execute(`UPDATE jobs SET ${sets.join(', ')} WHERE id = ?`, [...values, id]);
  }

  /** One page of an owner's jobs, newest first, optionally only one status or the conversions of one video. */
  async listByOwner(
    ownerId: string,
    options: {
      status?: JobStatus | null;
      inputMediaId?: string | null;
      after?: { createdAt: Date; id: string } | null;
      limit: number;
    },
  ): Promise<JobRecord[]> {
    const where = ['owner_id = ?'];
    const params: (string | Date)[] = [ownerId];
    if (options.status) {
      where.push('status = ?');
      params.push(options.status);
    }
    if (options.inputMediaId) {
      where.push('input_media_id = ?');
      params.push(options.inputMediaId);
    }
    if (options.after) {
      where.push('(created_at < ? OR (created_at = ? AND id < ?))');
      params.push(options.after.createdAt, options.after.createdAt, options.after.id);
    }
    const [rows] = await this.pool.execute<JobRow[]>(
      `SELECT * FROM jobs WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id DESC LIMIT ${Math.trunc(options.limit)}`,
      params,
    );
    return rows.map(toRecord);
  }

  /**
   * QUEUED jobs whose request has been waiting longer than `afterMs` (a lost or purged message), twice as long
   * for each time it was re-sent already (job-state.ts `sweepDue`). Jobs still waiting their turn (not
   * dispatched) have no request to lose. Read without locking: the caller locks each and decides again.
   */
  async listStaleQueued(now: Date, afterMs: number, limit: number): Promise<JobRecord[]> {
    const [rows] = await this.pool.execute<JobRow[]>(
      `SELECT * FROM jobs WHERE status = 'QUEUED' AND dispatched_at IS NOT NULL AND queued_at < ?
         AND queued_at <= DATE_SUB(?, INTERVAL ? * POW(2, LEAST(sweeps, 10)) * 1000 MICROSECOND)
       ORDER BY queued_at LIMIT ${Math.trunc(limit)}`,
      [new Date(now.getTime() - afterMs), now, afterMs],
    );
    return rows.map(toRecord);
  }

  /** RUNNING jobs whose lease ran out before `now`: the ids and owners, read without locking (callers lock). */
  async listExpiredLeases(now: Date, limit: number): Promise<{ id: string; ownerId: string }[]> {
    const [rows] = await this.pool.execute<RowDataPacket[]>(
      `SELECT id, owner_id FROM jobs WHERE status = 'RUNNING' AND lease_expires_at < ?
       ORDER BY lease_expires_at LIMIT ${Math.trunc(limit)}`,
      [now],
    );
    return rows.map((r) => ({ id: String(r.id), ownerId: String(r.owner_id) }));
  }

  // ---- per-user quotas and dispatching

  /**
   * Makes sure the user's lock row exists, in a statement of its own (autocommit): creating it inside the
   * locking transaction would make concurrent first requests of one user wait on each other's shared
   * duplicate-key locks and deadlock when they upgrade them.
   */
  async ensureQuotaUser(userId: string, evenIfDeleted = false): Promise<void> {
    if (evenIfDeleted) {
      await this.pool.execute('INSERT IGNORE INTO job_quota_users (user_id) VALUES (?)', [userId]);
      return;
    }
    // Not for a deleted account (its tombstone exists): a late worker event or a sweep that read one of its jobs
    // just before they were removed must not leave the row behind. Its lock then fails, and the caller retries
    // or gives up; by then the job is gone.
    await this.pool.execute(
      `INSERT IGNORE INTO job_quota_users (user_id)
       SELECT ? FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM deleted_accounts WHERE user_id = ?)`,
      [userId, userId],
    );
  }

  /**
   * Locks the user's row until the transaction ends: one quota check or dispatch per user at a time. False when
   * there is no row to lock (the user's first conversion, or a deleted account): a locking read that finds
   * nothing locks nothing under READ COMMITTED, so the caller can end the transaction, create the row
   * (`ensureQuotaUser`) and begin again.
   */
  async lockQuotaUser(conn: PoolConnection, userId: string): Promise<boolean> {
    const [rows] = await conn.execute<RowDataPacket[]>(
      'SELECT user_id FROM job_quota_users WHERE user_id = ? FOR UPDATE',
      [userId],
    );
    return rows.length > 0;
  }

  /** The user's QUEUED and RUNNING jobs (see `ActiveJobs`). */
  async countActive(db: Db, userId: string): Promise<ActiveJobs> {
    const [rows] = await db.execute<RowDataPacket[]>(`SELECT ${ACTIVE_COLUMNS} FROM jobs ${ACTIVE_OF_OWNER}`, [userId]);
    return activeJobs(rows[0]);
  }

  /**
   * What a new conversion's quota check reads, in one round trip: `countActive`, and the conversions the user
   * started since `since`, with when the oldest of them was.
   */
  async countForQuota(
    db: Db,
    userId: string,
    since: Date,
  ): Promise<ActiveJobs & { starts: { count: number; oldest: Date | null } }> {
    const [rows] = await db.execute<RowDataPacket[]>(
      `SELECT a.*, s.n, s.oldest FROM (SELECT ${ACTIVE_COLUMNS} FROM jobs ${ACTIVE_OF_OWNER}) a,
         (SELECT COUNT(*) AS n, MIN(started_at) AS oldest FROM conversion_starts WHERE owner_id = ? AND started_at > ?) s`,
      [userId, userId, since],
    );
    const row = rows[0];
    return {
      ...activeJobs(row),
      starts: { count: Number(row?.n ?? 0), oldest: row?.oldest instanceof Date ? row.oldest : null },
    };
  }

  /**
   * The user's jobs waiting for their turn, in the order they were queued, locked for dispatching; the caller
   * holds the user's lock and checks each row again (one may have been cancelled between the two reads).
   * Found by a plain read, then locked by primary key only: a locking read through an index of status locked
   * that index's entries before the rows — the reverse of a claim or an event, which lock the row and then,
   * updating its status, the entries — and the two deadlocked (a claim refused, its job stalled for seconds).
   */
  async lockWaiting(conn: PoolConnection, userId: string, limit: number): Promise<JobRecord[]> {
    const [found] = await conn.execute<RowDataPacket[]>(
      `SELECT id FROM jobs WHERE owner_id = ? AND status = 'QUEUED' AND dispatched_at IS NULL
       ORDER BY queued_at, id LIMIT ${Math.trunc(limit)}`,
      [userId],
    );
    if (found.length === 0) return [];
    const [rows] = await conn.query<JobRow[]>('SELECT * FROM jobs WHERE id IN (?) ORDER BY queued_at, id FOR UPDATE', [
      found.map((r) => String(r.id)),
    ]);
    return rows.map(toRecord);
  }

  /** Users with jobs waiting for their turn: the sweeper dispatches them if a finished job's turn was missed. */
  async ownersWithWaiting(limit: number): Promise<string[]> {
    const [rows] = await this.pool.execute<RowDataPacket[]>(
      `SELECT DISTINCT owner_id FROM jobs WHERE status = 'QUEUED' AND dispatched_at IS NULL
       LIMIT ${Math.trunc(limit)}`,
    );
    return rows.map((r) => String(r.owner_id));
  }

  async recordStart(db: Db, userId: string, jobId: string, at: Date): Promise<void> {
    await db.execute('INSERT INTO conversion_starts (owner_id, job_id, started_at) VALUES (?, ?, ?)', [
      userId,
      jobId,
      at,
    ]);
  }

  /** Starts older than `before` no longer count towards any limit: removed in batches. */
  async pruneStarts(before: Date): Promise<number> {
    const [result] = await this.pool.execute<ResultSetHeader>(
      'DELETE FROM conversion_starts WHERE started_at < ? LIMIT 1000',
      [before],
    );
    return result.affectedRows;
  }

  // ---- deleted accounts

  /** Writes the account's tombstone (idempotent: a redelivery keeps the first). */
  async addDeletedAccount(db: Db, userId: string, at: Date): Promise<void> {
    await db.execute('INSERT IGNORE INTO deleted_accounts (user_id, deleted_at) VALUES (?, ?)', [userId, at]);
  }

  async isDeletedAccount(db: Db, userId: string): Promise<boolean> {
    const [rows] = await db.execute<RowDataPacket[]>('SELECT 1 FROM deleted_accounts WHERE user_id = ?', [userId]);
    return rows.length > 0;
  }

  /** Up to `limit` of the user's jobs, any status, locked: a deleted account's, removed batch by batch. */
  async lockOwnedBatch(
    conn: PoolConnection,
    userId: string,
    limit: number,
  ): Promise<Pick<JobRecord, 'id' | 'status' | 'attempts'>[]> {
    const [rows] = await conn.execute<RowDataPacket[]>(
      `SELECT id, status, attempts FROM jobs WHERE owner_id = ? ORDER BY id LIMIT ${Math.trunc(limit)} FOR UPDATE`,
      [userId],
    );
    return rows.map((r) => ({ id: String(r.id), status: r.status as JobStatus, attempts: Number(r.attempts) }));
  }

  async removeJobs(conn: PoolConnection, ids: string[]): Promise<void> {
    if (ids.length > 0) await conn.query('DELETE FROM jobs WHERE id IN (?)', [ids]);
  }

  /** The user's conversion starts and lock row, once their jobs are gone. */
  async forgetQuotaUser(db: Db, userId: string): Promise<void> {
    await db.execute('DELETE FROM conversion_starts WHERE owner_id = ?', [userId]);
    await db.execute('DELETE FROM job_quota_users WHERE user_id = ?', [userId]);
  }

  /** Writes a message to the outbox (shared's table), in the caller's transaction. */
  async addOutbox(db: Db, exchange: string, routingKey: string, payload: unknown): Promise<void> {
    await outboxSql.add(db, exchange, routingKey, payload);
  }

  /** How many jobs are in each status now (every status, zeros included); for the metrics. */
  async countByStatus(): Promise<Record<JobStatus, number>> {
    const [rows] = await this.pool.query<RowDataPacket[]>('SELECT status, COUNT(*) AS n FROM jobs GROUP BY status');
    const counts: Record<JobStatus, number> = { QUEUED: 0, RUNNING: 0, SUCCEEDED: 0, FAILED: 0, CANCELLED: 0 };
    for (const row of rows) counts[row.status as JobStatus] = Number(row.n);
    return counts;
  }

  /** QUEUED jobs waiting for their owner's turn (no request sent yet); for the metrics. */
  async countWaiting(): Promise<number> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      "SELECT COUNT(*) AS n FROM jobs WHERE status = 'QUEUED' AND dispatched_at IS NULL",
    );
    return Number(rows[0]?.n ?? 0);
  }
}
