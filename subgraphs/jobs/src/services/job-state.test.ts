import { describe, expect, it } from 'vitest';
import type { JobEvent } from '@vidmp3/shared';
import type { JobRecord } from '../adapters/jobs-repo.js';
import * as state from './job-state.js';
import { canMove, TRANSITIONS, type Decision, type JobStatus } from './job-state.js';

const NOW = new Date('2026-01-01T12:00:00.000Z');
const EARLIER = new Date('2026-01-01T11:00:00.000Z');
const AT = '2026-01-01T11:59:00.000Z';
const LEASE = new Date('2026-01-01T12:01:00.000Z');

/** A job at attempt 2, as its row reads, in `status`, changed by `fields`. */
function job(status: JobStatus, fields: Partial<JobRecord> = {}): JobRecord {
  return {
    id: 'job-1',
    ownerId: 'user-1',
    inputMediaId: 'media-1',
    status,
    progress: status === 'RUNNING' ? 0.4 : 0,
    attempts: 2,
    options: { bitrateKbps: 192, sampleRateHz: 44100, channels: 2 } as JobRecord['options'],
    inputDurationSeconds: 10,
    outputMediaId: null,
    errorCode: null,
    errorMessage: null,
    claimedBy: status === 'RUNNING' ? 'worker-a' : null,
    createdAt: EARLIER,
    queuedAt: EARLIER,
    startedAt: status === 'RUNNING' ? EARLIER : null,
    finishedAt: null,
    dispatchedAt: EARLIER,
    updatedAt: EARLIER,
    leaseExpiresAt: status === 'RUNNING' ? new Date(NOW.getTime() + 10_000) : null,
    sweeps: 0,
    ...fields,
  };
}

const STATUSES: JobStatus[] = ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'];
const error = { code: 'TIMEOUT', message: 'ffmpeg ran too long' };

function event(type: JobEvent['type'], fields: Record<string, unknown> = {}): JobEvent {
  return { jobId: 'job-1', attempt: 2, at: AT, type, ...fields } as JobEvent;
}

/** A decision in a line of the tables: the patch, 'unchanged', or 'refused: <reason>'. */
const show = (decision: Decision) => (decision.ok ? (decision.patch ?? 'unchanged') : `refused: ${decision.reason}`);

describe('the allowed moves', () => {
  it.each([
    ['QUEUED', ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED']],
    ['RUNNING', ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED']],
    ['SUCCEEDED', ['SUCCEEDED']],
    ['FAILED', ['QUEUED', 'FAILED']],
    ['CANCELLED', ['QUEUED', 'CANCELLED']],
  ] as [JobStatus, JobStatus[]][])('from %s: %j', (from, allowed) => {
    expect(STATUSES.filter((to) => canMove(from, to))).toEqual(allowed);
  });

  it('lists every status, and a final status leads nowhere but to a retry', () => {
    expect(Object.keys(TRANSITIONS).sort()).toEqual([...STATUSES].sort());
    for (const status of state.FINAL_STATUSES) expect(TRANSITIONS[status].every((to) => to === 'QUEUED')).toBe(true);
  });
});

describe('a worker claims an attempt', () => {
  const claim = (j: JobRecord, attempt = 2, workerId = 'worker-b', redelivered = false) =>
    show(state.claim(j, { attempt, workerId, redelivered, now: NOW, leaseUntil: LEASE }));

  it.each<[string, JobRecord, number, string, boolean, unknown]>([
    [
      'a queued attempt starts, claimed by the worker',
      job('QUEUED'),
      2,
      'worker-b',
      false,
      { status: 'RUNNING', claimedBy: 'worker-b', startedAt: NOW, leaseExpiresAt: LEASE },
    ],
    ['a running attempt refuses another worker', job('RUNNING'), 2, 'worker-b', false, 'refused: job is RUNNING'],
    [
      'a running attempt is taken over by a redelivery',
      job('RUNNING'),
      2,
      'worker-b',
      true,
      { claimedBy: 'worker-b', progress: 0, leaseExpiresAt: LEASE },
    ],
    [
      'the worker that runs it asking again proceeds, its lease renewed',
      job('RUNNING'),
      2,
      'worker-a',
      false,
      { leaseExpiresAt: LEASE },
    ],
    [
      'the next attempt starts when its request outruns the retrying event',
      job('RUNNING'),
      3,
      'worker-b',
      false,
      { status: 'RUNNING', attempts: 3, progress: 0, claimedBy: 'worker-b', startedAt: NOW, leaseExpiresAt: LEASE },
    ],
    ['an older attempt is stale', job('QUEUED'), 1, 'worker-b', true, 'refused: stale attempt (current is 2)'],
    [
      'a later attempt of a queued job is stale',
      job('QUEUED'),
      3,
      'worker-b',
      false,
      'refused: stale attempt (current is 2)',
    ],
    ['a cancelled job is refused', job('CANCELLED'), 2, 'worker-b', true, 'refused: job is CANCELLED'],
    ['a succeeded job is refused', job('SUCCEEDED'), 2, 'worker-b', true, 'refused: job is SUCCEEDED'],
    ['a failed job is refused', job('FAILED'), 2, 'worker-b', true, 'refused: job is FAILED'],
  ])('%s', (_name, j, attempt, workerId, redelivered, expected) => {
    expect(claim(j, attempt, workerId, redelivered)).toEqual(expected);
  });
});

describe("a worker's event", () => {
  const at = new Date(AT);
  it.each<[string, JobRecord, JobEvent, unknown]>([
    [
      'started makes a queued job RUNNING, with a lease',
      job('QUEUED'),
      event('started'),
      { status: 'RUNNING', startedAt: at, leaseExpiresAt: LEASE },
    ],
    ['started renews a running job’s lease', job('RUNNING'), event('started'), { leaseExpiresAt: LEASE }],
    [
      'progress moves a running job forward',
      job('RUNNING'),
      event('progress', { progress: 0.6 }),
      { status: 'RUNNING', progress: 0.6, leaseExpiresAt: LEASE },
    ],
    [
      'progress makes a queued job RUNNING even if started was lost',
      job('QUEUED'),
      event('progress', { progress: 0.1 }),
      { status: 'RUNNING', progress: 0.1, startedAt: at, leaseExpiresAt: LEASE },
    ],
    [
      'a smaller progress (an older message, or a heartbeat) only renews the lease',
      job('RUNNING'),
      event('progress', { progress: 0 }),
      { leaseExpiresAt: LEASE },
    ],
    [
      'an equal progress only renews the lease',
      job('RUNNING'),
      event('progress', { progress: 0.4 }),
      { leaseExpiresAt: LEASE },
    ],
    ['a heartbeat of a queued job changes nothing', job('QUEUED'), event('progress', { progress: 0 }), 'unchanged'],
    [
      'succeeded records the output and progress 1',
      job('RUNNING'),
      event('succeeded', { outputMediaId: 'out-1' }),
      { status: 'SUCCEEDED', progress: 1, outputMediaId: 'out-1', finishedAt: at, leaseExpiresAt: null },
    ],
    [
      'retrying queues the next attempt and keeps the error',
      job('RUNNING'),
      event('retrying', { nextAttempt: 3, error }),
      {
        status: 'QUEUED',
        attempts: 3,
        progress: 0,
        errorCode: 'TIMEOUT',
        errorMessage: 'ffmpeg ran too long',
        claimedBy: null,
        queuedAt: at,
        sweeps: 0,
        leaseExpiresAt: null,
      },
    ],
    [
      'failed records the error',
      job('RUNNING'),
      event('failed', { error }),
      {
        status: 'FAILED',
        errorCode: 'TIMEOUT',
        errorMessage: 'ffmpeg ran too long',
        finishedAt: at,
        leaseExpiresAt: null,
      },
    ],
    [
      'failed ends a queued job too (a dead-lettered request)',
      job('QUEUED'),
      event('failed', { error }),
      {
        status: 'FAILED',
        errorCode: 'TIMEOUT',
        errorMessage: 'ffmpeg ran too long',
        finishedAt: at,
        leaseExpiresAt: null,
      },
    ],
    [
      'cancelled ends a running job',
      job('RUNNING'),
      event('cancelled'),
      { status: 'CANCELLED', finishedAt: at, leaseExpiresAt: null },
    ],
    [
      'an event of an older attempt is stale',
      job('RUNNING'),
      event('succeeded', { attempt: 1, outputMediaId: 'x' }),
      'refused: stale attempt (current is 2)',
    ],
    [
      'an event of a later attempt is stale',
      job('RUNNING'),
      event('progress', { attempt: 3, progress: 0.9 }),
      'refused: stale attempt (current is 2)',
    ],
    ...(['SUCCEEDED', 'FAILED', 'CANCELLED'] as const).flatMap((status) =>
      (
        [
          event('progress', { progress: 0.9 }),
          event('succeeded', { outputMediaId: 'x' }),
          event('failed', { error }),
          event('retrying', { nextAttempt: 3, error }),
        ] as JobEvent[]
      ).map((e): [string, JobRecord, JobEvent, unknown] => [
        `${e.type} never changes a ${status} job`,
        job(status),
        e,
        `refused: job is ${status}`,
      ]),
    ),
  ])('%s', (_name, j, e, expected) => {
    expect(show(state.applyEvent(j, e, { leaseUntil: LEASE }))).toEqual(expected);
  });
});

describe('the owner cancels', () => {
  it.each<[JobStatus, unknown]>([
    ['QUEUED', { status: 'CANCELLED', finishedAt: NOW, leaseExpiresAt: null }],
    ['RUNNING', { status: 'CANCELLED', finishedAt: NOW, leaseExpiresAt: null }],
    ['SUCCEEDED', 'refused: The job has already finished (SUCCEEDED)'],
    ['FAILED', 'refused: The job has already finished (FAILED)'],
    ['CANCELLED', 'refused: The job has already finished (CANCELLED)'],
  ])('a %s job: %j', (status, expected) => {
    expect(show(state.cancel(job(status), NOW))).toEqual(expected);
  });
});

describe('the owner retries', () => {
  const retried = {
    status: 'QUEUED',
    attempts: 3,
    progress: 0,
    outputMediaId: null,
    errorCode: null,
    errorMessage: null,
    claimedBy: null,
    queuedAt: NOW,
    startedAt: null,
    finishedAt: null,
    dispatchedAt: null,
  };
  it.each<[JobStatus, unknown]>([
    ['FAILED', retried],
    ['CANCELLED', retried],
    ['QUEUED', 'refused: Only failed or cancelled jobs can be retried (this one is QUEUED)'],
    ['RUNNING', 'refused: Only failed or cancelled jobs can be retried (this one is RUNNING)'],
    ['SUCCEEDED', 'refused: Only failed or cancelled jobs can be retried (this one is SUCCEEDED)'],
  ])('a %s job: %j', (status, expected) => {
    expect(show(state.retry(job(status, { errorCode: 'X', finishedAt: EARLIER }), NOW))).toEqual(expected);
  });
});

describe("the owner's turn comes (dispatch)", () => {
  it.each<[string, JobRecord, unknown]>([
    ['a waiting job is sent', job('QUEUED', { dispatchedAt: null }), { dispatchedAt: NOW, queuedAt: NOW, sweeps: 0 }],
    ['a job already sent is not sent again', job('QUEUED'), 'refused: already dispatched'],
    [
      'a job cancelled while waiting is not sent',
      job('CANCELLED', { dispatchedAt: null }),
      'refused: job is CANCELLED',
    ],
  ])('%s', (_name, j, expected) => {
    expect(show(state.dispatch(j, NOW))).toEqual(expected);
  });
});

describe('the sweeper', () => {
  const sweepAfterMs = 600_000;
  const ago = (ms: number) => new Date(NOW.getTime() - ms);
  it.each<[string, JobRecord, unknown]>([
    ['re-sends a request sent longer ago than the threshold', job('QUEUED'), { queuedAt: NOW, sweeps: 1 }],
    [
      're-sends a request sent exactly the threshold ago',
      job('QUEUED', { queuedAt: ago(sweepAfterMs) }),
      { queuedAt: NOW, sweeps: 1 },
    ],
    [
      'leaves a request sent within the threshold (another replica just re-sent it)',
      job('QUEUED', { queuedAt: ago(sweepAfterMs - 1) }),
      'refused: request sent recently',
    ],
    [
      'waits twice the threshold before re-sending a request re-sent once already (a long backlog)',
      job('QUEUED', { queuedAt: ago(2 * sweepAfterMs - 1), sweeps: 1 }),
      'refused: request sent recently',
    ],
    [
      're-sends it once that double wait is over',
      job('QUEUED', { queuedAt: ago(2 * sweepAfterMs), sweeps: 1 }),
      { queuedAt: NOW, sweeps: 2 },
    ],
    [
      'waits four times the threshold after two re-sends',
      job('QUEUED', { queuedAt: ago(3 * sweepAfterMs), sweeps: 2 }),
      'refused: request sent recently',
    ],
    [
      'leaves a job waiting for its turn',
      job('QUEUED', { dispatchedAt: null }),
      'refused: waiting for its turn: no request to lose',
    ],
    ['leaves a running job', job('RUNNING'), 'refused: job is RUNNING'],
    ['leaves a cancelled job', job('CANCELLED'), 'refused: job is CANCELLED'],
  ])('%s', (_name, j, expected) => {
    expect(show(state.sweep(j, { now: NOW, sweepAfterMs }))).toEqual(expected);
  });

  it('never waits more than 1024 thresholds, however often it re-sent', () => {
    expect(state.sweepDue({ queuedAt: NOW, sweeps: 50 }, 1000).getTime()).toBe(NOW.getTime() + 1024 * 1000);
  });
});

describe("a running attempt's lease runs out", () => {
  const expired = { leaseExpiresAt: new Date(NOW.getTime() - 1) };
  const expire = (j: JobRecord, maxAttempts = 3) => show(state.expireLease(j, { now: NOW, maxAttempts }));

  it.each<[string, JobRecord, unknown]>([
    [
      'the job is taken back: its next attempt is queued and sent at once',
      job('RUNNING', expired),
      {
        status: 'QUEUED',
        attempts: 3,
        progress: 0,
        errorCode: 'TEMPORARY_FAILURE',
        errorMessage: 'The converter working on it stopped answering; the conversion was queued again',
        claimedBy: null,
        queuedAt: NOW,
        dispatchedAt: NOW,
        sweeps: 0,
        leaseExpiresAt: null,
      },
    ],
    ['a lease still held is left alone', job('RUNNING'), 'refused: lease still held'],
    [
      'a lease ending this very moment still holds',
      job('RUNNING', { leaseExpiresAt: NOW }),
      'refused: lease still held',
    ],
    [
      'a running job without a lease is left alone',
      job('RUNNING', { leaseExpiresAt: null }),
      'refused: lease still held',
    ],
    [
      'a job another replica took back already is left alone',
      job('QUEUED', { attempts: 3, ...expired }),
      'refused: job is QUEUED',
    ],
    ['a finished job is left alone', job('SUCCEEDED', expired), 'refused: job is SUCCEEDED'],
    ['a cancelled job is left alone', job('CANCELLED', expired), 'refused: job is CANCELLED'],
  ])('%s', (_name, j, expected) => {
    expect(expire(j)).toEqual(expected);
  });

  it('fails the job when it was the last attempt', () => {
    expect(expire(job('RUNNING', { attempts: 3, ...expired }), 3)).toEqual({
      status: 'FAILED',
      errorCode: 'GAVE_UP',
      errorMessage: 'The conversion stopped answering on every attempt; retry it later',
      finishedAt: NOW,
      leaseExpiresAt: null,
    });
  });

  it('lets the next attempt be claimed, and the old attempt’s worker no more', () => {
    const taken = state.expireLease(job('RUNNING', expired), { now: NOW, maxAttempts: 3 });
    const requeued = { ...job('RUNNING', expired), ...state.patchOf(taken) };
    const input = { workerId: 'worker-a', redelivered: true, now: NOW, leaseUntil: LEASE };
    expect(show(state.claim(requeued, { ...input, attempt: 2 }))).toBe('refused: stale attempt (current is 3)');
    expect(show(state.applyEvent(requeued, event('succeeded', { outputMediaId: 'x' }), { leaseUntil: LEASE }))).toBe(
      'refused: stale attempt (current is 3)',
    );
    expect(state.claim(requeued, { ...input, attempt: 3, workerId: 'worker-b', redelivered: false }).ok).toBe(true);
  });
});

describe('what the notifier hears (finishedEvent)', () => {
  const after = (before: JobRecord, decision: Decision) => ({ ...before, ...state.patchOf(decision) });
  const running = job('RUNNING');

  it('announces a success once, named by the job, its attempt and the outcome', () => {
    const done = after(
      running,
      state.applyEvent(running, event('succeeded', { outputMediaId: 'mp3-1' }), { leaseUntil: LEASE }),
    );
    expect(state.finishedEvent(running, done)).toEqual({
      type: 'conversion-finished',
      eventId: 'job-1:2:SUCCEEDED',
      jobId: 'job-1',
      attempt: 2,
      ownerId: 'user-1',
      status: 'SUCCEEDED',
      outputMediaId: 'mp3-1',
      errorCode: null,
      finishedAt: AT,
    });
  });

  it('announces a failure with its code, whether the worker, RabbitMQ or a lost lease ended it', () => {
    const failed = after(running, state.applyEvent(running, event('failed', { error }), { leaseUntil: LEASE }));
    expect(state.finishedEvent(running, failed)).toMatchObject({ eventId: 'job-1:2:FAILED', errorCode: 'TIMEOUT' });
    const expired = job('RUNNING', { attempts: 3, leaseExpiresAt: EARLIER });
    const gaveUp = after(expired, state.expireLease(expired, { now: NOW, maxAttempts: 3 }));
    expect(state.finishedEvent(expired, gaveUp)).toMatchObject({
      eventId: 'job-1:3:FAILED',
      errorCode: 'GAVE_UP',
      finishedAt: NOW.toISOString(),
    });
  });

  it.each<[string, JobRecord, JobRecord]>([
    ['progress', running, { ...running, progress: 0.5 }],
    ['a duplicate of the final change', job('SUCCEEDED'), job('SUCCEEDED', { progress: 1 })],
    ['a cancel', running, job('CANCELLED')],
    ['a retry', job('FAILED'), job('QUEUED', { attempts: 3 })],
  ])('announces nothing for %s', (_name, before, changed) => {
    expect(state.finishedEvent(before, changed)).toBeNull();
  });

  it('gives a retried job that ends again a new event', () => {
    const first = state.finishedEvent(running, job('FAILED', { finishedAt: NOW }));
    const second = state.finishedEvent(
      job('RUNNING', { attempts: 3 }),
      job('FAILED', { attempts: 3, finishedAt: NOW }),
    );
    expect(first?.eventId).not.toBe(second?.eventId);
  });
});

describe('what webhooks hear (statusChangedEvent)', () => {
  const after = (before: JobRecord, decision: Decision) => ({ ...before, ...state.patchOf(decision) });
  const queued = job('QUEUED');
  const running = job('RUNNING');
  const apply = (before: JobRecord, e: JobEvent) => after(before, state.applyEvent(before, e, { leaseUntil: LEASE }));

  it('announces a new job as QUEUED', () => {
    expect(state.statusChangedEvent(null, job('QUEUED', { attempts: 1 }))).toEqual({
      type: 'job-status-changed',
      eventId: 'job-1:1:QUEUED',
      jobId: 'job-1',
      ownerId: 'user-1',
      attempt: 1,
      status: 'QUEUED',
      inputMediaId: 'media-1',
      outputMediaId: null,
      error: null,
      at: EARLIER.toISOString(),
    });
  });

  it('announces each status entered once, named by job, attempt and status', () => {
    const claimed = after(
      queued,
      state.claim(queued, { attempt: 2, workerId: 'w', redelivered: false, now: NOW, leaseUntil: LEASE }),
    );
    const progressed = apply(claimed, event('progress', { progress: 0.5 }));
    const done = apply(progressed, event('succeeded', { outputMediaId: 'mp3-1' }));
    const events = [
      state.statusChangedEvent(queued, claimed),
      state.statusChangedEvent(claimed, progressed),
      state.statusChangedEvent(progressed, done),
      state.statusChangedEvent(done, apply(done, event('succeeded', { outputMediaId: 'mp3-1' }))),
    ];
    expect(events.map((e) => e && [e.eventId, e.status, e.at, e.outputMediaId])).toEqual([
      ['job-1:2:RUNNING', 'RUNNING', NOW.toISOString(), null],
      null,
      ['job-1:2:SUCCEEDED', 'SUCCEEDED', AT, 'mp3-1'],
      null,
    ]);
  });

  it('carries the error of a failed job, and none for a retry queued after a transient failure', () => {
    const failed = apply(running, event('failed', { error }));
    expect(state.statusChangedEvent(running, failed)).toMatchObject({ status: 'FAILED', error });
    const requeued = apply(running, event('retrying', { nextAttempt: 3, error }));
    expect(state.statusChangedEvent(running, requeued)).toMatchObject({
      eventId: 'job-1:3:QUEUED',
      attempt: 3,
      status: 'QUEUED',
      error: null,
      at: AT,
    });
  });

  it('announces a retry by the owner and a cancel', () => {
    const failed = job('FAILED');
    expect(state.statusChangedEvent(failed, after(failed, state.retry(failed, NOW)))).toMatchObject({
      eventId: 'job-1:3:QUEUED',
      at: NOW.toISOString(),
    });
    expect(state.statusChangedEvent(running, after(running, state.cancel(running, NOW)))).toMatchObject({
      eventId: 'job-1:2:CANCELLED',
      at: NOW.toISOString(),
    });
  });

  it('announces the next attempt started by a claim that overtook its retrying event', () => {
    const next = after(
      running,
      state.claim(running, { attempt: 3, workerId: 'w', redelivered: false, now: NOW, leaseUntil: LEASE }),
    );
    expect(state.statusChangedEvent(running, next)).toMatchObject({ eventId: 'job-1:3:RUNNING', status: 'RUNNING' });
  });

  it('announces nothing for a renewed lease or a redelivered claim', () => {
    const renewed = after(
      running,
      state.claim(running, { attempt: 2, workerId: 'worker-a', redelivered: false, now: NOW, leaseUntil: LEASE }),
    );
    const takenOver = after(
      running,
      state.claim(running, { attempt: 2, workerId: 'worker-b', redelivered: true, now: NOW, leaseUntil: LEASE }),
    );
    expect(state.statusChangedEvent(running, renewed)).toBeNull();
    expect(state.statusChangedEvent(running, takenOver)).toBeNull();
  });
});
