import { randomUUID } from 'node:crypto';
import {
  connection,
  ErrorCode,
  JobErrorCode,
  pageArgs,
  Topology,
  userError,
  withTransaction,
  type IsolationLevel,
  type ConversionRequest,
  type JobChanged,
  type JobControl,
  type JobEvent,
  type Logger,
  type PoolConnection,
  type ClaimResponse,
  type Viewer,
  type AccountDeleted,
} from '@vidmp3/shared';
import {
  isVisible,
  type ActiveJobs,
  type JobPatch,
  type JobRecord,
  type JobsRepository,
} from '../adapters/jobs-repo.js';
import type { MediaClient } from '../adapters/media-client.js';
import { notFound, ownJob, requireViewer } from './access.js';
import type { ChangeBus } from './change-bus.js';
import * as state from './job-state.js';
import { isFinal, patchOf, type Decision, type JobStatus } from './job-state.js';
import { validateOptions, type OptionsInput } from './options.js';
import { dispatchRoom, HOUR_MS, refuseConversion, type ConversionLimits } from './quotas.js';

/** The patch of a decision the user asked for; a refusal is their CONFLICT, with its reason. */
const accountGone = () => userError(ErrorCode.UNAUTHENTICATED, 'This account has been deleted');

/** Thrown inside a user's transaction when their account has been deleted (rolls it back). */
class AccountDeletedError extends Error {}

/** Jobs of a deleted account removed per transaction: a big account is removed in short steps. */
const DEFAULT_DELETION_BATCH = 200;

function accepted(decision: Decision): JobPatch {
  if (!decision.ok) throw userError(ErrorCode.CONFLICT, decision.reason);
  return decision.patch ?? {};
}

/** What a job's state change needs to be announced: the outbox relay and the local subscribers' bus. */
export interface Announcer {
  kick(): void;
}

/** The jobs service's part of `User.usage`. */
export interface JobsUsage {
  userId: string;
  activeJobs: number;
  activeJobsLimit: number;
  conversionsLastHour: number;
  conversionsPerHourLimit: number;
}

export interface JobsServiceOptions {
  maxInputSeconds: number;
  sweepAfterSeconds: number;
  /** A running attempt's lease (job-state.ts); 60 s unless given. */
  leaseSeconds?: number;
  /** A job whose lease runs out on this attempt fails; 3 unless given. */
  maxAttempts?: number;
  limits: ConversionLimits;
  logger?: Logger;
  /** Jobs of a deleted account removed per transaction; 200 unless given. */
  deletionBatch?: number;
}

export class JobsService {
  constructor(
    private readonly repo: JobsRepository,
    private readonly media: MediaClient,
    private readonly relay: Announcer,
    private readonly bus: ChangeBus,
    private readonly options: JobsServiceOptions,
  ) {}

  /** The job changes each open transaction has announced, published locally once it commits. */
  private readonly announcements = new Map<PoolConnection, JobChanged[]>();

  // ---- queries

  async get(viewer: Viewer | null, id: string): Promise<JobRecord> {
    return ownJob(this.repo, viewer, id);
  }

  /** Entity resolution: null unless the viewer owns the job. */
  async resolveReference(viewer: Viewer | null, id: string): Promise<JobRecord | null> {
    if (!viewer) return null;
    const job = await this.repo.find(this.repo.pool, id);
    return job && job.ownerId === viewer.userId ? job : null;
  }

  async list(
    viewer: Viewer | null,
    ownerId: string,
    args: { status?: JobStatus | null; first?: number | null; after?: string | null },
  ) {
    const { userId } = requireViewer(viewer);
    if (ownerId !== userId) throw userError(ErrorCode.NOT_FOUND, 'User not found');
    const { size, after } = pageArgs(args.first, args.after);
    const rows = await this.repo.listByOwner(userId, { status: args.status ?? null, after, limit: size + 1 });
    return connection(rows, size);
  }

  /** `User.usage` (the jobs part): only the user themselves may read it. */
  async usage(viewer: Viewer | null, userId: string): Promise<JobsUsage> {
    if (!viewer || viewer.userId !== userId) throw userError(ErrorCode.NOT_FOUND, 'User not found');
    const { limits } = this.options;
    const {
      active,
      starts: { count },
    } = await this.repo.countForQuota(this.repo.pool, userId, new Date(Date.now() - HOUR_MS));
    return {
      userId,
      activeJobs: active,
      activeJobsLimit: limits.activeJobs,
      conversionsLastHour: count,
      conversionsPerHourLimit: limits.conversionsPerHour,
    };
  }

  /**
   * `Media.conversions`: one page of the viewer's jobs of one video. Only the viewer's own jobs are read, so
   * anyone else's video has none. Paged like `User.jobs` because the list grows without bound and the field can
   * be reached from every job (`job { input { conversions … } }`): an unpaged list multiplied the work per query.
   */
  async conversions(viewer: Viewer | null, mediaId: string, args: { first?: number | null; after?: string | null }) {
    const { userId } = requireViewer(viewer);
    const { size, after } = pageArgs(args.first, args.after);
    const rows = await this.repo.listByOwner(userId, { inputMediaId: mediaId, after, limit: size + 1 });
    return connection(rows, size);
  }

  // ---- mutations

  async convert(viewer: Viewer | null, mediaId: string, input: OptionsInput | null | undefined, requestId?: string) {
    const { userId } = requireViewer(viewer, 'convert');
    const media = await this.media.get(mediaId, requestId);
    if (!media || media.ownerId !== userId) throw userError(ErrorCode.NOT_FOUND, 'Media not found');
    if (media.kind !== 'VIDEO') throw userError(ErrorCode.BAD_USER_INPUT, 'Only videos can be converted');
    const duration = media.durationSeconds;
    if (!duration || duration <= 0) throw userError(ErrorCode.BAD_USER_INPUT, 'This video has no known duration');
    if (duration > this.options.maxInputSeconds) {
      throw userError(
        ErrorCode.BAD_USER_INPUT,
        `Videos longer than ${this.options.maxInputSeconds} s are not converted`,
      );
    }
    const now = new Date();
    const job: JobRecord = {
      id: randomUUID(),
      ownerId: userId,
      inputMediaId: media.id,
      status: 'QUEUED',
      progress: 0,
      attempts: 1,
      options: validateOptions(input, duration),
      inputDurationSeconds: duration,
      outputMediaId: null,
      errorCode: null,
      errorMessage: null,
      claimedBy: null,
      createdAt: now,
      queuedAt: now,
      startedAt: null,
      finishedAt: null,
      dispatchedAt: null,
      updatedAt: now,
      leaseExpiresAt: null,
      sweeps: 0,
    };
    // The quota check, the job and (when it is the user's turn) its request are written together, under the
    // user's lock: concurrent requests of one user, on any replica, are counted one after the other.
    const created = await this.asLiveUser(userId, async (conn) => {
      const counted = await this.checkQuotas(conn, userId, now);
      await this.repo.insert(conn, job);
      await this.repo.recordStart(conn, userId, job.id, now);
      await this.announce(conn, job);
      await this.announceStatus(conn, null, job);
      const dispatched = await this.dispatchWaiting(conn, userId, { jobId: job.id, requestId }, counted, job);
      return dispatched.includes(job.id) ? { ...job, dispatchedAt: now, queuedAt: now } : job;
    });
    this.relay.kick();
    return created;
  }

  async cancel(viewer: Viewer | null, id: string): Promise<JobRecord> {
    const { userId } = requireViewer(viewer, 'convert');
    const job = await this.mutate(id, async (conn, current) => {
      if (current.ownerId !== userId) throw notFound();
      const patch = accepted(state.cancel(current, new Date()));
      const control: JobControl = { type: 'cancel', jobId: id, attempt: current.attempts };
      // A running conversion is stopped by its worker; a queued one is dropped when a worker claims it.
      await this.repo.addOutbox(conn, Topology.controlExchange, '', control);
      return patch;
    });
    if (!job) throw notFound();
    // The cancel is done whatever happens next; a missed turn is given by the sweeper.
    await this.dispatchNext(userId).catch((err: unknown) =>
      this.options.logger?.warn({ err, userId }, 'could not dispatch the next waiting job; the sweeper will'),
    );
    return job;
  }

  async retry(viewer: Viewer | null, id: string, requestId?: string): Promise<JobRecord> {
    const { userId } = requireViewer(viewer, 'convert');
    // The owner is known before the job is locked, so that the user's lock is always taken first.
    const seen = await this.repo.find(this.repo.pool, id);
    if (!seen || seen.ownerId !== userId) throw notFound();
    const job = await this.asLiveUser(userId, async (conn) => {
      const current = await this.repo.find(conn, id, true);
      if (!current || current.ownerId !== userId) throw notFound();
      const now = new Date();
      const patch = accepted(state.retry(current, now));
      await this.checkQuotas(conn, userId, now);
      await this.repo.update(conn, id, patch);
      await this.repo.recordStart(conn, userId, id, now);
      const retried = { ...current, ...patch };
      await this.announce(conn, retried);
      await this.announceStatus(conn, current, retried);
      const dispatched = await this.dispatchWaiting(conn, userId, { jobId: id, requestId });
      return dispatched.includes(id) ? { ...retried, dispatchedAt: now, queuedAt: now } : retried;
    });
    this.relay.kick();
    return job;
  }

  // ---- deleted accounts

  /**
   * Jobs' part of deleting an account (the accounts queue's AccountDeleted): under the user's lock, the
   * tombstone — convertMedia and retryJob are refused from then on —, then the user's jobs batch by batch, each
   * active one cancelled through the control fanout first (its worker kills ffmpeg; a request still in RabbitMQ
   * is dropped at its claim, the job being gone), then the user's quota rows. Idempotent: a redelivery finds
   * nothing left.
   */
  async forgetAccount(event: AccountDeleted): Promise<string> {
    const { userId } = event;
    let removed = 0;
    let cancelled = 0;
    const batchSize = this.options.deletionBatch ?? DEFAULT_DELETION_BATCH;
    for (let first = true; ; first = false) {
      const batch = await this.asUser(
        userId,
        async (conn) => {
          if (first) await this.repo.addDeletedAccount(conn, userId, new Date(event.at));
          const jobs = await this.repo.lockOwnedBatch(conn, userId, batchSize);
          for (const job of jobs) {
            if (isFinal(job.status)) continue;
            const control: JobControl = { type: 'cancel', jobId: job.id, attempt: job.attempts };
            await this.repo.addOutbox(conn, Topology.controlExchange, '', control);
            cancelled += 1;
          }
          await this.repo.removeJobs(
            conn,
            jobs.map((j) => j.id),
          );
          return jobs.length;
        },
        true,
      );
      if (cancelled > 0) this.relay.kick();
      removed += batch;
      if (batch < batchSize) break;
    }
    await this.repo.forgetQuotaUser(this.repo.pool, userId);
    return removed === 0 ? 'nothing left' : `${removed} jobs removed, ${cancelled} cancelled`;
  }

  // ---- the workers' side

  /** A worker asks to start an attempt (the rules: `state.claim`). Null when there is no such job. */
  async claim(jobId: string, attempt: number, workerId: string, redelivered: boolean): Promise<ClaimResponse | null> {
    let decision: Decision = { ok: false, reason: 'not decided' };
    const found = await this.mutate(jobId, async (_conn, job) => {
      decision = state.claim(job, { attempt, workerId, redelivered, now: new Date(), leaseUntil: this.leaseUntil() });
      return patchOf(decision);
    });
    if (!found) return null;
    return decision.ok
      ? { proceed: true, leaseSeconds: this.leaseSeconds }
      : { proceed: false, reason: decision.reason };
  }

  /** Applies a worker's event (the rules: `state.applyEvent`); stale, duplicate and late events change nothing. */
  async applyEvent(event: JobEvent): Promise<void> {
    const decide = async (_conn: PoolConnection, job: JobRecord) =>
      patchOf(state.applyEvent(job, event, { leaseUntil: this.leaseUntil() }));
    const final = event.type === 'succeeded' || event.type === 'failed' || event.type === 'cancelled';
    if (!final) {
      await this.mutate(event.jobId, decide);
      return;
    }
    // A finished job frees one of its owner's turns: the owner's next waiting job is dispatched in the same
    // transaction that records the end (under the owner's lock, taken before the job's row, as everywhere),
    // so that request is published with the change, with no second transaction and relay round in between.
    // Also done for a duplicate of a final event: a turn missed for any reason is given then.
    const seen = await this.repo.find(this.repo.pool, event.jobId);
    if (!seen) return;
    const changed = await this.asUser(seen.ownerId, async (conn) => {
      const result = await this.mutateIn(conn, event.jobId, decide);
      if (result && isFinal(result.job.status)) {
        const dispatched = await this.dispatchWaiting(conn, seen.ownerId);
        return result.changed || dispatched.length > 0;
      }
      return result?.changed ?? false;
    });
    if (changed) this.relay.kick();
  }

  /** RabbitMQ dead-lettered a request (delivery limit reached, or a worker gave up): fail its job. */
  async failUndeliverable(request: ConversionRequest, reason: string): Promise<void> {
    await this.applyEvent({
      type: 'failed',
      jobId: request.jobId,
      attempt: request.attempt,
      at: new Date().toISOString(),
      error: {
        code: JobErrorCode.DELIVERY_LIMIT,
        message: `The conversion could not be completed (${reason}); retry it later`,
      },
    });
  }

  /**
   * Publishes again the requests of jobs that stayed QUEUED too long (a lost or purged message), each decided
   * again under the job's lock (`state.sweep`): of several replicas sweeping at once, one re-sends it. Returns
   * how many this call re-sent.
   */
  async sweep(now = new Date()): Promise<number> {
    const sweepAfterMs = this.options.sweepAfterSeconds * 1000;
    let sent = 0;
    for (const job of await this.repo.listStaleQueued(now, sweepAfterMs, 100)) {
      await this.mutate(job.id, async (conn, current) => {
        const patch = patchOf(state.sweep(current, { now, sweepAfterMs }));
        if (patch) {
          await this.enqueue(conn, current);
          sent++;
        }
        return patch;
      });
    }
    return sent;
  }

  /**
   * Takes back the RUNNING jobs whose lease ran out (their worker stopped reporting) and queues their next
   * attempt, or fails them after the last. Each is decided again under the owner's and the job's locks, so
   * that of several replicas sweeping at once exactly one acts. Returns how many it took back.
   */
  async expireLeases(now = new Date()): Promise<number> {
    let taken = 0;
    const maxAttempts = this.options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    for (const { id, ownerId } of await this.repo.listExpiredLeases(now, 100)) {
      const changed = await this.asUser(ownerId, async (conn) => {
        const result = await this.mutateIn(conn, id, async (_conn, job) => {
          const patch = patchOf(state.expireLease(job, { now, maxAttempts }));
          if (patch?.status === 'QUEUED') await this.enqueue(conn, { ...job, ...patch });
          return patch;
        });
        if (result?.changed && isFinal(result.job.status)) await this.dispatchWaiting(conn, ownerId);
        return result?.changed ?? false;
      });
      if (changed) {
        taken++;
        this.relay.kick();
      }
    }
    return taken;
  }

  /**
   * Dispatches the waiting jobs of users who have a free turn: the backstop for a turn missed when a replica
   * stopped between a job's end and its owner's next dispatch. Returns how many requests it wrote.
   */
  async dispatchMissedTurns(): Promise<number> {
    let sent = 0;
    for (const userId of await this.repo.ownersWithWaiting(100)) sent += await this.dispatchNext(userId);
    return sent;
  }

  /** Starts older than the hour no longer count: forgotten. */
  async pruneStarts(): Promise<number> {
    return this.repo.pruneStarts(new Date(Date.now() - HOUR_MS));
  }

  // ---- internals

  private get leaseSeconds(): number {
    return this.options.leaseSeconds ?? DEFAULT_LEASE_SECONDS;
  }

  private leaseUntil(): Date {
    return new Date(Date.now() + this.leaseSeconds * 1000);
  }

  /**
   * Runs `work` in one transaction holding the user's lock (their `job_quota_users` row, FOR UPDATE), so that
   * quota checks and dispatching of one user never interleave, on one replica or several. READ COMMITTED: each
   * count after the lock sees every job committed before it, and range reads lock no gaps that would block
   * other users' inserts. Lock order everywhere: the user's row first, then job rows.
   */
  private async asUser<T>(
    userId: string,
    work: (conn: PoolConnection) => Promise<T>,
    /** For the account's deletion itself, which takes the lock after writing the tombstone. */
    evenIfDeleted = false,
  ): Promise<T> {
    // The lock row exists but before a user's first conversion (and once their account is deleted): it is
    // locked at once, and only when missing created — in a statement of its own, outside any transaction (see
    // `ensureQuotaUser`) — before the transaction begins again.
    const locked = (conn: PoolConnection) => this.repo.lockQuotaUser(conn, userId);
    const first = await this.transaction(
      async (conn) => ((await locked(conn)) ? { result: await work(conn) } : null),
      'READ COMMITTED',
    );
    if (first) return first.result;
    await this.repo.ensureQuotaUser(userId, evenIfDeleted);
    return this.transaction(async (conn) => {
      if (!(await locked(conn))) throw new Error(`no quota row for user ${userId}`);
      return work(conn);
    }, 'READ COMMITTED');
  }

  /**
   * `asUser` for the user's own changes: refused (UNAUTHENTICATED) once their account has been deleted, read
   * under the lock the deletion takes, so a conversion is either written before the deletion removes the user's
   * jobs or refused. A refusal removes the lock row, should it have been left.
   */
  private async asLiveUser<T>(userId: string, work: (conn: PoolConnection) => Promise<T>): Promise<T> {
    const { pool } = this.repo;
    // No check before the lock: a deleted account's lock row is gone (and is not created again), so its
    // requests end in the catch below, at the cost of one more read, and everyone else's are a read shorter.
    try {
      return await this.asUser(userId, async (conn) => {
        if (await this.repo.isDeletedAccount(conn, userId)) throw new AccountDeletedError();
        return work(conn);
      });
    } catch (err) {
      // Deleted: seen inside the lock, or the lock row is gone and cannot be created.
      if (!(err instanceof AccountDeletedError) && !(await this.repo.isDeletedAccount(pool, userId))) throw err;
      await this.repo.forgetQuotaUser(pool, userId);
      throw accountGone();
    }
  }

  /**
   * Runs `work` in a transaction (again when MariaDB picks it as a deadlock's victim). Once it has committed, the
   * job changes it announced go to this replica's subscribers at once, without waiting for the outbox relay and
   * RabbitMQ to bring them back (tens of ms): the outbox still carries them to every replica — this one too, a
   * moment later, when its subscribers skip the state they have already sent (`unseen`). READ COMMITTED unless
   * asked otherwise: jobs' transactions lock the rows they change by key (no range they need kept still), and one
   * level for all of them lets a pooled connection keep its session's level instead of setting it each time.
   */
  private async transaction<T>(
    work: (conn: PoolConnection) => Promise<T>,
    isolation: IsolationLevel = 'READ COMMITTED',
  ): Promise<T> {
    let changes: JobChanged[] = [];
    const result = await retryDeadlocks(() =>
      withTransaction(
        this.repo.pool,
        async (conn) => {
          changes = []; // a deadlock victim's announcements were rolled back with it
          this.announcements.set(conn, changes);
          try {
            return await work(conn);
          } finally {
            this.announcements.delete(conn);
          }
        },
        isolation,
      ),
    );
    for (const change of changes) this.bus.publish(change);
    return result;
  }

  /**
   * Under the user's lock: QUOTA_EXCEEDED unless one more conversion may start. Returns the user's active jobs as
   * counted (what `dispatchWaiting` needs next, under the same lock).
   */
  private async checkQuotas(conn: PoolConnection, userId: string, now: Date): Promise<ActiveJobs> {
    const { starts, ...counts } = await this.repo.countForQuota(conn, userId, new Date(now.getTime() - HOUR_MS));
    const { active } = counts;
    const refusal = refuseConversion(
      this.options.limits,
      { activeJobs: active, conversionsLastHour: starts.count, oldestInWindow: starts.oldest },
      now,
    );
    if (refusal) throw refusal;
    return counts;
  }

  /**
   * Fair scheduling. Under the user's lock: writes the requests of the user's oldest waiting jobs while fewer
   * than MAX_DISPATCHED_PER_USER of theirs are in RabbitMQ or running. RabbitMQ's queue is first-in first-out
   * for everyone, so a user who queues many jobs holds at most that many places in it; the rest of their jobs
   * wait in MariaDB and join the back of the queue one by one as theirs finish, behind what others queued
   * meanwhile. (A per-user queue in RabbitMQ, or priorities, would need workers to know every user; this keeps
   * the workers and the topology as they are.) Returns the ids dispatched; `request` names the id of the
   * request that queued one of them.
   */
  private async dispatchWaiting(
    conn: PoolConnection,
    userId: string,
    request?: { jobId: string; requestId: string | undefined },
    /** Counted already under this lock (by `checkQuotas`), with nothing dispatched since. */
    counted?: ActiveJobs,
    /** A job this transaction has just written, QUEUED, after `counted` was read. */
    created?: JobRecord,
  ): Promise<string[]> {
    const { dispatched: dispatchedNow, waiting } = counted ?? (await this.repo.countActive(conn, userId));
    const room = dispatchRoom(this.options.limits, dispatchedNow);
    if (room === 0) return [];
    // Nothing else waits: the job just created is the one whose turn it is, and it is current (this transaction
    // wrote it). Nothing waits at all: nothing to read. Otherwise the user's oldest waiting jobs come back locked
    // and current; one cancelled meanwhile is skipped rather than sent (its turn goes to the next event or the
    // sweeper).
    const candidates = waiting === 0 ? (created ? [created] : []) : await this.repo.lockWaiting(conn, userId, room);
    const now = new Date();
    const dispatched: string[] = [];
    for (const job of candidates) {
      const patch = patchOf(state.dispatch(job, now));
      if (!patch) continue;
      await this.enqueue(conn, job, job.id === request?.jobId ? request.requestId : undefined);
      await this.repo.update(conn, job.id, patch);
      dispatched.push(job.id);
    }
    return dispatched;
  }

  /** Gives the user's free turns to their waiting jobs, in a transaction of its own; returns how many. */
  private async dispatchNext(userId: string): Promise<number> {
    const sent = await this.asUser(userId, (conn) => this.dispatchWaiting(conn, userId));
    if (sent.length > 0) this.relay.kick();
    return sent.length;
  }

  /**
   * Locks the job's row, lets `decide` return a patch (or null for no change), writes it with a
   * `job-changed` announcement in the same transaction, then wakes the relay. Resolves with the job as it is
   * afterwards, or null when there is no such job.
   */
  private async mutate(
    id: string,
    decide: (conn: PoolConnection, job: JobRecord) => Promise<JobPatch | null>,
  ): Promise<JobRecord | null> {
    const after = await this.transaction((conn) => this.mutateIn(conn, id, decide));
    if (after?.changed) this.relay.kick();
    return after?.job ?? null;
  }

  /** `mutate`'s work inside a transaction the caller runs (and kicks the relay after). */
  private async mutateIn(
    conn: PoolConnection,
    id: string,
    decide: (conn: PoolConnection, job: JobRecord) => Promise<JobPatch | null>,
  ): Promise<{ job: JobRecord; changed: boolean } | null> {
    const job = await this.repo.find(conn, id, true);
    if (!job) return null;
    const patch = await decide(conn, job);
    if (!patch) return { job, changed: false };
    await this.repo.update(conn, id, patch);
    const updated = { ...job, ...patch };
    // A renewed lease alone is nothing to announce.
    if (!isVisible(patch)) return { job: updated, changed: false };
    await this.announce(conn, updated);
    // The notifier learns of the end in the same transaction that records it: announced if and only if it ended.
    const finished = state.finishedEvent(job, updated);
    if (finished) {
      await this.repo.addOutbox(conn, Topology.notificationsExchange, Topology.notificationsQueue, finished);
    }
    await this.announceStatus(conn, job, updated);
    return { job: updated, changed: true };
  }

  /** Within the transaction of the change: a status entered (for webhooks) goes to the notifier through the outbox. */
  private async announceStatus(conn: PoolConnection, before: JobRecord | null, after: JobRecord): Promise<void> {
    const changed = state.statusChangedEvent(before, after);
    if (changed) await this.repo.addOutbox(conn, Topology.notificationsExchange, Topology.notificationsQueue, changed);
  }

  private async enqueue(conn: PoolConnection, job: JobRecord, requestId?: string): Promise<void> {
    const request: ConversionRequest = {
      jobId: job.id,
      attempt: job.attempts,
      ownerId: job.ownerId,
      inputMediaId: job.inputMediaId,
      inputDurationSeconds: job.inputDurationSeconds,
      options: job.options,
      ...(requestId ? { requestId } : {}),
    };
    await this.repo.addOutbox(conn, Topology.conversionsExchange, Topology.conversionsQueue, request);
  }

  /** Within `transaction`: the change goes to the outbox now, and to this replica's subscribers after the commit. */
  private async announce(conn: PoolConnection, job: JobRecord): Promise<void> {
    const change: JobChanged = { jobId: job.id, ownerId: job.ownerId };
    await this.repo.addOutbox(conn, Topology.changesExchange, '', change);
    this.announcements.get(conn)?.push(change);
  }
}

const DEFAULT_LEASE_SECONDS = 60;
const DEFAULT_MAX_ATTEMPTS = 3;

/** How many times a transaction MariaDB picked as a deadlock's victim is run again before the error stands. */
const DEADLOCK_RETRIES = 3;

/**
 * Runs `transaction` again when MariaDB broke a deadlock by rolling it back (ER_LOCK_DEADLOCK): the whole
 * transaction was undone, and it reads everything afresh, so running it again is safe. Without this, a claim
 * that lost a deadlock answered 500 and its job waited seconds for the request to come back.
 */
async function retryDeadlocks<T>(transaction: () => Promise<T>): Promise<T> {
  for (let retries = 0; ; retries++) {
    try {
      return await transaction();
    } catch (err) {
      if ((err as { errno?: unknown } | null)?.errno !== ER_LOCK_DEADLOCK || retries >= DEADLOCK_RETRIES) throw err;
    }
  }
}

const ER_LOCK_DEADLOCK = 1213;
