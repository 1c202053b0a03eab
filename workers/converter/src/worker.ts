import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ConsumeMessage } from 'amqplib';
import { ZodError } from 'zod';
import {
  ConversionRequest,
  JobControl,
  type AmqpConnectionManager,
  type ChannelWrapper,
  type ConfirmChannel,
  type JobEvent,
  type Logger,
  type Metrics,
  REQUEST_ID_HEADER,
  RETRY_DELAYS_MS,
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
import { ClaimUnavailableError, planFailure, TransientError } from './errors.js';
import type { JobsClient } from './jobs-client.js';
import type { MediaClient } from './media-client.js';
import {
  conversionMeter,
  noConversionMeter,
  queueGauges,
  type ConversionMeter,
  type ConversionOutcome,
} from './metrics.js';
import { EndEstimate } from './look-ahead.js';
import { expectedSeconds, ProgressThrottle } from './progress.js';
import { Slots } from './slots.js';
import type { FfmpegLimits, transcode } from './transcoder.js';

export type WorkerSettings = Pick<
  Config,
  | 'CONCURRENCY'
  | 'PREFETCH'
  | 'LOOKAHEAD_MS'
  | 'MAX_ATTEMPTS'
  | 'SCRATCH_DIR'
  | 'SHUTDOWN_GRACE_SECONDS'
  | 'CONVERSION_TIMEOUT_SECONDS'
  | 'MAX_INPUT_SECONDS'
  | 'FFMPEG_PATH'
  | 'FFMPEG_MAX_MEMORY_MB'
  | 'FFMPEG_MAX_CPU_SECONDS'
  | 'PRLIMIT_PATH'
  | 'PATH'
  | 'READRATE'
>;

export interface WorkerDeps {
  connection: AmqpConnectionManager;
  media: MediaClient;
  jobs: JobsClient;
  transcode: typeof transcode;
  logger: Logger;
  settings: WorkerSettings;
  metrics?: Metrics;
}

/** Why a running conversion was stopped on purpose. */
type StopReason = 'cancel' | 'shutdown';

/** One delivery, remembered with the channel it arrived on: only that channel can acknowledge it. */
interface Delivery {
  msg: ConsumeMessage;
  channel: ConfirmChannel | undefined;
  settled: boolean;
  /** Epoch ms when it arrived: the start of the job's timeline in the log. */
  receivedAt: number;
}

/** Takes one more request: opens a consumer for it (taking requests on demand, without PREFETCH). */
type Take = () => void;

/** A delivery being worked on. */
interface Task {
  jobId?: string;
  /** Held, but waiting for an ffmpeg slot: nothing started yet, so a shutdown hands it back at once. */
  waiting: boolean;
  controller: AbortController;
  done: Promise<void>;
  /**
   * Taking on demand: this request came on a consumer opened for it alone, and it opens the one for the next
   * request once, as soon as its ffmpeg is expected to end soon, or when it gives its slot back or ends.
   */
  takeNext?: Take;
  /** Claimed: renews the attempt's lease in jobs until the task ends. */
  heartbeat?: NodeJS.Timeout;
}

/**
 * Consumes conversion requests: claim the attempt, convert, store the mp3, report, and only then
 * acknowledge, so a crash at any point leaves the request with RabbitMQ for another worker.
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

  constructor(private readonly deps: WorkerDeps) {
    this.slots = new Slots(deps.settings.CONCURRENCY);
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
    // One server-named queue per worker, gone with its connection: every worker hears every cancel.
    const { queue } = await ch.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
    await ch.bindQueue(queue, Topology.controlExchange, '');
    await ch.consume(queue, (msg) => msg && this.onControl(msg.content), { noAck: true });
  }

  /** Resolves once the worker consumes conversion requests. */
  async start(): Promise<void> {
    await this.channel.waitForConnect();
    const { PREFETCH, CONCURRENCY } = this.deps.settings;
    if (PREFETCH === undefined) {
      await Promise.all(Array.from({ length: CONCURRENCY }, () => this.take()));
    } else {
      const { consumerTag } = await this.channel.consume(Topology.conversionsQueue, (msg) => this.onDelivery(msg), {
        noAck: false,
        // Above CONCURRENCY, RabbitMQ hands over more requests than run at once; they wait for a slot.
        prefetch: Math.max(PREFETCH, CONCURRENCY),
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
        noAck: false,
        prefetch: 1,
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
          this.deps.logger.info({ jobId: control.jobId }, 'cancelling the conversion');
          task.controller.abort('cancel' satisfies StopReason);
        }
    }
  }

  private onDelivery(msg: ConsumeMessage): void {
    const delivery: Delivery = { msg, channel: this.current, settled: false, receivedAt: Date.now() };
    if (this.stopping) {
      // Sent before the consumer's cancellation reached the broker: give it straight back.
      this.settle(delivery, 'requeue', this.deps.logger);
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
        this.settle(delivery, 'requeue', this.deps.logger);
      })
      .finally(() => {
        this.tasks.delete(task);
        task.takeNext?.();
      });
  }

  private async handle(delivery: Delivery, task: Task): Promise<void> {
    const began = performance.now();
    const finished = (outcome: ConversionOutcome) => this.meter.finished(outcome, (performance.now() - began) / 1000);
    let request: ConversionRequest;
    try {
      const decoded = decodeMessage(ConversionRequest, delivery.msg.content);
      // It ends up in ffmpeg's HTTP headers and in logs: only a well-formed id is kept.
      request = { ...decoded, requestId: isRequestId(decoded.requestId) ? decoded.requestId : undefined };
    } catch (err) {
      this.deps.logger.warn(
        { problem: describeInvalid(err), deliveryTag: delivery.msg.fields.deliveryTag },
        'invalid conversion request; dead-lettering it',
      );
      this.settle(delivery, 'dead-letter', this.deps.logger);
      finished('invalid');
      return;
    }
    task.jobId = request.jobId;
    // Every line about this job carries the id of the request that queued it.
    const log = this.deps.logger.child({
      requestId: request.requestId,
      jobId: request.jobId,
      attempt: request.attempt,
    });
    // A name of our own: the job id comes from a message, and must not choose a path.
    const output = join(this.deps.settings.SCRATCH_DIR, `${randomUUID()}.mp3`);
    try {
      finished(await this.convert(request, delivery, task, output, log));
    } catch (err) {
      finished(await this.onFailure(err, request, delivery, task.controller.signal, log));
    } finally {
      clearInterval(task.heartbeat);
      await rm(output, { force: true });
    }
  }

  private async convert(
    request: ConversionRequest,
    delivery: Delivery,
    task: Task,
    output: string,
    log: Logger,
  ): Promise<'succeeded' | 'not_claimed'> {
    const signal = task.controller.signal;
    // Taken on demand, a request waits for a slot only while the ffmpeg before it ends (about LOOKAHEAD_MS at
    // most): it is claimed first, in that time, so that its ffmpeg follows the slot at once. With a fixed
    // PREFETCH it may wait behind a long conversion: claimed only once a slot is free, it stays QUEUED for
    // its owner meanwhile. Either way it can be cancelled without a process to kill.
    const claimFirst = task.takeNext !== undefined;
    // Waiting from here: a worker that stops hands the request back at once, claimed or not (a redelivered
    // request may take over its RUNNING job).
    task.waiting = true;
    let claimed = 0;
    if (claimFirst) {
      if (!(await this.claim(request, delivery, task, log))) return 'not_claimed';
      claimed = Date.now();
    }
    const slot = await this.slots.acquire(signal).finally(() => (task.waiting = false));
    const slotted = Date.now();
    // Giving the slot back takes the next request, unless it was taken already (this ffmpeg about to end).
    const release = () => {
      slot();
      task.takeNext?.();
    };
    try {
      if (!claimFirst) {
        if (!(await this.claim(request, delivery, task, log))) return 'not_claimed';
        claimed = Date.now();
      }
      return await this.run(request, delivery, task, output, log, release, { slotted, claimed });
    } finally {
      release();
    }
  }

  /** Asks jobs whether this attempt may run here; when not, the request is acknowledged (dropped): false. */
  private async claim(request: ConversionRequest, delivery: Delivery, task: Task, log: Logger) {
    const redelivered = delivery.msg.fields.redelivered;
    const context = { requestId: request.requestId, signal: task.controller.signal };
    const claim = await this.deps.jobs
      .claim(request.jobId, request.attempt, redelivered, context)
      .catch((err: unknown) => {
        if (err instanceof TransientError) throw new ClaimUnavailableError(err.message, { cause: err });
        throw err;
      });
    if (!claim.proceed) {
      log.info({ reason: claim.reason }, 'attempt not claimed; dropping the request');
      this.settle(delivery, 'ack', log);
      return false;
    }
    // The attempt is ours while jobs hears from us: progress may be silent for long (a slow input, a slot to
    // wait for, the upload), so a heartbeat — a progress report of 0, which only renews the lease — goes out
    // every third of it. Without it, jobs takes the job back and queues it again.
    const leaseMs = (claim.leaseSeconds ?? DEFAULT_LEASE_SECONDS) * 1000;
    task.heartbeat = setInterval(() => {
      this.publish(request, { type: 'progress', ...stamp(request), progress: 0 }).catch((err: unknown) =>
        log.warn({ err }, 'could not publish a heartbeat'),
      );
    }, leaseMs / 3);
    return true;
  }

  /** Claimed, with an ffmpeg slot held; gives it back (`release`) as soon as ffmpeg has ended, before the upload. */
  private async run(
    request: ConversionRequest,
    delivery: Delivery,
    task: Task,
    output: string,
    log: Logger,
    release: () => void,
    /** Epoch ms when the slot was granted and the claim answered. */
    { slotted, claimed }: { slotted: number; claimed: number },
  ): Promise<'succeeded'> {
    const { media, settings } = this.deps;
    const { signal } = task.controller;
    const context = { requestId: request.requestId, signal };
    const redelivered = delivery.msg.fields.redelivered;

    // Epoch ms of each step, logged with the outcome: the benchmark lines them up with jobs' own timestamps
    // (bench/convert.ts) to show where a job's time goes besides ffmpeg.
    const steps = {
      received: delivery.receivedAt,
      slotted,
      claimed,
      ffmpegStarted: 0,
      ffmpegEnded: 0,
      uploaded: 0,
      succeededPublished: 0,
    };
    // Not awaited before ffmpeg starts: the events of one job go out on one channel, in order, so `started`
    // still precedes its progress and outcome; its confirm is awaited before the outcome is reported.
    const startedSent = this.publish(request, { type: 'started', ...stamp(request) });
    startedSent.catch(() => undefined); // awaited below; a rejection before then is not unhandled
    log.info({ redelivered }, 'conversion started');

    const throttle = new ProgressThrottle();
    const outputSeconds = expectedSeconds({
      durationSeconds: request.inputDurationSeconds,
      startSeconds: request.options.startSeconds,
      endSeconds: request.options.endSeconds,
      maxSeconds: settings.MAX_INPUT_SECONDS,
    });
    await this.deps.transcode({
      inputUrl: media.contentUrl(request.inputMediaId),
      headers: media.authHeaders(request.requestId),
      output,
      options: request.options,
      durationSeconds: request.inputDurationSeconds,
      signal,
      onStart: () => {
        steps.ffmpegStarted = Date.now();
        if (this.estimate.endsSoonAtStart(outputSeconds)) task.takeNext?.();
      },
      onProgress: (progress) => {
        if (task.takeNext && this.estimate.endsSoon(progress, Date.now() - steps.ffmpegStarted)) task.takeNext();
        if (!throttle.offer(progress)) return;
        this.publish(request, { type: 'progress', ...stamp(request), progress }).catch((err: unknown) =>
          log.warn({ err }, 'could not publish progress'),
        );
      },
      ...(settings.READRATE ? { readrate: settings.READRATE } : {}),
      ffmpegPath: settings.FFMPEG_PATH,
      timeoutMs: settings.CONVERSION_TIMEOUT_SECONDS * 1000,
      maxSeconds: settings.MAX_INPUT_SECONDS,
      limits: ffmpegLimits(settings),
    });
    steps.ffmpegEnded = Date.now();
    // The next request held here can run its ffmpeg while this output is stored.
    release();
    this.estimate.learn(outputSeconds, steps.ffmpegEnded - steps.ffmpegStarted);
    await startedSent;

    const { id } = await media.uploadOutput(request.jobId, request.ownerId, request.inputMediaId, output, context);
    steps.uploaded = Date.now();
    await this.publish(request, { type: 'succeeded', ...stamp(request), outputMediaId: id });
    steps.succeededPublished = Date.now();
    log.info(
      {
        outputMediaId: id,
        deliveryTag: delivery.msg.fields.deliveryTag,
        convertMs: steps.ffmpegEnded - steps.claimed,
        uploadMs: steps.uploaded - steps.ffmpegEnded,
        steps,
      },
      'conversion succeeded',
    );
    this.settle(delivery, 'ack', log);
    return 'succeeded';
  }

  private async onFailure(
    err: unknown,
    request: ConversionRequest,
    delivery: Delivery,
    signal: AbortSignal,
    log: Logger,
  ): Promise<ConversionOutcome> {
    if (signal.aborted) {
      const reason = signal.reason as StopReason;
      switch (reason) {
        case 'cancel':
          await this.publish(request, { type: 'cancelled', ...stamp(request) });
          log.info('conversion cancelled');
          this.settle(delivery, 'ack', log);
          return 'cancelled';
        case 'shutdown':
          // Redelivered (redelivered = true) to another worker, whose claim may take over the running job.
          log.info('shutting down: conversion handed back to RabbitMQ');
          this.settle(delivery, 'requeue', log);
          return 'handed_back';
      }
    }

    if (err instanceof ClaimUnavailableError) {
      // Spending attempts while jobs is away would fail jobs that never ran: wait, and ask again.
      const deferrals = Number(delivery.msg.properties.headers?.[DEFERRALS_HEADER] ?? 0) || 0;
      const delayMs = RETRY_DELAYS_MS[deferrals] ?? Math.max(...RETRY_DELAYS_MS);
      log.warn({ err, deferrals, delayMs }, 'the job service did not answer the claim; asking again later');
      await publishConfirmed(this.channel, '', Topology.retryQueue(delayMs), encodeMessage(request), {
        ...headersFor(request),
        [DEFERRALS_HEADER]: String(deferrals + 1),
      });
      this.settle(delivery, 'ack', log);
      return 'claim_deferred';
    }

    const plan = planFailure(err, request.attempt, this.deps.settings.MAX_ATTEMPTS);
    switch (plan.action) {
      case 'fail':
        log.warn({ err, code: plan.error.code }, 'conversion failed');
        await this.publish(request, { type: 'failed', ...stamp(request), error: plan.error });
        this.settle(delivery, 'ack', log);
        return 'failed';
      case 'retry': {
        log.warn({ err, nextAttempt: plan.nextAttempt, delayMs: plan.delayMs }, 'conversion failed; retrying later');
        // A delay queue rather than a requeue: no hot loop while media or jobs is down. It dead-letters the
        // request back to the work queue when the delay is over.
        const retry: ConversionRequest = { ...request, attempt: plan.nextAttempt };
        await publishConfirmed(
          this.channel,
          '',
          Topology.retryQueue(plan.delayMs),
          encodeMessage(retry),
          headersFor(request),
        );
        await this.publish(request, {
          type: 'retrying',
          ...stamp(request),
          nextAttempt: plan.nextAttempt,
          error: plan.error,
        });
        this.settle(delivery, 'ack', log);
        return 'retried';
      }
      case 'give-up':
        log.error({ err, attempts: request.attempt }, 'conversion failed on every attempt; giving up');
        await this.publish(request, { type: 'failed', ...stamp(request), error: plan.error });
        // Dead-lettered, so an operator can see (and replay) what kept failing.
        this.settle(delivery, 'dead-letter', log);
        return 'gave_up';
    }
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

  /** Acknowledges a delivery exactly once, and only on the channel it came from. */
  private settle(delivery: Delivery, how: 'ack' | 'dead-letter' | 'requeue', log: Logger): void {
    if (delivery.settled) return;
    delivery.settled = true;
    // Decided by the channel alone, not by the 'connect' event: deliveries on a new channel can be settled
    // before that event fires, and skipping them would leave them unacknowledged on a live channel.
    const { channel } = delivery;
    if (!channel || channel !== this.current) {
      // Its channel died with the connection, and RabbitMQ handed the request back then. An ack with its
      // old delivery tag on the new channel would be a protocol error that closes that channel.
      log.warn('the RabbitMQ connection was lost while this request was handled; RabbitMQ has handed it back');
      return;
    }
    try {
      switch (how) {
        case 'ack':
          channel.ack(delivery.msg);
          return;
        case 'dead-letter':
          channel.nack(delivery.msg, false, false);
          return;
        case 'requeue':
          channel.nack(delivery.msg, false, true);
          return;
      }
    } catch (err) {
      // The channel closed under us (amqplib throws on a closed channel): RabbitMQ hands the request back.
      log.warn({ err }, 'could not settle the request on a closed channel; RabbitMQ has handed it back');
    }
  }
}

/** The lease of a jobs service that does not say (older than leases): its default. */
const DEFAULT_LEASE_SECONDS = 60;

/** How many times a request has waited for the jobs service to answer its claim (picks the next delay). */
const DEFERRALS_HEADER = 'x-vidmp3-claim-deferrals';

const stamp = (request: ConversionRequest) => ({
  jobId: request.jobId,
  attempt: request.attempt,
  at: new Date().toISOString(),
  ...(request.requestId ? { requestId: request.requestId } : {}),
});

/** ffmpeg's per-process limits, from the settings. */
export const ffmpegLimits = (
  settings: Pick<Config, 'FFMPEG_MAX_MEMORY_MB' | 'FFMPEG_MAX_CPU_SECONDS' | 'PRLIMIT_PATH' | 'PATH'>,
): FfmpegLimits => ({
  addressSpaceBytes: settings.FFMPEG_MAX_MEMORY_MB * 1024 * 1024,
  cpuSeconds: settings.FFMPEG_MAX_CPU_SECONDS,
  prlimitPath: settings.PRLIMIT_PATH,
  searchPath: settings.PATH,
});

const headersFor = (request: ConversionRequest): Record<string, string> =>
  request.requestId ? { [REQUEST_ID_HEADER]: request.requestId } : {};

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
