import type {
  AccountDeleted,
  AccountMail,
  ConversionFinished,
  Logger,
  NotifierEvent,
  UserContact,
  WebhookDisabled,
} from '@vidmp3/shared';
import type { NotificationRepository } from '../adapters/notification-repo.js';
import { accountMail, conversionMail, webhookDisabledMail, type RenderSettings } from './render.js';
import type { FanOutOutcome, WebhookFanOut } from './webhook-fanout.js';

/** What handling an event came to (also the `outcome` label of `vidmp3_notifier_events_total`). */
export type EventOutcome = 'queued' | 'duplicate' | 'opted_out' | 'user_gone' | 'expired' | 'ignored' | FanOutOutcome;

export interface ContactSource {
  contact(userId: string): Promise<UserContact | null>;
}

/**
 * Turns events into mails, at most one per event: the decision (a pending mail, or none and why) is written as
 * the event's row, keyed by its id, in one insert; a duplicate of the event — redelivered by RabbitMQ, published
 * twice by the outbox, or handled at once by two replicas — finds the row and does nothing. The mail is sent
 * later by the sender (mail-sender.ts), which `queued` wakes.
 */
export class Notifier {
  constructor(
    private readonly repo: NotificationRepository,
    private readonly users: ContactSource,
    private readonly settings: RenderSettings,
    private readonly queued: () => void,
    private readonly logger: Logger,
    /** Job and media events become webhook deliveries here; none: they are ignored (tests of mails alone). */
    private readonly webhooks?: Pick<WebhookFanOut, 'handle'>,
  ) {}

  /** Throws when a dependency (users, the database) fails: the caller waits and hands the event in again. */
  async handle(event: NotifierEvent): Promise<EventOutcome> {
    switch (event.type) {
      case 'conversion-finished':
        return this.conversionFinished(event);
      case 'account-mail':
        return this.accountMail(event);
      case 'job-status-changed':
      case 'media-deleted':
        return this.webhooks ? this.webhooks.handle(event) : 'ignored';
      case 'webhook-disabled':
        return this.webhookDisabled(event);
    }
  }

  /**
   * An account was deleted (the accounts queue): every row about the user goes, and events about them arriving
   * later keep nothing. Idempotent.
   */
  async accountDeleted(event: AccountDeleted): Promise<string> {
    const removed = await this.repo.forgetUser(event.userId, new Date(event.at));
    return removed === 0 ? 'nothing left' : `${removed} notifications removed`;
  }

  private async conversionFinished(event: ConversionFinished): Promise<EventOutcome> {
    // Checked first so that a duplicate costs no call to users; the insert below is what guarantees it.
    if (await this.repo.has(event.eventId)) return 'duplicate';
    if (await this.repo.isDeletedAccount(event.ownerId)) return 'user_gone';
    const contact = await this.users.contact(event.ownerId);
    const row = {
      eventId: event.eventId,
      kind: `conversion-${event.status.toLowerCase()}`,
      userId: event.ownerId,
      createdAt: new Date(),
    };
    const log = this.logger.child({ eventId: event.eventId, jobId: event.jobId });
    if (!contact || !contact.conversionEmails) {
      const reason: EventOutcome = contact ? 'opted_out' : 'user_gone';
      if (!(await this.repo.record(row, { skipped: reason }))) return 'duplicate';
      log.debug({ reason }, 'no mail for this event');
      return reason;
    }
    const mail = { recipient: contact.email, ...conversionMail(event, this.settings) };
    if (!(await this.repo.record(row, { mail }))) return 'duplicate';
    // The account was deleted while this was decided: its deletion may have come before the row, so look again
    // (the tombstone is written before the rows are removed).
    if (await this.repo.isDeletedAccount(event.ownerId)) {
      await this.repo.remove(event.eventId);
      return 'user_gone';
    }
    log.info({ subject: mail.subject }, 'mail queued');
    this.queued();
    return 'queued';
  }

  /**
   * A mail the account needs (verification, reset, change of address): sent whatever the opt-in settings, to the
   * address the event names (for a change of address, the new one: users has not switched to it yet). Its link
   * carries a live token: it is never logged, and the mail's bodies are blanked once it is sent or given up
   * (notification-repo.ts). A link that expired before it could be sent is not sent at all.
   */
  private async accountMail(event: AccountMail): Promise<EventOutcome> {
    if (await this.repo.has(event.eventId)) return 'duplicate';
    const row = { eventId: event.eventId, kind: `account-${event.kind}`, userId: event.userId, createdAt: new Date() };
    const log = this.logger.child({ eventId: event.eventId, kind: event.kind });
    if (event.expiresAt && new Date(event.expiresAt).getTime() <= row.createdAt.getTime()) {
      if (!(await this.repo.record(row, { skipped: 'expired' }))) return 'duplicate';
      log.warn('account mail not sent: its link expired before it could be');
      return 'expired';
    }
    const mail = { recipient: event.to, ...accountMail(event, this.settings) };
    if (!(await this.repo.record(row, { mail }))) return 'duplicate';
    log.info({ subject: mail.subject }, 'mail queued');
    this.queued();
    return 'queued';
  }

  /** The owner's mail about a webhook users disabled (to their current address, whatever the opt-in). */
  private async webhookDisabled(event: WebhookDisabled): Promise<EventOutcome> {
    if (await this.repo.has(event.eventId)) return 'duplicate';
    if (await this.repo.isDeletedAccount(event.userId)) return 'user_gone';
    const contact = await this.users.contact(event.userId);
    const row = { eventId: event.eventId, kind: 'webhook-disabled', userId: event.userId, createdAt: new Date() };
    if (!contact) {
      if (!(await this.repo.record(row, { skipped: 'user_gone' }))) return 'duplicate';
      return 'user_gone';
    }
    const mail = { recipient: contact.email, ...webhookDisabledMail(event, this.settings) };
    if (!(await this.repo.record(row, { mail }))) return 'duplicate';
    this.logger.info({ eventId: event.eventId, webhookId: event.webhookId }, 'mail queued');
    this.queued();
    return 'queued';
  }
}
