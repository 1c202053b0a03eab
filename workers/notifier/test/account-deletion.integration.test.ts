// A deleted account in the notifier (issue #15): its rows go, pending mails to it are dropped, and events about it
// arriving later keep nothing. Real MariaDB; users stood in for by a function.
import { randomBytes, randomUUID } from 'node:crypto';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createLogger,
  openDatabase,
  type AccountDeleted,
  type ConversionFinished,
  type Pool,
  type UserContact,
} from '@vidmp3/shared';
import { NotificationRepository } from '../src/adapters/notification-repo.js';
import { migrations } from '../src/migrations.js';
import { Notifier, type ContactSource } from '../src/services/notifier.js';

const SERVER = 'mysql://root@127.0.0.1:3306';
const DATABASE = `vidmp3_notifier_deletion_test_${randomBytes(6).toString('hex')}`;
const logger = createLogger('test', 'silent');

let pool: Pool;
let repo: NotificationRepository;

beforeAll(async () => {
  pool = await openDatabase({ url: `${SERVER}/${DATABASE}`, migrations, logger });
  repo = new NotificationRepository(pool);
});
afterAll(async () => {
  await pool?.end();
  const conn = await mysql.createConnection(SERVER);
  await conn.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
  await conn.end();
});

const notifier = (contacts: ContactSource) =>
  new Notifier(repo, contacts, { publicUrl: 'http://127.0.0.1:4000' }, () => undefined, logger);
const optedIn = (email: string): ContactSource => ({
  contact: async (): Promise<UserContact> => ({ email, conversionEmails: true }),
});

function finished(ownerId: string): ConversionFinished {
  const jobId = randomUUID();
  return {
    type: 'conversion-finished',
    eventId: `${jobId}:1:SUCCEEDED`,
    jobId,
    attempt: 1,
    ownerId,
    status: 'SUCCEEDED',
    outputMediaId: randomUUID(),
    errorCode: null,
    finishedAt: new Date().toISOString(),
  };
}

const deletion = (userId: string): AccountDeleted => ({
  type: 'account-deleted',
  eventId: randomUUID(),
  userId,
  at: new Date().toISOString(),
});

async function rowsAbout(userId: string, email: string): Promise<number> {
  const [rows] = await pool.query<mysql.RowDataPacket[]>(
    'SELECT COUNT(*) AS n FROM notifications WHERE user_id = ? OR recipient = ?',
    [userId, email],
  );
  return Number(rows[0]?.n);
}

describe('AccountDeleted in the notifier', () => {
  it('removes every row about the user, pending mails included, and nobody else’s; again finds nothing', async () => {
    const userId = randomUUID();
    const email = `gone-${randomUUID()}@example.com`;
    const otherId = randomUUID();
    const otherEmail = `stays-${randomUUID()}@example.com`;
    for (let i = 0; i < 3; i++) expect(await notifier(optedIn(email)).handle(finished(userId))).toBe('queued');
    expect(await notifier(optedIn(otherEmail)).handle(finished(otherId))).toBe('queued');
    expect(await rowsAbout(userId, email)).toBe(3);

    const event = deletion(userId);
    expect(await notifier(optedIn(email)).accountDeleted(event)).toBe('3 notifications removed');
    expect(await rowsAbout(userId, email)).toBe(0);
    expect(await rowsAbout(otherId, otherEmail)).toBe(1);
    expect(await notifier(optedIn(email)).accountDeleted(event)).toBe('nothing left');
  });

  it('keeps nothing for an event about the user that arrives after the deletion', async () => {
    const userId = randomUUID();
    const email = `late-${randomUUID()}@example.com`;
    await notifier(optedIn(email)).accountDeleted(deletion(userId));
    // users still answering for the account (its deletion racing the event) changes nothing.
    expect(await notifier(optedIn(email)).handle(finished(userId))).toBe('user_gone');
    expect(await rowsAbout(userId, email)).toBe(0);
  });

  it('drops a mail decided while the account was being deleted', async () => {
    const userId = randomUUID();
    const email = `racing-${randomUUID()}@example.com`;
    // users answered before the account went; the deletion is handled before the mail's row is written.
    const racing: ContactSource = {
      contact: async () => {
        await repo.forgetUser(userId, new Date());
        return { email, conversionEmails: true };
      },
    };
    expect(await notifier(racing).handle(finished(userId))).toBe('user_gone');
    expect(await rowsAbout(userId, email)).toBe(0);
  });
});
