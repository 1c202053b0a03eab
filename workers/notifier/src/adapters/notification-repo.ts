import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import type { MailContent } from '../services/render.js';

type Db = Pool | PoolConnection;

/** What became of an event: a mail waiting to be sent, sent, given up, or none wanted. */
export type NotificationStatus = 'pending' | 'sent' | 'failed' | 'skipped';

export interface NewNotification {
  eventId: string;
  kind: string;
  userId: string;
  createdAt: Date;
}

/** A mail the sender has taken (locked) to send. */
export interface PendingMail extends MailContent {
  eventId: string;
  recipient: string;
  attempts: number;
  createdAt: Date;
}

/**
 * An account mail's bodies hold a live single-use token (verify, reset, confirm a new address): once the mail
 * has left (or been given up) they are blanked, so that this database never holds a usable link longer than
 * the mail takes to send. The row itself stays, for idempotency (its event id) and the record of what was sent.
 */
const BLANK_ACCOUNT_BODIES = `text_body = IF(kind LIKE 'account-%', NULL, text_body),
         html_body = IF(kind LIKE 'account-%', NULL, html_body)`;

/** The notifications table; SQL lives here and nowhere else. */
export class NotificationRepository {
  constructor(readonly pool: Pool) {}

  /**
   * A deleted account: its tombstone, then every row about the user — pending mails to them are dropped (a mail
   * the sender holds right now may still go out: it was taken before).
   */
  async forgetUser(userId: string, at: Date): Promise<number> {
    await this.pool.execute('INSERT IGNORE INTO deleted_accounts (user_id, deleted_at) VALUES (?, ?)', [userId, at]);
    let removed = 0;
    for (;;) {
      const [result] = await this.pool.execute<ResultSetHeader>(
        'DELETE FROM notifications WHERE user_id = ? LIMIT 1000',
        [userId],
      );
      removed += result.affectedRows;
      if (result.affectedRows < 1000) return removed;
    }
  }

  async isDeletedAccount(userId: string): Promise<boolean> {
    const [rows] = await this.pool.execute<RowDataPacket[]>('SELECT 1 FROM deleted_accounts WHERE user_id = ?', [
      userId,
    ]);
    return rows.length > 0;
  }

  /** Removes one event's row (its user's account was deleted while it was being decided). */
  async remove(eventId: string): Promise<void> {
    await this.pool.execute('DELETE FROM notifications WHERE event_id = ?', [eventId]);
  }

  async has(eventId: string): Promise<boolean> {
    const [rows] = await this.pool.execute<RowDataPacket[]>('SELECT 1 FROM notifications WHERE event_id = ?', [
      eventId,
    ]);
    return rows.length > 0;
  }

  /**
   * Records the decision for an event: its mail, pending and due now, or none (skipped, with the reason). False
   * when the event already had a row (a duplicate handled meanwhile, maybe by another replica): nothing written.
   */
  async record(
    row: NewNotification,
    decision: { mail: MailContent & { recipient: string } } | { skipped: string },
  ): Promise<boolean> {
    const mail = 'mail' in decision ? decision.mail : null;
    try {
      await this.pool.execute(
        `INSERT INTO notifications (event_id, kind, user_id, status, reason, recipient, subject, text_body, html_body,
           next_attempt_at, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [
          row.eventId,
          row.kind,
          row.userId,
          mail ? 'pending' : 'skipped',
          'skipped' in decision ? decision.skipped : null,
          mail?.recipient ?? null,
          mail?.subject ?? null,
          mail?.text ?? null,
          mail?.html ?? null,
          mail ? row.createdAt : null,
          row.createdAt,
        ],
      );
      return true;
    } catch (err) {
      // The primary key is the event id: the event has been decided before.
      if ((err as { code?: unknown } | null)?.code === 'ER_DUP_ENTRY') return false;
      throw err;
    }
  }

  /**
   * The oldest pending mail due by `now`, locked for this transaction; mails another sender holds are skipped,
   * so several notifiers share the work without sending one mail twice.
   */
  async takeDue(conn: PoolConnection, now: Date): Promise<PendingMail | null> {
    const [rows] = await conn.query<RowDataPacket[]>(
      `SELECT event_id, recipient, subject, text_body, html_body, attempts, created_at FROM notifications
       WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED`,
      [now],
    );
    const row = rows[0];
    if (!row) return null;
    return {
      eventId: String(row.event_id),
      recipient: String(row.recipient),
      subject: String(row.subject),
      text: String(row.text_body),
      html: String(row.html_body),
      attempts: Number(row.attempts),
      createdAt: row.created_at as Date,
    };
  }

  async markSent(conn: PoolConnection, eventId: string, attempts: number, now: Date): Promise<void> {
    await conn.execute(
      `UPDATE notifications SET status = 'sent', attempts = ?, sent_at = ?, next_attempt_at = NULL, last_error = NULL,
         ${BLANK_ACCOUNT_BODIES}
       WHERE event_id = ?`,
      [attempts, now, eventId],
    );
  }

  async markRetry(conn: PoolConnection, eventId: string, attempts: number, at: Date, error: string): Promise<void> {
    await conn.execute(
      'UPDATE notifications SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE event_id = ?',
      [attempts, at, error.slice(0, 1000), eventId],
    );
  }

  async markFailed(conn: PoolConnection, eventId: string, attempts: number, reason: string, error: string) {
    await conn.execute(
      `UPDATE notifications SET status = 'failed', reason = ?, attempts = ?, next_attempt_at = NULL, last_error = ?,
         ${BLANK_ACCOUNT_BODIES}
       WHERE event_id = ?`,
      [reason, attempts, error.slice(0, 1000), eventId],
    );
  }

  /** Mails waiting to be sent, and since when the oldest has waited: what `/metrics` shows. */
  async backlog(db: Db = this.pool): Promise<{ pending: number; oldest: Date | null }> {
    const [rows] = await db.query<RowDataPacket[]>(
      "SELECT COUNT(*) AS pending, MIN(created_at) AS oldest FROM notifications WHERE status = 'pending'",
    );
    return { pending: Number(rows[0]?.pending ?? 0), oldest: (rows[0]?.oldest as Date | null) ?? null };
  }

  /** Forgets settled rows older than `before` (their events will not come again); returns how many. */
  async prune(before: Date): Promise<number> {
    const [result] = await this.pool.execute<ResultSetHeader>(
      "DELETE FROM notifications WHERE status <> 'pending' AND created_at < ? LIMIT 1000",
      [before],
    );
    return result.affectedRows;
  }
}
