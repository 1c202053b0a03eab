import {
  RepeatingTask,
  isRequestId,
  publishConfirmed,
  REQUEST_ID_HEADER,
  withTransaction,
  type ChannelWrapper,
  type Logger,
} from '@vidmp3/shared';
import type { JobsRepository } from '../adapters/jobs-repo.js';

const BATCH = 100;

/**
 * Publishes the outbox: messages written in the same transaction as the state they announce, so a job and
 * its conversion request exist together or not at all. Runs on a short timer and right after each commit
 * (`kick`); rows are taken with FOR UPDATE SKIP LOCKED, so several replicas share the work without
 * publishing a row twice — except after a crash between confirm and commit, which consumers tolerate
 * (at-least-once: every consumer is idempotent).
 */
export class OutboxRelay {
  private readonly task: RepeatingTask;

  constructor(
    private readonly repo: JobsRepository,
    private readonly channel: ChannelWrapper,
    private readonly logger: Logger,
    intervalMs = 1_000,
  ) {
    this.task = new RepeatingTask(
      () => this.flush(),
      (err: unknown) => this.logger.warn({ err }, 'outbox relay: will retry'),
      intervalMs,
    );
  }

  start(): void {
    this.task.start();
  }

  /** Runs now (or once more right after the run under way). */
  kick(): void {
    this.task.kick();
  }

  async stop(): Promise<void> {
    await this.task.stop();
  }

  private async flush(): Promise<void> {
    for (;;) {
      // READ COMMITTED: the locking read must lock only the rows it takes. Under REPEATABLE READ it also locks
      // the gap after them for as long as publishing takes, which blocks every writer of the outbox and lets
      // two relays deadlock on marking their rows — after their messages were already confirmed.
      const sent = await withTransaction(
        this.repo.pool,
        async (conn) => {
          const batch = await this.repo.claimOutbox(conn, BATCH);
          // All sent at once, in order (one channel keeps it), then every confirm awaited: one round trip to
          // RabbitMQ per batch rather than per row. A failure leaves the whole batch unmarked, to be sent again
          // (at-least-once, as after a crash).
          const confirms = await Promise.allSettled(
            batch.map((message) =>
              publishConfirmed(
                this.channel,
                message.exchange,
                message.routingKey,
                Buffer.from(message.payload),
                requestHeaders(message.payload),
              ),
            ),
          );
          const failed = confirms.find((c): c is PromiseRejectedResult => c.status === 'rejected');
          if (failed) throw failed.reason;
          await this.repo.markPublished(
            conn,
            batch.map((m) => m.id),
          );
          return batch.length;
        },
        'READ COMMITTED',
      );
      if (sent < BATCH) return;
    }
  }
}

/**
 * A conversion request carries the id of the request that queued it; it also goes on the message (header and
 * correlationId), where RabbitMQ's tooling and consumers see it without decoding the body.
 */
function requestHeaders(payload: string): Record<string, string> {
  try {
    const requestId = (JSON.parse(payload) as { requestId?: unknown } | null)?.requestId;
    return isRequestId(requestId) ? { [REQUEST_ID_HEADER]: requestId } : {};
  } catch {
    return {};
  }
}
