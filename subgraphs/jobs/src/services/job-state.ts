/**
 * The life of a job, in one place: its statuses, the moves allowed between them, and the decisions that make
 * them. Pure: each decision takes the job as it is now (read under its row lock by `JobsService`) and what
 * happened, and answers with the patch to write, no change, or a refusal with its reason. No SQL, no I/O, no
 * clock: `now` is given. `JobsService` holds the locks, writes the patch and its outbox messages in one
 * transaction.
 *
 *   QUEUED ──claim──▶ RUNNING ──succeeded──▶ SUCCEEDED
 *     ▲  │              │ │ └───failed───▶ FAILED ──retryJob──┐
 *     │  └──cancel──┐   │ └────cancel───▶ CANCELLED ─retryJob─┤
 *     └─────────────┼───┴ retrying (next attempt) ◀───────────┘
 *                   ▼
 *               CANCELLED
 *
 * `attempts` numbers the current attempt: a claim or event for another one is stale and changes nothing.
 */
import type { JobEvent } from '@vidmp3/shared';
import type { JobPatch, JobRecord } from '../adapters/jobs-repo.js';

export type JobStatus = 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';
export const FINAL_STATUSES: readonly JobStatus[] = ['SUCCEEDED', 'FAILED', 'CANCELLED'];
export const isFinal = (status: JobStatus): boolean => FINAL_STATUSES.includes(status);

/** Every status change a decision may make. Staying in the same status (a progress report) is always allowed. */
export const TRANSITIONS: Readonly<Record<JobStatus, readonly JobStatus[]>> = {
  // Claimed or started; cancelled; a final event can overtake the claim's own change (ordering across queues).
  QUEUED: ['RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'],
  // Retried (the worker's retrying event): back to QUEUED at the next attempt.
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
}

/**
 * A worker asks to start an attempt. Only the current attempt of a job still wanted may run: a QUEUED job
 * becomes RUNNING; a RUNNING one may be taken over only by a redelivery (its worker died or handed it back),
 * so a duplicated request never starts a second conversion. The same worker asking again proceeds.
 */
export function claim(job: JobRecord, { attempt, workerId, redelivered, now }: ClaimInput): Decision {
  // The request for the next attempt can outrun the `retrying` event that announces it (events and the
  // delayed request travel separately). Only the worker that claimed and failed the current attempt
  // publishes it, so while that attempt runs it is genuine: start it now; the late event is then stale.
  if (attempt === job.attempts + 1 && job.status === 'RUNNING') {
    return change(job, { status: 'RUNNING', attempts: attempt, progress: 0, claimedBy: workerId, startedAt: now });
  }
  if (attempt !== job.attempts) return refuse(`stale attempt (current is ${job.attempts})`);
  if (job.status === 'QUEUED') return change(job, { status: 'RUNNING', claimedBy: workerId, startedAt: now });
  if (job.status === 'RUNNING' && job.claimedBy === workerId) return unchanged;
  if (job.status === 'RUNNING' && redelivered) return change(job, { claimedBy: workerId, progress: 0 });
  return refuse(`job is ${job.status}`);
}

/**
 * A worker's report about an attempt. Stale (another attempt), duplicate and out-of-order events change
 * nothing: a final job stays final, progress only moves forward.
 */
export function applyEvent(job: JobRecord, event: JobEvent): Decision {
  if (isFinal(job.status)) return refuse(`job is ${job.status}`);
  if (event.attempt !== job.attempts) return refuse(`stale attempt (current is ${job.attempts})`);
  const at = new Date(event.at);
  switch (event.type) {
    case 'started':
      return job.status === 'QUEUED' ? change(job, { status: 'RUNNING', startedAt: at }) : unchanged;
    case 'progress':
      // A late, smaller value is an older message.
      if (!(event.progress > job.progress)) return unchanged;
      return change(job, { status: 'RUNNING', progress: event.progress, ...(job.startedAt ? {} : { startedAt: at }) });
    case 'succeeded':
      return change(job, { status: 'SUCCEEDED', progress: 1, outputMediaId: event.outputMediaId, finishedAt: at });
    case 'retrying':
      return change(job, {
        status: 'QUEUED',
        attempts: event.nextAttempt,
        progress: 0,
        errorCode: event.error.code,
        errorMessage: event.error.message,
        claimedBy: null,
        queuedAt: at,
      });
    case 'failed':
      return change(job, {
        status: 'FAILED',
        errorCode: event.error.code,
        errorMessage: event.error.message,
        finishedAt: at,
      });
    case 'cancelled':
      return change(job, { status: 'CANCELLED', finishedAt: at });
  }
}

/** The owner cancels: any job not finished yet. A running conversion is then stopped by its worker. */
export function cancel(job: JobRecord, now: Date): Decision {
  if (isFinal(job.status)) return refuse(`The job has already finished (${job.status})`);
  return change(job, { status: 'CANCELLED', finishedAt: now });
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
  return change(job, { dispatchedAt: now, queuedAt: now });
}

/**
 * The sweeper found the job's request waiting since before `staleBefore` (a lost or purged message): send it
 * again. Decided on the row read under its lock, so that of several replicas sweeping at once only the first
 * re-sends it; the others see the `queued_at` it wrote.
 */
export function sweep(job: JobRecord, { now }: { staleBefore: Date; now: Date }): Decision {
  if (job.status !== 'QUEUED') return refuse(`job is ${job.status}`);
  if (job.dispatchedAt === null) return refuse('waiting for its turn: no request to lose');
  return change(job, { queuedAt: now });
}
