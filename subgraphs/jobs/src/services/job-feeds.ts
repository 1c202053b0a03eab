import { setTimeout as sleep } from 'node:timers/promises';
import type { JobChanged, Logger, Viewer } from '@vidmp3/shared';
import type { JobRecord, JobsRepository } from '../adapters/jobs-repo.js';
import { ownJob, requireViewer } from './access.js';
import { closable, type ChangeBus } from './change-bus.js';
import { isFinal } from './job-state.js';
import { unseen } from './seen-states.js';

/**
 * The subscriptions: a job's states, and every change of an owner's jobs. A change on the bus (this replica's
 * own commits, and every replica's through the outbox) is only a signal: the job is read again, so a feed always
 * sends the state as committed, and each state once (`unseen`), however many signals announce it.
 */
export class JobFeeds {
  constructor(
    private readonly repo: JobsRepository,
    private readonly bus: ChangeBus,
    private readonly logger?: Logger,
  ) {}

  /**
   * The job's current state, then every change, ending after a final state. The access check runs first, so
   * a foreign or missing job fails the subscribe itself (NOT_FOUND) rather than its first event.
   */
  async watchJob(viewer: Viewer | null, id: string): Promise<AsyncIterableIterator<{ jobUpdated: JobRecord }>> {
    await ownJob(this.repo, viewer, id);
    const changes = this.bus.job(id); // listening before reading the state it starts with: nothing slips between
    const closed = new AbortController();
    return closable(changes, this.jobUpdates(changes, viewer, id, closed.signal), closed);
  }

  /** Every change of any of the viewer's jobs. */
  async watchMine(viewer: Viewer | null): Promise<AsyncIterableIterator<{ myJobUpdates: JobRecord }>> {
    const { userId } = requireViewer(viewer);
    const changes = this.bus.owner(userId);
    const closed = new AbortController();
    return closable(changes, this.ownerUpdates(changes, userId, closed.signal), closed);
  }

  private async *jobUpdates(
    changes: AsyncIterator<JobChanged>,
    viewer: Viewer | null,
    id: string,
    closed: AbortSignal,
  ): AsyncGenerator<{ jobUpdated: JobRecord }> {
    let job = await ownJob(this.repo, viewer, id);
    const seen = unseen();
    seen(job);
    yield { jobUpdated: job };
    while (!isFinal(job.status)) {
      const next = await changes.next();
      if (next.done) return;
      const current = await this.readAgain(id, closed);
      if (!current) return;
      job = current;
      if (seen(job)) yield { jobUpdated: job };
    }
  }

  private async *ownerUpdates(
    changes: AsyncIterableIterator<JobChanged>,
    userId: string,
    closed: AbortSignal,
  ): AsyncGenerator<{ myJobUpdates: JobRecord }> {
    const seen = unseen();
    for await (const change of changes) {
      const job = await this.readAgain(change.jobId, closed);
      if (job && job.ownerId === userId && seen(job)) yield { myJobUpdates: job };
    }
  }

  /**
   * A job's state after a change, for a subscription: read again until the database answers (a subscription
   * outlives a database outage and delivers the state once it is back), or until the subscription is closed.
   */
  private async readAgain(id: string, closed: AbortSignal): Promise<JobRecord | null> {
    for (let delayMs = 250; ; delayMs = Math.min(delayMs * 2, 2_000)) {
      try {
        return await this.repo.find(this.repo.pool, id);
      } catch (err) {
        if (closed.aborted) throw err;
        this.logger?.warn({ err, jobId: id }, 'subscription: could not read the job; will retry');
        await sleep(delayMs, undefined, { signal: closed }).catch(() => undefined);
      }
    }
  }
}
