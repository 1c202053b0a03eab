import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { WebhookEventType, type Position } from '@vidmp3/shared';

type Db = Pool | PoolConnection;

/** A webhook as the API shows it (never its secret). */
export interface WebhookRecord {
  id: string;
  userId: string;
  url: string;
  events: WebhookEventType[];
  enabled: boolean;
  disabledReason: string | null;
  createdAt: Date;
}

/** What the bookkeeping of attempts reads and changes. */
export interface WebhookHealth {
  enabled: boolean;
  failedDeliveriesInARow: number;
}

export type DeliveryStatus = 'PENDING' | 'SUCCEEDED' | 'FAILED';

export interface DeliveryRecord extends Position {
  id: string;
  webhookId: string;
  eventId: string;
  eventType: string;
  status: DeliveryStatus;
  attempts: number;
  responseStatus: number | null;
  lastError: string | null;
  nextRetryAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

const WEBHOOK_COLUMNS = 'id, user_id, url, events, enabled, disabled_reason, created_at';
const DELIVERY_COLUMNS =
  'id, webhook_id, event_id, event_type, status, attempts, response_status, last_error, next_retry_at, created_at, updated_at';

const toWebhook = (r: RowDataPacket): WebhookRecord => ({
  id: String(r.id),
  userId: String(r.user_id),
  url: String(r.url),
  // Stored comma-separated in WebhookEventType order; a name a later version dropped is skipped.
  events: String(r.events)
    .split(',')
    .filter((e): e is WebhookEventType => WebhookEventType.safeParse(e).success),
  enabled: Boolean(r.enabled),
  disabledReason: r.disabled_reason === null ? null : String(r.disabled_reason),
  createdAt: r.created_at as Date,
});

const toDelivery = (r: RowDataPacket): DeliveryRecord => ({
  id: String(r.id),
  webhookId: String(r.webhook_id),
  eventId: String(r.event_id),
  eventType: String(r.event_type),
  status: String(r.status) as DeliveryStatus,
  attempts: Number(r.attempts),
  responseStatus: r.response_status === null ? null : Number(r.response_status),
  lastError: r.last_error === null ? null : String(r.last_error),
  nextRetryAt: (r.next_retry_at as Date | null) ?? null,
  createdAt: r.created_at as Date,
  updatedAt: r.updated_at as Date,
});

/** The webhooks and webhook_deliveries tables; SQL lives here and nowhere else. */
export class WebhookRepository {
  constructor(readonly pool: Pool) {}

  /**
   * Locks the user's row for the rest of the transaction, so that concurrent creations count one after the
   * other (the per-user cap holds). False when the user is gone.
   */
  async lockUser(conn: PoolConnection, userId: string): Promise<boolean> {
    const [rows] = await conn.execute<RowDataPacket[]>('SELECT id FROM users WHERE id = ? FOR UPDATE', [userId]);
    return rows.length > 0;
  }

  async countByUser(db: Db, userId: string): Promise<number> {
    const [rows] = await db.execute<RowDataPacket[]>('SELECT COUNT(*) AS n FROM webhooks WHERE user_id = ?', [userId]);
    return Number(rows[0]?.n ?? 0);
  }

  async insert(conn: PoolConnection, webhook: WebhookRecord, secretCiphertext: Buffer): Promise<void> {
    await conn.execute(
      `INSERT INTO webhooks (id, user_id, url, events, secret_ciphertext, enabled, created_at)
       VALUES (?, ?, ?, ?, ?, TRUE, ?)`,
      [webhook.id, webhook.userId, webhook.url, webhook.events.join(','), secretCiphertext, webhook.createdAt],
    );
  }

  /** Oldest first: the order they were made in. */
  async listByUser(userId: string): Promise<WebhookRecord[]> {
    const [rows] = await this.pool.execute<RowDataPacket[]>(
      `SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE user_id = ? ORDER BY created_at, id`,
      [userId],
    );
    return rows.map(toWebhook);
  }

  async find(db: Db, id: string): Promise<WebhookRecord | null> {
    const [rows] = await db.execute<RowDataPacket[]>(`SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?`, [id]);
    return rows[0] ? toWebhook(rows[0]) : null;
  }

  async delete(userId: string, id: string): Promise<boolean> {
    const [result] = await this.pool.execute<ResultSetHeader>('DELETE FROM webhooks WHERE id = ? AND user_id = ?', [
      id,
      userId,
    ]);
    return result.affectedRows > 0;
  }

  /** The user's enabled webhooks that subscribed to `event`. */
  async subscribed(userId: string, event: WebhookEventType): Promise<{ id: string; url: string }[]> {
    const [rows] = await this.pool.execute<RowDataPacket[]>(
      `SELECT id, url FROM webhooks WHERE user_id = ? AND enabled AND FIND_IN_SET(?, events) > 0
       ORDER BY created_at, id`,
      [userId, event],
    );
    return rows.map((r) => ({ id: String(r.id), url: String(r.url) }));
  }

  async target(id: string): Promise<{ url: string; secretCiphertext: Buffer; enabled: boolean } | null> {
    const [rows] = await this.pool.execute<RowDataPacket[]>(
      'SELECT url, secret_ciphertext, enabled FROM webhooks WHERE id = ?',
      [id],
    );
    const row = rows[0];
    if (!row) return null;
    return { url: String(row.url), secretCiphertext: row.secret_ciphertext as Buffer, enabled: Boolean(row.enabled) };
  }

  /** Locks the webhook's row (attempt bookkeeping: its failure count changes one delivery at a time). */
  async lockHealth(conn: PoolConnection, id: string): Promise<WebhookHealth | null> {
    const [rows] = await conn.execute<RowDataPacket[]>(
      'SELECT enabled, failed_deliveries_in_a_row FROM webhooks WHERE id = ? FOR UPDATE',
      [id],
    );
    const row = rows[0];
    if (!row) return null;
    return { enabled: Boolean(row.enabled), failedDeliveriesInARow: Number(row.failed_deliveries_in_a_row) };
  }

  async saveHealth(
    conn: PoolConnection,
    id: string,
    health: WebhookHealth,
    disabled: { reason: string; at: Date } | null,
  ): Promise<void> {
    if (disabled) {
      await conn.execute(
        `UPDATE webhooks SET enabled = FALSE, failed_deliveries_in_a_row = ?, disabled_reason = ?, disabled_at = ?
         WHERE id = ?`,
        [health.failedDeliveriesInARow, disabled.reason, disabled.at, id],
      );
    } else {
      await conn.execute('UPDATE webhooks SET failed_deliveries_in_a_row = ? WHERE id = ?', [
        health.failedDeliveriesInARow,
        id,
      ]);
    }
  }

  /** Turns the webhook back on with a fresh failure count; false when it is not the user's. */
  async enable(userId: string, id: string): Promise<boolean> {
    const [result] = await this.pool.execute<ResultSetHeader>(
      `UPDATE webhooks SET enabled = TRUE, disabled_reason = NULL, disabled_at = NULL, failed_deliveries_in_a_row = 0
       WHERE id = ? AND user_id = ?`,
      [id, userId],
    );
    return result.affectedRows > 0;
  }

  /**
   * Records a delivery unless one of the same event to the same webhook exists; either way returns the row's id,
   * and whether this call made it. Fails (foreign key, ER_NO_REFERENCED_ROW_2) when the webhook is gone.
   */
  async insertDelivery(
    db: Db,
    delivery: { id: string; webhookId: string; eventId: string; eventType: string; now: Date },
  ): Promise<{ deliveryId: string; created: boolean }> {
    await db.execute(
      `INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, status, attempts, created_at, updated_at)
       VALUES (?, ?, ?, ?, 'PENDING', 0, ?, ?) ON DUPLICATE KEY UPDATE id = id`,
      [delivery.id, delivery.webhookId, delivery.eventId, delivery.eventType, delivery.now, delivery.now],
    );
    // Which row holds the event tells whether this call made it (affectedRows cannot: mysql2 counts found rows).
    const [rows] = await db.execute<RowDataPacket[]>(
      'SELECT id FROM webhook_deliveries WHERE webhook_id = ? AND event_id = ?',
      [delivery.webhookId, delivery.eventId],
    );
    if (!rows[0]) throw new Error('webhook delivery neither inserted nor found');
    const deliveryId = String(rows[0].id);
    return { deliveryId, created: deliveryId === delivery.id };
  }

  async findDelivery(db: Db, id: string): Promise<DeliveryRecord | null> {
    const [rows] = await db.execute<RowDataPacket[]>(
      `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?`,
      [id],
    );
    return rows[0] ? toDelivery(rows[0]) : null;
  }

  async lockDelivery(conn: PoolConnection, id: string): Promise<DeliveryRecord | null> {
    const [rows] = await conn.execute<RowDataPacket[]>(
      `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ? FOR UPDATE`,
      [id],
    );
    return rows[0] ? toDelivery(rows[0]) : null;
  }

  async saveAttempt(
    conn: PoolConnection,
    id: string,
    attempt: {
      attempts: number;
      status: DeliveryStatus;
      responseStatus: number | null;
      lastError: string | null;
      nextRetryAt: Date | null;
      now: Date;
    },
  ): Promise<void> {
    await conn.execute(
      `UPDATE webhook_deliveries SET attempts = ?, status = ?, response_status = ?, last_error = ?, next_retry_at = ?,
       updated_at = ? WHERE id = ?`,
      [
        attempt.attempts,
        attempt.status,
        attempt.responseStatus,
        attempt.lastError,
        attempt.nextRetryAt,
        attempt.now,
        id,
      ],
    );
  }

  /** Newest first, `limit` rows from after `after`. */
  async listDeliveries(webhookId: string, limit: number, after: Position | null): Promise<DeliveryRecord[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = ?
       ${after ? 'AND (created_at < ? OR (created_at = ? AND id < ?))' : ''}
       ORDER BY created_at DESC, id DESC LIMIT ${Math.trunc(limit)}`,
      after ? [webhookId, after.createdAt, after.createdAt, after.id] : [webhookId],
    );
    return rows.map(toDelivery);
  }

  async countDeliveriesSince(webhookId: string, eventType: string, since: Date): Promise<number> {
    const [rows] = await this.pool.execute<RowDataPacket[]>(
      'SELECT COUNT(*) AS n FROM webhook_deliveries WHERE webhook_id = ? AND event_type = ? AND created_at >= ?',
      [webhookId, eventType, since],
    );
    return Number(rows[0]?.n ?? 0);
  }

  /** Deliveries created before `before` are history: removed in batches; returns how many went. */
  async pruneDeliveries(before: Date): Promise<number> {
    const [result] = await this.pool.execute<ResultSetHeader>(
      'DELETE FROM webhook_deliveries WHERE created_at < ? LIMIT 1000',
      [before],
    );
    return result.affectedRows;
  }
}
