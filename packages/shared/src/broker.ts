import { randomUUID } from 'node:crypto';
import amqp, { type AmqpConnectionManager, type ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel } from 'amqplib';
import { isRequestId, REQUEST_ID_HEADER } from './http.js';
import type { Logger } from './logger.js';
import type { Counter, Metrics } from './metrics.js';
import { RETRY_DELAYS_MS, Topology } from './messaging.js';
import { redact } from './startup.js';

export type { AmqpConnectionManager, ChannelWrapper, ConfirmChannel };

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
  for (const delay of RETRY_DELAYS_MS) {
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
