import {
  declareTopology,
  encodeMessage,
  HeldConsumer,
  meterPublishes,
  publishConfirmed,
  superviseChannel,
  Topology,
  WebhookDelivery,
  type AmqpConnectionManager,
  type ConfirmChannel,
  type Logger,
  type Metrics,
  type SupervisedChannel,
} from '@vidmp3/shared';
import type { Persist, SendOutcome } from '../services/webhook-sender.js';

const quorum = { 'x-queue-type': 'quorum' } as const;

/**
 * The shared topology and one retry queue per configured delay: a failed attempt's next one waits there, unread,
 * until its TTL dead-letters it back to vidmp3.webhooks (no timer in the process; the wait survives restarts).
 */
export async function declareWebhookTopology(ch: ConfirmChannel, retryDelaysMs: readonly number[]): Promise<void> {
  await declareTopology(ch);
  for (const delay of new Set(retryDelaysMs)) {
    await ch.assertQueue(Topology.webhookRetryQueue(delay), {
      durable: true,
      arguments: {
        ...quorum,
        'x-message-ttl': delay,
        'x-dead-letter-exchange': Topology.webhooksExchange,
        'x-dead-letter-routing-key': Topology.webhooksQueue,
      },
    });
  }
}

/** Publishes webhook deliveries (first attempts to vidmp3.webhooks, later ones to a retry queue), confirmed. */
export class WebhookPublisher {
  private readonly supervised: SupervisedChannel;

  constructor(
    connection: AmqpConnectionManager,
    private readonly retryDelaysMs: readonly number[],
    logger: Logger,
    metrics?: Metrics,
  ) {
    this.supervised = superviseChannel(
      connection,
      { name: 'webhook-publisher', setup: (ch: ConfirmChannel) => declareWebhookTopology(ch, retryDelaysMs) },
      logger,
    );
    if (metrics) meterPublishes(this.supervised.channel, metrics);
  }

  ready(): boolean {
    return this.supervised.ready();
  }

  /** The first attempt of a delivery. */
  async publish(delivery: WebhookDelivery): Promise<void> {
    await publishConfirmed(
      this.supervised.channel,
      Topology.webhooksExchange,
      Topology.webhooksQueue,
      encodeMessage(delivery),
    );
  }

  /** A later attempt, into the retry queue of `delayMs` (one of the configured delays, declared at setup). */
  async publishRetry(delivery: WebhookDelivery, delayMs: number): Promise<void> {
    if (!this.retryDelaysMs.includes(delayMs)) throw new Error(`no retry queue for a delay of ${delayMs} ms`);
    await publishConfirmed(this.supervised.channel, '', Topology.webhookRetryQueue(delayMs), encodeMessage(delivery));
  }

  async close(): Promise<void> {
    await this.supervised.close();
  }
}

export interface DeliveryHandler {
  handle(delivery: WebhookDelivery, persist: Persist): Promise<SendOutcome>;
}

export interface WebhookConsumerOptions {
  prefetch: number;
  retryDelaysMs: readonly number[];
  /** Waits between tries of a failing step (users or RabbitMQ away): the first, doubling up to the last. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** How long a delivery is held while a step fails before it is handed back to RabbitMQ (well under its 30 min). */
  holdMs?: number;
  outcome?: (outcome: SendOutcome | 'malformed') => void;
}

/**
 * Takes webhook deliveries from vidmp3.webhooks (shared's HeldConsumer: manual acks, prefetch, set up again after
 * every reconnection). A delivery is acknowledged once its attempt is recorded and, after a failure, its next
 * attempt confirmed in a retry queue: a notifier that stops before leaves it to RabbitMQ, which hands it out again
 * (the attempt is made again: at least once). A failure before the POST (users away) tries the whole attempt
 * again; a failure of a step after it (`persist`) tries that step again, not the POST. A message that is not a
 * delivery is dead-lettered at once.
 */
export class WebhookConsumer extends HeldConsumer<WebhookDelivery, SendOutcome> {
  constructor(
    connection: AmqpConnectionManager,
    handler: DeliveryHandler,
    logger: Logger,
    { retryDelaysMs, ...options }: WebhookConsumerOptions,
  ) {
    super(connection, logger, {
      ...options,
      queue: Topology.webhooksQueue,
      name: 'webhook-sender',
      setup: (ch) => declareWebhookTopology(ch, retryDelaysMs),
      schema: WebhookDelivery,
      handle: (delivery, persist) => handler.handle(delivery, persist),
      describe: (delivery) => ({ deliveryId: delivery.deliveryId, attempt: delivery.attempt }),
    });
  }
}
