import { z } from 'zod';
import type { WebhookEventType } from '@vidmp3/shared';

/**
 * users' internal webhook routes, as the notifier uses them (service token). Any failure to get an answer throws:
 * the caller waits and asks again. users' own 404 (`{ error: 'NOT_FOUND' }`) means the webhook is gone.
 */
export const WebhookRoutes = {
  /** GET: the user's enabled webhooks subscribed to `event`. */
  subscribed: (userId: string, event: WebhookEventType) =>
    `/internal/users/${encodeURIComponent(userId)}/webhooks?event=${encodeURIComponent(event)}`,
  /** POST `{ eventId, eventType, payload }`: the delivery of an event to a webhook, idempotent on (webhook, eventId). */
  deliveries: (webhookId: string) => `/internal/webhooks/${encodeURIComponent(webhookId)}/deliveries`,
  /** GET: where and how to send (the current URL and secret). */
  target: (webhookId: string) => `/internal/webhooks/${encodeURIComponent(webhookId)}/target`,
  /** POST: one attempt's outcome; answers whether the webhook is still enabled. */
  attempts: (deliveryId: string) => `/internal/webhook-deliveries/${encodeURIComponent(deliveryId)}/attempts`,
} as const;

const SubscribedWebhooks = z.object({ webhooks: z.array(z.object({ id: z.string(), url: z.string() })) });
const CreatedDelivery = z.object({ deliveryId: z.string().min(1), created: z.boolean() });
export const WebhookTarget = z.object({ url: z.string(), secret: z.string().min(1), enabled: z.boolean() });
export type WebhookTarget = z.infer<typeof WebhookTarget>;
const RecordedAttempt = z.object({ webhookEnabled: z.boolean() });

export interface AttemptRecord {
  attempt: number;
  outcome: 'succeeded' | 'retrying' | 'failed';
  responseStatus: number | null;
  error: string | null;
  nextRetryAt: string | null;
}

export class WebhooksClient {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  async subscribed(userId: string, event: WebhookEventType): Promise<{ id: string; url: string }[]> {
    const answer = await this.call('GET', WebhookRoutes.subscribed(userId, event));
    // A user who is gone has no webhooks.
    return answer === null ? [] : SubscribedWebhooks.parse(answer).webhooks;
  }

  /** The delivery's id (`created` false: it existed already); null when the webhook is gone. */
  async createDelivery(
    webhookId: string,
    body: { eventId: string; eventType: WebhookEventType; payload: unknown },
  ): Promise<{ deliveryId: string; created: boolean } | null> {
    const answer = await this.call('POST', WebhookRoutes.deliveries(webhookId), body);
    return answer === null ? null : CreatedDelivery.parse(answer);
  }

  /** The webhook's current URL and secret; null when it is gone. */
  async target(webhookId: string): Promise<WebhookTarget | null> {
    const answer = await this.call('GET', WebhookRoutes.target(webhookId));
    return answer === null ? null : WebhookTarget.parse(answer);
  }

  /** Records an attempt; null when the delivery (or its webhook) is gone. */
  async recordAttempt(deliveryId: string, record: AttemptRecord): Promise<{ webhookEnabled: boolean } | null> {
    const answer = await this.call('POST', WebhookRoutes.attempts(deliveryId), record);
    return answer === null ? null : RecordedAttempt.parse(answer);
  }

  /** The JSON answer, or null for users' own 404; throws on anything else. */
  private async call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const res = await fetch(new URL(path, this.baseUrl), {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(5_000),
    });
    const answer: unknown = await res.json().catch(() => null);
    // users' own "not found", not a 404 from something else on the way (a proxy, a users without the route).
    if (res.status === 404 && (answer as { error?: unknown } | null)?.error === 'NOT_FOUND') return null;
    if (!res.ok) throw new Error(`users answered ${res.status} to ${method} ${path.replace(/\?.*$/, '')}`);
    return answer;
  }
}
