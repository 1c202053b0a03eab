import { randomUUID } from 'node:crypto';
import amqp, { type AmqpConnectionManager, type ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel, ConsumeMessage, Message } from 'amqplib';
import { isRequestId, REQUEST_ID_HEADER } from './http.js';
import type { Logger } from './logger.js';
import type { Counter, Metrics } from './metrics.js';
import { CLAIM_RETRY_DELAYS_MS, RETRY_DELAYS_MS, Topology } from './messaging.js';
import { redact } from './startup.js';

export type { AmqpConnectionManager, ChannelWrapper, ConfirmChannel, ConsumeMessage };

const quorum = { 'x-queue-type': 'quorum' } as const;

/**
 * Declares the shared topology (idempotent: every service declares what it uses, the same way). Run as a
 * channel setup, so it is declared again after every reconnection.
 */
export async function declareTopology(ch: ConfirmChannel): Promise<void> {
  await ch.assertExchange(Topology.deadLetterExchange, 'direct', { durable: true });
  await ch.assertQueue(Topology.deadLetterQueue, { durable: true, arguments: quorum });
  await ch.bindQueue(Topology.deadLetterQueue, Topology.deadLetterExchange, Topology.conversionsQueue);

  await ch.assertExchange(Topology.conversionsExchange, 'direct', { durable: true });
  await ch.assertQueue(Topology.conversionsQueue, {
    durable: true,
    arguments: {
      ...quorum,
      'x-delivery-limit': Topology.deliveryLimit,
      'x-dead-letter-exchange': Topology.deadLetterExchange,
      'x-dead-letter-routing-key': Topology.conversionsQueue,
    },
  });
  await ch.bindQueue(Topology.conversionsQueue, Topology.conversionsExchange, Topology.conversionsQueue);
  // A retry waits out its delay in a queue nobody consumes, then dead-letters back to the work queue: no
  // hot requeue loop, and the delay survives a broker restart.
  for (const delay of new Set<number>([...RETRY_DELAYS_MS, ...CLAIM_RETRY_DELAYS_MS])) {
    await ch.assertQueue(Topology.retryQueue(delay), {
      durable: true,
      arguments: {
        ...quorum,
        'x-message-ttl': delay,
        'x-dead-letter-exchange': Topology.conversionsExchange,
        'x-dead-letter-routing-key': Topology.conversionsQueue,
      },
    });
  }

  await ch.assertExchange(Topology.eventsExchange, 'direct', { durable: true });
  await ch.assertQueue(Topology.eventsQueue, { durable: true, arguments: quorum });
  await ch.bindQueue(Topology.eventsQueue, Topology.eventsExchange, Topology.eventsQueue);

  await ch.assertExchange(Topology.changesExchange, 'fanout', { durable: true });
  await ch.assertExchange(Topology.controlExchange, 'fanout', { durable: true });

  // Declared by jobs (the publisher) as well as the notifier: the outbox's mandatory publishes need the queue
  // even before a notifier first starts, and the events wait there for it.
  await ch.assertExchange(Topology.notificationsExchange, 'direct', { durable: true });
  await assertWorkQueue(ch, Topology.notificationsQueue, Topology.notificationsDeadQueue);
  await ch.bindQueue(Topology.notificationsQueue, Topology.notificationsExchange, Topology.notificationsQueue);

  // Webhook deliveries: declared by users (test events) and the notifier; the notifier declares the retry
  // queues, whose delays it is configured with (shared's WEBHOOK_RETRY_DELAYS_MS by default).
  await ch.assertExchange(Topology.webhooksExchange, 'direct', { durable: true });
  await assertWorkQueue(ch, Topology.webhooksQueue, Topology.webhooksDeadQueue);
  await ch.bindQueue(Topology.webhooksQueue, Topology.webhooksExchange, Topology.webhooksQueue);

  // Account events: every consumer's queue exists from the first declaration on, so an account deleted while
  // one of them is down is still heard by it later.
  await ch.assertExchange(Topology.accountsExchange, 'fanout', { durable: true });
  for (const service of ['media', 'jobs', 'notifier'] as const) {
    const queue = Topology.accountsQueue(service);
    await assertWorkQueue(ch, queue, `${queue}.dead`);
    await ch.bindQueue(queue, Topology.accountsExchange, '');
  }
}

/**
 * A quorum work queue whose messages that can never be handled (malformed, or delivered too often: crashes,
 * restarts, lost connections) go through the shared dead-letter exchange, keyed by the queue they left, to
 * `deadQueue`, for an operator to read.
 */
async function assertWorkQueue(ch: ConfirmChannel, queue: string, deadQueue: string): Promise<void> {
  await ch.assertQueue(deadQueue, { durable: true, arguments: quorum });
  await ch.bindQueue(deadQueue, Topology.deadLetterExchange, queue);
  await ch.assertQueue(queue, {
    durable: true,
    arguments: {
      ...quorum,
      'x-delivery-limit': Topology.notificationsDeliveryLimit,
      'x-dead-letter-exchange': Topology.deadLetterExchange,
      'x-dead-letter-routing-key': queue,
    },
  });
}

/**
 * A RabbitMQ connection that reconnects by itself (amqp-connection-manager): channels re-run their setup
 * (topology, consumers) after every reconnection, and publishes wait for the connection and for the
 * broker's confirm.
 */
export function connectBroker(url: string, logger: Logger, metrics?: Metrics): AmqpConnectionManager {
  const connection = amqp.connect([url], { heartbeatIntervalInSeconds: 10, reconnectTimeInSeconds: 1 });
  const where = redact(url);
  metrics?.gauge({
    name: 'vidmp3_rabbitmq_connected',
    help: '1 while connected to RabbitMQ, 0 while reconnecting',
    collect() {
      this.set(connection.isConnected() ? 1 : 0);
    },
  });
  connection.on('connect', () => logger.info({ broker: where }, 'connected to RabbitMQ'));
  connection.on('disconnect', ({ err }) =>
    logger.warn({ broker: where, err: err?.message }, 'RabbitMQ connection lost'),
  );
  connection.on('connectFailed', ({ err }) =>
    logger.warn({ broker: where, err: err.message }, 'cannot reach RabbitMQ; retrying'),
  );
  return connection;
}

/** A channel with its health: ready once its setup has run, not ready while it is failing or closed. */
export interface SupervisedChannel {
  readonly channel: ChannelWrapper;
  readonly name: string;
  /** Set up and open: what `/readyz` reports. */
  ready(): boolean;
  /** Why it last failed (until it is ready again). */
  lastError(): unknown;
  /** Closes the channel for good (shutdown): its closing is not a fault. */
  close(): Promise<void>;
}

/** The longest wait between two attempts to get a failing channel back (1 s, doubling). */
const MAX_CHANNEL_RETRY_MS = 30_000;

/**
 * A channel that survives what amqp-connection-manager leaves to its user. A setup that fails (a broker drop
 * half-way, a queue re-declared with other arguments) is emitted as `'error'` on the wrapper — which ends the
 * process when nobody listens — and leaves the channel without its consumers; a channel the broker closed on
 * its own (a consumer timeout, a 406 on one channel) is only reopened at the next reconnection, which never
 * comes while the connection is healthy. Either way the channel reports not ready, and after a backoff the
 * connection is re-established, which sets every channel up again (consumers are idempotent: messages in
 * flight are redelivered).
 */
export function superviseChannel(
  connection: AmqpConnectionManager,
  options: { name: string; confirm?: boolean; setup: (channel: ConfirmChannel) => Promise<unknown> },
  logger: Logger,
): SupervisedChannel {
  const log = logger.child({ channel: options.name });
  let ready = false;
  let failure: unknown;
  /** Whether the last setup ran to its end (the manager emits `'connect'` even after a setup failed). */
  let setUp = false;
  let closing = false;
  let failures = 0;
  let retry: NodeJS.Timeout | undefined;

  const recover = () => {
    ready = false;
    if (closing || retry) return;
    const delay = Math.min(1_000 * 2 ** failures, MAX_CHANNEL_RETRY_MS);
    failures++;
    retry = setTimeout(() => {
      retry = undefined;
      // A lost connection comes back by itself, and sets this channel up with it.
      if (closing || ready || !connection.isConnected()) return;
      log.warn('re-establishing the RabbitMQ connection to reopen a failed channel');
      connection.reconnect();
    }, delay);
    retry.unref();
  };

  const channel = connection.createChannel({
    name: options.name,
    confirm: options.confirm ?? true,
    setup: async (ch: ConfirmChannel) => {
      ch.once('close', () => {
        if (closing) return;
        if (ready) log.warn('RabbitMQ channel closed');
        recover();
      });
      setUp = false;
      await options.setup(ch);
      setUp = true;
    },
  });
  channel.on('connect', () => {
    if (!setUp) return;
    ready = true;
    failures = 0;
    failure = undefined;
  });
  channel.on('error', (err: unknown) => {
    if (closing) return;
    failure = err;
    log.error({ err }, 'RabbitMQ channel setup failed; will retry');
    recover();
  });
  return {
    channel,
    name: options.name,
    ready: () => ready && !closing && connection.isConnected(),
    lastError: () => failure,
    async close() {
      closing = true;
      clearTimeout(retry);
      await channel.close();
    },
  };
}

/** What becomes of a message taken with manual acknowledgement: done, handed back, or dead-lettered. */
export type Settlement = 'ack' | 'requeue' | 'dead-letter';

/**
 * A message taken from RabbitMQ, with the channel it arrived on. It is settled once (a second ack of one
 * delivery tag is a protocol error that closes the channel, with every other message on it), and only on that
 * channel (its delivery tag means nothing on another, and acking it on one would be the same protocol error).
 * A channel that has closed meanwhile — a dropped connection, a channel the broker closed — has already handed
 * its unsettled messages back to RabbitMQ, which redelivers them: settling one there is skipped, not a failure
 * (amqplib throws on a closed channel, and an unhandled throw in a consumer would end the process).
 */
export class Delivery<M extends Message = ConsumeMessage> {
  private settled = false;

  constructor(
    readonly msg: M,
    /** The channel it arrived on; undefined if unknown (then it is never settled: RabbitMQ takes it back). */
    readonly channel: ConfirmChannel | undefined,
  ) {}

  get isSettled(): boolean {
    return this.settled;
  }

  /** Settles it, the first time only; false if its channel had closed and RabbitMQ will hand it out again. */
  settle(how: Settlement, log: Logger): boolean {
    if (this.settled) return false;
    this.settled = true;
    const { channel, msg } = this;
    try {
      if (!channel) throw new Error('the channel it arrived on is unknown');
      switch (how) {
        case 'ack':
          channel.ack(msg);
          break;
        case 'requeue':
          channel.nack(msg, false, true);
          break;
        case 'dead-letter':
          channel.nack(msg, false, false);
          break;
      }
      return true;
    } catch (err) {
      log.warn({ err, how }, 'the channel closed before a message was settled; RabbitMQ redelivers it');
      return false;
    }
  }
}

/** The request id a message travels with (its correlationId, or the x-request-id header), if any. */
export function messageRequestId(message: {
  properties: { correlationId?: unknown; headers?: Record<string, unknown> | undefined };
}): string | undefined {
  const { correlationId, headers } = message.properties;
  if (isRequestId(correlationId)) return correlationId;
  const header = headers?.[REQUEST_ID_HEADER];
  return isRequestId(header) ? header : undefined;
}

const publishMeters = new WeakMap<ChannelWrapper, Counter<'exchange' | 'outcome'>>();

/** Counts this channel's publishes by exchange and outcome (`confirmed`, `failed`) in `metrics`. */
export function meterPublishes(channel: ChannelWrapper, metrics: Metrics): void {
  publishMeters.set(
    channel,
    metrics.counter({
      name: 'vidmp3_rabbitmq_publishes_total',
      help: 'RabbitMQ publishes by exchange (default: straight to a queue) and outcome (confirmed or failed)',
      labelNames: ['exchange', 'outcome'],
    }),
  );
}

/** RabbitMQ had no queue for a message that must reach one, and dropped it: the publish did not happen. */
export class UnroutableError extends Error {
  constructor(exchange: string, routingKey: string) {
    super(`RabbitMQ has no queue for ${exchange || '(default exchange)'} → ${routingKey}; the message was not stored`);
    this.name = 'UnroutableError';
  }
}

/**
 * Broadcasts (job changes to jobs replicas, cancels to workers) go to whoever listens right now, maybe no one;
 * everything else must reach a durable queue.
 */
const BROADCAST_EXCHANGES: ReadonlySet<string> = new Set([Topology.changesExchange, Topology.controlExchange]);

const returnedIds = new WeakMap<ChannelWrapper, Set<string>>();

/** The ids of this channel's messages RabbitMQ handed back as unroutable (`basic.return`). */
function returnsOf(channel: ChannelWrapper): Set<string> {
  let returned = returnedIds.get(channel);
  if (!returned) {
    const ids = new Set<string>();
    returned = ids;
    returnedIds.set(channel, ids);
    // Registered on every (re)created amqplib channel. RabbitMQ sends a message's basic.return before its
    // confirm, on the same channel, so a returned publish is known here by the time its confirm resolves.
    channel
      .addSetup((ch: ConfirmChannel) => {
        ch.on('return', (msg: { properties: { messageId?: unknown } }) => {
          if (typeof msg.properties.messageId === 'string') ids.add(msg.properties.messageId);
        });
      })
      .catch(() => undefined);
  }
  return returned;
}

/**
 * Publishes persistently and waits for the broker's confirm (at most `timeoutMs`, also while disconnected: the
 * caller then keeps the message and tries again). Except for broadcasts, the message is `mandatory`: one that
 * no queue takes comes back, and the publish fails with UnroutableError rather than counting as done. A
 * request id in `headers` also travels as the message's `correlationId`, where RabbitMQ's tooling shows it.
 */
export async function publishConfirmed(
  channel: ChannelWrapper,
  exchange: string,
  routingKey: string,
  content: Buffer,
  headers: Record<string, string> = {},
  timeoutMs = 10_000,
): Promise<void> {
  const meter = publishMeters.get(channel);
  const correlationId = headers[REQUEST_ID_HEADER];
  const mandatory = !BROADCAST_EXCHANGES.has(exchange);
  const returned = mandatory ? returnsOf(channel) : undefined;
  const messageId = randomUUID();
  try {
    await channel.publish(exchange, routingKey, content, {
      persistent: true,
      mandatory,
      messageId,
      contentType: 'application/json',
      headers,
      ...(correlationId ? { correlationId } : {}),
      timeout: timeoutMs,
    });
    if (returned?.delete(messageId)) throw new UnroutableError(exchange, routingKey);
  } catch (err) {
    meter?.inc({ exchange: exchange || 'default', outcome: 'failed' });
    throw err;
  }
  meter?.inc({ exchange: exchange || 'default', outcome: 'confirmed' });
}
