// A real SMTP server (smtp-server) in the test process, keeping what it receives parsed as a mail client reads
// it (mailparser), for the mail tests. It can stop listening and listen again on its port (an SMTP outage).
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export class MailServer {
  readonly received: ParsedMail[] = [];
  private server: SMTPServer | undefined;

  constructor(readonly port: number) {}

  async listen(): Promise<void> {
    const server = new SMTPServer({
      // Plain SMTP on loopback, as a relay on the same host would take it; no TLS, no login.
      disabledCommands: ['STARTTLS', 'AUTH'],
      authOptional: true,
      logger: false,
      onData: (stream, _session, callback) => {
        simpleParser(stream).then(
          (mail) => {
            this.received.push(mail);
            callback();
          },
          (err: Error) => callback(err),
        );
      },
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
  }

  /** Stops listening: connections to the port are refused until `listen` again. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  to(address: string): ParsedMail[] {
    return this.received.filter((mail) => addresses(mail.to).includes(address));
  }
}

export const addresses = (field: AddressObject | AddressObject[] | undefined): string[] =>
  (Array.isArray(field) ? field : field ? [field] : []).flatMap((a) => a.value.map((v) => v.address ?? ''));

/** The http(s) links in a text part. */
export const links = (text: string): string[] => text.match(/https?:\/\/[^\s"<>]+/g) ?? [];

/** The hrefs of an HTML part, unescaped as a browser reads them. */
export const hrefs = (html: string): string[] =>
  [...html.matchAll(/href="([^"]+)"/g)].map((m) => m[1]!.replaceAll('&amp;', '&'));
