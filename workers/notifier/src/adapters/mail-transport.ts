import { createHash } from 'node:crypto';
import nodemailer from 'nodemailer';
import type { Logger } from '@vidmp3/shared';

/** One mail as it leaves: the sender fills in From and the stable Message-ID. */
export interface OutgoingMail {
  /** The event it is about: the Message-ID is made from it, the same on every try. */
  eventId: string;
  to: string;
  subject: string;
  text: string;
  html: string;
}

/** Where mails go: an SMTP server, or (development, no SMTP_URL) the log. */
export interface MailTransport {
  readonly kind: 'smtp' | 'log';
  /** Resolves once the server has taken the mail; throws what nodemailer threw otherwise. */
  send(mail: OutgoingMail): Promise<void>;
  close(): void;
}

/** The domain of an address such as `vidmp3 <no-reply@example.com>`, for Message-IDs. */
function domainOf(from: string): string {
  return /@([^\s>]+)>?\s*$/.exec(from)?.[1] ?? 'vidmp3.localhost';
}

/**
 * The same Message-ID on every try of one mail: if a send is repeated after the server took it but before we
 * recorded that (a crash in between), mail systems and clients can tell the copies apart from new mail.
 */
export const messageIdFor = (eventId: string, from: string): string =>
  `<${createHash('sha256').update(eventId).digest('hex').slice(0, 32)}@${domainOf(from)}>`;

function message(mail: OutgoingMail, from: string) {
  return {
    from,
    to: mail.to,
    subject: mail.subject,
    text: mail.text,
    html: mail.html,
    messageId: messageIdFor(mail.eventId, from),
    // RFC 3834: an automatic mail; well-behaved auto-responders do not answer it.
    headers: { 'Auto-Submitted': 'auto-generated' },
  };
}

/**
 * nodemailer over SMTP, configured by its URL: `smtp://` (STARTTLS when the server offers it) or `smtps://` (TLS
 * from the start), credentials in the URL, and nodemailer's own options as query parameters
 * (`?requireTLS=true`, `?tls.rejectUnauthorized=false`); the timeouts are ours.
 */
export function smtpTransport(url: string, from: string, timeoutMs: number): MailTransport {
  const transport = nodemailer.createTransport({
    url,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
  });
  return {
    kind: 'smtp',
    async send(mail) {
      await transport.sendMail(message(mail, from));
    },
    close: () => transport.close(),
  };
}

/**
 * Development without SMTP_URL: each mail is written to the log, marked so nobody takes it for sent, with its
 * text part (the link in it works on this machine) — so `npm start` needs no mail server.
 */
export function logTransport(from: string, logger: Logger): MailTransport {
  return {
    kind: 'log',
    async send(mail) {
      const { to, subject, text, messageId } = message(mail, from);
      logger.warn(
        { mail: { from, to, subject, messageId, text } },
        'MAIL NOT SENT (SMTP_URL is not set): written to the log instead',
      );
    },
    close: () => undefined,
  };
}
