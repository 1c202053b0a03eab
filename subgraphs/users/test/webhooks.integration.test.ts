// Webhooks on users (issue #15): the owner's API, the stored secret, and the notifier's internal API (who to send
// to, delivery records, the target, attempt bookkeeping and disabling). RabbitMQ is pointed at a closed port:
// what users announces stays in its outbox table, where these tests read it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createLogger,
  InternalApi,
  parseConfig,
  Topology,
  WebhookDelivery,
  WebhookDisabled,
  type RunningServer,
  type WebhookAttemptReport,
  type WebhookEventType,
} from '@vidmp3/shared';
import { startUsers } from '../src/app.js';
import { SecretBox } from '../src/adapters/secret-box.js';
import { WebhookRepository } from '../src/adapters/webhook-repo.js';
import { WebhookService } from '../src/services/webhooks.js';
import { ConfigSchema } from '../src/config.js';

const SERVER = 'mysql://root@127.0.0.1:3306';
const DATABASE = `vidmp3_users_test_${randomBytes(6).toString('hex')}`;
const TOKEN = 'a-service-token-for-this-test';
const PER_USER = 3;
const DISABLE_AFTER = 3;
/** A public address: creating a webhook with a literal address resolves nothing (no network needed). */
const PUBLIC_URL = 'https://93.184.215.14/hooks/vidmp3';

let users: RunningServer;
let keysDir: string;
let db: mysql.Connection;

beforeAll(async () => {
  keysDir = await mkdtemp(join(tmpdir(), 'vidmp3-users-keys-'));
  const config = parseConfig(ConfigSchema, {
    NODE_ENV: 'test',
    PORT: '0',
    MYSQL_URL: `${SERVER}/${DATABASE}`,
    KEYS_DIR: keysDir,
    INTERNAL_API_TOKEN: TOKEN,
    RABBITMQ_URL: 'amqp://guest:guest@127.0.0.1:1',
    WEBHOOKS_PER_USER: String(PER_USER),
    WEBHOOK_DISABLE_AFTER_FAILED_DELIVERIES: String(DISABLE_AFTER),
    WEBHOOK_TESTS_PER_HOUR: '3',
    SIGNUP_MAX_PER_IP_PER_HOUR: '1000',
  });
  users = await startUsers(config, createLogger('test', 'silent'));
  db = await mysql.createConnection(`${SERVER}/${DATABASE}`);
});

afterAll(async () => {
  await db?.end();
  await users?.close();
  const conn = await mysql.createConnection(SERVER);
  await conn.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
  await conn.end();
  await rm(keysDir, { recursive: true, force: true });
});

interface GraphQLResult<T> {
  data?: T;
  errors?: { message: string; extensions?: { code?: string; field?: string; quota?: string } }[];
}

async function graphql<T>(query: string, variables: Record<string, unknown>, token?: string) {
  const res = await fetch(`${users.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as GraphQLResult<T>;
}

async function signUp(): Promise<{ id: string; token: string }> {
  const email = `w-${randomBytes(4).toString('hex')}@example.com`;
  const res = await graphql<{ signUp: { accessToken: string; user: { id: string } } }>(
    'mutation ($email: String!) { signUp(email: $email, password: "correct horse battery staple") { accessToken user { id } } }',
    { email },
  );
  return { id: res.data!.signUp.user.id, token: res.data!.signUp.accessToken };
}

interface Webhook {
  id: string;
  url: string;
  events: string[];
  enabled: boolean;
  disabledReason: string | null;
  createdAt: string;
}
const WEBHOOK = 'id url events enabled disabledReason createdAt';
const DELIVERY = 'id eventId eventType status attempts responseStatus lastError nextRetryAt createdAt updatedAt';

const createWebhook = (token: string, url = PUBLIC_URL, events = ['JOB_SUCCEEDED', 'JOB_FAILED']) =>
  graphql<{ createWebhook: { webhook: Webhook; secret: string } }>(
    `mutation ($url: String!, $events: [WebhookEvent!]!) { createWebhook(url: $url, events: $events) { webhook { ${WEBHOOK} } secret } }`,
    { url, events },
    token,
  );

async function newWebhook(token: string, events?: string[]): Promise<{ webhook: Webhook; secret: string }> {
  const res = await createWebhook(token, PUBLIC_URL, events);
  expect(res.errors).toBeUndefined();
  return res.data!.createWebhook;
}

const myWebhooks = async (token: string) =>
  (await graphql<{ me: { webhooks: Webhook[] } }>(`{ me { webhooks { ${WEBHOOK} } } }`, {}, token)).data!.me.webhooks;

interface DeliveryNode {
  id: string;
  eventId: string;
  eventType: string;
  status: string;
  attempts: number;
  responseStatus: number | null;
  lastError: string | null;
  nextRetryAt: string | null;
}
const deliveries = (token: string, webhookId: string, first?: number, after?: string) =>
  graphql<{
    webhookDeliveries: {
      edges: { cursor: string; node: DeliveryNode }[];
      pageInfo: { hasNextPage: boolean; endCursor: string | null };
    };
  }>(
    `query ($id: ID!, $first: Int, $after: String) { webhookDeliveries(webhookId: $id, first: $first, after: $after) {
       edges { cursor node { ${DELIVERY} } } pageInfo { hasNextPage endCursor } } }`,
    { id: webhookId, first, after },
    token,
  );

// The internal API, as the notifier calls it.
const internal = (path: string, init: RequestInit = {}, token = TOKEN) =>
  fetch(`${users.url}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...init.headers },
  });

const subscribed = async (userId: string, event: WebhookEventType) =>
  (await (await internal(InternalApi.userWebhooks.path(userId, event))).json()) as {
    webhooks: { id: string; url: string }[];
  };

const recordDelivery = (webhookId: string, eventId: string, eventType: WebhookEventType = 'job.succeeded') =>
  internal(InternalApi.webhookDeliveries.path(webhookId), {
    method: 'POST',
    body: JSON.stringify({
      eventId,
      eventType,
      payload: { type: eventType, timestamp: new Date().toISOString(), data: { jobId: 'j1' } },
    }),
  });

async function newDelivery(webhookId: string, eventId = `e-${randomBytes(4).toString('hex')}`): Promise<string> {
  const res = await recordDelivery(webhookId, eventId);
  expect(res.status).toBe(200);
  return ((await res.json()) as { deliveryId: string }).deliveryId;
}

const reportAttempt = (deliveryId: string, report: WebhookAttemptReport) =>
  internal(InternalApi.webhookAttempts.path(deliveryId), { method: 'POST', body: JSON.stringify(report) });

const failed = (attempt: number): WebhookAttemptReport => ({
  attempt,
  outcome: 'failed',
  responseStatus: 500,
  error: 'HTTP 500',
  nextRetryAt: null,
});
const succeeded = (attempt: number): WebhookAttemptReport => ({
  attempt,
  outcome: 'succeeded',
  responseStatus: 204,
  error: null,
  nextRetryAt: null,
});

async function outboxMessages(exchange: string): Promise<unknown[]> {
  const [rows] = await db.query<RowDataPacket[]>('SELECT payload FROM outbox WHERE exchange = ? ORDER BY id', [
    exchange,
  ]);
  return rows.map((r) => JSON.parse(String(r.payload)) as unknown);
}

describe('managing webhooks', () => {
  it('creates a webhook with a Standard Webhooks secret shown once, lists it, and deletes it', async () => {
    const user = await signUp();
    const { webhook, secret } = await newWebhook(user.token, ['JOB_FAILED', 'JOB_QUEUED', 'JOB_FAILED']);
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(secret.slice('whsec_'.length), 'base64')).toHaveLength(32);
    // In the enum's order, once each.
    expect(webhook).toMatchObject({ url: PUBLIC_URL, events: ['JOB_QUEUED', 'JOB_FAILED'], enabled: true });
    expect(webhook.disabledReason).toBeNull();

    expect(await myWebhooks(user.token)).toEqual([webhook]);
    const del = await graphql<{ deleteWebhook: boolean }>(
      'mutation ($id: ID!) { deleteWebhook(id: $id) }',
      { id: webhook.id },
      user.token,
    );
    expect(del.data).toEqual({ deleteWebhook: true });
    expect(await myWebhooks(user.token)).toEqual([]);
    const again = await graphql('mutation ($id: ID!) { deleteWebhook(id: $id) }', { id: webhook.id }, user.token);
    expect(again.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });

  it('stores the secret encrypted, and hands it back decrypted to the notifier only', async () => {
    const user = await signUp();
    const { webhook, secret } = await newWebhook(user.token);
    const [rows] = await db.query<RowDataPacket[]>('SELECT * FROM webhooks WHERE id = ?', [webhook.id]);
    const stored = JSON.stringify(rows[0], (_k, v: unknown) =>
      Buffer.isBuffer(v) ? v.toString('latin1') : (v as string),
    );
    expect(stored).not.toContain(secret);
    expect(stored).not.toContain(secret.slice('whsec_'.length));
    expect(stored).not.toContain(Buffer.from(secret.slice('whsec_'.length), 'base64').toString('latin1'));

    const res = await internal(InternalApi.webhookTarget.path(webhook.id));
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await res.json()).toEqual({ url: PUBLIC_URL, secret, enabled: true });
    expect((await internal(InternalApi.webhookTarget.path(webhook.id), {}, user.token)).status).toBe(401);
    expect((await internal(InternalApi.webhookTarget.path(webhook.id), {}, 'not-the-service-token')).status).toBe(401);
  });

  it(`allows ${PER_USER} webhooks per account`, async () => {
    const user = await signUp();
    for (let i = 0; i < PER_USER; i++) await newWebhook(user.token);
    const res = await createWebhook(user.token);
    expect(res.errors?.[0]?.extensions).toMatchObject({ code: 'QUOTA_EXCEEDED', quota: 'webhooks' });
    expect(await myWebhooks(user.token)).toHaveLength(PER_USER);
  });

  it.each([
    ['ftp://93.184.215.14/hook', 'scheme'],
    ['https://user:password@93.184.215.14/hook', 'credentials'],
    ['http://127.0.0.1:8080/hook', 'loopback'],
    ['http://localhost:8080/hook', 'a name for loopback'],
    ['http://[::1]/hook', 'IPv6 loopback'],
    ['https://10.0.0.1/hook', 'private'],
    ['https://192.168.1.20/hook', 'private'],
    ['https://100.64.0.1/hook', 'CGNAT'],
    ['https://169.254.169.254/latest/meta-data/', 'cloud metadata'],
    ['https://[fd00:ec2::254]/', 'cloud metadata over IPv6'],
    ['https://[fe80::1]/', 'link-local'],
    ['https://0.0.0.0/', 'unspecified'],
    ['not a url', 'malformed'],
  ])('refuses %s (%s) and keeps nothing', async (url) => {
    const user = await signUp();
    const res = await createWebhook(user.token, url);
    expect(res.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'url' });
    expect(await myWebhooks(user.token)).toEqual([]);
  });

  it('refuses a webhook without events, or without signing in', async () => {
    const user = await signUp();
    const none = await createWebhook(user.token, PUBLIC_URL, []);
    expect(none.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'events' });
    const anonymous = await createWebhook('');
    expect(anonymous.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it("answers NOT_FOUND for someone else's webhook, whatever the operation", async () => {
    const owner = await signUp();
    const other = await signUp();
    const { webhook } = await newWebhook(owner.token);
    for (const [query, field] of [
      ['mutation ($id: ID!) { deleteWebhook(id: $id) }', 'deleteWebhook'],
      ['mutation ($id: ID!) { sendTestWebhook(id: $id) { id } }', 'sendTestWebhook'],
      ['mutation ($id: ID!) { enableWebhook(id: $id) { id } }', 'enableWebhook'],
      ['query ($id: ID!) { webhookDeliveries(webhookId: $id) { edges { cursor } } }', 'webhookDeliveries'],
    ] as const) {
      const res = await graphql(query, { id: webhook.id }, other.token);
      expect(res.errors?.[0]?.extensions?.code, field).toBe('NOT_FOUND');
    }
    expect(await myWebhooks(owner.token)).toHaveLength(1);
  });
});

describe('test events', () => {
  it('records a PENDING webhook.test delivery, lists it, and hands it to the sender through the outbox', async () => {
    const user = await signUp();
    const { webhook } = await newWebhook(user.token);
    const res = await graphql<{ sendTestWebhook: DeliveryNode }>(
      `mutation ($id: ID!) { sendTestWebhook(id: $id) { ${DELIVERY} } }`,
      { id: webhook.id },
      user.token,
    );
    const delivery = res.data!.sendTestWebhook;
    expect(delivery).toMatchObject({ eventType: 'webhook.test', status: 'PENDING', attempts: 0, responseStatus: null });
    expect((await deliveries(user.token, webhook.id)).data!.webhookDeliveries.edges.map((e) => e.node)).toEqual([
      expect.objectContaining({ id: delivery.id, eventId: delivery.eventId }),
    ]);
    const sent = (await outboxMessages(Topology.webhooksExchange)).map((m) => WebhookDelivery.parse(m));
    expect(sent.filter((m) => m.deliveryId === delivery.id)).toEqual([
      expect.objectContaining({
        webhookId: webhook.id,
        eventId: delivery.eventId,
        eventType: 'webhook.test',
        attempt: 1,
        payload: expect.objectContaining({ type: 'webhook.test', data: { webhookId: webhook.id } }) as unknown,
      }),
    ]);
  });

  it('limits test events per webhook per hour', async () => {
    const user = await signUp();
    const { webhook } = await newWebhook(user.token);
    const send = () =>
      graphql('mutation ($id: ID!) { sendTestWebhook(id: $id) { id } }', { id: webhook.id }, user.token);
    for (let i = 0; i < 3; i++) expect((await send()).errors).toBeUndefined();
    expect((await send()).errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
  });
});

describe('the notifier’s internal API', () => {
  it('lists the enabled webhooks subscribed to an event', async () => {
    const user = await signUp();
    const a = (await newWebhook(user.token, ['JOB_SUCCEEDED'])).webhook;
    const b = (await newWebhook(user.token, ['JOB_SUCCEEDED', 'MEDIA_DELETED'])).webhook;
    expect(await subscribed(user.id, 'job.succeeded')).toEqual({
      webhooks: [
        { id: a.id, url: PUBLIC_URL },
        { id: b.id, url: PUBLIC_URL },
      ],
    });
    expect(await subscribed(user.id, 'media.deleted')).toEqual({ webhooks: [{ id: b.id, url: PUBLIC_URL }] });
    expect(await subscribed(user.id, 'job.failed')).toEqual({ webhooks: [] });
    expect((await internal(`/internal/users/${user.id}/webhooks?event=job.exploded`)).status).toBe(400);
  });

  it('records a delivery once per (webhook, event), and not for a webhook that is gone', async () => {
    const user = await signUp();
    const { webhook } = await newWebhook(user.token);
    const first = await recordDelivery(webhook.id, 'job-1:1:SUCCEEDED');
    expect(first.status).toBe(200);
    const created = (await first.json()) as { deliveryId: string; created: boolean };
    expect(created.created).toBe(true);
    const second = await recordDelivery(webhook.id, 'job-1:1:SUCCEEDED');
    expect(await second.json()).toEqual({ deliveryId: created.deliveryId, created: false });
    const listed = (await deliveries(user.token, webhook.id)).data!.webhookDeliveries.edges;
    expect(listed.map((e) => e.node)).toEqual([
      expect.objectContaining({
        id: created.deliveryId,
        eventId: 'job-1:1:SUCCEEDED',
        eventType: 'job.succeeded',
        status: 'PENDING',
      }),
    ]);

    const bad = await internal(InternalApi.webhookDeliveries.path(webhook.id), {
      method: 'POST',
      body: JSON.stringify({ eventId: 'x', eventType: 'job.exploded', payload: {} }),
    });
    expect(bad.status).toBe(400);

    await graphql('mutation ($id: ID!) { deleteWebhook(id: $id) }', { id: webhook.id }, user.token);
    expect((await recordDelivery(webhook.id, 'job-2:1:SUCCEEDED')).status).toBe(404);
    expect((await internal(InternalApi.webhookTarget.path(webhook.id))).status).toBe(404);
    expect((await reportAttempt(created.deliveryId, succeeded(1))).status).toBe(404);
  });

  it('records one delivery when two notifier replicas record the same event at once', async () => {
    const user = await signUp();
    const { webhook } = await newWebhook(user.token);
    const answers = await Promise.all(
      Array.from(
        { length: 5 },
        async () =>
          (await (await recordDelivery(webhook.id, 'job-9:1:QUEUED', 'job.queued')).json()) as {
            deliveryId: string;
            created: boolean;
          },
      ),
    );
    expect(new Set(answers.map((a) => a.deliveryId)).size).toBe(1);
    expect(answers.filter((a) => a.created)).toHaveLength(1);
  });

  it('records attempts in order: retrying keeps it PENDING with its next retry, a stale report is ignored', async () => {
    const user = await signUp();
    const { webhook } = await newWebhook(user.token);
    const deliveryId = await newDelivery(webhook.id);
    const nextRetryAt = new Date(Date.now() + 60_000).toISOString();
    const retrying = await reportAttempt(deliveryId, {
      attempt: 2,
      outcome: 'retrying',
      responseStatus: null,
      error: 'connect ECONNREFUSED',
      nextRetryAt,
    });
    expect(await retrying.json()).toEqual({ webhookEnabled: true });
    // Attempt 1's report arrives late: it changes nothing.
    await reportAttempt(deliveryId, { ...failed(1), outcome: 'retrying', nextRetryAt });
    const node = async () => (await deliveries(user.token, webhook.id)).data!.webhookDeliveries.edges[0]!.node;
    expect(await node()).toMatchObject({
      status: 'PENDING',
      attempts: 2,
      responseStatus: null,
      lastError: 'connect ECONNREFUSED',
      nextRetryAt,
    });
    await reportAttempt(deliveryId, succeeded(3));
    expect(await node()).toMatchObject({
      status: 'SUCCEEDED',
      attempts: 3,
      responseStatus: 204,
      lastError: null,
      nextRetryAt: null,
    });
    // A delivery that is over stays over.
    await reportAttempt(deliveryId, failed(4));
    expect(await node()).toMatchObject({ status: 'SUCCEEDED', attempts: 3 });
    const malformed = await internal(InternalApi.webhookAttempts.path(deliveryId), {
      method: 'POST',
      body: JSON.stringify({ attempt: 0, outcome: 'maybe' }),
    });
    expect(malformed.status).toBe(400);
  });

  it(`disables a webhook after ${DISABLE_AFTER} deliveries in a row failed (a success starts the count again), and tells its owner`, async () => {
    const user = await signUp();
    const { webhook } = await newWebhook(user.token);
    for (let i = 0; i < DISABLE_AFTER - 1; i++) {
      expect(await (await reportAttempt(await newDelivery(webhook.id), failed(1))).json()).toEqual({
        webhookEnabled: true,
      });
    }
    await reportAttempt(await newDelivery(webhook.id), succeeded(1));
    for (let i = 0; i < DISABLE_AFTER - 1; i++) {
      expect(await (await reportAttempt(await newDelivery(webhook.id), failed(9))).json()).toEqual({
        webhookEnabled: true,
      });
    }
    expect((await myWebhooks(user.token))[0]!.enabled).toBe(true);

    const last = await reportAttempt(await newDelivery(webhook.id), failed(9));
    expect(await last.json()).toEqual({ webhookEnabled: false });
    const [disabled] = await myWebhooks(user.token);
    expect(disabled).toMatchObject({ enabled: false });
    expect(disabled!.disabledReason).toContain(`${DISABLE_AFTER} deliveries in a row failed`);
    expect(await subscribed(user.id, 'job.succeeded')).toEqual({ webhooks: [] });
    expect(await (await internal(InternalApi.webhookTarget.path(webhook.id))).json()).toMatchObject({ enabled: false });

    const told = (await outboxMessages(Topology.notificationsExchange))
      .map((m) => WebhookDisabled.safeParse(m))
      .filter((m) => m.success && m.data.webhookId === webhook.id)
      .map((m) => m.data);
    expect(told).toEqual([
      expect.objectContaining({
        type: 'webhook-disabled',
        userId: user.id,
        url: PUBLIC_URL,
        reason: disabled!.disabledReason,
      }),
    ]);
    // Deliveries still in flight fail too: no second mail.
    await reportAttempt(await newDelivery(webhook.id), failed(9));
    expect(
      (await outboxMessages(Topology.notificationsExchange)).filter(
        (m) => (m as { webhookId?: string }).webhookId === webhook.id,
      ),
    ).toHaveLength(1);

    const test = await graphql(
      'mutation ($id: ID!) { sendTestWebhook(id: $id) { id } }',
      { id: webhook.id },
      user.token,
    );
    expect(test.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const enabled = await graphql<{ enableWebhook: Webhook }>(
      `mutation ($id: ID!) { enableWebhook(id: $id) { ${WEBHOOK} } }`,
      { id: webhook.id },
      user.token,
    );
    expect(enabled.data!.enableWebhook).toMatchObject({ enabled: true, disabledReason: null });
    expect((await subscribed(user.id, 'job.succeeded')).webhooks).toHaveLength(1);
    // The count starts again: one more failure does not disable it.
    expect(await (await reportAttempt(await newDelivery(webhook.id), failed(9))).json()).toEqual({
      webhookEnabled: true,
    });
  });
});

describe('delivery history', () => {
  it('pages newest first', async () => {
    const user = await signUp();
    const { webhook } = await newWebhook(user.token);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await newDelivery(webhook.id, `event-${i}`));
    const page1 = (await deliveries(user.token, webhook.id, 2)).data!.webhookDeliveries;
    expect(page1.edges.map((e) => e.node.eventId)).toEqual(['event-2', 'event-1']);
    expect(page1.pageInfo.hasNextPage).toBe(true);
    const page2 = (await deliveries(user.token, webhook.id, 2, page1.pageInfo.endCursor!)).data!.webhookDeliveries;
    expect(page2.edges.map((e) => e.node.eventId)).toEqual(['event-0']);
    expect(page2.pageInfo.hasNextPage).toBe(false);
    const bad = await deliveries(user.token, webhook.id, 1000);
    expect(bad.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'first' });
  });

  it('goes with its account: deleting the user removes the webhooks and their deliveries', async () => {
    const user = await signUp();
    const { webhook } = await newWebhook(user.token);
    await newDelivery(webhook.id);
    await db.query('DELETE FROM users WHERE id = ?', [user.id]);
    const [hooks] = await db.query<RowDataPacket[]>('SELECT id FROM webhooks WHERE user_id = ?', [user.id]);
    const [rows] = await db.query<RowDataPacket[]>('SELECT id FROM webhook_deliveries WHERE webhook_id = ?', [
      webhook.id,
    ]);
    expect([hooks.length, rows.length]).toEqual([0, 0]);
    expect(await subscribed(user.id, 'job.succeeded')).toEqual({ webhooks: [] });
  });

  it('is pruned after the retention period, newest kept', async () => {
    const user = await signUp();
    const { webhook } = await newWebhook(user.token);
    const old = await newDelivery(webhook.id, 'old-event');
    const recent = await newDelivery(webhook.id, 'recent-event');
    await db.query('UPDATE webhook_deliveries SET created_at = ? WHERE id = ?', [
      new Date(Date.now() - 31 * 86_400_000),
      old,
    ]);
    const pool = mysql.createPool(`${SERVER}/${DATABASE}`);
    try {
      const service = new WebhookService(
        new WebhookRepository(pool),
        new SecretBox(randomBytes(32)),
        { add: async () => undefined, kick: () => undefined },
        { signedIn: async () => ({ id: user.id }) },
        { allowLoopback: false, allowHttp: false, perUser: 1, disableAfterFailedDeliveries: 1, testsPerHour: 1 },
      );
      expect(await service.pruneDeliveries(30)).toBeGreaterThanOrEqual(1);
    } finally {
      await pool.end();
    }
    const listed = (await deliveries(user.token, webhook.id)).data!.webhookDeliveries.edges.map((e) => e.node.id);
    expect(listed).toEqual([recent]);
  });
});
