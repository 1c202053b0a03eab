import type { JobStatusChanged, Logger, MediaDeleted, WebhookDelivery, WebhookEventType } from '@vidmp3/shared';

/** users' side of the fan-out: who listens, and the delivery record of each (idempotent per webhook and event). */
export interface WebhookSubscriptions {
  subscribed(userId: string, event: WebhookEventType): Promise<{ id: string }[]>;
  createDelivery(
    webhookId: string,
    body: { eventId: string; eventType: WebhookEventType; payload: WebhookDelivery['payload'] },
  ): Promise<{ deliveryId: string; created: boolean } | null>;
}

/** The notifier's own record of the events it has fanned out (rows of its notifications table). */
export interface FanOutLedger {
  has(eventId: string): Promise<boolean>;
  record(
    row: { eventId: string; kind: string; userId: string; createdAt: Date },
    decision: { skipped: string },
  ): Promise<boolean>;
}

/** Publishes a delivery's first attempt to vidmp3.webhooks, resolving once RabbitMQ confirmed it. */
export type PublishDelivery = (delivery: WebhookDelivery) => Promise<void>;

export type FanOutOutcome = 'webhooks_queued' | 'no_webhooks' | 'duplicate';

/** The ledger's key of an event's fan-out (not the event id itself: a mail may be keyed by the same one). */
export const fanOutKey = (eventId: string) => `webhooks:${eventId}`;

/** The body receivers get: ids only (a download link is the owner's, and expires), never file URLs. */
export function webhookPayload(event: JobStatusChanged | MediaDeleted): WebhookDelivery['payload'] {
  if (event.type === 'media-deleted') {
    return { type: 'media.deleted', timestamp: event.at, data: { id: event.mediaId } };
  }
  return {
    type: `job.${event.status.toLowerCase()}` as WebhookEventType,
    timestamp: event.at,
    data: {
      id: event.jobId,
      status: event.status,
      attempt: event.attempt,
      inputMediaId: event.inputMediaId,
      outputMediaId: event.outputMediaId,
      error: event.error,
    },
  };
}

/**
 * Turns a job or media event into one delivery per webhook of its owner subscribed to it: each delivery is
 * recorded in users first (idempotent on webhook and event, so it shows in `webhookDeliveries` once), then its
 * first attempt is published; the event is acknowledged once every publish is confirmed. A duplicate of the event
 * (redelivered, published twice by an outbox) finds the ledger's row and does nothing. Should the notifier stop
 * between the publishes and that row, the event comes again and its deliveries are published again: receivers see
 * the same `webhook-id` twice at most (at-least-once, as Standard Webhooks expects them to handle).
 */
export class WebhookFanOut {
  constructor(
    private readonly users: WebhookSubscriptions,
    private readonly ledger: FanOutLedger,
    private readonly publish: PublishDelivery,
    private readonly logger: Logger,
  ) {}

  /** Throws when users, the database or RabbitMQ fails: the caller waits and hands the event in again. */
  async handle(event: JobStatusChanged | MediaDeleted): Promise<FanOutOutcome> {
    const key = fanOutKey(event.eventId);
    if (await this.ledger.has(key)) return 'duplicate';
    const payload = webhookPayload(event);
    const webhooks = await this.users.subscribed(event.ownerId, payload.type);
    let published = 0;
    for (const webhook of webhooks) {
      const delivery = await this.users.createDelivery(webhook.id, {
        eventId: event.eventId,
        eventType: payload.type,
        payload,
      });
      if (!delivery) continue; // deleted meanwhile
      await this.publish({
        deliveryId: delivery.deliveryId,
        webhookId: webhook.id,
        eventId: event.eventId,
        eventType: payload.type,
        payload,
        attempt: 1,
      });
      published++;
    }
    const row = { eventId: key, kind: 'webhooks', userId: event.ownerId, createdAt: new Date() };
    if (!(await this.ledger.record(row, { skipped: published > 0 ? 'webhooks' : 'no-webhooks' }))) return 'duplicate';
    if (published > 0) {
      this.logger.debug({ eventId: event.eventId, type: payload.type, published }, 'webhook deliveries queued');
    }
    return published > 0 ? 'webhooks_queued' : 'no_webhooks';
  }
}
