import type { ConversionFinished, Logger, NotifierEvent, UserContact } from '@vidmp3/shared';
import type { NotificationRepository } from '../adapters/notification-repo.js';
import { conversionMail, type RenderSettings } from './render.js';

/** What handling an event came to (also the `outcome` label of `vidmp3_notifier_events_total`). */
export type EventOutcome = 'queued' | 'duplicate' | 'opted_out' | 'user_gone' | 'ignored';

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
  ) {}

  /** Throws when a dependency (users, the database) fails: the caller waits and hands the event in again. */
  async handle(event: NotifierEvent): Promise<EventOutcome> {
    switch (event.type) {
      case 'conversion-finished':
        return this.conversionFinished(event);
      case 'account-mail':
      case 'job-status-changed':
      case 'media-deleted':
      case 'webhook-disabled':
        // Not yet acted on here (account mails and webhooks are being built): acknowledged and counted.
        return 'ignored';
    }
  }

  private async conversionFinished(event: ConversionFinished): Promise<EventOutcome> {
    // Checked first so that a duplicate costs no call to users; the insert below is what guarantees it.
    if (await this.repo.has(event.eventId)) return 'duplicate';
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
    log.info({ subject: mail.subject }, 'mail queued');
    this.queued();
    return 'queued';
  }
}
