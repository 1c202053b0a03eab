import {
  CreatedWebhookDelivery,
  InternalApi,
  UserWebhooks,
  WebhookAttemptRecorded,
  WebhookTarget,
  type CreateWebhookDelivery,
  type WebhookAttemptReport,
  type WebhookEventType,
} from '@vidmp3/shared';

export type { WebhookTarget };
export type AttemptRecord = WebhookAttemptReport;

/**
 * users' internal webhook routes (InternalApi.userWebhooks…webhookAttempts), as the notifier uses them, with the
 * service token. Any failure to get an answer throws: the caller waits and asks again. users' own 404
 * (`{ error: 'NOT_FOUND' }`) means the webhook (or delivery) is gone.
 */
export class WebhooksClient {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  async subscribed(userId: string, event: WebhookEventType): Promise<{ id: string; url: string }[]> {
    const answer = await this.call('GET', InternalApi.userWebhooks.path(userId, event));
    // A user who is gone has no webhooks.
    return answer === null ? [] : UserWebhooks.parse(answer).webhooks;
  }

  /** The delivery's id (`created` false: it existed already); null when the webhook is gone. */
  async createDelivery(
    webhookId: string,
    body: CreateWebhookDelivery,
  ): Promise<{ deliveryId: string; created: boolean } | null> {
    const answer = await this.call('POST', InternalApi.webhookDeliveries.path(webhookId), body);
    return answer === null ? null : CreatedWebhookDelivery.parse(answer);
  }

  /** The webhook's current URL and secret; null when it is gone. */
  async target(webhookId: string): Promise<WebhookTarget | null> {
    const answer = await this.call('GET', InternalApi.webhookTarget.path(webhookId));
    return answer === null ? null : WebhookTarget.parse(answer);
  }

  /** Records an attempt; null when the delivery (or its webhook) is gone. */
  async recordAttempt(deliveryId: string, record: AttemptRecord): Promise<{ webhookEnabled: boolean } | null> {
    const answer = await this.call('POST', InternalApi.webhookAttempts.path(deliveryId), record);
    return answer === null ? null : WebhookAttemptRecorded.parse(answer);
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
