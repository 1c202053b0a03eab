import { setTimeout as sleep } from 'node:timers/promises';
import type { z } from 'zod';
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
import { decodeMessage } from './messaging.js';

export interface HeldConsumerOptions<E> {
  /** The queue to consume (declared by shared's `declareTopology`, run as the channel's setup). */
  queue: string;
  /** The channel's name, in logs and readiness. */
  name: string;
  /** What a message must be; anything else is dead-lettered at once. */
  schema: z.ZodType<E>;
  /** Handles one event: resolves with what it came to (logs, metrics); throws while a dependency fails. */
  handle: (event: E) => Promise<string>;
  /** Fields naming the event in its log lines. */
  describe: (event: E) => Record<string, unknown>;
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
 * Takes events from a queue (manual acks, prefetch), set up again after every reconnection: the notifier's events,
 * and each service's account events. An event is acknowledged once handled. While a dependency (a database, a
 * service) fails it is held and tried again with backoff — not handed back at once, which would spin it through
 * the queue — and handed back after `holdMs` (the queue dead-letters it after its delivery limit). A message that
 * is not an event can never be handled: it is dead-lettered at once, for an operator to read.
 */
export class HeldConsumer<E> {
  private readonly supervised: SupervisedChannel;
  private readonly inFlight = new Set<Promise<void>>();
  /** Aborted on close: every held event is handed back at once. */
  private readonly closing = new AbortController();
  /** The amqplib channel events arrive on now, and its consumer: a new one after every reconnection. */
  private current: { ch: ConfirmChannel; consumerTag: string } | undefined;

  constructor(
    connection: AmqpConnectionManager,
    private readonly logger: Logger,
    private readonly options: HeldConsumerOptions<E>,
  ) {
    this.supervised = superviseChannel(
      connection,
      { name: options.name, setup: (ch: ConfirmChannel) => this.setup(ch) },
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
    const { consumerTag } = await ch.consume(this.options.queue, (msg) => msg && this.take(ch, msg, lost.signal), {
      noAck: false,
    });
    this.current = { ch, consumerTag };
  }

  private take(ch: ConfirmChannel, msg: ConsumeMessage, lost: AbortSignal): void {
    const delivery = new Delivery(msg, ch);
    let event: E;
    try {
      event = decodeMessage(this.options.schema, msg.content);
    } catch (err) {
      this.logger.error({ err, queue: this.options.queue }, 'dead-lettering a message that is not an event');
      this.options.outcome?.('malformed');
      delivery.settle('dead-letter', this.logger);
      return;
    }
    const log = this.logger.child(this.options.describe(event));
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
  private async handleHeld(event: E, stop: AbortSignal, log: Logger): Promise<'ack' | 'requeue'> {
    const { retryBaseMs = 1_000, retryMaxMs = 30_000, holdMs = 10 * 60_000 } = this.options;
    const until = Date.now() + holdMs;
    for (let failures = 0; ; failures++) {
      try {
        const outcome = await this.options.handle(event);
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
