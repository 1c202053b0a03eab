import { randomUUID } from 'node:crypto';
import type { ConsumeMessage } from 'amqplib';
import { ZodError } from 'zod';
import {
  ConversionRequest,
  Delivery,
  JobControl,
  type AmqpConnectionManager,
  type ChannelWrapper,
  type ConfirmChannel,
  type JobEvent,
  type Logger,
  type Metrics,
  Topology,
  declareTopology,
  decodeMessage,
  encodeMessage,
  isRequestId,
  meterPublishes,
  superviseChannel,
  type SupervisedChannel,
  publishConfirmed,
} from '@vidmp3/shared';
import type { Config } from './config.js';
import {
  DEFERRALS_HEADER,
  handleConversion,
  headersFor,
  type ConversionPorts,
  type ConversionSettings,
  type StopReason,
} from './conversion.js';
import type { JobsClient } from './jobs-client.js';
import type { MediaClient } from './media-client.js';
import { conversionMeter, noConversionMeter, queueGauges, type ConversionMeter } from './metrics.js';
import { EndEstimate } from './look-ahead.js';
import { Scratch } from './scratch.js';
import { Slots } from './slots.js';
import type { openInput, transcode } from './transcoder.js';

export type WorkerSettings = ConversionSettings &
  Pick<Config, 'CONCURRENCY' | 'PREFETCH' | 'LOOKAHEAD_MS' | 'SCRATCH_DIR' | 'SHUTDOWN_GRACE_SECONDS'>;

export interface WorkerDeps {
  connection: AmqpConnectionManager;
  media: MediaClient;
  jobs: JobsClient;
  transcode: typeof transcode;
  /** Opens a claimed request's input ahead of its ffmpeg slot (transcoder.ts); without it, transcode opens it. */
  openInput?: typeof openInput;
  logger: Logger;
  settings: WorkerSettings;
  metrics?: Metrics;
}

/** Takes one more request: opens a consumer for it (taking requests on demand, without PREFETCH). */
type Take = () => void;

/** A delivery being worked on. */
interface Task {
  jobId?: string;
  attempt?: number;
  /** Held, but waiting for an ffmpeg slot: nothing started yet, so a shutdown hands it back at once. */
  waiting: boolean;
  controller: AbortController;
  done: Promise<void>;
  /**
   * Taking on demand: this request came on a consumer opened for it alone, and it opens the one for the next
   * request once, as soon as its ffmpeg is expected to end soon, or when it gives its slot back or ends.
   */
  takeNext?: Take;
}

/**
 * Takes conversion requests from RabbitMQ and hands each to `handleConversion` (conversion.ts), which claims,
 * converts, reports and says what becomes of the delivery; this side owns the channels, when to take the
 * next request, cancels (the control queue), settling each delivery once on the channel it came on, and the
 * shutdown grace.
 */
export class ConverterWorker {
  private readonly channel: ChannelWrapper;
  /** The channel's health: not ready while its setup fails or the broker has closed it (broker.ts). */
  private readonly supervised: SupervisedChannel;
  /** The amqplib channel deliveries currently arrive on; a new one after every reconnection. */
  private current: ConfirmChannel | undefined;
  private connected = false;
  private consumerTag: string | undefined;
  /** Taking on demand: the consumers open, each for one request (prefetch 1), cancelled once it arrived. */
  private readonly takers = new Set<string>();
  private started = false;
  private stopping = false;
  private readonly estimate: EndEstimate;
  private readonly tasks = new Set<Task>();
  /** ffmpeg processes running at once: CONCURRENCY, however many requests are held. */
  private readonly slots: Slots;
  private readonly meter: ConversionMeter = noConversionMeter;
  /** For the queue-depth gauges only: a failed check must not close the channel deliveries arrive on. */
  private readonly metricsChannel: ChannelWrapper | undefined;
  private readonly scratch: Scratch;

  constructor(private readonly deps: WorkerDeps) {
    this.slots = new Slots(deps.settings.CONCURRENCY);
    this.scratch = new Scratch(deps.settings.SCRATCH_DIR, scratchMaxAgeMs(deps.settings), deps.logger);
    this.estimate = new EndEstimate(deps.settings.LOOKAHEAD_MS);
    this.supervised = superviseChannel(
      deps.connection,
      { name: 'converter', setup: (ch: ConfirmChannel) => this.setup(ch) },
      deps.logger,
    );
    this.channel = this.supervised.channel;
    if (deps.metrics) {
      meterPublishes(this.channel, deps.metrics);
      this.meter = conversionMeter(deps.metrics);
      const tasks = this.tasks;
      deps.metrics.gauge({
        name: 'vidmp3_conversions_in_progress',
        help: 'Conversion requests this worker is handling now',
        collect() {
          this.set(tasks.size);
        },
      });
      // Supervised too: a failure to open it must not end the process (nothing it does decides readiness).
      this.metricsChannel = superviseChannel(
        deps.connection,
        { name: 'converter-metrics', setup: async () => undefined },
        deps.logger,
      ).channel;
      queueGauges(deps.metrics, this.metricsChannel, deps.logger);
    }
    this.channel.on('connect', () => {
      this.connected = true;
    });
    deps.connection.on('disconnect', () => {
      this.connected = false;
      // RabbitMQ has handed these deliveries back already and will give them to another worker: carrying on
      // would convert the same job twice (and refill the prefetch on top of them).
      for (const task of this.tasks) task.controller.abort('shutdown' satisfies StopReason);
    });
  }

  /** Run on every new channel (after a reconnection too), before the work consumer is re-established. */
  private async setup(ch: ConfirmChannel): Promise<void> {
    this.current = ch;
    await declareTopology(ch);
    // Each work consumer's prefetch (basic.qos, per consumer: it applies to the consumers opened after it on this
    // channel), set here rather than as consume()'s `prefetch` option: amqp-connection-manager sends that one
    // without awaiting it, and a channel that closes meanwhile rejects it unhandled, which ends the process.
    const { PREFETCH, CONCURRENCY } = this.deps.settings;
    await ch.prefetch(PREFETCH === undefined ? 1 : Math.max(PREFETCH, CONCURRENCY));
    // One server-named queue per worker, gone with its connection: every worker hears every cancel.
    const { queue } = await ch.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
    await ch.bindQueue(queue, Topology.controlExchange, '');
    await ch.consume(queue, (msg) => msg && this.onControl(msg.content), { noAck: true });
  }

  /** Resolves once the worker consumes conversion requests. */
  async start(): Promise<void> {
    await this.scratch.start(SCRATCH_SWEEP_EVERY_MS);
    await this.channel.waitForConnect();
    const { PREFETCH, CONCURRENCY } = this.deps.settings;
    if (PREFETCH === undefined) {
      await Promise.all(Array.from({ length: CONCURRENCY }, () => this.take()));
    } else {
      // Prefetch max(PREFETCH, CONCURRENCY), set on the channel (setup): above CONCURRENCY, RabbitMQ hands over
      // more requests than run at once; they wait for a slot.
      const { consumerTag } = await this.channel.consume(Topology.conversionsQueue, (msg) => this.onDelivery(msg), {
        noAck: false,
      });
      this.consumerTag = consumerTag;
    }
    this.started = true;
  }

  /**
   * Opens a consumer for one request (prefetch 1). A consumer's setting stays as it was opened (RabbitMQ applies
   * a new prefetch to new consumers only, and quorum queues have no channel-wide one), hence one consumer per
   * request taken: with ack-after-work and prefetch 1 it can receive nothing more before it is cancelled. The
   * connection manager opens it again after a reconnection, under the same tag, until it is cancelled.
   */
  private async take(): Promise<void> {
    if (this.stopping) return;
    const consumerTag = `take-${randomUUID()}`;
    this.takers.add(consumerTag);
    try {
      await this.channel.consume(Topology.conversionsQueue, (msg) => this.onDelivery(msg), {
        noAck: false, // prefetch 1: set on the channel (setup)
        consumerTag,
      });
    } catch (err) {
      this.takers.delete(consumerTag);
      throw err;
    }
    // The worker began stopping while RabbitMQ set this consumer up, too late for close() to cancel it.
    if (this.stopping) await this.channel.cancel(consumerTag);
  }

  /**
   * A request arrived on a taking consumer: cancel that consumer, and give the task the right to take the next
   * one. A request on a consumer already cancelled (one that slipped in before the cancel) takes nothing more.
   */
  private taken(consumerTag: string): Take | undefined {
    if (!this.takers.delete(consumerTag)) return undefined;
    // Not at once: the connection manager learns the consumer's tag just after RabbitMQ's consume-ok, which can
    // come with the first delivery; cancelled before that, it would only be forgotten, not cancelled.
    setImmediate(() => {
      this.channel
        .cancel(consumerTag)
        .catch((err: unknown) => this.deps.logger.warn({ err }, 'could not cancel a RabbitMQ consumer'));
    });
    let taken = false;
    return () => {
      if (taken) return;
      taken = true;
      this.take().catch((err: unknown) =>
        this.deps.logger.error({ err }, 'could not consume from RabbitMQ; the connection will be re-established'),
      );
    };
  }

  /** Connected to RabbitMQ and taking work. */
  isReady(): boolean {
    return this.connected && this.supervised.ready() && this.started && !this.stopping;
  }

  /**
   * Graceful stop: take no more work, let running conversions finish within the grace period, hand the rest
   * back to RabbitMQ (redelivered, to another worker), close the channel.
   */
  async close(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.scratch.stop();
    const { logger, settings } = this.deps;
    const consumers = [...(this.consumerTag ? [this.consumerTag] : []), ...this.takers];
    this.takers.clear();
    await Promise.all(
      consumers.map((tag) =>
        this.channel.cancel(tag).catch((err: unknown) => logger.warn({ err }, 'could not cancel a RabbitMQ consumer')),
      ),
    );
    // Requests waiting for an ffmpeg slot have not started: another worker can take them now.
    for (const task of this.tasks) if (task.waiting) task.controller.abort('shutdown' satisfies StopReason);
    if (this.tasks.size > 0) {
      logger.info(
        { running: this.tasks.size, graceSeconds: settings.SHUTDOWN_GRACE_SECONDS },
        'stopped taking work; letting running conversions finish',
      );
      const finished = await within(this.allDone(), settings.SHUTDOWN_GRACE_SECONDS * 1000);
      if (!finished) {
        logger.warn({ running: this.tasks.size }, 'grace period over; handing the remaining conversions back');
        for (const task of this.tasks) task.controller.abort('shutdown' satisfies StopReason);
        await this.allDone();
      }
    }
    await this.channel.close();
    await this.metricsChannel?.close();
  }

  private allDone(): Promise<unknown> {
    return Promise.all([...this.tasks].map((task) => task.done));
  }

  private onControl(content: Buffer): void {
    let control: JobControl;
    try {
      control = decodeMessage(JobControl, content);
    } catch (err) {
      this.deps.logger.warn({ err }, 'ignoring an invalid control message');
      return;
    }
    switch (control.type) {
      case 'cancel':
        for (const task of this.tasks) {
          if (task.jobId !== control.jobId || task.controller.signal.aborted) continue;
          // A cancel of an earlier attempt, arriving late: this attempt was queued after it (retryJob).
          if (control.attempt !== undefined && control.attempt !== task.attempt) continue;
          this.deps.logger.info({ jobId: control.jobId, attempt: task.attempt }, 'cancelling the conversion');
          task.controller.abort('cancel' satisfies StopReason);
        }
    }
  }

  private onDelivery(msg: ConsumeMessage): void {
    const delivery = new Delivery(msg, this.current);
    if (this.stopping) {
      // Sent before the consumer's cancellation reached the broker: give it straight back.
      delivery.settle('requeue', this.deps.logger);
      return;
    }
    const task: Task = { controller: new AbortController(), done: Promise.resolve(), waiting: false };
    const takeNext = this.taken(msg.fields.consumerTag);
    if (takeNext) task.takeNext = takeNext;
    this.tasks.add(task);
    task.done = this.handle(delivery, task)
      .catch((err: unknown) => {
        // Reporting the outcome failed (RabbitMQ gone mid-way): leave the request to RabbitMQ to hand out again.
        this.deps.logger.error({ err, jobId: task.jobId }, 'could not finish handling a conversion request');
        delivery.settle('requeue', this.deps.logger);
      })
      .finally(() => {
        this.tasks.delete(task);
        task.takeNext?.();
      });
  }

  private async handle(delivery: Delivery, task: Task): Promise<void> {
    const receivedAt = Date.now();
    const began = performance.now();
    const { msg } = delivery;
    let request: ConversionRequest;
    try {
      const decoded = decodeMessage(ConversionRequest, msg.content);
      // It ends up in ffmpeg's HTTP headers and in logs: only a well-formed id is kept.
      request = { ...decoded, requestId: isRequestId(decoded.requestId) ? decoded.requestId : undefined };
    } catch (err) {
      this.deps.logger.warn(
        { problem: describeInvalid(err), deliveryTag: msg.fields.deliveryTag },
        'invalid conversion request; dead-lettering it',
      );
      delivery.settle('dead-letter', this.deps.logger);
      this.meter.finished('invalid', (performance.now() - began) / 1000);
      return;
    }
    task.jobId = request.jobId;
    task.attempt = request.attempt;
    // Every line about this job carries the id of the request that queued it.
    const log = this.deps.logger.child({
      requestId: request.requestId,
      jobId: request.jobId,
      attempt: request.attempt,
    });
    const { signal } = task.controller;
    // Waiting from here until it holds an ffmpeg slot: a worker that stops hands the request back at once,
    // claimed or not (a redelivered request may take over its RUNNING job).
    task.waiting = true;
    const { outcome, settle } = await handleConversion(request, {
      ...this.ports,
      log,
      signal,
      delivery: {
        redelivered: msg.fields.redelivered,
        deferrals: Number(msg.properties.headers?.[DEFERRALS_HEADER] ?? 0) || 0,
        receivedAt,
        deliveryTag: msg.fields.deliveryTag,
      },
      slot: () => this.slots.acquire(signal).finally(() => (task.waiting = false)),
      ...(task.takeNext ? { takeNext: task.takeNext } : {}),
    });
    delivery.settle(settle, log);
    this.meter.finished(outcome, (performance.now() - began) / 1000);
  }

  /** What every conversion on this worker shares. */
  private get ports(): Pick<
    ConversionPorts,
    'jobs' | 'media' | 'transcode' | 'openInput' | 'publish' | 'retryLater' | 'scratch' | 'settings' | 'estimate'
  > {
    const { jobs, media, transcode, openInput, settings } = this.deps;
    return {
      jobs,
      media,
      transcode,
      ...(openInput ? { openInput } : {}),
      settings,
      scratch: this.scratch,
      estimate: this.estimate,
      publish: (request: ConversionRequest, event: JobEvent) => this.publish(request, event),
      retryLater: (request: ConversionRequest, delayMs: number, headers: Record<string, string> = {}) =>
        publishConfirmed(this.channel, '', Topology.retryQueue(delayMs), encodeMessage(request), {
          ...headersFor(request),
          ...headers,
        }),
    };
  }

  private publish(request: ConversionRequest, event: JobEvent): Promise<void> {
    return publishConfirmed(
      this.channel,
      Topology.eventsExchange,
      Topology.eventsQueue,
      encodeMessage(event),
      headersFor(request),
    );
  }
}

/** Scratch files untouched this much longer than the longest conversion are a crashed worker's left-overs. */
const SCRATCH_MARGIN_MS = 15 * 60_000;
const SCRATCH_SWEEP_EVERY_MS = 10 * 60_000;
const scratchMaxAgeMs = (settings: Pick<Config, 'CONVERSION_TIMEOUT_SECONDS'>) =>
  settings.CONVERSION_TIMEOUT_SECONDS * 1000 + SCRATCH_MARGIN_MS;

/** Why a message did not decode, in one line: the schema's complaints, or the JSON parser's. */
function describeInvalid(err: unknown): string {
  if (err instanceof ZodError) {
    return err.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ');
  }
  return err instanceof Error ? err.message : String(err);
}

/** True if `promise` settles within `ms`, false if the time runs out first. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
