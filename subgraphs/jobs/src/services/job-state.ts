/**
 * The life of a job, in one place: its statuses, the moves allowed between them, and the decisions that make
 * them. Pure: each decision takes the job as it is now (read under its row lock by `JobsService`) and what
 * happened, and answers with the patch to write, no change, or a refusal with its reason. No SQL, no I/O, no
 * clock: `now` is given. `JobsService` holds the locks, writes the patch and its outbox messages in one
 * transaction.
 *
 *   QUEUED             → RUNNING (claim, started, progress) · CANCELLED (cancel)
 *                        · FAILED, SUCCEEDED (a dead-lettered request; an event overtaking the claim)
 *   RUNNING            → SUCCEEDED · FAILED · CANCELLED (the worker's outcome, cancel)
 *                        · QUEUED at attempt + 1 (the worker's retrying, or its lease ran out)
 *   FAILED, CANCELLED  → QUEUED at attempt + 1 (retryJob)
 *   SUCCEEDED          → nothing
 *
 * `attempts` numbers the current attempt: a claim or event for another one is stale and changes nothing.
 *
 * A RUNNING attempt holds a lease (`leaseExpiresAt`): the claim grants it, every report of the worker about
 * the attempt (its progress, or a heartbeat: a progress no higher than the last) renews it. A job whose lease
 * ran out lost its worker (killed, frozen, cut off, or its claim's answer never arrived): `expireLease` takes
 * it back and queues the next attempt, or gives up after the last one.
 */
import {
  conversionFinishedEventId,
  JobErrorCode,
  type ConversionFinished,
  type JobEvent,
  type JobStatusChanged,
} from '@vidmp3/shared';
import type { JobPatch, JobRecord } from '../adapters/jobs-repo.js';

export type JobStatus = 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';
export const FINAL_STATUSES: readonly JobStatus[] = ['SUCCEEDED', 'FAILED', 'CANCELLED'];
export const isFinal = (status: JobStatus): boolean => FINAL_STATUSES.includes(status);

/** Every status change a decision may make. Staying in the same status (a progress report) is always allowed. */
export const TRANSITIONS: Readonly<Record<JobStatus, readonly JobStatus[]>> = {
  // Claimed or started; cancelled; a final event can overtake the claim's own change (ordering across queues).
  QUEUED: ['RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'],
  // Retried (the worker's retrying event, or its lease ran out): back to QUEUED at the next attempt.
  RUNNING: ['QUEUED', 'SUCCEEDED', 'FAILED', 'CANCELLED'],
  SUCCEEDED: [],
  // retryJob: a new attempt.
  FAILED: ['QUEUED'],
  CANCELLED: ['QUEUED'],
};

export const canMove = (from: JobStatus, to: JobStatus): boolean => from === to || TRANSITIONS[from].includes(to);

/** A decision: write `patch` (null: nothing to change), or refuse, saying why. */
export type Decision = { ok: true; patch: JobPatch | null } | { ok: false; reason: string };

const change = (job: JobRecord, patch: JobPatch): Decision => {
  // A bug in a rule below, not a runtime condition: fail loudly rather than write an impossible state.
  if (patch.status && !canMove(job.status, patch.status)) {
    throw new Error(`job ${job.id}: no move from ${job.status} to ${patch.status}`);
  }
  return { ok: true, patch };
};
const unchanged: Decision = { ok: true, patch: null };
const refuse = (reason: string): Decision => ({ ok: false, reason });

/** The patch of a decision, null for no change or a refusal. */
export const patchOf = (decision: Decision): JobPatch | null => (decision.ok ? decision.patch : null);

export interface ClaimInput {
  attempt: number;
  workerId: string;
  /** RabbitMQ redelivered the request: the worker that held it died or handed it back. */
  redelivered: boolean;
  now: Date;
  /** Until when the attempt is the worker's unless it reports. */
  leaseUntil: Date;
}

/**
 * A worker asks to start an attempt. Only the current attempt of a job still wanted may run: a QUEUED job
 * becomes RUNNING; a RUNNING one may be taken over only by a redelivery (its worker died or handed it back),
 * so a duplicated request never starts a second conversion. The same worker asking again proceeds.
 */
export function claim(job: JobRecord, { attempt, workerId, redelivered, now, leaseUntil }: ClaimInput): Decision {
  const lease = { leaseExpiresAt: leaseUntil };
  // The request for the next attempt can outrun the `retrying` event that announces it (events and the
  // delayed request travel separately). Only the worker that claimed and failed the current attempt
  // publishes it, so while that attempt runs it is genuine: start it now; the late event is then stale.
  if (attempt === job.attempts + 1 && job.status === 'RUNNING') {
    return change(job, {
      status: 'RUNNING',
      attempts: attempt,
      progress: 0,
      claimedBy: workerId,
      startedAt: now,
      ...lease,
    });
  }
  if (attempt !== job.attempts) return refuse(`stale attempt (current is ${job.attempts})`);
  if (job.status === 'QUEUED') {
    return change(job, { status: 'RUNNING', claimedBy: workerId, startedAt: now, ...lease });
  }
  if (job.status === 'RUNNING' && job.claimedBy === workerId) return change(job, lease);
  if (job.status === 'RUNNING' && redelivered) return change(job, { claimedBy: workerId, progress: 0, ...lease });
  return refuse(`job is ${job.status}`);
}

/**
 * A worker's report about an attempt. Stale (another attempt), duplicate and out-of-order events change
 * nothing: a final job stays final, progress only moves forward.
 */
export function applyEvent(job: JobRecord, event: JobEvent, { leaseUntil }: { leaseUntil: Date }): Decision {
  if (isFinal(job.status)) return refuse(`job is ${job.status}`);
  if (event.attempt !== job.attempts) return refuse(`stale attempt (current is ${job.attempts})`);
  const at = new Date(event.at);
  // The worker is alive: a running attempt's lease is renewed by any of its reports.
  const renewed: Decision = job.status === 'RUNNING' ? change(job, { leaseExpiresAt: leaseUntil }) : unchanged;
  const done = { leaseExpiresAt: null };
  switch (event.type) {
    case 'started':
      return job.status === 'QUEUED'
        ? change(job, { status: 'RUNNING', startedAt: at, leaseExpiresAt: leaseUntil })
        : renewed;
    case 'progress':
      // A late, smaller value is an older message; an equal or smaller one may be a heartbeat.
      if (!(event.progress > job.progress)) return renewed;
      return change(job, {
        status: 'RUNNING',
        progress: event.progress,
        ...(job.startedAt ? {} : { startedAt: at }),
        leaseExpiresAt: leaseUntil,
      });
    case 'succeeded':
      return change(job, {
        status: 'SUCCEEDED',
        progress: 1,
        outputMediaId: event.outputMediaId,
        finishedAt: at,
        ...done,
      });
    case 'retrying':
      return change(job, {
        status: 'QUEUED',
        attempts: event.nextAttempt,
        progress: 0,
        errorCode: event.error.code,
        errorMessage: event.error.message,
        claimedBy: null,
        queuedAt: at,
        sweeps: 0,
        ...done,
      });
    case 'failed':
      return change(job, {
        status: 'FAILED',
        errorCode: event.error.code,
        errorMessage: event.error.message,
        finishedAt: at,
        ...done,
      });
    case 'cancelled':
      return change(job, { status: 'CANCELLED', finishedAt: at, ...done });
  }
}

/** The owner cancels: any job not finished yet. A running conversion is then stopped by its worker. */
export function cancel(job: JobRecord, now: Date): Decision {
  if (isFinal(job.status)) return refuse(`The job has already finished (${job.status})`);
  return change(job, { status: 'CANCELLED', finishedAt: now, leaseExpiresAt: null });
}

/** The owner retries a failed or cancelled job: a new attempt, queued like a new job (its turn to come). */
export function retry(job: JobRecord, now: Date): Decision {
  if (job.status !== 'FAILED' && job.status !== 'CANCELLED') {
    return refuse(`Only failed or cancelled jobs can be retried (this one is ${job.status})`);
  }
  return change(job, {
    status: 'QUEUED',
    attempts: job.attempts + 1,
    progress: 0,
    outputMediaId: null,
    errorCode: null,
    errorMessage: null,
    claimedBy: null,
    queuedAt: now,
    startedAt: null,
    finishedAt: null,
    dispatchedAt: null,
  });
}

/**
 * The owner's turn came: the job's request goes to RabbitMQ now. Only a QUEUED job still waiting (one
 * cancelled meanwhile keeps its place out). `queued_at` restarts: the sweeper gives a request the whole
 * threshold from when it was sent.
 */
export function dispatch(job: JobRecord, now: Date): Decision {
  if (job.status !== 'QUEUED') return refuse(`job is ${job.status}`);
  if (job.dispatchedAt !== null) return refuse('already dispatched');
  return change(job, { dispatchedAt: now, queuedAt: now, sweeps: 0 });
}

/** When a request sent at `queuedAt` and already re-sent `sweeps` times is sent again: each wait twice the last. */
export function sweepDue(job: Pick<JobRecord, 'queuedAt' | 'sweeps'>, sweepAfterMs: number): Date {
  return new Date(job.queuedAt.getTime() + sweepAfterMs * 2 ** Math.min(job.sweeps, MAX_SWEEP_DOUBLINGS));
}
const MAX_SWEEP_DOUBLINGS = 10;

/**
 * The sweeper found the job's request waiting too long (a lost or purged message, or a long backlog): send it
 * again. Decided on the row read under its lock, so that of several replicas sweeping at once only the first
 * re-sends it; the others see the `queued_at` it wrote. Each further re-send of the same request waits twice
 * as long as the one before: a long backlog, where the request is not lost, is not re-sent every threshold.
 */
export function sweep(job: JobRecord, { now, sweepAfterMs }: { now: Date; sweepAfterMs: number }): Decision {
  if (job.status !== 'QUEUED') return refuse(`job is ${job.status}`);
  if (job.dispatchedAt === null) return refuse('waiting for its turn: no request to lose');
  if (sweepDue(job, sweepAfterMs) > now) return refuse('request sent recently');
  return change(job, { queuedAt: now, sweeps: job.sweeps + 1 });
}

/**
 * The attempt's lease ran out: its worker stopped reporting (killed, frozen, cut off from RabbitMQ, or it
 * never heard its claim's answer and dropped the request). The job is taken back and its next attempt queued
 * and sent at once (it already had its turn), or, after the last attempt, it fails. Decided on the row read
 * under its lock: of several replicas seeing the same expired lease, only the first acts; the others find the
 * job QUEUED. A worker of the old attempt that comes back is stale from then on (its claim and events).
 */
export function expireLease(job: JobRecord, { now, maxAttempts }: { now: Date; maxAttempts: number }): Decision {
  if (job.status !== 'RUNNING') return refuse(`job is ${job.status}`);
  if (job.leaseExpiresAt === null || job.leaseExpiresAt >= now) return refuse('lease still held');
  if (job.attempts >= maxAttempts) {
    return change(job, {
      status: 'FAILED',
      errorCode: JobErrorCode.GAVE_UP,
      errorMessage: 'The conversion stopped answering on every attempt; retry it later',
      finishedAt: now,
      leaseExpiresAt: null,
    });
  }
  return change(job, {
    status: 'QUEUED',
    attempts: job.attempts + 1,
    progress: 0,
    errorCode: JobErrorCode.TEMPORARY_FAILURE,
    errorMessage: 'The converter working on it stopped answering; the conversion was queued again',
    claimedBy: null,
    queuedAt: now,
    dispatchedAt: now,
    sweeps: 0,
    leaseExpiresAt: null,
  });
}

/**
 * What the notifier hears of a change: a job that has just ended in SUCCEEDED or FAILED (not one that was
 * already there, nor a cancel, which the user did themselves). Null for any other change.
 */
export function finishedEvent(before: JobRecord, after: JobRecord): ConversionFinished | null {
  if (before.status === after.status) return null;
  if (after.status !== 'SUCCEEDED' && after.status !== 'FAILED') return null;
  return {
    type: 'conversion-finished',
    eventId: conversionFinishedEventId(after.id, after.attempts, after.status),
    jobId: after.id,
    attempt: after.attempts,
    ownerId: after.ownerId,
    status: after.status,
    outputMediaId: after.status === 'SUCCEEDED' ? after.outputMediaId : null,
    errorCode: after.status === 'FAILED' ? after.errorCode : null,
    finishedAt: (after.finishedAt ?? after.updatedAt).toISOString(),
  };
}

/**
 * What webhooks hear of a change: the job entered a status, or the same status under a new attempt (a claim that
 * overtook its `retrying` event starts attempt + 1 while RUNNING). Progress, leases and re-sends change neither:
 * null. `before` null: the job was just created (QUEUED at attempt 1). One event per (job, attempt, status).
 */
export function statusChangedEvent(before: JobRecord | null, after: JobRecord): JobStatusChanged | null {
  if (before && before.status === after.status && before.attempts === after.attempts) return null;
  return {
    type: 'job-status-changed',
    eventId: `${after.id}:${after.attempts}:${after.status}`,
    jobId: after.id,
    ownerId: after.ownerId,
    attempt: after.attempts,
    status: after.status,
    inputMediaId: after.inputMediaId,
    outputMediaId: after.status === 'SUCCEEDED' ? after.outputMediaId : null,
    // The error a job ended with; a queued retry's reason (TEMPORARY_FAILURE) is not an end.
    error:
      after.status === 'FAILED' && after.errorCode
        ? { code: after.errorCode, message: after.errorMessage ?? after.errorCode }
        : null,
    at: (after.status === 'QUEUED'
      ? after.queuedAt
      : (after.finishedAt ?? after.startedAt ?? after.updatedAt)
    ).toISOString(),
  };
}
