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

/**
 * Tries one step of handling again, with the consumer's backoff, while it fails: resolves with its result, or
 * rejects once the hold is over (or the consumer closes), and the whole event is then handed back to RabbitMQ.
 */
export type RetryStep = <T>(step: () => Promise<T>) => Promise<T>;

export interface HeldConsumerOptions<E, O extends string = string> {
  /** The queue to consume. */
  queue: string;
  /** Declares what the channel needs, after every reconnection: shared's `declareTopology` unless given. */
  setup?: (ch: ConfirmChannel) => Promise<void>;
  /** The channel's name, in logs and readiness. */
  name: string;
  /** What a message must be; anything else is dead-lettered at once. */
  schema: z.ZodType<E>;
  /**
   * Handles one event: resolves with what it came to (logs, metrics); throws while a dependency fails, and is
   * then called again. A step that must not be repeated with the rest (a webhook's POST once made) runs the steps
   * after it through `retry`, so that only those are tried again.
   */
  handle: (event: E, retry: RetryStep) => Promise<O>;
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
  outcome?: (outcome: O | 'malformed') => void;
}

/**
 * Takes events from a queue (manual acks, prefetch), set up again after every reconnection: the notifier's events,
 * and each service's account events. An event is acknowledged once handled. While a dependency (a database, a
 * service) fails it is held and tried again with backoff — not handed back at once, which would spin it through
 * the queue — and handed back after `holdMs` (the queue dead-letters it after its delivery limit). A message that
 * is not an event can never be handled: it is dead-lettered at once, for an operator to read.
 */
export class HeldConsumer<E, O extends string = string> {
  private readonly supervised: SupervisedChannel;
  private readonly inFlight = new Set<Promise<void>>();
  /** Aborted on close: every held event is handed back at once. */
  private readonly closing = new AbortController();
  /** The amqplib channel events arrive on now, and its consumer: a new one after every reconnection. */
  private current: { ch: ConfirmChannel; consumerTag: string } | undefined;

  constructor(
    connection: AmqpConnectionManager,
    private readonly logger: Logger,
    private readonly options: HeldConsumerOptions<E, O>,
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
    await (this.options.setup ?? declareTopology)(ch);
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
    const until = Date.now() + (this.options.holdMs ?? 10 * 60_000);
    const retry: RetryStep = (step) => this.keepTrying(step, stop, until, log);
    try {
      const outcome = await retry(() => this.options.handle(event, retry));
      this.options.outcome?.(outcome);
      log.debug({ outcome }, 'event handled');
      return 'ack';
    } catch (err) {
      log.warn(
        { err: err instanceof GiveUp ? err.cause : err },
        'could not handle an event; handing it back to RabbitMQ',
      );
      return 'requeue';
    }
  }

  /** Runs `step` until it succeeds, waiting with backoff between tries; GiveUp past `until` or once stopped. */
  private async keepTrying<T>(step: () => Promise<T>, stop: AbortSignal, until: number, log: Logger): Promise<T> {
    const { retryBaseMs = 1_000, retryMaxMs = 30_000 } = this.options;
    for (let failures = 0; ; failures++) {
      try {
        return await step();
      } catch (err) {
        // A step inside gave up: so does the whole event, not tried again around it.
        if (err instanceof GiveUp) throw err;
        const wait = Math.min(retryBaseMs * 2 ** Math.min(failures, 30), retryMaxMs);
        if (stop.aborted || Date.now() + wait > until) throw new GiveUp(err);
        log.warn({ err, retryInMs: wait }, 'could not handle an event; will retry');
        await sleep(wait, undefined, { signal: stop }).catch(() => undefined);
        if (stop.aborted) throw new GiveUp(err); // closing, or the channel is gone
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

/** Handling that could not be done in time: the event is handed back (not tried again around it). */
class GiveUp extends Error {
  constructor(cause: unknown) {
    super('gave up', { cause });
  }
}
