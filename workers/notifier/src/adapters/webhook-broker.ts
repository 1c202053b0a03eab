import { setTimeout as sleep } from 'node:timers/promises';
import {
  declareTopology,
  decodeMessage,
  Delivery,
  encodeMessage,
  meterPublishes,
  publishConfirmed,
  superviseChannel,
  Topology,
  WebhookDelivery,
  type AmqpConnectionManager,
  type ConfirmChannel,
  type ConsumeMessage,
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
 * Takes webhook deliveries from vidmp3.webhooks (manual acks, prefetch), set up again after every reconnection. A
 * delivery is acknowledged once its attempt is recorded and, after a failure, its next attempt confirmed in a
 * retry queue: a notifier that stops before leaves it to RabbitMQ, which hands it out again (the attempt is made
 * again: at least once). A message that is not a delivery is dead-lettered at once.
 */
export class WebhookConsumer {
  private readonly supervised: SupervisedChannel;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly closing = new AbortController();
  private current: { ch: ConfirmChannel; consumerTag: string } | undefined;

  constructor(
    connection: AmqpConnectionManager,
    private readonly handler: DeliveryHandler,
    private readonly logger: Logger,
    private readonly options: WebhookConsumerOptions,
  ) {
    this.supervised = superviseChannel(
      connection,
      { name: 'webhook-sender', setup: (ch: ConfirmChannel) => this.setup(ch) },
      logger,
    );
  }

  ready(): boolean {
    return this.supervised.ready();
  }

  async started(): Promise<void> {
    await this.supervised.channel.waitForConnect();
  }

  private async setup(ch: ConfirmChannel): Promise<void> {
    await declareWebhookTopology(ch, this.options.retryDelaysMs);
    await ch.prefetch(this.options.prefetch);
    const lost = new AbortController();
    ch.once('close', () => lost.abort());
    const { consumerTag } = await ch.consume(Topology.webhooksQueue, (msg) => msg && this.take(ch, msg, lost.signal), {
      noAck: false,
    });
    this.current = { ch, consumerTag };
  }

  private take(ch: ConfirmChannel, msg: ConsumeMessage, lost: AbortSignal): void {
    const delivery = new Delivery(msg, ch);
    let message: WebhookDelivery;
    try {
      message = decodeMessage(WebhookDelivery, msg.content);
    } catch (err) {
      this.logger.error({ err }, 'dead-lettering a message that is not a webhook delivery');
      this.options.outcome?.('malformed');
      delivery.settle('dead-letter', this.logger);
      return;
    }
    const log = this.logger.child({ deliveryId: message.deliveryId, attempt: message.attempt });
    const stop = AbortSignal.any([lost, this.closing.signal]);
    const work = this.handleHeld(message, stop, log).then(
      (settlement) => {
        delivery.settle(settlement, log);
      },
      (err: unknown) => {
        log.error({ err }, 'unexpected failure sending a webhook; handing it back');
        delivery.settle('requeue', log);
      },
    );
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  /**
   * Runs the attempt. A failure before the POST (users away) tries the whole attempt again; a failure of a step
   * after it (`persist`) tries that step again, not the POST. Past `holdMs`, or when closing, 'requeue'.
   */
  private async handleHeld(message: WebhookDelivery, stop: AbortSignal, log: Logger): Promise<'ack' | 'requeue'> {
    const until = Date.now() + (this.options.holdMs ?? 10 * 60_000);
    const persist: Persist = (step) => this.keepTrying(step, stop, until, log);
    try {
      const outcome = await this.keepTrying(() => this.handler.handle(message, persist), stop, until, log);
      this.options.outcome?.(outcome);
      return 'ack';
    } catch (err) {
      log.warn({ err }, 'could not complete a webhook attempt; handing it back to RabbitMQ');
      return 'requeue';
    }
  }

  private async keepTrying<T>(step: () => Promise<T>, stop: AbortSignal, until: number, log: Logger): Promise<T> {
    const { retryBaseMs = 1_000, retryMaxMs = 30_000 } = this.options;
    for (let failures = 0; ; failures++) {
      try {
        return await step();
      } catch (err) {
        if (err instanceof GiveUp) throw err;
        const wait = Math.min(retryBaseMs * 2 ** Math.min(failures, 30), retryMaxMs);
        if (stop.aborted || Date.now() + wait > until) throw new GiveUp(err);
        log.warn({ err, retryInMs: wait }, 'a webhook step failed; will retry');
        await sleep(wait, undefined, { signal: stop }).catch(() => undefined);
        if (stop.aborted) throw new GiveUp(err);
      }
    }
  }

  async close(): Promise<void> {
    const current = this.current;
    if (current) await current.ch.cancel(current.consumerTag).catch(() => undefined);
    this.closing.abort();
    await Promise.allSettled([...this.inFlight]);
    await this.supervised.close();
  }
}

/** A step that could not be done in time: the attempt is abandoned (not tried again around it). */
class GiveUp extends Error {
  constructor(cause: unknown) {
    super('gave up', { cause });
  }
}
