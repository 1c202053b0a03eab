// Webhooks from event to receiver against the real RabbitMQ (a vhost of this file's own) and MariaDB: the
// notifier's consumers, fan-out, sender and retry queues wired as main.ts wires them, users' internal routes stood
// in for over HTTP, receivers on 127.0.0.1 (loopback allowed, as in development).
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectBroker,
  createLogger,
  declareTopology,
  encodeMessage,
  openDatabase,
  publishConfirmed,
  Topology,
  type AmqpConnectionManager,
  type ChannelWrapper,
  type JobStatusChanged,
  type Pool,
} from '@vidmp3/shared';
import { EventConsumer } from '../src/adapters/consumer.js';
import { NotificationRepository } from '../src/adapters/notification-repo.js';
import { UsersClient } from '../src/adapters/users-client.js';
import { WebhookConsumer, WebhookPublisher } from '../src/adapters/webhook-broker.js';
import { addressChecker, webhookPoster } from '../src/adapters/webhook-http.js';
import { WebhooksClient } from '../src/adapters/webhooks-client.js';
import { migrations } from '../src/migrations.js';
import { Notifier } from '../src/services/notifier.js';
import { WebhookFanOut } from '../src/services/webhook-fanout.js';
import { WebhookSender } from '../src/services/webhook-sender.js';
import { startUsersStandIn, type UsersStandIn } from './users-webhooks-stand-in.js';

const rabbitmqctl = promisify(execFile);
const RABBITMQ = process.env.E2E_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const VHOST = `vidmp3_webhooks_test_${randomBytes(4).toString('hex')}`;
const SERVER = 'mysql://root@127.0.0.1:3306';
const DATABASE = `vidmp3_notifier_webhooks_test_${randomBytes(6).toString('hex')}`;
const TOKEN = randomBytes(16).toString('hex');
/** Three attempts: the second 300 ms after the first, the third 700 ms after the second. */
const DELAYS = [300, 700];
const logger = createLogger('test', 'silent');

interface Hit {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

/** A receiver answering each path's statuses in turn (the last one from then on); keeps what it got. */
class Receiver {
  readonly hits: Hit[] = [];
  private readonly server: Server;
  private readonly script = new Map<string, number[]>();

  constructor() {
    this.server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        const path = req.url ?? '/';
        this.hits.push({ path, headers: req.headers, body, at: Date.now() });
        const statuses = this.script.get(path) ?? [200];
        const status = statuses.length > 1 ? statuses.shift()! : statuses[0]!;
        res.writeHead(status).end();
      });
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
  }

  /** A new path answering `statuses` in turn; its URL. */
  path(...statuses: number[]): string {
    const path = `/hook-${randomUUID()}`;
    this.script.set(path, statuses.length ? statuses : [200]);
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}${path}`;
  }

  at(url: string): Hit[] {
    return this.hits.filter((h) => h.path === new URL(url).pathname);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

let pool: Pool;
let connection: AmqpConnectionManager;
let publishing: ChannelWrapper;
let users: UsersStandIn;
let receiver: Receiver;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  await rabbitmqctl('rabbitmqctl', ['-q', 'add_vhost', VHOST]);
  await rabbitmqctl('rabbitmqctl', ['-q', 'set_permissions', '-p', VHOST, 'guest', '.*', '.*', '.*']);
  pool = await openDatabase({ url: `${SERVER}/${DATABASE}`, migrations, logger, connectionLimit: 4 });
  users = await startUsersStandIn(TOKEN);
  receiver = new Receiver();
  await receiver.listen();

  // As main.ts wires them.
  connection = connectBroker(`${RABBITMQ}/${VHOST}`, logger);
  const repo = new NotificationRepository(pool);
  const client = new WebhooksClient(users.url, TOKEN);
  const publisher = new WebhookPublisher(connection, DELAYS, logger);
  const fanOut = new WebhookFanOut(client, repo, (delivery) => publisher.publish(delivery), logger);
  const notifier = new Notifier(
    repo,
    new UsersClient(users.url, TOKEN),
    { publicUrl: 'http://127.0.0.1:4000' },
    () => undefined,
    logger,
    fanOut,
  );
  const events = new EventConsumer(connection, notifier, logger, { prefetch: 4, retryBaseMs: 50 });
  const sender = new WebhookSender(
    client,
    webhookPoster(addressChecker({ allowLoopback: true, allowHttp: true }), {
      connectTimeoutMs: 1_000,
      timeoutMs: 2_000,
      maxResponseBytes: 4096,
    }),
    (next, delayMs) => publisher.publishRetry(next, delayMs),
    { retryDelaysMs: DELAYS },
    logger,
  );
  const deliveries = new WebhookConsumer(connection, sender, logger, {
    prefetch: 4,
    retryDelaysMs: DELAYS,
    retryBaseMs: 50,
  });
  await events.started();
  await deliveries.started();
  closers.push(
    () => events.close(),
    () => deliveries.close(),
    () => publisher.close(),
  );
  publishing = connection.createChannel({ confirm: true, setup: declareTopology });
  await publishing.waitForConnect();
}, 60_000);

afterAll(async () => {
  for (const close of closers) await close().catch(() => undefined);
  await publishing?.close();
  await connection?.close();
  await receiver?.close();
  await users?.close();
  await pool?.end();
  await rabbitmqctl('rabbitmqctl', ['-q', 'delete_vhost', VHOST]).catch(() => undefined);
  const conn = await mysql.createConnection(SERVER);
  await conn.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
  await conn.end();
});

function jobEvent(ownerId: string, status: JobStatusChanged['status'] = 'SUCCEEDED'): JobStatusChanged {
  const jobId = randomUUID();
  return {
    type: 'job-status-changed',
    eventId: `${jobId}:1:${status}`,
    jobId,
    ownerId,
    attempt: 1,
    status,
    inputMediaId: randomUUID(),
    outputMediaId: status === 'SUCCEEDED' ? randomUUID() : null,
    error: null,
    at: new Date().toISOString(),
  };
}

/** As jobs' outbox publishes it. */
const announce = (event: unknown) =>
  publishConfirmed(publishing, Topology.notificationsExchange, Topology.notificationsQueue, encodeMessage(event));

const verified = (secret: string, hit: Hit) =>
  new Webhook(secret).verify(hit.body, hit.headers as Record<string, string>);

describe('webhook deliveries', () => {
  it('sends a job event to the owner’s subscribed webhook, signed, with ids only', async () => {
    const ownerId = randomUUID();
    const url = receiver.path(200);
    const webhook = users.addWebhook(ownerId, url, ['job.succeeded']);
    const event = jobEvent(ownerId);

    await announce(event);

    await expect.poll(() => users.deliveries(webhook.id)[0]?.attempts.length ?? 0, { timeout: 10_000 }).toBe(1);
    const [hit] = receiver.at(url);
    expect(hit?.headers['webhook-id']).toBe(event.eventId);
    expect(verified(webhook.secret, hit!)).toEqual({
      type: 'job.succeeded',
      timestamp: event.at,
      data: {
        id: event.jobId,
        status: 'SUCCEEDED',
        attempt: 1,
        inputMediaId: event.inputMediaId,
        outputMediaId: event.outputMediaId,
        error: null,
      },
    });
    expect(users.deliveries(webhook.id)[0]?.attempts).toEqual([
      expect.objectContaining({ attempt: 1, outcome: 'succeeded', responseStatus: 200, nextRetryAt: null }),
    ]);
  });

  it('records an attempt whose record failed at first without sending the event again', async () => {
    const ownerId = randomUUID();
    const url = receiver.path(200);
    const webhook = users.addWebhook(ownerId, url, ['job.succeeded']);
    users.failAttempts(2); // users away just after the POST: the step after it is tried again, not the POST

    await announce(jobEvent(ownerId));

    await expect.poll(() => users.deliveries(webhook.id)[0]?.attempts.length ?? 0, { timeout: 10_000 }).toBe(1);
    expect(users.deliveries(webhook.id)[0]?.attempts[0]).toMatchObject({ attempt: 1, outcome: 'succeeded' });
    expect(receiver.at(url)).toHaveLength(1);
  });

  it('retries a failed attempt through the delay queues, spaced by the configured delays, until it succeeds', async () => {
    const ownerId = randomUUID();
    const url = receiver.path(500, 503, 200);
    const webhook = users.addWebhook(ownerId, url, ['job.running']);
    const event = jobEvent(ownerId, 'RUNNING');

    await announce(event);

    await expect.poll(() => users.deliveries(webhook.id)[0]?.attempts.length ?? 0, { timeout: 15_000 }).toBe(3);
    const [delivery] = users.deliveries(webhook.id);
    expect(delivery?.attempts.map((a) => [a.attempt, a.outcome, a.responseStatus])).toEqual([
      [1, 'retrying', 500],
      [2, 'retrying', 503],
      [3, 'succeeded', 200],
    ]);
    expect(delivery?.attempts[0]?.error).toBe('the receiver answered 500');
    expect(delivery?.attempts[0]?.nextRetryAt).not.toBeNull();
    const hits = receiver.at(url);
    expect(hits).toHaveLength(3);
    // Every attempt is one message (one webhook-id), signed afresh; each waited its delay in RabbitMQ.
    expect(new Set(hits.map((h) => h.headers['webhook-id']))).toEqual(new Set([event.eventId]));
    for (const hit of hits) expect(verified(webhook.secret, hit)).toMatchObject({ type: 'job.running' });
    const gaps = [hits[1]!.at - hits[0]!.at, hits[2]!.at - hits[1]!.at];
    expect(gaps[0]).toBeGreaterThanOrEqual(DELAYS[0]! - 20);
    expect(gaps[1]).toBeGreaterThanOrEqual(DELAYS[1]! - 20);
    expect(gaps[1]! + gaps[0]!).toBeLessThan(5_000);
  });

  it('gives up after the last attempt: failed, and never sent again', async () => {
    const ownerId = randomUUID();
    const url = receiver.path(500);
    const webhook = users.addWebhook(ownerId, url, ['job.failed']);

    await announce(jobEvent(ownerId, 'FAILED'));

    await expect.poll(() => users.deliveries(webhook.id)[0]?.attempts.length ?? 0, { timeout: 15_000 }).toBe(3);
    expect(users.deliveries(webhook.id)[0]?.attempts.map((a) => a.outcome)).toEqual(['retrying', 'retrying', 'failed']);
    await new Promise((resolve) => setTimeout(resolve, DELAYS[1]! * 2));
    expect(receiver.at(url)).toHaveLength(3);
  });

  it('fans an event out once: a duplicate creates no delivery and sends nothing more', async () => {
    const ownerId = randomUUID();
    const url = receiver.path(200);
    const other = receiver.path(200);
    const webhook = users.addWebhook(ownerId, url, ['media.deleted', 'job.succeeded']);
    // Not subscribed to this event, and another user's: nothing for them.
    const unsubscribed = users.addWebhook(ownerId, other, ['job.failed']);
    const someoneElses = users.addWebhook(randomUUID(), other, ['media.deleted']);
    const event = {
      type: 'media-deleted',
      eventId: `${randomUUID()}:deleted`,
      mediaId: randomUUID(),
      ownerId,
      at: new Date().toISOString(),
    };

    await announce(event);
    await expect.poll(() => receiver.at(url).length, { timeout: 10_000 }).toBe(1);
    await announce(event);
    await announce(event);
    // The duplicates have been taken from the queue and handled (ignored) before we look.
    await expect
      .poll(async () => (await publishing.checkQueue(Topology.notificationsQueue)).messageCount, { timeout: 5_000 })
      .toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 500));

    expect(users.deliveries(webhook.id)).toHaveLength(1);
    expect(receiver.at(url)).toHaveLength(1);
    expect(verified(webhook.secret, receiver.at(url)[0]!)).toEqual({
      type: 'media.deleted',
      timestamp: event.at,
      data: { id: event.mediaId },
    });
    expect(users.deliveries(unsubscribed.id)).toEqual([]);
    expect(users.deliveries(someoneElses.id)).toEqual([]);
    expect(receiver.at(other)).toEqual([]);
  });

  it('sends nothing more for a webhook deleted between two attempts', async () => {
    const ownerId = randomUUID();
    const url = receiver.path(500);
    const webhook = users.addWebhook(ownerId, url, ['job.cancelled']);

    await announce(jobEvent(ownerId, 'CANCELLED'));
    await expect.poll(() => receiver.at(url).length, { timeout: 10_000 }).toBe(1);
    users.deleteWebhook(webhook.id);
    await new Promise((resolve) => setTimeout(resolve, DELAYS[0]! + 700));

    expect(receiver.at(url)).toHaveLength(1);
  });

  it('dead-letters a message that is not a delivery', async () => {
    await publishConfirmed(publishing, Topology.webhooksExchange, Topology.webhooksQueue, Buffer.from('{"nope":1}'));
    await expect
      .poll(async () => (await publishing.checkQueue(Topology.webhooksDeadQueue)).messageCount, { timeout: 5_000 })
      .toBe(1);
  });
});
