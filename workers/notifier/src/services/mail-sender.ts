import { RepeatingTask, withTransaction, type Logger } from '@vidmp3/shared';
import type { NotificationRepository, PendingMail } from '../adapters/notification-repo.js';
import type { MailTransport } from '../adapters/mail-transport.js';
import { afterFailure, isServerAway, type RetryPolicy } from './delivery-policy.js';

export type SendOutcome = 'sent' | 'retry' | 'failed';

export interface SendMeter {
  finished(outcome: SendOutcome): void;
}

/**
 * Sends the pending mails, one transaction per mail: the row is taken FOR UPDATE SKIP LOCKED (several notifiers
 * never send one mail twice), handed to the transport, and marked sent — or, when the server did not take it,
 * given a next try after a growing wait (delivery-policy.ts), or given up when the server refused it for good
 * or the outage outlasted MAIL_GIVE_UP_HOURS. Runs on a timer and when a mail is queued (`kick`).
 *
 * The one duplicate left: the server took a mail and the process died (or the database went) before the
 * commit. The mail is then sent again, with the same Message-ID.
 */
export class MailSender {
  private readonly task: RepeatingTask;

  constructor(
    private readonly repo: NotificationRepository,
    private readonly transport: MailTransport,
    private readonly policy: RetryPolicy,
    private readonly logger: Logger,
    private readonly meter: SendMeter = { finished: () => undefined },
    intervalMs = 1_000,
  ) {
    this.task = new RepeatingTask(
      () => this.flush(),
      (err: unknown) => this.logger.warn({ err }, 'mail sender: the database failed; will retry'),
      intervalMs,
    );
  }

  start(): void {
    this.task.start();
  }

  /** Runs now (or once more right after the run under way). */
  kick(): void {
    this.task.kick();
  }

  async stop(): Promise<void> {
    await this.task.stop();
  }

  private async flush(): Promise<void> {
    // Each failed mail is due again only later, so this ends once every mail due now has had its try — or at
    // the first sign that the server is away, when the others would fail the same way: the next round tries again.
    while (!this.task.isStopped && (await this.sendOne()) === 'next') {
      // next
    }
  }

  /** Takes and tries one due mail: 'next' to go on, 'done' when none is due or the server is away. */
  private async sendOne(): Promise<'next' | 'done'> {
    return withTransaction(
      this.repo.pool,
      async (conn) => {
        const now = new Date();
        const mail = await this.repo.takeDue(conn, now);
        if (!mail) return 'done';
        const attempts = mail.attempts + 1;
        const log = this.logger.child({ eventId: mail.eventId, attempt: attempts });
        try {
          await this.transport.send(toOutgoing(mail));
        } catch (err) {
          const verdict = afterFailure({ failures: attempts, createdAt: mail.createdAt }, err, new Date(), this.policy);
          const error = describe(err);
          if (verdict.action === 'retry') {
            await this.repo.markRetry(conn, mail.eventId, attempts, verdict.at, error);
            log.warn({ err: error, nextAttemptAt: verdict.at }, 'the SMTP server did not take a mail; will retry');
            this.meter.finished('retry');
          } else {
            await this.repo.markFailed(conn, mail.eventId, attempts, verdict.reason, error);
            log.error({ err: error, reason: verdict.reason }, 'mail given up');
            this.meter.finished('failed');
          }
          return isServerAway(err) ? 'done' : 'next';
        }
        await this.repo.markSent(conn, mail.eventId, attempts, new Date());
        log.info(this.transport.kind === 'smtp' ? 'mail sent' : 'mail logged (development: not sent)');
        this.meter.finished('sent');
        return 'next';
      },
      'READ COMMITTED',
    );
  }
}

const toOutgoing = (mail: PendingMail) => ({
  eventId: mail.eventId,
  to: mail.recipient,
  subject: mail.subject,
  text: mail.text,
  html: mail.html,
});

/** What a failed send is recorded as: nodemailer's code and the server's answer, if any. */
function describe(err: unknown): string {
  const { code, response, message } = (err ?? {}) as { code?: unknown; response?: unknown; message?: unknown };
  return [code, response ?? message].filter((part) => typeof part === 'string' && part).join(': ') || String(err);
}
