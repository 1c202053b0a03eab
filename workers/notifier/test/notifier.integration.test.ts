// The notifier's decisions and sending against the real MariaDB and a real SMTP server (smtp-server), with users
// stood in for by a function: duplicates handled at once by two replicas, refusals for good and for now.
import { randomBytes, randomUUID } from 'node:crypto';
import mysql from 'mysql2/promise';
import { SMTPServer } from 'smtp-server';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createLogger,
  openDatabase,
  type AccountMail,
  type ConversionFinished,
  type Pool,
  type UserContact,
} from '@vidmp3/shared';
import { smtpTransport } from '../src/adapters/mail-transport.js';
import { NotificationRepository } from '../src/adapters/notification-repo.js';
import { migrations } from '../src/migrations.js';
import { MailSender } from '../src/services/mail-sender.js';
import { Notifier, type ContactSource } from '../src/services/notifier.js';

const SERVER = 'mysql://root@127.0.0.1:3306';
const DATABASE = `vidmp3_notifier_test_${randomBytes(6).toString('hex')}`;
const FROM = 'vidmp3 <no-reply@vidmp3.test>';
const logger = createLogger('test', 'silent');

let pool: Pool;
let repo: NotificationRepository;

beforeAll(async () => {
  pool = await openDatabase({ url: `${SERVER}/${DATABASE}`, migrations, logger, connectionLimit: 6 });
  repo = new NotificationRepository(pool);
});
afterAll(async () => {
  await pool?.end();
  const conn = await mysql.createConnection(SERVER);
  await conn.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
  await conn.end();
});

/** An SMTP server on a free port that answers each recipient as `answer` says (undefined: accepted). */
async function smtpServer(answer: (to: string) => { code: number; message: string } | undefined = () => undefined) {
  const received: { to: string[]; raw: string }[] = [];
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS', 'AUTH'],
    authOptional: true,
    logger: false,
    onRcptTo: (address, _session, callback) => {
      const refusal = answer(address.address);
      if (!refusal) return callback();
      callback(Object.assign(new Error(refusal.message), { responseCode: refusal.code }));
    },
    onData: (stream, session, callback) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        received.push({ to: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks).toString() });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.server.address() as { port: number };
  return { port, received, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const contacts = (contact: UserContact | null): ContactSource => ({ contact: async () => contact });

function finished(fields: Partial<ConversionFinished> = {}): ConversionFinished {
  const jobId = randomUUID();
  return {
    type: 'conversion-finished',
    eventId: `${jobId}:1:SUCCEEDED`,
    jobId,
    attempt: 1,
    ownerId: randomUUID(),
    status: 'SUCCEEDED',
    outputMediaId: randomUUID(),
    errorCode: null,
    finishedAt: new Date().toISOString(),
    ...fields,
  };
}

const policy = { baseMs: 50, maxMs: 200, giveUpAfterMs: 3_600_000, jitter: 0 };
const settings = { publicUrl: 'http://127.0.0.1:4000' };

async function row(eventId: string) {
  const [rows] = await pool.query<mysql.RowDataPacket[]>(
    'SELECT status, reason, attempts, last_error FROM notifications WHERE event_id = ?',
    [eventId],
  );
  return rows[0] as { status: string; reason: string | null; attempts: number; last_error: string | null } | undefined;
}

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

/** A sender over `port`, started, stopped after the test. */
function sender(port: number): MailSender {
  const transport = smtpTransport(`smtp://127.0.0.1:${port}`, FROM, 5_000);
  const s = new MailSender(repo, transport, policy, logger, undefined, 50);
  s.start();
  stops.push(async () => {
    await s.stop();
    transport.close();
  });
  return s;
}

describe('deciding about an event', () => {
  it('records one decision when two replicas handle the same event at once, and sends one mail', async () => {
    const smtp = await smtpServer();
    stops.push(smtp.close);
    const contact = { email: `a-${randomUUID()}@example.com`, conversionEmails: true };
    const event = finished();
    const replicas = [1, 2].map(() => new Notifier(repo, contacts(contact), settings, () => undefined, logger));
    const outcomes = await Promise.all(replicas.map((n) => n.handle(event)));
    expect(outcomes.sort()).toEqual(['duplicate', 'queued']);
    // Two senders as well: the mail is still sent once.
    sender(smtp.port);
    sender(smtp.port);
    await expect.poll(async () => (await row(event.eventId))?.status, { timeout: 10_000 }).toBe('sent');
    expect(smtp.received.filter((m) => m.to.includes(contact.email))).toHaveLength(1);
  });

  it('records "no mail" for a user who did not opt in and for one who is gone, and nothing when users fails', async () => {
    const optedOut = finished();
    const gone = finished();
    const failing = finished();
    expect(
      await new Notifier(
        repo,
        contacts({ email: 'b@example.com', conversionEmails: false }),
        settings,
        () => undefined,
        logger,
      ).handle(optedOut),
    ).toBe('opted_out');
    expect(await new Notifier(repo, contacts(null), settings, () => undefined, logger).handle(gone)).toBe('user_gone');
    const down: ContactSource = {
      contact: async () => {
        throw new Error('users answered 503 to a contact lookup');
      },
    };
    await expect(new Notifier(repo, down, settings, () => undefined, logger).handle(failing)).rejects.toThrow(/503/);

    expect(await row(optedOut.eventId)).toMatchObject({ status: 'skipped', reason: 'opted_out' });
    expect(await row(gone.eventId)).toMatchObject({ status: 'skipped', reason: 'user_gone' });
    // Nothing decided: the event is handled again once users answers.
    expect(await row(failing.eventId)).toBeUndefined();
  });
});

describe('sending', () => {
  it('gives up at once on a mailbox the server refuses for good (550), without trying again', async () => {
    const smtp = await smtpServer(() => ({ code: 550, message: 'No such user here' }));
    stops.push(smtp.close);
    const event = finished();
    await new Notifier(
      repo,
      contacts({ email: 'nobody@example.com', conversionEmails: true }),
      settings,
      () => undefined,
      logger,
    ).handle(event);
    sender(smtp.port);
    await expect.poll(async () => (await row(event.eventId))?.status, { timeout: 10_000 }).toBe('failed');
    expect(await row(event.eventId)).toMatchObject({ reason: 'rejected', attempts: 1 });
    expect((await row(event.eventId))?.last_error).toMatch(/550 No such user here/);
  });

  it('tries again after a refusal for now (451), and delivers', async () => {
    let refusals = 2;
    const smtp = await smtpServer(() => (refusals-- > 0 ? { code: 451, message: 'Try again later' } : undefined));
    stops.push(smtp.close);
    const email = `c-${randomUUID()}@example.com`;
    const event = finished();
    await new Notifier(repo, contacts({ email, conversionEmails: true }), settings, () => undefined, logger).handle(
      event,
    );
    sender(smtp.port);
    await expect.poll(async () => (await row(event.eventId))?.status, { timeout: 10_000 }).toBe('sent');
    expect(await row(event.eventId)).toMatchObject({ attempts: 3 });
    expect(smtp.received.filter((m) => m.to.includes(email))).toHaveLength(1);
  });
});

function accountEvent(fields: Partial<AccountMail> = {}): AccountMail {
  const token = randomBytes(32).toString('base64url');
  return {
    type: 'account-mail',
    eventId: randomUUID(),
    userId: randomUUID(),
    kind: 'reset-password',
    to: `d-${randomUUID()}@example.com`,
    link: `http://127.0.0.1:4000/?reset-password=${token}`,
    expiresAt: new Date(Date.now() + 30 * 60_000).toISOString(),
    at: new Date().toISOString(),
    ...fields,
  };
}

async function bodies(eventId: string) {
  const [rows] = await pool.query<mysql.RowDataPacket[]>(
    'SELECT kind, recipient, text_body, html_body FROM notifications WHERE event_id = ?',
    [eventId],
  );
  return rows[0] as { kind: string; recipient: string; text_body: string | null; html_body: string | null };
}

describe('account mails', () => {
  it('are sent whatever the opt-in (users is not even asked), once per event, and keep no link once sent', async () => {
    const smtp = await smtpServer();
    stops.push(smtp.close);
    const event = accountEvent();
    const asked: ContactSource = {
      contact: () => {
        throw new Error('account mails need no contact lookup');
      },
    };
    const replicas = [1, 2].map(() => new Notifier(repo, asked, settings, () => undefined, logger));
    const outcomes = await Promise.all([...replicas.map((n) => n.handle(event)), replicas[0]!.handle(event)]);
    expect(outcomes.sort()).toEqual(['duplicate', 'duplicate', 'queued']);
    // Waiting to be sent, the mail holds its link...
    expect((await bodies(event.eventId)).text_body).toContain(event.link);
    sender(smtp.port);
    await expect.poll(async () => (await row(event.eventId))?.status, { timeout: 10_000 }).toBe('sent');
    const received = smtp.received.filter((m) => m.to.includes(event.to));
    expect(received).toHaveLength(1);
    expect(received[0]!.raw).toContain('Subject: Reset your vidmp3 password');
    // ...and once sent, the row keeps what it was and to whom, but no longer the link.
    expect(await bodies(event.eventId)).toEqual({
      kind: 'account-reset-password',
      recipient: event.to,
      text_body: null,
      html_body: null,
    });
  });

  it('blank their link when given up too, and leave conversion mails as they were', async () => {
    const smtp = await smtpServer(() => ({ code: 550, message: 'No such user here' }));
    stops.push(smtp.close);
    const account = accountEvent({ kind: 'verify-email', link: 'http://127.0.0.1:4000/?verify-email=abc' });
    const conversion = finished();
    const notifier = new Notifier(
      repo,
      contacts({ email: 'e@example.com', conversionEmails: true }),
      settings,
      () => undefined,
      logger,
    );
    await notifier.handle(account);
    await notifier.handle(conversion);
    sender(smtp.port);
    await expect.poll(async () => (await row(account.eventId))?.status, { timeout: 10_000 }).toBe('failed');
    await expect.poll(async () => (await row(conversion.eventId))?.status, { timeout: 10_000 }).toBe('failed');
    expect((await bodies(account.eventId)).text_body).toBeNull();
    expect((await bodies(conversion.eventId)).text_body).toContain('the mp3 is ready');
  });

  it('are not sent when their link expired before they could be', async () => {
    const event = accountEvent({ expiresAt: new Date(Date.now() - 1000).toISOString() });
    const queued = { count: 0 };
    const notifier = new Notifier(repo, contacts(null), settings, () => (queued.count += 1), logger);
    expect(await notifier.handle(event)).toBe('expired');
    expect(await row(event.eventId)).toMatchObject({ status: 'skipped', reason: 'expired' });
    expect(queued.count).toBe(0);
    // A notice without a link has no expiry: it is sent.
    const notice = accountEvent({ kind: 'password-changed', link: null, expiresAt: null });
    expect(await notifier.handle(notice)).toBe('queued');
  });
});
