import { scrapedGauge, type Logger, type Metrics } from '@vidmp3/shared';
import type { JobsRepository } from './jobs-repo.js';

/**
 * Gauges read from the database when Prometheus scrapes (at most every 5 s, whichever replica is asked:
 * they all see the same table): jobs by status and jobs waiting their turn (the outbox
 * backlog is shared's `outboxMetrics`).
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
}
