import { scrapedGauge, type Logger, type Metrics } from '@vidmp3/shared';
import type { JobsRepository } from './jobs-repo.js';

/**
 * Gauges read from the database when Prometheus scrapes (at most every 5 s, whichever replica is asked:
 * they all see the same table): jobs by status, and the outbox backlog — messages committed but not yet
 * published, which grows while RabbitMQ is unreachable.
 */
export function jobMetrics(metrics: Metrics, repo: JobsRepository, logger: Logger): void {
  const onError = (err: unknown) => logger.warn({ err }, 'could not read job figures for /metrics');
  scrapedGauge(metrics, {
    name: 'vidmp3_jobs',
    help: 'Jobs by current status',
    labelNames: ['status'],
    onError,
    read: async () =>
      Object.entries(await repo.countByStatus()).map(([status, value]) => ({ labels: { status }, value })),
  });
  scrapedGauge(metrics, {
    name: 'vidmp3_jobs_waiting_turn',
    help: 'QUEUED jobs held back by fair dispatch (their owner already has MAX_DISPATCHED_PER_USER sent)',
    onError,
    read: async () => [{ labels: {}, value: await repo.countWaiting() }],
  });
  scrapedGauge(metrics, {
    name: 'vidmp3_outbox_pending_messages',
    help: 'Outbox messages committed but not yet published to RabbitMQ',
    onError,
    read: async () => [{ labels: {}, value: (await repo.outboxBacklog()).pending }],
  });
  scrapedGauge(metrics, {
    name: 'vidmp3_outbox_oldest_pending_seconds',
    help: 'Age of the oldest unpublished outbox message, in seconds (0: none)',
    onError,
    read: async () => {
      const { oldest } = await repo.outboxBacklog();
      return [{ labels: {}, value: oldest ? Math.max(0, (Date.now() - oldest.getTime()) / 1000) : 0 }];
    },
  });
}
