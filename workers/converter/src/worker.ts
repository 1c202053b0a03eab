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
import { ProgressThrottle } from './progress.js';
import { Slots } from './slots.js';
import type { FfmpegLimits, transcode } from './transcoder.js';

export type WorkerSettings = Pick<
  Config,
  | 'CONCURRENCY'
  | 'PREFETCH'
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

/** A delivery being worked on. */
interface Task {
  jobId?: string;
  /** Held, but waiting for an ffmpeg slot: nothing started yet, so a shutdown hands it back at once. */
  waiting: boolean;
  controller: AbortController;
  done: Promise<void>;
}

/**
 * Consumes conversion requests: claim the attempt, convert, store the mp3, report, and only then
 * acknowledge, so a crash at any point leaves the request with RabbitMQ for another worker.
 */
export class ConverterWorker {
  private readonly channel: ChannelWrapper;
  /** The amqplib channel deliveries currently arrive on; a new one after every reconnection. */
  private current: ConfirmChannel | undefined;
  private connected = false;
  private consumerTag: string | undefined;
  private stopping = false;
  private readonly tasks = new Set<Task>();
  /** ffmpeg processes running at once: CONCURRENCY, however many requests are held. */
  private readonly slots: Slots;
  private readonly meter: ConversionMeter = noConversionMeter;
  /** For the queue-depth gauges only: a failed check must not close the channel deliveries arrive on. */
  private readonly metricsChannel: ChannelWrapper | undefined;

  constructor(private readonly deps: WorkerDeps) {
    this.slots = new Slots(deps.settings.CONCURRENCY);
    this.channel = deps.connection.createChannel({
      name: 'converter',
      confirm: true,
      setup: (ch: ConfirmChannel) => this.setup(ch),
    });
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
      this.metricsChannel = deps.connection.createChannel({ name: 'converter-metrics' });
      queueGauges(deps.metrics, this.metricsChannel, deps.logger);
    }
    this.channel.on('connect', () => {
      this.connected = true;
    });
    this.channel.on('error', (err) => deps.logger.error({ err }, 'RabbitMQ channel setup failed'));
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
    const { consumerTag } = await this.channel.consume(Topology.conversionsQueue, (msg) => this.onDelivery(msg), {
      noAck: false,
      // RabbitMQ hands over a few more requests than run at once (the next job is here when an ffmpeg ends,
      // while the last one's output is still being stored); the rest stay queued for other workers.
      prefetch: Math.max(this.deps.settings.PREFETCH, this.deps.settings.CONCURRENCY),
    });
    this.consumerTag = consumerTag;
  }

  /** Connected to RabbitMQ and taking work. */
  isReady(): boolean {
    return this.connected && this.consumerTag !== undefined && !this.stopping;
  }

  /**
   * Graceful stop: take no more work, let running conversions finish within the grace period, hand the rest
   * back to RabbitMQ (redelivered, to another worker), close the channel.
   */
  async close(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const { logger, settings } = this.deps;
    if (this.consumerTag) {
      await this.channel
        .cancel(this.consumerTag)
        .catch((err: unknown) => logger.warn({ err }, 'could not cancel the RabbitMQ consumer'));
    }
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
    this.tasks.add(task);
    task.done = this.handle(delivery, task)
      .catch((err: unknown) => {
        // Reporting the outcome failed (RabbitMQ gone mid-way): leave the request to RabbitMQ to hand out again.
        this.deps.logger.error({ err, jobId: task.jobId }, 'could not finish handling a conversion request');
        this.settle(delivery, 'requeue', this.deps.logger);
      })
      .finally(() => this.tasks.delete(task));
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
    // Claimed only once a slot is free: a job waiting here is still QUEUED for its owner, and cancellable
    // without a process to kill.
    task.waiting = true;
    const release = await this.slots.acquire(signal).finally(() => (task.waiting = false));
    try {
      return await this.claimAndConvert(request, delivery, signal, output, log, release, Date.now());
    } finally {
      release();
    }
  }

  /** With an ffmpeg slot held; gives it back (`release`) as soon as ffmpeg has ended, before the upload. */
  private async claimAndConvert(
    request: ConversionRequest,
    delivery: Delivery,
    signal: AbortSignal,
    output: string,
    log: Logger,
    release: () => void,
    /** Epoch ms when the slot was granted. */
    slotted: number,
  ): Promise<'succeeded' | 'not_claimed'> {
    const { media, jobs, settings } = this.deps;
    const context = { requestId: request.requestId, signal };
    const redelivered = delivery.msg.fields.redelivered;

    const claim = await jobs.claim(request.jobId, request.attempt, redelivered, context).catch((err: unknown) => {
      if (err instanceof TransientError) throw new ClaimUnavailableError(err.message, { cause: err });
      throw err;
    });
    if (!claim.proceed) {
      log.info({ reason: claim.reason }, 'attempt not claimed; dropping the request');
      this.settle(delivery, 'ack', log);
      return 'not_claimed';
    }
    // Epoch ms of each step, logged with the outcome: the benchmark lines them up with jobs' own timestamps
    // (bench/convert.ts) to show where a job's time goes besides ffmpeg.
    const steps = {
      received: delivery.receivedAt,
      slotted,
      claimed: Date.now(),
      ffmpegStarted: 0,
      ffmpegEnded: 0,
      uploaded: 0,
      succeededPublished: 0,
    };
    await this.publish(request, { type: 'started', ...stamp(request) });
    log.info({ redelivered }, 'conversion started');

    const throttle = new ProgressThrottle();
    await this.deps.transcode({
      inputUrl: media.contentUrl(request.inputMediaId),
      headers: media.authHeaders(request.requestId),
      output,
      options: request.options,
      durationSeconds: request.inputDurationSeconds,
      signal,
      onStart: () => (steps.ffmpegStarted = Date.now()),
      onProgress: (progress) => {
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
