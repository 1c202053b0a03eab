import { setTimeout as sleep } from 'node:timers/promises';
import {
  declareTopology,
  decodeMessage,
  Delivery,
  NotifierEvent,
  superviseChannel,
  Topology,
  type AmqpConnectionManager,
  type ConfirmChannel,
  type ConsumeMessage,
  type Logger,
  type SupervisedChannel,
} from '@vidmp3/shared';

export interface EventHandler {
  /** Resolves with what it came to (for logs and metrics); throws when a dependency failed. */
  handle(event: NotifierEvent): Promise<string>;
}

export interface ConsumerOptions {
  prefetch: number;
  /** Waits between tries of an event whose handling failed: the first, doubling up to the last. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /**
   * How long an event is held and retried before it is handed back to RabbitMQ (which counts a delivery): well
   * under RabbitMQ's consumer timeout (30 min), past which it would close the channel with every event on it.
   */
  holdMs?: number;
  /** Called with each event's outcome, and `malformed` for a message that is not one. */
  outcome?: (outcome: string) => void;
}

/**
 * Takes the notifier's events from RabbitMQ (manual acks, prefetch), set up again after every reconnection. An
 * event is acknowledged once handled. While users or the database fail it is held and tried again with backoff —
 * not handed back at once, which would spin it through the queue — and handed back after `holdMs` (the queue
 * dead-letters it after Topology.notificationsDeliveryLimit deliveries). A message that is not an event can
 * never be handled: it is dead-lettered at once, for an operator to read.
 */
export class EventConsumer {
  private readonly supervised: SupervisedChannel;
  private readonly inFlight = new Set<Promise<void>>();
  /** Aborted on close: every held event is handed back at once. */
  private readonly closing = new AbortController();
  /** The amqplib channel events arrive on now, and its consumer: a new one after every reconnection. */
  private current: { ch: ConfirmChannel; consumerTag: string } | undefined;

  constructor(
    connection: AmqpConnectionManager,
    private readonly handler: EventHandler,
    private readonly logger: Logger,
    private readonly options: ConsumerOptions,
  ) {
    this.supervised = superviseChannel(
      connection,
      { name: 'notifier', setup: (ch: ConfirmChannel) => this.setup(ch) },
      logger,
    );
  }

  ready(): boolean {
    return this.supervised.ready();
  }

  /** Resolves once the channel is set up and consuming (the first time). */
  async started(): Promise<void> {
    await this.supervised.channel.waitForConnect();
  }

  private async setup(ch: ConfirmChannel): Promise<void> {
    await declareTopology(ch);
    await ch.prefetch(this.options.prefetch);
    // Held events of a channel that closed are RabbitMQ's again (it redelivers them): stop retrying them.
    const lost = new AbortController();
    ch.once('close', () => lost.abort());
    const { consumerTag } = await ch.consume(
      Topology.notificationsQueue,
      (msg) => msg && this.take(ch, msg, lost.signal),
      {
        noAck: false,
      },
    );
    this.current = { ch, consumerTag };
  }

  private take(ch: ConfirmChannel, msg: ConsumeMessage, lost: AbortSignal): void {
    const delivery = new Delivery(msg, ch);
    let event: NotifierEvent;
    try {
      event = decodeMessage(NotifierEvent, msg.content);
    } catch (err) {
      this.logger.error({ err }, 'dead-lettering a message that is not a notifier event');
      this.options.outcome?.('malformed');
      delivery.settle('dead-letter', this.logger);
      return;
    }
    const log = this.logger.child({ eventId: event.eventId });
    const work = this.handleHeld(event, AbortSignal.any([lost, this.closing.signal]), log).then(
      (settlement) => {
        delivery.settle(settlement, log);
      },
      (err: unknown) => {
        log.error({ err }, 'unexpected failure handling an event; handing it back');
        delivery.settle('requeue', log);
      },
    );
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  /** Handles the event, trying again with backoff while it fails; 'requeue' when it is to be handed back. */
  private async handleHeld(event: NotifierEvent, stop: AbortSignal, log: Logger): Promise<'ack' | 'requeue'> {
    const { retryBaseMs = 1_000, retryMaxMs = 30_000, holdMs = 10 * 60_000 } = this.options;
    const until = Date.now() + holdMs;
    for (let failures = 0; ; failures++) {
      try {
        const outcome = await this.handler.handle(event);
        this.options.outcome?.(outcome);
        log.debug({ outcome }, 'event handled');
        return 'ack';
      } catch (err) {
        const wait = Math.min(retryBaseMs * 2 ** Math.min(failures, 30), retryMaxMs);
        if (stop.aborted || Date.now() + wait > until) {
          log.warn({ err }, 'could not handle an event; handing it back to RabbitMQ');
          return 'requeue';
        }
        log.warn({ err, retryInMs: wait }, 'could not handle an event; will retry');
        try {
          await sleep(wait, undefined, { signal: stop });
        } catch {
          return 'requeue'; // closing, or the channel is gone
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
