// The decisions of webhook bookkeeping, as pure functions (services/webhooks.ts does the locking and I/O).
import type { WebhookAttemptReport } from '@vidmp3/shared';
import type { DeliveryRecord, DeliveryStatus, WebhookHealth } from '../adapters/webhook-repo.js';

const STATUS: Record<WebhookAttemptReport['outcome'], DeliveryStatus> = {
  succeeded: 'SUCCEEDED',
  retrying: 'PENDING',
  failed: 'FAILED',
};

export const MAX_ERROR_LENGTH = 1000;

/**
 * What a report of an attempt does to its delivery: nothing when it is stale — an attempt not after the last one
 * recorded (a redelivered or reordered report) or of a delivery already over — otherwise the delivery's new state.
 */
export function planAttempt(
  delivery: Pick<DeliveryRecord, 'status' | 'attempts'>,
  report: WebhookAttemptReport,
): {
  attempts: number;
  status: DeliveryStatus;
  responseStatus: number | null;
  lastError: string | null;
  nextRetryAt: Date | null;
} | null {
  if (delivery.status !== 'PENDING' || report.attempt <= delivery.attempts) return null;
  return {
    attempts: report.attempt,
    status: STATUS[report.outcome],
    responseStatus: report.responseStatus,
    lastError: report.outcome === 'succeeded' ? null : (report.error ?? 'failed').slice(0, MAX_ERROR_LENGTH),
    nextRetryAt: report.outcome === 'retrying' && report.nextRetryAt ? new Date(report.nextRetryAt) : null,
  };
}

/**
 * What a delivery's end does to its webhook: a success clears the count of deliveries failed in a row, a failure
 * adds one, and the `threshold`-th failure in a row disables an enabled webhook (once: a disabled webhook's
 * failures — deliveries that were in flight — do not disable it again). A retry changes nothing yet.
 */
export function planHealth(
  health: WebhookHealth,
  outcome: WebhookAttemptReport['outcome'],
  threshold: number,
): { health: WebhookHealth; disable: boolean } {
  switch (outcome) {
    case 'retrying':
      return { health, disable: false };
    case 'succeeded':
      return { health: { ...health, failedDeliveriesInARow: 0 }, disable: false };
    case 'failed': {
      const failed = health.failedDeliveriesInARow + 1;
      const disable = health.enabled && failed >= threshold;
      return { health: { enabled: health.enabled && !disable, failedDeliveriesInARow: failed }, disable };
    }
  }
}

export const disabledReason = (failed: number, lastError: string | null) =>
  `Disabled after ${failed} deliveries in a row failed${lastError ? ` (last error: ${lastError})` : ''}`.slice(0, 500);
