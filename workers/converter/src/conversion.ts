import {
  REQUEST_ID_HEADER,
  CLAIM_RETRY_DELAYS_MS,
  type ConversionRequest,
  type JobEvent,
  type Logger,
  type Settlement,
} from '@vidmp3/shared';
import type { Config } from './config.js';
import { ClaimUnavailableError, planFailure, TransientError } from './errors.js';
import type { JobsClient } from './jobs-client.js';
import type { EndEstimate } from './look-ahead.js';
import type { MediaClient } from './media-client.js';
import type { ConversionOutcome } from './metrics.js';
import { expectedSeconds, ProgressThrottle } from './progress.js';
import type { Scratch } from './scratch.js';
import type { InputProxy } from './input-proxy.js';
import type { FfmpegLimits, openInput, transcode } from './transcoder.js';

/** Why a running conversion was stopped on purpose: the `reason` of `ConversionPorts.signal`. */
export type StopReason = 'cancel' | 'shutdown';

export type ConversionSettings = Pick<
  Config,
  | 'MAX_ATTEMPTS'
  | 'CONVERSION_TIMEOUT_SECONDS'
  | 'MAX_INPUT_SECONDS'
  | 'FFMPEG_PATH'
  | 'FFMPEG_MAX_MEMORY_MB'
  | 'FFMPEG_MAX_CPU_SECONDS'
  | 'PRLIMIT_PATH'
  | 'PATH'
  | 'READRATE'
>;

/** Everything one conversion works with: the services, RabbitMQ's publishing, and the worker's scheduling. */
export interface ConversionPorts {
  jobs: Pick<JobsClient, 'claim'>;
  media: Pick<MediaClient, 'contentUrl' | 'authHeaders' | 'uploadOutput'>;
  transcode: typeof transcode;
  /** Opens a claimed request's input ahead of its ffmpeg slot (a small input is copied meanwhile); optional. */
  openInput?: typeof openInput;
  /** Publishes one of the job's events; resolves once RabbitMQ has it. */
  publish(request: ConversionRequest, event: JobEvent): Promise<void>;
  /** Puts `request` in the retry queue that hands it back to the work queue after `delayMs`; confirmed. */
  retryLater(request: ConversionRequest, delayMs: number, headers?: Record<string, string>): Promise<void>;
  scratch: Pick<Scratch, 'reserve' | 'release'>;
  settings: ConversionSettings;
  /** Already about this job (request id, job id, attempt). */
  log: Logger;
  /** Aborted when the conversion must stop, with a StopReason. */
  signal: AbortSignal;
  /** The delivery the request came in. */
  delivery: {
    redelivered: boolean;
    /** How many times this request already waited for jobs to answer its claim. */
    deferrals: number;
    /** Epoch ms when it arrived. */
    receivedAt: number;
    deliveryTag: number;
  };
  /** Waits for an ffmpeg slot (until then the request counts as waiting); resolves with its release. */
  slot(): Promise<() => void>;
  /** Taken on demand: takes the next request (the first call only). Absent with a fixed PREFETCH. */
  takeNext?: () => void;
  /** This worker's ffmpeg pace, which tells when to take the next request. */
  estimate: EndEstimate;
}

/** How the handling ended, and what becomes of the delivery. */
export interface Disposition {
  outcome: ConversionOutcome;
  settle: Settlement;
}

/** How many times a request has waited for the jobs service to answer its claim (picks the next delay). */
export const DEFERRALS_HEADER = 'x-vidmp3-claim-deferrals';

/**
 * One conversion request, from claim to report: claim the attempt, convert, store the mp3, publish the
 * outcome, and say what to do with the delivery — acknowledged only once the outcome is reported, so a crash
 * at any point leaves the request with RabbitMQ. Throws when the outcome could not be reported (RabbitMQ
 * gone mid-way): the delivery is then handed back.
 */
export async function handleConversion(request: ConversionRequest, ports: ConversionPorts): Promise<Disposition> {
  const output = ports.scratch.reserve('.mp3');
  const lease: Lease = {};
  try {
    return await convert(request, ports, output, lease);
  } catch (err) {
    return await onFailure(err, request, ports);
  } finally {
    clearInterval(lease.heartbeat);
    await ports.scratch.release(output);
  }
}

/** Claimed: renews the attempt's lease in jobs until the handling ends. */
interface Lease {
  heartbeat?: NodeJS.Timeout;
}

/** The lease of a jobs service that does not say (older than leases): its default. */
const DEFAULT_LEASE_SECONDS = 60;

async function convert(
  request: ConversionRequest,
  ports: ConversionPorts,
  output: string,
  lease: Lease,
): Promise<Disposition> {
  // Taken on demand, a request waits for a slot only while the ffmpeg before it ends (about LOOKAHEAD_MS at
  // most): it is claimed first, in that time, so that its ffmpeg follows the slot at once. With a fixed
  // PREFETCH it may wait behind a long conversion: claimed only once a slot is free, it stays QUEUED for
  // its owner meanwhile. Either way it can be cancelled without a process to kill.
  const claimFirst = ports.takeNext !== undefined;
  let claimed = 0;
  let input: Promise<InputProxy> | undefined;
  try {
    if (claimFirst) {
      if (!(await claim(request, ports, lease))) return { outcome: 'not_claimed', settle: 'ack' };
      claimed = Date.now();
      // Its input is opened (a small one copied) while the ffmpeg before it ends.
      input = ports.openInput?.({
        inputUrl: ports.media.contentUrl(request.inputMediaId),
        headers: ports.media.authHeaders(request.requestId),
        output,
        signal: ports.signal,
      });
      input?.catch(() => undefined); // awaited by transcode; not an unhandled rejection meanwhile
    }
    const slot = await ports.slot();
    const slotted = Date.now();
    // Giving the slot back takes the next request, unless it was taken already (this ffmpeg about to end).
    const release = () => {
      slot();
      ports.takeNext?.();
    };
    try {
      if (!claimFirst) {
        if (!(await claim(request, ports, lease))) return { outcome: 'not_claimed', settle: 'ack' };
        claimed = Date.now();
      }
      return await run(request, ports, output, release, { slotted, claimed }, input);
    } finally {
      release();
    }
  } finally {
    // Closed by transcode once used; here when it never ran (cancelled, refused, failed before).
    await input?.then(
      (opened) => opened.close(),
      () => undefined,
    );
  }
}

/** Asks jobs whether this attempt may run here; when not, the request is dropped (acknowledged): false. */
async function claim(request: ConversionRequest, ports: ConversionPorts, lease: Lease): Promise<boolean> {
  const { jobs, delivery, signal, log } = ports;
  const context = { requestId: request.requestId, signal };
  const claim = await jobs
    .claim(request.jobId, request.attempt, delivery.redelivered, context)
    .catch((err: unknown) => {
      if (err instanceof TransientError) throw new ClaimUnavailableError(err.message, { cause: err });
      throw err;
    });
  if (!claim.proceed) {
    log.info({ reason: claim.reason }, 'attempt not claimed; dropping the request');
    return false;
  }
  // The attempt is ours while jobs hears from us: progress may be silent for long (a slow input, a slot to
  // wait for, the upload), so a heartbeat — a progress report of 0, which only renews the lease — goes out
  // every third of it. Without it, jobs takes the job back and queues it again.
  const leaseMs = (claim.leaseSeconds ?? DEFAULT_LEASE_SECONDS) * 1000;
  lease.heartbeat = setInterval(() => {
    ports
      .publish(request, { type: 'progress', ...stamp(request), progress: 0 })
      .catch((err: unknown) => log.warn({ err }, 'could not publish a heartbeat'));
  }, leaseMs / 3);
  return true;
}

/** Claimed, with an ffmpeg slot held; gives it back (`release`) as soon as ffmpeg has ended, before the upload. */
async function run(
  request: ConversionRequest,
  ports: ConversionPorts,
  output: string,
  release: () => void,
  /** Epoch ms when the slot was granted and the claim answered. */
  { slotted, claimed }: { slotted: number; claimed: number },
  /** The input, opened ahead. */
  input?: Promise<InputProxy>,
): Promise<Disposition> {
  const { media, settings, signal, log, estimate } = ports;
  const context = { requestId: request.requestId, signal };
  const { redelivered } = ports.delivery;

  // Epoch ms of each step, logged with the outcome: the benchmark lines them up with jobs' own timestamps
  // (bench/convert.ts) to show where a job's time goes besides ffmpeg.
  const steps = {
    received: ports.delivery.receivedAt,
    slotted,
    claimed,
    ffmpegStarted: 0,
    ffmpegEnded: 0,
    uploaded: 0,
    succeededPublished: 0,
  };
  // No `started` event: the claim made the job RUNNING in jobs already (a `started` from an older worker is
  // still understood there), and one message fewer per job is CPU the conversions on these cores keep.
  log.info({ redelivered }, 'conversion started');

  const throttle = new ProgressThrottle();
  const outputSeconds = expectedSeconds({
    durationSeconds: request.inputDurationSeconds,
    startSeconds: request.options.startSeconds,
    endSeconds: request.options.endSeconds,
    maxSeconds: settings.MAX_INPUT_SECONDS,
  });
  await ports.transcode({
    inputUrl: media.contentUrl(request.inputMediaId),
    headers: media.authHeaders(request.requestId),
    ...(input ? { input } : {}),
    output,
    options: request.options,
    durationSeconds: request.inputDurationSeconds,
    signal,
    onStart: () => {
      steps.ffmpegStarted = Date.now();
      if (estimate.endsSoonAtStart(outputSeconds)) ports.takeNext?.();
    },
    onProgress: (progress) => {
      if (ports.takeNext && estimate.endsSoon(progress, Date.now() - steps.ffmpegStarted)) ports.takeNext();
      if (!throttle.offer(progress)) return;
      ports
        .publish(request, { type: 'progress', ...stamp(request), progress })
        .catch((err: unknown) => log.warn({ err }, 'could not publish progress'));
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
  estimate.learn(outputSeconds, steps.ffmpegEnded - steps.ffmpegStarted);

  const { id } = await media.uploadOutput(request.jobId, request.ownerId, request.inputMediaId, output, context);
  steps.uploaded = Date.now();
  await ports.publish(request, { type: 'succeeded', ...stamp(request), outputMediaId: id });
  steps.succeededPublished = Date.now();
  log.info(
    {
      outputMediaId: id,
      deliveryTag: ports.delivery.deliveryTag,
      convertMs: steps.ffmpegEnded - steps.claimed,
      uploadMs: steps.uploaded - steps.ffmpegEnded,
      steps,
    },
    'conversion succeeded',
  );
  return { outcome: 'succeeded', settle: 'ack' };
}

async function onFailure(err: unknown, request: ConversionRequest, ports: ConversionPorts): Promise<Disposition> {
  const { signal, log } = ports;
  if (signal.aborted) {
    const reason = signal.reason as StopReason;
    switch (reason) {
      case 'cancel':
        await ports.publish(request, { type: 'cancelled', ...stamp(request) });
        log.info('conversion cancelled');
        return { outcome: 'cancelled', settle: 'ack' };
      case 'shutdown':
        // Redelivered (redelivered = true) to another worker, whose claim may take over the running job.
        log.info('shutting down: conversion handed back to RabbitMQ');
        return { outcome: 'handed_back', settle: 'requeue' };
    }
  }

  if (err instanceof ClaimUnavailableError) {
    // Spending attempts while jobs is away would fail jobs that never ran: wait, and ask again.
    const { deferrals } = ports.delivery;
    const delayMs = CLAIM_RETRY_DELAYS_MS[deferrals] ?? Math.max(...CLAIM_RETRY_DELAYS_MS);
    log.warn({ err, deferrals, delayMs }, 'the job service did not answer the claim; asking again later');
    await ports.retryLater(request, delayMs, { [DEFERRALS_HEADER]: String(deferrals + 1) });
    return { outcome: 'claim_deferred', settle: 'ack' };
  }

  const plan = planFailure(err, request.attempt, ports.settings.MAX_ATTEMPTS);
  switch (plan.action) {
    case 'fail':
      log.warn({ err, code: plan.error.code }, 'conversion failed');
      await ports.publish(request, { type: 'failed', ...stamp(request), error: plan.error });
      return { outcome: 'failed', settle: 'ack' };
    case 'retry': {
      log.warn({ err, nextAttempt: plan.nextAttempt, delayMs: plan.delayMs }, 'conversion failed; retrying later');
      // A delay queue rather than a requeue: no hot loop while media or jobs is down. It dead-letters the
      // request back to the work queue when the delay is over.
      await ports.retryLater({ ...request, attempt: plan.nextAttempt }, plan.delayMs);
      await ports.publish(request, {
        type: 'retrying',
        ...stamp(request),
        nextAttempt: plan.nextAttempt,
        error: plan.error,
      });
      return { outcome: 'retried', settle: 'ack' };
    }
    case 'give-up':
      log.error({ err, attempts: request.attempt }, 'conversion failed on every attempt; giving up');
      await ports.publish(request, { type: 'failed', ...stamp(request), error: plan.error });
      // Dead-lettered, so an operator can see (and replay) what kept failing.
      return { outcome: 'gave_up', settle: 'dead-letter' };
  }
}

const stamp = (request: ConversionRequest) => ({
  jobId: request.jobId,
  attempt: request.attempt,
  at: new Date().toISOString(),
  ...(request.requestId ? { requestId: request.requestId } : {}),
});

/** The headers a message about this request travels with: the request id that queued it. */
export const headersFor = (request: ConversionRequest): Record<string, string> =>
  request.requestId ? { [REQUEST_ID_HEADER]: request.requestId } : {};

/** ffmpeg's per-process limits, from the settings. */
export const ffmpegLimits = (
  settings: Pick<Config, 'FFMPEG_MAX_MEMORY_MB' | 'FFMPEG_MAX_CPU_SECONDS' | 'PRLIMIT_PATH' | 'PATH'>,
): FfmpegLimits => ({
  addressSpaceBytes: settings.FFMPEG_MAX_MEMORY_MB * 1024 * 1024,
  cpuSeconds: settings.FFMPEG_MAX_CPU_SECONDS,
  prlimitPath: settings.PRLIMIT_PATH,
  searchPath: settings.PATH,
});
