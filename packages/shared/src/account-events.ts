import { setTimeout as sleep } from 'node:timers/promises';
import {
  declareTopology,
  Delivery,
  superviseChannel,
  type AmqpConnectionManager,
  type ConfirmChannel,
  type ConsumeMessage,
  type SupervisedChannel,
} from './broker.js';
import type { Logger } from './logger.js';
import { AccountDeleted, decodeMessage, Topology } from './messaging.js';

/** A service's part of deleting an account: removes what it holds of the user; idempotent. */
export interface AccountDeletionHandler {
  /** Resolves with what it came to (for logs); throws while a dependency fails (the event is tried again). */
  accountDeleted(event: AccountDeleted): Promise<string>;
}

export interface AccountEventConsumerOptions {
  /** Waits between tries of an event whose handling failed: the first, doubling up to the last. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** How long an event is held and retried before it is handed back to RabbitMQ (which counts a delivery). */
  holdMs?: number;
}

/**
 * Takes `AccountDeleted` events from one service's queue on the accounts fanout (manual acks, one at a time: a
 * deletion can be long, and they are rare), set up again after every reconnection. Acknowledged once handled;
 * while a dependency fails the event is held and tried again with backoff, then handed back after `holdMs` (the
 * queue dead-letters it after Topology.notificationsDeliveryLimit deliveries); a message that is not an event is
 * dead-lettered at once, for an operator to read. The notifier's EventConsumer is the same pattern.
 */
export class AccountEventConsumer {
  private readonly supervised: SupervisedChannel;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly closing = new AbortController();
  private current: { ch: ConfirmChannel; consumerTag: string } | undefined;
  private readonly queue: string;

  constructor(
    connection: AmqpConnectionManager,
    service: 'media' | 'jobs' | 'notifier',
    private readonly handler: AccountDeletionHandler,
    private readonly logger: Logger,
    private readonly options: AccountEventConsumerOptions = {},
  ) {
    this.queue = Topology.accountsQueue(service);
    this.supervised = superviseChannel(
      connection,
      { name: `${service}-accounts`, setup: (ch: ConfirmChannel) => this.setup(ch) },
      logger,
    );
  }

  ready(): boolean {
    return this.supervised.ready();
  }

  private async setup(ch: ConfirmChannel): Promise<void> {
    await declareTopology(ch);
    await ch.prefetch(1);
    const lost = new AbortController();
    ch.once('close', () => lost.abort());
    const { consumerTag } = await ch.consume(this.queue, (msg) => msg && this.take(ch, msg, lost.signal), {
      noAck: false,
    });
    this.current = { ch, consumerTag };
  }

  private take(ch: ConfirmChannel, msg: ConsumeMessage, lost: AbortSignal): void {
    const delivery = new Delivery(msg, ch);
    let event: AccountDeleted;
    try {
      event = decodeMessage(AccountDeleted, msg.content);
    } catch (err) {
      this.logger.error({ err, queue: this.queue }, 'dead-lettering a message that is not an account event');
      delivery.settle('dead-letter', this.logger);
      return;
    }
    const log = this.logger.child({ eventId: event.eventId, userId: event.userId });
    const work = this.handleHeld(event, AbortSignal.any([lost, this.closing.signal]), log).then(
      (settlement) => {
        delivery.settle(settlement, log);
      },
      (err: unknown) => {
        log.error({ err }, 'unexpected failure handling an account event; handing it back');
        delivery.settle('requeue', log);
      },
    );
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  private async handleHeld(event: AccountDeleted, stop: AbortSignal, log: Logger): Promise<'ack' | 'requeue'> {
    const { retryBaseMs = 1_000, retryMaxMs = 30_000, holdMs = 10 * 60_000 } = this.options;
    const until = Date.now() + holdMs;
    for (let failures = 0; ; failures++) {
      try {
        const outcome = await this.handler.accountDeleted(event);
        log.info({ outcome }, 'account deletion handled');
        return 'ack';
      } catch (err) {
        const wait = Math.min(retryBaseMs * 2 ** Math.min(failures, 30), retryMaxMs);
        if (stop.aborted || Date.now() + wait > until) {
          log.warn({ err }, 'could not handle an account deletion; handing it back to RabbitMQ');
          return 'requeue';
        }
        log.warn({ err, retryInMs: wait }, 'could not handle an account deletion; will retry');
        try {
          await sleep(wait, undefined, { signal: stop });
        } catch {
          return 'requeue';
        }
      }
    }
  }

  /** Stops taking events, hands the held ones back, waits for those being handled, closes the channel. */
  async close(): Promise<void> {
    const current = this.current;
    if (current) await current.ch.cancel(current.consumerTag).catch(() => undefined);
    this.closing.abort();
    await Promise.allSettled([...this.inFlight]);
    await this.supervised.close();
  }
}
