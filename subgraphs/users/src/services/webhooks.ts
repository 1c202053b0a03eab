import { randomBytes, randomUUID } from 'node:crypto';
import {
  checkWebhookTarget,
  connection,
  ErrorCode,
  pageArgs,
  Topology,
  userError,
  WebhookEventType,
  WebhookTargetError,
  withTransaction,
  type CreateWebhookDelivery,
  type CreatedWebhookDelivery,
  type OutboxPublisher,
  type UserWebhooks,
  type Viewer,
  type WebhookAttemptRecorded,
  type WebhookAttemptReport,
  type WebhookDelivery,
  type WebhookDisabled,
  type WebhookTarget,
  type WebhookTargetOptions,
} from '@vidmp3/shared';
import type { SecretBox } from '../adapters/secret-box.js';
import type { DeliveryRecord, WebhookRecord, WebhookRepository } from '../adapters/webhook-repo.js';
import { disabledReason, planAttempt, planHealth } from './webhook-policy.js';

export interface WebhookPolicy extends WebhookTargetOptions {
  perUser: number;
  /** Deliveries failed in a row after which a webhook is disabled. */
  disableAfterFailedDeliveries: number;
  testsPerHour: number;
}

export interface CreatedWebhookResult {
  webhook: WebhookRecord;
  secret: string;
}

export const TEST_EVENT: WebhookEventType = 'webhook.test';

/** The events a webhook can subscribe to (all but the test event, which `sendTestWebhook` sends to any). */
const SUBSCRIBABLE = WebhookEventType.options.filter((e) => e !== TEST_EVENT);

const notFound = () => userError(ErrorCode.NOT_FOUND, 'Webhook not found');

/**
 * Webhooks: the owner's API (create, list, delete, deliveries, test, enable; every call checks the session and
 * the owner first) and the notifier's bookkeeping over the internal API (who to send to, the delivery record,
 * the secret, how each attempt went — and disabling a webhook whose deliveries keep failing).
 */
export class WebhookService {
  constructor(
    private readonly repo: WebhookRepository,
    private readonly secrets: SecretBox,
    private readonly outbox: Pick<OutboxPublisher, 'add' | 'kick'>,
    /** The session check of every call (AccountService): FORBIDDEN for an API key's token where keys exist. */
    private readonly accounts: { signedIn(viewer: Viewer | null): Promise<{ id: string }> },
    private readonly policy: WebhookPolicy,
  ) {}

  /** `User.webhooks`: the user themselves only. */
  async list(viewer: Viewer | null, userId: string): Promise<WebhookRecord[]> {
    if (!viewer || viewer.userId !== userId) throw userError(ErrorCode.NOT_FOUND, 'User not found');
    const user = await this.accounts.signedIn(viewer);
    return this.repo.listByUser(user.id);
  }

  async create(viewer: Viewer | null, url: string, events: WebhookEventType[]): Promise<CreatedWebhookResult> {
    const user = await this.accounts.signedIn(viewer);
    const wanted = SUBSCRIBABLE.filter((e) => events.includes(e));
    if (wanted.length === 0) {
      throw userError(ErrorCode.BAD_USER_INPUT, 'Choose at least one event', { field: 'events' });
    }
    const target = await this.checkTarget(url);
    const webhook: WebhookRecord = {
      id: randomUUID(),
      userId: user.id,
      url: target.href,
      events: wanted,
      enabled: true,
      disabledReason: null,
      createdAt: new Date(),
    };
    // Standard Webhooks secret: `whsec_` and the base64 of the key (32 random bytes: HMAC-SHA256's block of key).
    const secret = `whsec_${randomBytes(32).toString('base64')}`;
    await withTransaction(this.repo.pool, async (conn) => {
      if (!(await this.repo.lockUser(conn, user.id))) {
        throw userError(ErrorCode.UNAUTHENTICATED, 'This account no longer exists');
      }
      const used = await this.repo.countByUser(conn, user.id);
      if (used >= this.policy.perUser) {
        throw userError(ErrorCode.QUOTA_EXCEEDED, `You have ${used} webhooks, the most allowed; delete one first`, {
          quota: 'webhooks',
          limit: this.policy.perUser,
          used,
        });
      }
      await this.repo.insert(conn, webhook, this.secrets.seal(secret, webhook.id));
    });
    return { webhook, secret };
  }

  async delete(viewer: Viewer | null, id: string): Promise<true> {
    const user = await this.accounts.signedIn(viewer);
    if (!(await this.repo.delete(user.id, id))) throw notFound();
    return true;
  }

  async deliveries(viewer: Viewer | null, webhookId: string, first?: number | null, after?: string | null) {
    const user = await this.accounts.signedIn(viewer);
    const page = pageArgs(first, after);
    await this.requireOwned(user.id, webhookId);
    return connection(await this.repo.listDeliveries(webhookId, page.size + 1, page.after), page.size);
  }

  /**
   * Records a `webhook.test` delivery and hands it to the sender through the outbox (same transaction: the
   * delivery listed is the delivery sent).
   */
  async sendTest(viewer: Viewer | null, id: string): Promise<DeliveryRecord> {
    const user = await this.accounts.signedIn(viewer);
    const webhook = await this.requireOwned(user.id, id);
    if (!webhook.enabled) {
      throw userError(ErrorCode.BAD_USER_INPUT, 'This webhook is disabled; enable it first', { field: 'id' });
    }
    const now = new Date();
    const recent = await this.repo.countDeliveriesSince(id, TEST_EVENT, new Date(now.getTime() - 3600_000));
    if (recent >= this.policy.testsPerHour) {
      throw userError(ErrorCode.RATE_LIMITED, `At most ${this.policy.testsPerHour} test events per webhook per hour`, {
        retryAfterSeconds: 3600,
      });
    }
    const eventId = `test:${randomUUID()}`;
    const deliveryId = await withTransaction(this.repo.pool, async (conn) => {
      const { deliveryId } = await this.repo.insertDelivery(conn, {
        id: randomUUID(),
        webhookId: id,
        eventId,
        eventType: TEST_EVENT,
        now,
      });
      const message: WebhookDelivery = {
        deliveryId,
        webhookId: id,
        eventId,
        eventType: TEST_EVENT,
        payload: { type: TEST_EVENT, timestamp: now.toISOString(), data: { webhookId: id } },
        attempt: 1,
      };
      await this.outbox.add(conn, Topology.webhooksExchange, Topology.webhooksQueue, message);
      return deliveryId;
    });
    this.outbox.kick();
    const delivery = await this.repo.findDelivery(this.repo.pool, deliveryId);
    if (!delivery) throw notFound(); // deleted in the meantime
    return delivery;
  }

  /** Turns a disabled webhook back on, after checking its URL again (what it resolves to may have changed). */
  async enable(viewer: Viewer | null, id: string): Promise<WebhookRecord> {
    const user = await this.accounts.signedIn(viewer);
    const webhook = await this.requireOwned(user.id, id);
    await this.checkTarget(webhook.url);
    if (!(await this.repo.enable(user.id, id))) throw notFound();
    return this.requireOwned(user.id, id);
  }

  // The notifier's side (internal API, service token).

  async subscribed(userId: string, event: WebhookEventType): Promise<UserWebhooks> {
    return { webhooks: await this.repo.subscribed(userId, event) };
  }

  /** Null when the webhook is gone. */
  async recordDelivery(webhookId: string, body: CreateWebhookDelivery): Promise<CreatedWebhookDelivery | null> {
    try {
      return await retryOnDeadlock(() =>
        this.repo.insertDelivery(this.repo.pool, {
          id: randomUUID(),
          webhookId,
          eventId: body.eventId,
          eventType: body.eventType,
          now: new Date(),
        }),
      );
    } catch (err) {
      if ((err as { code?: string } | null)?.code === 'ER_NO_REFERENCED_ROW_2') return null;
      throw err;
    }
  }

  /** The URL and the decrypted secret; null when the webhook is gone. */
  async target(webhookId: string): Promise<WebhookTarget | null> {
    const row = await this.repo.target(webhookId);
    if (!row) return null;
    return { url: row.url, secret: this.secrets.open(row.secretCiphertext, webhookId), enabled: row.enabled };
  }

  /**
   * Records an attempt on its delivery and, when the delivery is over, on its webhook's run of failures; the
   * failure that completes the run disables the webhook and tells its owner (WebhookDisabled, same transaction).
   * Null when the delivery is gone.
   */
  async recordAttempt(deliveryId: string, report: WebhookAttemptReport): Promise<WebhookAttemptRecorded | null> {
    const known = await this.repo.findDelivery(this.repo.pool, deliveryId);
    if (!known) return null;
    const now = new Date();
    const result = await retryOnDeadlock(() => this.recordAttemptIn(known, deliveryId, report, now));
    if (!result) return null;
    if (result.disabled) this.outbox.kick();
    return { webhookEnabled: result.webhookEnabled };
  }

  private recordAttemptIn(known: DeliveryRecord, deliveryId: string, report: WebhookAttemptReport, now: Date) {
    return withTransaction(this.repo.pool, async (conn) => {
      // Webhook first, then delivery: the order a cascading delete of the webhook takes them in.
      const health = await this.repo.lockHealth(conn, known.webhookId);
      const delivery = health && (await this.repo.lockDelivery(conn, deliveryId));
      if (!health || !delivery) return null;
      const attempt = planAttempt(delivery, report);
      if (!attempt) return { webhookEnabled: health.enabled, disabled: false };
      await this.repo.saveAttempt(conn, deliveryId, { ...attempt, now });
      if (attempt.status === 'PENDING') return { webhookEnabled: health.enabled, disabled: false };
      const next = planHealth(health, report.outcome, this.policy.disableAfterFailedDeliveries);
      const reason = disabledReason(next.health.failedDeliveriesInARow, attempt.lastError);
      await this.repo.saveHealth(conn, known.webhookId, next.health, next.disable ? { reason, at: now } : null);
      if (next.disable) {
        const webhook = await this.repo.find(conn, known.webhookId);
        const event: WebhookDisabled = {
          type: 'webhook-disabled',
          eventId: `${known.webhookId}:disabled:${now.toISOString()}`,
          userId: webhook!.userId,
          webhookId: known.webhookId,
          url: webhook!.url,
          reason,
          at: now.toISOString(),
        };
        await this.outbox.add(conn, Topology.notificationsExchange, Topology.notificationsQueue, event);
      }
      return { webhookEnabled: next.health.enabled, disabled: next.disable };
    });
  }

  /** Deliveries past their retention are removed (batches of 1000, until none is left). */
  async pruneDeliveries(retentionDays: number): Promise<number> {
    const before = new Date(Date.now() - retentionDays * 86_400_000);
    let total = 0;
    for (;;) {
      const removed = await this.repo.pruneDeliveries(before);
      total += removed;
      if (removed < 1000) return total;
    }
  }

  private async requireOwned(userId: string, id: string): Promise<WebhookRecord> {
    const webhook = await this.repo.find(this.repo.pool, id);
    if (!webhook || webhook.userId !== userId) throw notFound();
    return webhook;
  }

  private async checkTarget(url: string): Promise<URL> {
    try {
      return (await checkWebhookTarget(url, this.policy)).url;
    } catch (err) {
      if (err instanceof WebhookTargetError) {
        throw userError(ErrorCode.BAD_USER_INPUT, err.message, { field: 'url', problem: err.problem });
      }
      throw err;
    }
  }
}

/**
 * Runs `work` again when MariaDB broke a deadlock by rolling it back: concurrent inserts of one event (two notifier
 * replicas) and attempt reports beside a cascading delete can meet in lock waits; the loser just tries again.
 */
async function retryOnDeadlock<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      if ((err as { code?: string } | null)?.code !== 'ER_LOCK_DEADLOCK' || attempt >= 3) throw err;
    }
  }
}
