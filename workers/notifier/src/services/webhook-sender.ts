import type { Logger, WebhookDelivery } from '@vidmp3/shared';
import type { AttemptRecord, WebhookTarget } from '../adapters/webhooks-client.js';
import type { AttemptResult } from '../adapters/webhook-http.js';

/** users' side of a delivery: where to send it now, and what each attempt came to. */
export interface DeliveryRecords {
  target(webhookId: string): Promise<WebhookTarget | null>;
  recordAttempt(deliveryId: string, record: AttemptRecord): Promise<{ webhookEnabled: boolean } | null>;
}

/** Publishes the next attempt into the retry queue of `delayMs`, resolving once RabbitMQ confirmed it. */
export type PublishRetry = (next: WebhookDelivery, delayMs: number) => Promise<void>;

/** Makes one attempt's POST; never throws. */
export type PostAttempt = (
  target: { url: string; secret: string },
  message: { eventId: string; payload: unknown },
) => Promise<AttemptResult>;

/**
 * Runs a step that must happen once the POST was made (recording it, publishing the next attempt): tried again
 * until it succeeds, so that a users or RabbitMQ hiccup does not send the webhook again; throws when the step
 * cannot be done in time (the delivery is then handed back to RabbitMQ, and its attempt is made again).
 */
export type Persist = <T>(step: () => Promise<T>) => Promise<T>;

/** What a delivery's attempt came to (also the `outcome` label of `vidmp3_webhook_deliveries_total`). */
export type SendOutcome = 'succeeded' | 'retrying' | 'failed' | 'skipped';

export interface SenderSettings {
  /** The waits before attempt 2, 3, …: a delivery has `retryDelaysMs.length + 1` attempts. */
  retryDelaysMs: readonly number[];
  now?: () => Date;
}

/** `attempt` was the last one. */
export const isLastAttempt = (attempt: number, retryDelaysMs: readonly number[]) => attempt > retryDelaysMs.length;

/** The wait before the attempt after `attempt` (1-based), or null when `attempt` was the last. */
export const retryDelayAfter = (attempt: number, retryDelaysMs: readonly number[]): number | null =>
  isLastAttempt(attempt, retryDelaysMs) ? null : (retryDelaysMs[attempt - 1] ?? null);

/**
 * Sends one attempt of a webhook delivery (from queue vidmp3.webhooks). The webhook's URL and secret are read from
 * users at each attempt (a deleted or disabled webhook gets nothing more). 2xx is success; anything else — an error
 * status, a redirect, a timeout, a refused address — fails the attempt, which is recorded with when the next one
 * comes, and the next attempt is published to the retry queue of its delay (it comes back to vidmp3.webhooks when
 * the delay has passed). After the last attempt, or on 410 Gone (the receiver says it wants no more), the
 * delivery has failed. Every attempt is recorded in users (`webhookDeliveries` shows them).
 */
export class WebhookSender {
  private readonly now: () => Date;

  constructor(
    private readonly records: DeliveryRecords,
    private readonly post: PostAttempt,
    private readonly publishRetry: PublishRetry,
    private readonly settings: SenderSettings,
    private readonly logger: Logger,
  ) {
    this.now = settings.now ?? (() => new Date());
  }

  /** Throws when users fails before anything was sent (the caller tries the whole delivery again later). */
  async handle(delivery: WebhookDelivery, persist: Persist): Promise<SendOutcome> {
    const log = this.logger.child({ deliveryId: delivery.deliveryId, webhookId: delivery.webhookId });
    const target = await this.records.target(delivery.webhookId);
    if (!target || !target.enabled) {
      log.debug({ attempt: delivery.attempt }, 'webhook deleted or disabled: delivery dropped');
      return 'skipped';
    }
    const result = await this.post(target, delivery);
    const { attempt } = delivery;
    const base = { attempt, responseStatus: result.status, error: result.error };
    if (result.ok) {
      await persist(() =>
        this.records.recordAttempt(delivery.deliveryId, { ...base, outcome: 'succeeded', nextRetryAt: null }),
      );
      log.debug({ attempt, status: result.status }, 'webhook delivered');
      return 'succeeded';
    }
    const delay = result.status === 410 ? null : retryDelayAfter(attempt, this.settings.retryDelaysMs);
    if (delay === null) {
      await persist(() =>
        this.records.recordAttempt(delivery.deliveryId, { ...base, outcome: 'failed', nextRetryAt: null }),
      );
      log.info({ attempt, status: result.status, error: result.error }, 'webhook delivery failed for good');
      return 'failed';
    }
    const nextRetryAt = new Date(this.now().getTime() + delay).toISOString();
    const recorded = await persist(() =>
      this.records.recordAttempt(delivery.deliveryId, { ...base, outcome: 'retrying', nextRetryAt }),
    );
    // users disabled the webhook (too many failures) or it is gone: no further attempt.
    if (!recorded || !recorded.webhookEnabled) {
      log.info({ attempt }, 'webhook disabled or deleted: no further attempt');
      return 'failed';
    }
    await persist(() => this.publishRetry({ ...delivery, attempt: attempt + 1 }, delay));
    log.debug({ attempt, status: result.status, error: result.error, nextRetryAt }, 'webhook attempt failed');
    return 'retrying';
  }
}
