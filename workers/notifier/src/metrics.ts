import { scrapedGauge, type Logger, type Metrics } from '@vidmp3/shared';
import type { NotificationRepository } from './adapters/notification-repo.js';
import type { SendMeter } from './services/mail-sender.js';

/** `vidmp3_notifier_events_total{outcome}`: queued, duplicate, opted_out, user_gone, expired, ignored, malformed. */
export function eventMeter(metrics: Metrics): (outcome: string) => void {
  const total = metrics.counter({
    name: 'vidmp3_notifier_events_total',
    help: 'Events the notifier handled, by what they came to (queued: a mail; duplicate: already handled)',
    labelNames: ['outcome'],
  });
  return (outcome) => total.inc({ outcome });
}

/** `vidmp3_mail_sends_total{outcome}`: sent, retry (the server did not take it), failed (given up). */
export function sendMeter(metrics: Metrics): SendMeter {
  const total = metrics.counter({
    name: 'vidmp3_mail_sends_total',
    help: 'Tries to hand a mail to the SMTP server (or the log), by outcome',
    labelNames: ['outcome'],
  });
  return { finished: (outcome) => total.inc({ outcome }) };
}

/** The mails waiting (an SMTP outage shows here), and how long the oldest has waited; read when scraped. */
export function backlogGauges(metrics: Metrics, repo: NotificationRepository, logger: Logger): void {
  const onError = (err: unknown) => logger.warn({ err }, 'could not read the mail backlog for /metrics');
  scrapedGauge(metrics, {
    name: 'vidmp3_mail_pending',
    help: 'Mails waiting to be sent',
    onError,
    read: async () => [{ labels: {}, value: (await repo.backlog()).pending }],
  });
  scrapedGauge(metrics, {
    name: 'vidmp3_mail_oldest_pending_seconds',
    help: 'How long the oldest mail waiting to be sent has waited (0 when none)',
    onError,
    read: async () => {
      const { oldest } = await repo.backlog();
      return [{ labels: {}, value: oldest ? (Date.now() - oldest.getTime()) / 1000 : 0 }];
    },
  });
}

/**
 * `vidmp3_webhook_deliveries_total{outcome}`: attempts of webhook deliveries by what they came to — succeeded,
 * retrying (failed, another attempt queued), failed (the last attempt, or 410), skipped (webhook deleted or
 * disabled), malformed (not a delivery).
 */
export function webhookMeter(metrics: Metrics): (outcome: string) => void {
  const total = metrics.counter({
    name: 'vidmp3_webhook_deliveries_total',
    help: 'Webhook delivery attempts by outcome (succeeded, retrying, failed, skipped, malformed)',
    labelNames: ['outcome'],
  });
  return (outcome) => total.inc({ outcome });
}
