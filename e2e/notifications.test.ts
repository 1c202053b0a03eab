// Conversion emails (issue #15): the notifier, a real SMTP server (smtp-server, in this process) and what arrives
// there, read as a mail client reads it (mailparser). The notifier is started here, beside the harness's system.
import { randomUUID } from 'node:crypto';
import amqplib from 'amqplib';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { Topology, type ConversionFinished } from '@vidmp3/shared';
import { graphql, signUpUser, uploadFile, type SignedUp } from './client.js';
import { conversionsOf } from './conversions.js';
import { sample } from './fixtures.js';
import { addresses, links, MailServer } from './lib/mail-server.js';
import { startTcpProxy, type TcpProxy } from './lib/tcp-proxy.js';
import {
  freePort,
  MYSQL_SERVER,
  startService,
  stopService,
  startSystem,
  type ServiceProcess,
  type System,
} from './harness.js';

const FROM_ADDRESS = 'no-reply@vidmp3.test';
const FROM = `vidmp3 <${FROM_ADDRESS}>`;

let system: System;
let notifier: ServiceProcess;
let smtp: MailServer;
let notifierDb: string;
/** Between the notifier and users: cutting it is a users outage for the notifier alone. */
let usersLink: TcpProxy;

beforeAll(async () => {
  system = await startSystem({}, { workers: 1 });
  smtp = new MailServer(await freePort());
  await smtp.listen();
  // The harness's database naming, for the notifier's own database (dropped in afterAll).
  notifierDb = system.databases.jobs.replace('_jobs_', '_notifier_');
  usersLink = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(system.services.users!.url).port) });
  notifier = await startService('notifier', 'workers/notifier/dist/main.js', {
    RABBITMQ_URL: system.rabbitmqUrl,
    MYSQL_URL: `${MYSQL_SERVER}/${notifierDb}`,
    USERS_INTERNAL_URL: `http://127.0.0.1:${usersLink.port}`,
    PUBLIC_URL: system.gatewayUrl,
    SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
    MAIL_FROM: FROM,
    // Short waits between tries, so the outage test sees its mail soon after the server is back.
    MAIL_RETRY_BASE_SECONDS: '0.2',
    MAIL_RETRY_MAX_SECONDS: '1',
    SEND_POLL_INTERVAL_MS: '100',
    HEALTH_PORT: '0',
  });
}, 120_000);
afterAll(async () => {
  if (notifier) await stopService(notifier);
  await smtp?.close();
  await usersLink?.close();
  await system?.stop();
  if (notifierDb) {
    const conn = await mysql.createConnection(MYSQL_SERVER);
    await conn.query(`DROP DATABASE IF EXISTS \`${notifierDb}\``);
    await conn.end();
  }
});
beforeEach(() =>
  onTestFailed(() => console.error(`${system.logs()}\n${notifier.logs.map((l) => `[notifier] ${l}`).join('\n')}`)),
);

interface Settings {
  conversionEmails: boolean;
}

async function notificationSettings(user: SignedUp): Promise<Settings> {
  const res = await graphql<{ me: { notifications: Settings } }>(
    system.gatewayUrl,
    '{ me { notifications { conversionEmails } } }',
    {
      token: user.token,
    },
  );
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data!.me.notifications;
}

async function setConversionEmails(user: SignedUp, on: boolean): Promise<Settings> {
  const res = await graphql<{ updateNotificationSettings: Settings }>(
    system.gatewayUrl,
    'mutation ($on: Boolean!) { updateNotificationSettings(conversionEmails: $on) { conversionEmails } }',
    { token: user.token, variables: { on } },
  );
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data!.updateNotificationSettings;
}

/** Uploads a short video as `user`, converts it, and waits for the job to succeed; the job's id. */
async function convertAndFinish(user: SignedUp): Promise<string> {
  const upload = await uploadFile(system.gatewayUrl, await sample('faststart.mp4'), { token: user.token });
  expect(upload.errors, JSON.stringify(upload.errors)).toBeUndefined();
  const jobs = conversionsOf<{ id: string; status: string }>(
    () => system,
    () => user,
    'id status',
  );
  const jobId = await jobs.convert(upload.data!.uploadVideo.id);
  await jobs.waitFor(jobId, (job) => job.status === 'SUCCEEDED');
  return jobId;
}

/** The notifier's row for an event (its decision, and the mail's progress), from its database. */
async function notificationRow(eventId: string) {
  const conn = await mysql.createConnection(`${MYSQL_SERVER}/${notifierDb}`);
  try {
    const [rows] = await conn.query<mysql.RowDataPacket[]>(
      'SELECT status, reason, attempts FROM notifications WHERE event_id = ?',
      [eventId],
    );
    return rows[0] as { status: string; reason: string | null; attempts: number } | undefined;
  } finally {
    await conn.end();
  }
}

/** A counter of the notifier's `/metrics`, by its outcome label. */
async function eventsCounted(outcome: string): Promise<number> {
  const text = await (await fetch(`${notifier.url}/metrics`)).text();
  // Labels in any order (every series also carries `service`).
  const line = new RegExp(`^vidmp3_notifier_events_total\\{[^}]*outcome="${outcome}"[^}]*\\} (\\d+)$`, 'm').exec(text);
  return Number(line?.[1] ?? 0);
}

/** What arrived for `address` but its account mails (sign-up mails every new address a verification link). */
const conversionMailsTo = (address: string) =>
  smtp.to(address).filter((mail) => mail.subject !== 'Confirm your email address');

const pageLink = (jobId: string) => `${system.gatewayUrl}/?job=${jobId}`;

/** Publishes events to the notifier's queue as jobs' outbox does (persistent, mandatory, confirmed). */
async function publish(...events: ConversionFinished[]): Promise<void> {
  const connection = await amqplib.connect(system.rabbitmqUrl);
  try {
    const channel = await connection.createConfirmChannel();
    for (const event of events) {
      channel.publish(Topology.notificationsExchange, Topology.notificationsQueue, Buffer.from(JSON.stringify(event)), {
        persistent: true,
        mandatory: true,
      });
    }
    await channel.waitForConfirms();
  } finally {
    await connection.close();
  }
}

function failedEvent(user: SignedUp): ConversionFinished {
  const jobId = randomUUID();
  return {
    type: 'conversion-finished',
    eventId: `${jobId}:1:FAILED`,
    jobId,
    attempt: 1,
    ownerId: user.id,
    status: 'FAILED',
    outputMediaId: null,
    errorCode: 'UNSUPPORTED_MEDIA',
    finishedAt: new Date().toISOString(),
  };
}

async function optedInUser(): Promise<SignedUp> {
  const user = await signUpUser(system.gatewayUrl);
  expect(await setConversionEmails(user, true)).toEqual({ conversionEmails: true });
  return user;
}

describe('conversion emails', () => {
  it('are off until the user turns them on, and the setting is theirs to change', async () => {
    const user = await signUpUser(system.gatewayUrl);
    expect(await notificationSettings(user)).toEqual({ conversionEmails: false });
    expect(await setConversionEmails(user, true)).toEqual({ conversionEmails: true });
    expect(await notificationSettings(user)).toEqual({ conversionEmails: true });
    expect(await setConversionEmails(user, false)).toEqual({ conversionEmails: false });
    expect(await notificationSettings(user)).toEqual({ conversionEmails: false });
    const anonymous = await graphql(
      system.gatewayUrl,
      'mutation { updateNotificationSettings(conversionEmails: true) { conversionEmails } }',
    );
    expect(anonymous.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('tell a user who turned them on that the mp3 is ready: headers, text and HTML parts, a link to the job’s page', async () => {
    const user = await optedInUser();
    const jobId = await convertAndFinish(user);

    await expect.poll(() => conversionMailsTo(user.email).length, { timeout: 60_000 }).toBe(1);
    const [mail] = conversionMailsTo(user.email);
    expect(addresses(mail!.to)).toEqual([user.email]);
    expect(addresses(mail!.from)).toEqual([FROM_ADDRESS]);
    expect(mail!.subject).toBe('Your mp3 is ready');
    expect(mail!.messageId).toMatch(/^<[0-9a-f]{32}@vidmp3\.test>$/);
    expect(mail!.headers.get('auto-submitted')).toBe('auto-generated');
    // Both parts, each with the one link: the job's page, never the file.
    expect(mail!.text).toContain('the mp3 is ready');
    expect(links(mail!.text!)).toEqual([pageLink(jobId)]);
    expect(mail!.html).toBeTruthy();
    expect([...(mail!.html as string).matchAll(/href="([^"]+)"/g)].map((m) => m[1])).toEqual([pageLink(jobId)]);
    expect(`${mail!.text}${mail!.html}`).not.toMatch(/\/files\/|sig=/);
    // The link works: the gateway serves the page there.
    const page = await fetch(links(mail!.text!)[0]!);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
  }, 120_000);

  it('send nothing to a user who did not turn them on', async () => {
    const user = await signUpUser(system.gatewayUrl);
    const jobId = await convertAndFinish(user);
    // The notifier has decided about this job's event, and recorded the decision: no mail, ever, for it.
    await expect
      .poll(() => notificationRow(`${jobId}:1:SUCCEEDED`), { timeout: 60_000 })
      .toMatchObject({
        status: 'skipped',
        reason: 'opted_out',
      });
    expect(conversionMailsTo(user.email)).toHaveLength(0);
  }, 120_000);

  it('wait out an SMTP outage: the mail arrives once the server listens again, exactly once', async () => {
    const user = await optedInUser();
    await smtp.close();
    let jobId = '';
    try {
      jobId = await convertAndFinish(user);
      // The notifier has tried the server (refused) and keeps the mail.
      const tried = async () => {
        const row = await notificationRow(`${jobId}:1:SUCCEEDED`);
        return row?.status === 'pending' && row.attempts > 0;
      };
      await expect.poll(tried, { timeout: 60_000 }).toBe(true);
      expect(conversionMailsTo(user.email)).toHaveLength(0);
    } finally {
      await smtp.listen();
    }
    await expect.poll(() => conversionMailsTo(user.email).length, { timeout: 60_000 }).toBe(1);
    await expect
      .poll(async () => (await notificationRow(`${jobId}:1:SUCCEEDED`))?.status, { timeout: 60_000 })
      .toBe('sent');
    expect(conversionMailsTo(user.email)).toHaveLength(1);
    expect(links(conversionMailsTo(user.email)[0]!.text!)).toEqual([pageLink(jobId)]);
  }, 180_000);

  it('send one mail for an event delivered twice, and say in plain words why a conversion failed', async () => {
    const user = await optedInUser();
    const event = failedEvent(user);
    const jobId = event.jobId;
    const duplicatesBefore = await eventsCounted('duplicate');
    // Published twice, as the outbox does after a crash between RabbitMQ's confirm and its commit.
    await publish(event, event);

    await expect.poll(() => eventsCounted('duplicate'), { timeout: 60_000 }).toBeGreaterThan(duplicatesBefore);
    await expect.poll(async () => (await notificationRow(event.eventId))?.status, { timeout: 60_000 }).toBe('sent');
    const mails = conversionMailsTo(user.email);
    expect(mails).toHaveLength(1);
    expect(mails[0]!.subject).toBe('Your conversion failed');
    expect(mails[0]!.text).toContain('the video could not be read');
    expect(mails[0]!.html).toContain('the video could not be read');
    expect(mails[0]!.text).not.toContain('UNSUPPORTED_MEDIA');
    expect(links(mails[0]!.text!)).toEqual([pageLink(jobId)]);
  }, 120_000);

  it('wait out a users outage: the event is held and its mail sent once users answers again', async () => {
    const user = await optedInUser();
    const event = failedEvent(user);
    usersLink.cut('refuse');
    try {
      await publish(event);
      // The notifier asked, could not get an answer, and holds the event (nothing decided yet).
      await expect
        .poll(() => notifier.logs.some((l) => l.includes(event.eventId) && l.includes('could not handle an event')), {
          timeout: 60_000,
        })
        .toBe(true);
      expect(await notificationRow(event.eventId)).toBeUndefined();
    } finally {
      usersLink.restore();
    }
    await expect.poll(async () => (await notificationRow(event.eventId))?.status, { timeout: 60_000 }).toBe('sent');
    expect(conversionMailsTo(user.email)).toHaveLength(1);
  }, 120_000);
});
