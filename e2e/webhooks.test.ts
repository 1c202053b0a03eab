// Webhooks end to end (issue #15): conversions and deletions through the gateway, jobs' and media's outboxes, the
// notifier (a process beside the harness's system, loopback allowed, short retry delays) and a receiver on
// 127.0.0.1 that checks every signature with the `standardwebhooks` package.
// Webhooks are created with `createWebhook` and their deliveries read with `webhookDeliveries` through the gateway.
import { randomUUID } from 'node:crypto';
import { copyFile, mkdtemp, rm, truncate } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { DEV_INTERNAL_API_TOKEN } from '@vidmp3/shared';
import { MailServer } from './lib/mail-server.js';
import { graphql, signUpUser, uploadFile, type SignedUp } from './client.js';
import { conversionsOf } from './conversions.js';
import { generateVideo, sample } from './fixtures.js';
import {
  freePort,
  MYSQL_SERVER,
  startService,
  stopService,
  startSystem,
  type ServiceProcess,
  type System,
} from './harness.js';

/** Three attempts: the second half a second after the first, the third a second after the second. */
const RETRY_DELAYS_MS = [500, 1_000];
/** Failed deliveries in a row after which users turns a webhook off (and its owner gets a mail). */
const DISABLE_AFTER = 2;

interface Hit {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

/** A receiver on 127.0.0.1: each path answers its statuses in turn (the last one from then on). */
class Receiver {
  readonly hits: Hit[] = [];
  private readonly script = new Map<string, number[]>();
  private readonly server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const path = req.url ?? '/';
      this.hits.push({ path, headers: req.headers, body, at: Date.now() });
      const statuses = this.script.get(path) ?? [404];
      res.writeHead(statuses.length > 1 ? statuses.shift()! : statuses[0]!).end();
    });
  });

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
  }

  /** A URL of its own answering `statuses`; `host` may name the address otherwise (`localhost`). */
  url(statuses: number[], host = '127.0.0.1'): string {
    const path = `/hooks/${randomUUID()}`;
    this.script.set(path, statuses);
    return `http://${host}:${(this.server.address() as AddressInfo).port}${path}`;
  }

  at(url: string): Hit[] {
    return this.hits.filter((h) => h.path === new URL(url).pathname);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

let system: System;
let smtp: MailServer;
let receiver: Receiver;
let notifier: ServiceProcess;
let notifierDb: string;
let user: SignedUp;

const notifierEnv = (allowLoopback: boolean) => ({
  RABBITMQ_URL: system.rabbitmqUrl,
  MYSQL_URL: `${MYSQL_SERVER}/${notifierDb}`,
  USERS_INTERNAL_URL: system.services.users!.url,
  SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
  INTERNAL_API_TOKEN: DEV_INTERNAL_API_TOKEN,
  PUBLIC_URL: system.gatewayUrl,
  WEBHOOK_ALLOW_LOOPBACK: String(allowLoopback),
  WEBHOOK_RETRY_DELAYS_MS: RETRY_DELAYS_MS.join(','),
  HEALTH_PORT: '0',
});

beforeAll(async () => {
  // users accepts webhooks on the receiver's loopback address over http (as in development).
  // users accepts webhooks on the receiver's loopback address over http (as in development), and turns one off
  // after two deliveries in a row have failed.
  system = await startSystem(
    {
      users: {
        WEBHOOK_ALLOW_LOOPBACK: 'true',
        WEBHOOK_ALLOW_HTTP: 'true',
        WEBHOOK_DISABLE_AFTER_FAILED_DELIVERIES: String(DISABLE_AFTER),
      },
    },
    { workers: 1 },
  );
  smtp = new MailServer(await freePort());
  await smtp.listen();
  receiver = new Receiver();
  await receiver.listen();
  notifierDb = system.databases.jobs.replace('_jobs_', '_notifier_');
  notifier = await startService('notifier', 'workers/notifier/dist/main.js', notifierEnv(true));
  user = await signUpUser(system.gatewayUrl);
}, 120_000);
afterAll(async () => {
  if (notifier) await stopService(notifier);
  await receiver?.close();
  await smtp?.close();
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

// ---- the two calls that differ between the real users and the stand-in

const EVENT_ENUM: Record<string, string> = {
  'job.queued': 'JOB_QUEUED',
  'job.running': 'JOB_RUNNING',
  'job.succeeded': 'JOB_SUCCEEDED',
  'job.failed': 'JOB_FAILED',
  'job.cancelled': 'JOB_CANCELLED',
  'media.deleted': 'MEDIA_DELETED',
};

async function createWebhook(owner: SignedUp, url: string, events: string[]): Promise<{ id: string; secret: string }> {
  const res = await graphql<{ createWebhook: { webhook: { id: string }; secret: string } }>(
    system.gatewayUrl,
    'mutation ($url: String!, $events: [WebhookEvent!]!) { createWebhook(url: $url, events: $events) { webhook { id } secret } }',
    { token: owner.token, variables: { url, events: events.map((e) => EVENT_ENUM[e]) } },
  );
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return { id: res.data!.createWebhook.webhook.id, secret: res.data!.createWebhook.secret };
}

/** As `webhookDeliveries` shows them: PENDING while attempts remain, then SUCCEEDED or FAILED. */
interface DeliveryView {
  eventType: string;
  status: 'PENDING' | 'SUCCEEDED' | 'FAILED';
  attempts: number;
  responseStatus: number | null;
  lastError: string | null;
}

async function deliveriesOf(webhookId: string, owner = user): Promise<DeliveryView[]> {
  const res = await graphql<{ webhookDeliveries: { edges: { node: DeliveryView }[] } }>(
    system.gatewayUrl,
    `
      query ($id: ID!) {
        webhookDeliveries(webhookId: $id, first: 100) {
          edges {
            node {
              eventType
              status
              attempts
              responseStatus
              lastError
            }
          }
        }
      }
    `,
    { token: owner.token, variables: { id: webhookId } },
  );
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data!.webhookDeliveries.edges.map((e) => e.node);
}

// ---- helpers

/** The payload of a hit, after checking its Standard Webhooks signature with the webhook's secret. */
function verified(secret: string, hit: Hit): { type: string; timestamp: string; data: Record<string, unknown> } {
  return new Webhook(secret).verify(hit.body, hit.headers as Record<string, string>) as never;
}

async function uploadVideo(owner: SignedUp): Promise<string> {
  const upload = await uploadFile(system.gatewayUrl, await sample('faststart.mp4'), { token: owner.token });
  expect(upload.errors, JSON.stringify(upload.errors)).toBeUndefined();
  return upload.data!.uploadVideo.id;
}

async function deleteMedia(owner: SignedUp, id: string): Promise<void> {
  const res = await graphql(system.gatewayUrl, 'mutation ($id: ID!) { deleteMedia(id: $id) }', {
    token: owner.token,
    variables: { id },
  });
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
}

describe('webhooks', () => {
  it('deliver a conversion’s job.queued, job.running and job.succeeded, and a deletion’s media.deleted, signed', async () => {
    const url = receiver.url([200]);
    const webhook = await createWebhook(user, url, ['job.queued', 'job.running', 'job.succeeded', 'media.deleted']);
    const videoId = await uploadVideo(user);
    const jobs = conversionsOf<{ id: string; status: string; output: { id: string } | null }>(
      () => system,
      () => user,
      'id status output { id }',
    );
    const jobId = await jobs.convert(videoId);
    await jobs.waitFor(jobId, (job) => job.status === 'SUCCEEDED');
    const outputId = (await jobs.job(jobId)).output!.id;

    await expect.poll(() => receiver.at(url).length, { timeout: 30_000 }).toBe(3);
    const payloads = receiver.at(url).map((hit) => verified(webhook.secret, hit));
    // Each status once; they may arrive in any order (each delivery travels on its own).
    expect(payloads.map((p) => p.type).sort()).toEqual(['job.queued', 'job.running', 'job.succeeded']);
    const succeeded = payloads.find((p) => p.type === 'job.succeeded')!;
    expect(succeeded.data).toEqual({
      id: jobId,
      status: 'SUCCEEDED',
      attempt: 1,
      inputMediaId: videoId,
      outputMediaId: outputId,
      error: null,
    });
    expect(new Set(receiver.at(url).map((h) => h.headers['webhook-id'])).size).toBe(3);
    // Ids only: no download link, nor any other URL, in what receivers get.
    expect(
      receiver
        .at(url)
        .map((h) => h.body)
        .join(''),
    ).not.toMatch(/https?:|\/files\//);

    await deleteMedia(user, outputId);
    await expect.poll(() => receiver.at(url).length, { timeout: 30_000 }).toBe(4);
    const deleted = verified(webhook.secret, receiver.at(url)[3]!);
    expect(deleted).toMatchObject({ type: 'media.deleted', data: { id: outputId } });
    await expect
      .poll(async () => (await deliveriesOf(webhook.id)).filter((d) => d.status === 'SUCCEEDED').length, {
        timeout: 10_000,
      })
      .toBe(4);
  }, 150_000);

  it('deliver job.failed for a conversion that fails and job.cancelled for one cancelled', async () => {
    const url = receiver.url([200]);
    const webhook = await createWebhook(user, url, ['job.failed', 'job.cancelled']);
    const jobs = conversionsOf<{ id: string; status: string }>(
      () => system,
      () => user,
      'id status',
    );

    // Fails: the stored bytes are replaced after the upload's checks by a video without audio (the worker finds out).
    const upload = await uploadFile(system.gatewayUrl, await sample('faststart.mp4'), { token: user.token });
    expect(upload.errors, JSON.stringify(upload.errors)).toBeUndefined();
    const media = upload.data!.uploadVideo;
    const stored = join(system.blobDir, media.id.slice(0, 2), media.id);
    await copyFile(await sample('no-audio.mp4'), stored);
    await truncate(stored, media.byteSize);
    const failing = await jobs.convert(media.id);
    await jobs.waitFor(failing, (job) => job.status === 'FAILED');

    // Cancelled: a five-minute video, cancelled as soon as it is queued (it takes the worker seconds).
    const dir = await mkdtemp(join(tmpdir(), 'vidmp3-webhooks-'));
    const long = join(dir, 'five-minutes.mp4');
    await generateVideo(long, 300);
    const longUpload = await uploadFile(system.gatewayUrl, long, { token: user.token });
    await rm(dir, { recursive: true, force: true });
    expect(longUpload.errors, JSON.stringify(longUpload.errors)).toBeUndefined();
    const cancelled = await jobs.convert(longUpload.data!.uploadVideo.id);
    const res = await graphql<{ cancelJob: { status: string } }>(
      system.gatewayUrl,
      'mutation ($id: ID!) { cancelJob(id: $id) { status } }',
      { token: user.token, variables: { id: cancelled } },
    );
    expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
    await jobs.waitFor(cancelled, (job) => job.status === 'CANCELLED');

    await expect.poll(() => receiver.at(url).length, { timeout: 30_000 }).toBe(2);
    const payloads = receiver.at(url).map((hit) => verified(webhook.secret, hit));
    const failed = payloads.find((p) => p.type === 'job.failed')!;
    expect(failed.data).toMatchObject({ id: failing, status: 'FAILED', error: { code: 'UNSUPPORTED_MEDIA' } });
    expect(payloads.find((p) => p.type === 'job.cancelled')?.data).toMatchObject({
      id: cancelled,
      status: 'CANCELLED',
    });
  }, 120_000);

  it('deliver a test event asked for with sendTestWebhook, signed, and list it SUCCEEDED', async () => {
    const url = receiver.url([204]);
    // Subscribed to something else: a test event goes whatever the webhook listens to.
    const webhook = await createWebhook(user, url, ['job.failed']);
    const res = await graphql<{ sendTestWebhook: { status: string; eventType: string } }>(
      system.gatewayUrl,
      'mutation ($id: ID!) { sendTestWebhook(id: $id) { status eventType } }',
      { token: user.token, variables: { id: webhook.id } },
    );
    expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
    expect(res.data!.sendTestWebhook).toEqual({ status: 'PENDING', eventType: 'webhook.test' });

    await expect.poll(() => receiver.at(url).length, { timeout: 30_000 }).toBe(1);
    expect(verified(webhook.secret, receiver.at(url)[0]!)).toMatchObject({ type: 'webhook.test' });
    await expect
      .poll(async () => (await deliveriesOf(webhook.id)).map((d) => [d.eventType, d.status, d.responseStatus]), {
        timeout: 10_000,
      })
      .toEqual([['webhook.test', 'SUCCEEDED', 204]]);
  }, 60_000);

  it('retry a receiver that answers 500 twice, spaced by the configured delays, until it takes the event', async () => {
    const url = receiver.url([500, 500, 200]);
    const webhook = await createWebhook(user, url, ['media.deleted']);
    const videoId = await uploadVideo(user);

    await deleteMedia(user, videoId);

    await expect.poll(async () => (await deliveriesOf(webhook.id))[0]?.status, { timeout: 30_000 }).toBe('SUCCEEDED');
    expect(await deliveriesOf(webhook.id)).toEqual([
      { eventType: 'media.deleted', status: 'SUCCEEDED', attempts: 3, responseStatus: 200, lastError: null },
    ]);
    const hits = receiver.at(url);
    expect(hits).toHaveLength(3);
    for (const hit of hits) expect(verified(webhook.secret, hit)).toMatchObject({ data: { id: videoId } });
    expect(new Set(hits.map((h) => h.headers['webhook-id'])).size).toBe(1);
    expect(hits[1]!.at - hits[0]!.at).toBeGreaterThanOrEqual(RETRY_DELAYS_MS[0]! - 50);
    expect(hits[2]!.at - hits[1]!.at).toBeGreaterThanOrEqual(RETRY_DELAYS_MS[1]! - 50);
  }, 60_000);

  it('give up on a receiver that always fails after the last attempt: FAILED', async () => {
    const url = receiver.url([503]);
    const webhook = await createWebhook(user, url, ['media.deleted']);

    await deleteMedia(user, await uploadVideo(user));

    await expect.poll(async () => (await deliveriesOf(webhook.id))[0]?.status, { timeout: 30_000 }).toBe('FAILED');
    expect(await deliveriesOf(webhook.id)).toEqual([
      {
        eventType: 'media.deleted',
        status: 'FAILED',
        attempts: 3,
        responseStatus: 503,
        lastError: 'the receiver answered 503',
      },
    ]);
    await new Promise((resolve) => setTimeout(resolve, RETRY_DELAYS_MS[1]! * 2));
    expect(receiver.at(url)).toHaveLength(3);
  }, 60_000);

  it('are turned off after repeated failed deliveries, and the owner is told by mail', async () => {
    // An owner of its own: the other tests' failing webhooks would hear these deletions too.
    const owner = await signUpUser(system.gatewayUrl);
    const url = receiver.url([500]);
    const webhook = await createWebhook(owner, url, ['media.deleted']);

    // Each deletion is one delivery; each fails after its three attempts.
    for (let n = 0; n < DISABLE_AFTER; n++) await deleteMedia(owner, await uploadVideo(owner));

    const state = async () => {
      const res = await graphql<{
        me: { webhooks: { id: string; enabled: boolean; disabledReason: string | null }[] };
      }>(system.gatewayUrl, '{ me { webhooks { id enabled disabledReason } } }', { token: owner.token });
      expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
      return res.data!.me.webhooks.find((w) => w.id === webhook.id)!;
    };
    await expect.poll(async () => (await state()).enabled, { timeout: 30_000 }).toBe(false);
    expect((await state()).disabledReason).toMatch(/fail/i);
    const deliveries = await deliveriesOf(webhook.id, owner);
    expect(deliveries.map((d) => d.status)).toEqual(Array(DISABLE_AFTER).fill('FAILED'));

    await expect
      .poll(() => smtp.to(owner.email).filter((m) => m.subject?.includes('webhook')).length, { timeout: 20_000 })
      .toBe(1);
    const mail = smtp.to(owner.email).find((m) => m.subject?.includes('webhook'))!;
    expect(mail.subject).toBe('A vidmp3 webhook of yours was turned off');
    expect(mail.text).toContain(url);
    expect(mail.html).toContain(url.replaceAll('&', '&amp;'));

    // Nothing more is sent to it: a further deletion is not delivered.
    const before = receiver.at(url).length;
    await deleteMedia(owner, await uploadVideo(owner));
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(receiver.at(url)).toHaveLength(before);
  }, 90_000);

  it('are refused at send time when the URL resolves to loopback and loopback is not allowed', async () => {
    // The notifier as production runs it (loopback refused), in place of the lenient one for this test.
    await stopService(notifier);
    const strict = await startService('notifier', 'workers/notifier/dist/main.js', notifierEnv(false));
    try {
      const url = receiver.url([200], 'localhost');
      const webhook = await createWebhook(user, url, ['media.deleted']);

      await deleteMedia(user, await uploadVideo(user));

      await expect
        .poll(async () => (await deliveriesOf(webhook.id))[0]?.attempts ?? 0, { timeout: 30_000 })
        .toBeGreaterThan(0);
      const [delivery] = await deliveriesOf(webhook.id);
      // Refused, not sent: retried like any failed attempt (a name can resolve elsewhere later), never reaching it.
      expect(['PENDING', 'FAILED']).toContain(delivery?.status);
      expect(delivery?.responseStatus).toBeNull();
      expect(delivery?.lastError).toMatch(/localhost resolves to an address that is not a public one/);
      expect(receiver.at(url)).toEqual([]);
    } finally {
      await stopService(strict);
      notifier = await startService('notifier', 'workers/notifier/dist/main.js', notifierEnv(true));
    }
  }, 90_000);
});
