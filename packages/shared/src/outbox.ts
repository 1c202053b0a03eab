import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import {
  declareTopology,
  meterPublishes,
  publishConfirmed,
  superviseChannel,
  type AmqpConnectionManager,
  type ChannelWrapper,
  type ConfirmChannel,
} from './broker.js';
import { isRequestId, REQUEST_ID_HEADER } from './http.js';
import type { Logger } from './logger.js';
import { scrapedGauge, type Metrics } from './metrics.js';
import { withTransaction } from './mysql.js';
import { RepeatingTask } from './repeating-task.js';

type Db = Pool | PoolConnection;

/**
 * The transactional outbox every service that announces something uses (jobs, users, media): a message is
 * written in the same transaction as the state it announces, and a relay publishes it afterwards, so the state
 * and its announcement exist together or not at all. Each service has its own `outbox` table in its own
 * database (a migration statement below).
 */
export const OUTBOX_TABLE_SQL = `CREATE TABLE IF NOT EXISTS outbox (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  exchange VARCHAR(200) NOT NULL,
  routing_key VARCHAR(200) NOT NULL,
  payload LONGTEXT NOT NULL,
  created_at DATETIME(3) NOT NULL,
  published_at DATETIME(3) NULL,
  KEY outbox_pending (published_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`;

export interface OutboxMessage {
  id: number;
  exchange: string;
  routingKey: string;
  payload: string;
}

/** The outbox table's SQL (the one place it lives). */
export const outboxSql = {
  async add(db: Db, exchange: string, routingKey: string, payload: unknown): Promise<void> {
    await db.execute('INSERT INTO outbox (exchange, routing_key, payload, created_at) VALUES (?, ?, ?, ?)', [
      exchange,
      routingKey,
      JSON.stringify(payload),
      new Date(),
    ]);
  },

  /** Unpublished messages, oldest first, locked so that several relays never take the same ones. */
  async claim(db: PoolConnection, limit: number): Promise<OutboxMessage[]> {
    const [rows] = await db.query<RowDataPacket[]>(
      `SELECT id, exchange, routing_key, payload FROM outbox WHERE published_at IS NULL ORDER BY id
       LIMIT ${Math.trunc(limit)} FOR UPDATE SKIP LOCKED`,
    );
    return rows.map((r) => ({
      id: Number(r.id),
      exchange: String(r.exchange),
      routingKey: String(r.routing_key),
      payload: String(r.payload),
    }));
  },

  async markPublished(db: PoolConnection, ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    await db.query<ResultSetHeader>('UPDATE outbox SET published_at = ? WHERE id IN (?)', [new Date(), ids]);
  },

  /** Messages not yet published, and when the oldest of them was written; for the metrics. */
  async backlog(db: Db): Promise<{ pending: number; oldest: Date | null }> {
    const [rows] = await db.query<RowDataPacket[]>(
      'SELECT COUNT(*) AS pending, MIN(created_at) AS oldest FROM outbox WHERE published_at IS NULL',
    );
    const row = rows[0];
    return { pending: Number(row?.pending ?? 0), oldest: row?.oldest instanceof Date ? row.oldest : null };
  },

  /** Published rows older than `before` are only history: removed in batches. */
  async prune(db: Db, before: Date): Promise<number> {
    const [result] = await db.execute<ResultSetHeader>(
      'DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < ? LIMIT 1000',
      [before],
    );
    return result.affectedRows;
  },
};

const BATCH = 100;

/**
 * Publishes the outbox. Runs on a short timer and right after each commit (`kick`); rows are taken with FOR
 * UPDATE SKIP LOCKED, so several replicas share the work without publishing a row twice — except after a crash
 * between confirm and commit, which consumers tolerate (at-least-once: every consumer is idempotent).
 */
export class OutboxRelay {
  private readonly task: RepeatingTask;

  constructor(
    private readonly pool: Pool,
    private readonly channel: ChannelWrapper,
    private readonly logger: Logger,
    intervalMs = 1_000,
  ) {
    this.task = new RepeatingTask(
      () => this.flush(),
      (err: unknown) => this.logger.warn({ err }, 'outbox relay: will retry'),
      intervalMs,
    );
  }

  start(): void {
    this.task.start();
  }

  /** Runs now (or once more right after the run under way). */
  kick(): void {
    this.task.kick();
  }

  async stop(): Promise<void> {
    await this.task.stop();
  }

  private async flush(): Promise<void> {
    for (;;) {
      // READ COMMITTED: the locking read must lock only the rows it takes. Under REPEATABLE READ it also locks
      // the gap after them for as long as publishing takes, which blocks every writer of the outbox and lets
      // two relays deadlock on marking their rows — after their messages were already confirmed.
      const sent = await withTransaction(
        this.pool,
        async (conn) => {
          const batch = await outboxSql.claim(conn, BATCH);
          // All sent at once, in order (one channel keeps it), then every confirm awaited: one round trip to
          // RabbitMQ per batch rather than per row. A failure leaves the whole batch unmarked, to be sent again
          // (at-least-once, as after a crash).
          const confirms = await Promise.allSettled(
            batch.map((message) =>
              publishConfirmed(
                this.channel,
                message.exchange,
                message.routingKey,
                Buffer.from(message.payload),
                requestHeaders(message.payload),
              ),
            ),
          );
          const failed = confirms.find((c): c is PromiseRejectedResult => c.status === 'rejected');
          if (failed) throw failed.reason;
          await outboxSql.markPublished(
            conn,
            batch.map((m) => m.id),
          );
          return batch.length;
        },
        'READ COMMITTED',
      );
      if (sent < BATCH) return;
    }
  }
}

/**
 * A message that carries the id of the request that caused it also gets it on the message (header), where
 * RabbitMQ's tooling and consumers see it without decoding the body.
 */
function requestHeaders(payload: string): Record<string, string> {
  try {
    const requestId = (JSON.parse(payload) as { requestId?: unknown } | null)?.requestId;
    return isRequestId(requestId) ? { [REQUEST_ID_HEADER]: requestId } : {};
  } catch {
    return {};
  }
}

/**
 * The outbox backlog on /metrics, read from the database when Prometheus scrapes: messages committed but not
 * yet published, which grows while RabbitMQ is unreachable.
 */
export function outboxMetrics(metrics: Metrics, pool: Pool, logger: Logger): void {
  const onError = (err: unknown) => logger.warn({ err }, 'could not read the outbox backlog for /metrics');
  scrapedGauge(metrics, {
    name: 'vidmp3_outbox_pending_messages',
    help: 'Outbox messages committed but not yet published to RabbitMQ',
    onError,
    read: async () => [{ labels: {}, value: (await outboxSql.backlog(pool)).pending }],
  });
  scrapedGauge(metrics, {
    name: 'vidmp3_outbox_oldest_pending_seconds',
    help: 'Age of the oldest unpublished outbox message, in seconds (0: none)',
    onError,
    read: async () => {
      const { oldest } = await outboxSql.backlog(pool);
      return [{ labels: {}, value: oldest ? Math.max(0, (Date.now() - oldest.getTime()) / 1000) : 0 }];
    },
  });
}

/** A service's way out to RabbitMQ through its outbox: write in a transaction, then `kick`. */
export interface OutboxPublisher {
  /** Writes a message in the caller's transaction (or on its own, given the pool). */
  add(db: Db, exchange: string, routingKey: string, payload: unknown): Promise<void>;
  /** Publishes what was committed now rather than at the relay's next tick. */
  kick(): void;
  /** The publishing channel is set up and open (for logs and tests: the outbox waits out an outage). */
  ready(): boolean;
  close(): Promise<void>;
}

/**
 * The outbox and its relay over a publishing channel of `broker`, for every service that announces (users, media,
 * jobs). RabbitMQ being away does not stop the service: messages wait in the table, and /metrics shows
 * the backlog.
 */
export function startOutboxPublisher(
  broker: AmqpConnectionManager,
  pool: Pool,
  logger: Logger,
  metrics: Metrics,
  name: string,
): OutboxPublisher {
  const publishing = superviseChannel(broker, { name, setup: (ch: ConfirmChannel) => declareTopology(ch) }, logger);
  meterPublishes(publishing.channel, metrics);
  outboxMetrics(metrics, pool, logger);
  const relay = new OutboxRelay(pool, publishing.channel, logger);
  relay.start();
  // Published rows are history after a day: pruned hourly by whichever replica gets there.
  const prune = setInterval(
    () => outboxSql.prune(pool, new Date(Date.now() - 24 * 3600_000)).catch(() => undefined),
    3600_000,
  );
  prune.unref();
  return {
    add: (db, exchange, routingKey, payload) => outboxSql.add(db, exchange, routingKey, payload),
    kick: () => relay.kick(),
    ready: () => publishing.ready(),
    async close() {
      clearInterval(prune);
      await relay.stop();
      await publishing.close();
    },
  };
}
