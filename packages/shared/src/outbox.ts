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
import { transactionHooks, withTransaction, type TransactionHooks } from './mysql.js';
import { RepeatingTask } from './repeating-task.js';

type Db = Pool | PoolConnection;

/** A pool, not one of its connections (only a connection can be released). */
const isPool = (db: Db): db is Pool => !('release' in db);

let incrementStep: Promise<number> | undefined;
/** The server's `auto_increment_increment`, read once: the distance between the ids of one multi-row INSERT. */
function autoIncrementStep(db: Db): Promise<number> {
  incrementStep ??= db
    .query<RowDataPacket[]>('SELECT @@auto_increment_increment AS step')
    .then(([rows]) => Number(rows[0]?.step) || 1)
    .catch((err: unknown) => {
      incrementStep = undefined;
      throw err;
    });
  return incrementStep;
}

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

/** A message on its way into the outbox. */
type NewMessage = Omit<OutboxMessage, 'id'>;

/** What a transaction has added to the outbox so far: written in one statement right before its COMMIT. */
const transactionBatches = new WeakMap<TransactionHooks, NewMessage[]>();

/** The direct publisher of each pool's outbox (`startOutboxPublisher`), which takes rows as their writer commits. */
const directPublishers = new WeakMap<Pool, DirectPublisher>();

/** The outbox table's SQL (the one place it lives). */
export const outboxSql = {
  /**
   * Adds a message. Inside `withTransaction` it is written with the transaction's other messages in one
   * statement right before the COMMIT, and handed to the pool's publisher once committed (no relay round);
   * anywhere else it is written at once and left to the relay (`kick`).
   */
  async add(db: Db, exchange: string, routingKey: string, payload: unknown): Promise<void> {
    const message = { exchange, routingKey, payload: JSON.stringify(payload) };
    const hooks = transactionHooks(db);
    if (!hooks) {
      await outboxSql.insert(db, [message]);
      if (isPool(db)) directPublishers.get(db)?.leftToRelay();
      return;
    }
    let batch = transactionBatches.get(hooks);
    if (!batch) {
      const messages: NewMessage[] = (batch = []);
      transactionBatches.set(hooks, messages);
      let ids: number[] = [];
      hooks.beforeCommit.push(async () => {
        ids = await outboxSql.insert(db, messages);
      });
      hooks.afterCommit.push(() => {
        const publisher = directPublishers.get(hooks.pool);
        if (publisher) publisher.publish(messages.map((m, i) => ({ ...m, id: ids[i]! })));
      });
    }
    batch.push(message);
  },

  /** Writes messages in one statement; their ids, in order. */
  async insert(db: Db, messages: NewMessage[]): Promise<number[]> {
    if (messages.length === 0) return [];
    const now = new Date();
    const [result] = await db.query<ResultSetHeader>(
      'INSERT INTO outbox (exchange, routing_key, payload, created_at) VALUES ?',
      [messages.map((m) => [m.exchange, m.routingKey, m.payload, now])],
    );
    // One multi-row INSERT is a "simple insert": InnoDB gives its rows consecutive ids in every lock mode,
    // `auto_increment_increment` apart (1 unless the server runs in a multi-primary cluster).
    const step = await autoIncrementStep(db);
    return messages.map((_, i) => result.insertId + i * step);
  },

  /**
   * Unpublished messages, oldest first, locked so that several relays never take the same ones; only those
   * written before `writtenBefore` when given, and never the ids in `excluding` (this process's own direct
   * publisher has them in hand).
   */
  async claim(
    db: PoolConnection,
    limit: number,
    options: { writtenBefore?: Date; excluding?: number[] } = {},
  ): Promise<OutboxMessage[]> {
    const params: unknown[] = [];
    let where = 'published_at IS NULL';
    if (options.writtenBefore) {
      where += ' AND created_at < ?';
      params.push(options.writtenBefore);
    }
    if (options.excluding?.length) {
      where += ' AND id NOT IN (?)';
      params.push(options.excluding);
    }
    const [rows] = await db.query<RowDataPacket[]>(
      `SELECT id, exchange, routing_key, payload FROM outbox WHERE ${where} ORDER BY id
       LIMIT ${Math.trunc(limit)} FOR UPDATE SKIP LOCKED`,
      params,
    );
    return rows.map((r) => ({
      id: Number(r.id),
      exchange: String(r.exchange),
      routingKey: String(r.routing_key),
      payload: String(r.payload),
    }));
  },

  async markPublished(db: Db, ids: number[]): Promise<void> {
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

export interface OutboxRelayOptions {
  /** Between two runs of its own (default 1 s); `kick` runs it at once. */
  intervalMs?: number;
  /**
   * A run of its own (not kicked) takes only rows at least this old (default 0: every row). Set when a direct
   * publisher takes rows as their writers commit: the relay then leaves it the time to publish them, and takes
   * what a crash or an outage left behind.
   */
  graceMs?: number;
  /** Ids this process's direct publisher has in hand (being published, or published and not yet marked). */
  inHand?: () => number[];
}

/**
 * Publishes the outbox. Runs on a short timer and when kicked; rows are taken with FOR UPDATE SKIP LOCKED, so
 * several replicas share the work without publishing a row twice — except after a crash between confirm and
 * commit, which consumers tolerate (at-least-once: every consumer is idempotent).
 */
export class OutboxRelay {
  private readonly task: RepeatingTask;
  private readonly graceMs: number;
  private readonly inHand: () => number[];
  private kicked = false;

  constructor(
    private readonly pool: Pool,
    private readonly channel: ChannelWrapper,
    private readonly logger: Logger,
    options: OutboxRelayOptions = {},
  ) {
    this.graceMs = options.graceMs ?? 0;
    this.inHand = options.inHand ?? (() => []);
    this.task = new RepeatingTask(
      () => this.flush(),
      (err: unknown) => this.logger.warn({ err }, 'outbox relay: will retry'),
      options.intervalMs ?? 1_000,
    );
  }

  start(): void {
    this.task.start();
  }

  /** Runs now, over every row not in hand (or once more right after the run under way). */
  kick(): void {
    this.kicked = true;
    this.task.kick();
  }

  async stop(): Promise<void> {
    await this.task.stop();
  }

  private async flush(): Promise<void> {
    const kicked = this.kicked;
    this.kicked = false;
    const writtenBefore = kicked || this.graceMs === 0 ? undefined : new Date(Date.now() - this.graceMs);
    try {
      await this.flushRows(writtenBefore);
    } catch (err) {
      // The retry covers what this run was asked to: a kicked run's rows are not left to wait out the grace.
      this.kicked ||= kicked;
      throw err;
    }
  }

  private async flushRows(writtenBefore: Date | undefined): Promise<void> {
    for (;;) {
      // READ COMMITTED: the locking read must lock only the rows it takes. Under REPEATABLE READ it also locks
      // the gap after them for as long as publishing takes, which blocks every writer of the outbox and lets
      // two relays deadlock on marking their rows — after their messages were already confirmed.
      const sent = await withTransaction(
        this.pool,
        async (conn) => {
          const batch = await outboxSql.claim(conn, BATCH, { writtenBefore, excluding: this.inHand() });
          if (batch.length === 0) return 0;
          // All sent at once, in order (one channel keeps it), then every confirm awaited: one round trip to
          // RabbitMQ per batch rather than per row. A failure leaves the whole batch unmarked, to be sent again
          // (at-least-once, as after a crash).
          const confirms = await Promise.allSettled(batch.map((message) => publishMessage(this.channel, message)));
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

function publishMessage(channel: ChannelWrapper, message: OutboxMessage): Promise<void> {
  return publishConfirmed(
    channel,
    message.exchange,
    message.routingKey,
    Buffer.from(message.payload),
    requestHeaders(message.payload),
  );
}

/** How long the direct publisher gathers the ids it has published before marking them, in one statement. */
const MARK_DELAY_MS = 50;
/** How old an unpublished row must be before a relay's own run takes it: longer than a publish may take. */
const RELAY_GRACE_MS = 15_000;

/**
 * Publishes the rows a transaction wrote as soon as it has committed, so that a message costs its writer one
 * multi-row INSERT and RabbitMQ one publish — no relay transaction (select, lock, mark, commit) per commit. The
 * ids it has published are marked together every MARK_DELAY_MS. What it cannot publish (RabbitMQ away, a
 * publish failed) goes to the relay at once; what a crash leaves unpublished, the relay takes after its grace.
 */
class DirectPublisher {
  /** Ids taken and not yet marked published: the relay leaves them alone. */
  private readonly inHand = new Set<number>();
  private toMark: number[] = [];
  private markTimer: NodeJS.Timeout | undefined;
  private readonly publishing = new Set<Promise<void>>();
  private closed = false;

  constructor(
    private readonly pool: Pool,
    private readonly channel: ChannelWrapper,
    private readonly ready: () => boolean,
    private readonly relay: OutboxRelay,
    private readonly logger: Logger,
  ) {}

  ids(): number[] {
    return [...this.inHand];
  }

  /** A row written outside a transaction (already committed): the relay's now. */
  leftToRelay(): void {
    this.relay.kick();
  }

  publish(messages: OutboxMessage[]): void {
    if (messages.length === 0) return;
    if (this.closed || !this.ready()) {
      this.relay.kick();
      return;
    }
    for (const message of messages) this.inHand.add(message.id);
    const done = Promise.allSettled(messages.map((m) => publishMessage(this.channel, m))).then((results) => {
      let failed = false;
      results.forEach((result, i) => {
        const id = messages[i]!.id;
        if (result.status === 'fulfilled') this.toMark.push(id);
        else {
          failed = true;
          this.inHand.delete(id);
        }
      });
      if (failed) {
        this.logger.debug('outbox: a publish failed; the relay takes it');
        this.relay.kick();
      }
      this.scheduleMarks();
    });
    this.publishing.add(done);
    void done.finally(() => this.publishing.delete(done));
  }

  private scheduleMarks(): void {
    if (this.markTimer || this.toMark.length === 0) return;
    this.markTimer = setTimeout(() => void this.markNow(), this.closed ? 0 : MARK_DELAY_MS);
  }

  /** Marks what was published; on failure keeps the ids in hand and tries again later. */
  private async markNow(): Promise<void> {
    this.markTimer = undefined;
    const ids = this.toMark;
    this.toMark = [];
    if (ids.length === 0) return;
    try {
      await outboxSql.markPublished(this.pool, ids);
      for (const id of ids) this.inHand.delete(id);
    } catch (err) {
      this.toMark.unshift(...ids);
      this.logger.warn({ err }, 'outbox: could not mark published messages; will retry');
      if (!this.closed) this.markTimer = setTimeout(() => void this.markNow(), 1_000);
    }
  }

  /** Waits for the publishes under way and marks them (once, without retrying: the relay covers the rest). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.publishing]);
    clearTimeout(this.markTimer);
    await this.markNow();
    clearTimeout(this.markTimer);
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

/** A service's way out to RabbitMQ through its outbox. */
export interface OutboxPublisher {
  /**
   * Writes a message in the caller's transaction, published once it commits (`withTransaction`); given the
   * pool, written and published at once.
   */
  add(db: Db, exchange: string, routingKey: string, payload: unknown): Promise<void>;
  /**
   * Called after a commit: publishes now what was written outside a transaction. (What a transaction wrote is
   * published as it commits; kicking after it costs nothing.)
   */
  kick(): void;
  /** The publishing channel is set up and open (for logs and tests: the outbox waits out an outage). */
  ready(): boolean;
  close(): Promise<void>;
}

/**
 * The outbox, its direct publisher and its relay over a publishing channel of `broker`, for every service that
 * announces (users, media, jobs). RabbitMQ being away does not stop the service: messages wait in the table,
 * and /metrics shows the backlog.
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
  // The relay leaves alone what the direct publisher has in hand; each tells the other (built in two steps).
  const inHand = { ids: (): number[] => [] };
  const relay = new OutboxRelay(pool, publishing.channel, logger, {
    graceMs: RELAY_GRACE_MS,
    inHand: () => inHand.ids(),
  });
  const direct = new DirectPublisher(pool, publishing.channel, () => publishing.ready(), relay, logger);
  inHand.ids = () => direct.ids();
  directPublishers.set(pool, direct);
  // What an earlier process left unpublished goes out now, not after the grace.
  relay.kick();
  relay.start();
  // Published rows are history after a day: pruned hourly by whichever replica gets there.
  const prune = setInterval(
    () => outboxSql.prune(pool, new Date(Date.now() - 24 * 3600_000)).catch(() => undefined),
    3600_000,
  );
  prune.unref();
  /** A row was written on a connection outside `withTransaction` since the last kick: the relay's to publish. */
  let leftOver = false;
  return {
    add: (db, exchange, routingKey, payload) => {
      // (A write on the pool is committed already, and outboxSql.add hands it to the relay itself.)
      if (!transactionHooks(db) && !isPool(db)) leftOver = true;
      return outboxSql.add(db, exchange, routingKey, payload);
    },
    kick: () => {
      if (!leftOver) return;
      leftOver = false;
      relay.kick();
    },
    ready: () => publishing.ready(),
    async close() {
      clearInterval(prune);
      directPublishers.delete(pool);
      await direct.close();
      await relay.stop();
      await publishing.close();
    },
  };
}
