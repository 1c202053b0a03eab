// Webhooks through the gateway (issue #15): the GraphQL surface an integrator uses, and the way a test event
// leaves users (outbox → RabbitMQ vidmp3.webhooks). The notifier's sender is not part of this system: the
// last test plays its part over the internal API, to check the contract end to end with a receiver on loopback
// that verifies the signature with the SDK.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import amqplib from 'amqplib';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { verifyWebhook, type WebhookPayload } from '@vidmp3/sdk';
import {
  DEV_INTERNAL_API_TOKEN,
  InternalApi,
  Topology,
  WebhookDelivery,
  WebhookTarget,
  type WebhookAttemptReport,
} from '@vidmp3/shared';
import { errorCode, graphql, signUpUser, type SignedUp } from './client.js';
import { startSystem, type System } from './harness.js';

const WEBHOOK = 'id url events enabled disabledReason createdAt';
const DELIVERY = 'id eventId eventType status attempts responseStatus lastError nextRetryAt createdAt updatedAt';

interface Delivery {
  id: string;
  eventId: string;
  eventType: string;
  status: string;
  attempts: number;
  responseStatus: number | null;
}

/** A receiver on loopback that keeps what it was sent, verified with the SDK as the README shows. */
class Receiver {
  readonly received: { payload: WebhookPayload; id: string }[] = [];
  secret = '';
  private server: Server | undefined;

  async listen(): Promise<string> {
    this.server = createServer((req, res) => {
      void readBody(req).then((body) => {
        try {
          this.received.push({
            payload: verifyWebhook(this.secret, req.headers, body),
            id: String(req.headers['webhook-id']),
          });
          res.writeHead(204).end();
        } catch {
          res.writeHead(400).end();
        }
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks/vidmp3`;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

let system: System;
let receiver: Receiver;
let receiverUrl: string;
let user: SignedUp;

beforeAll(async () => {
  receiver = new Receiver();
  receiverUrl = await receiver.listen();
  // Loopback allowed: the receiver runs on this machine (production refuses it).
  system = await startSystem({ users: { WEBHOOK_ALLOW_LOOPBACK: 'true' } });
  user = await signUpUser(system.gatewayUrl);
});
afterAll(async () => {
  await system?.stop();
  await receiver?.close();
});

const gql = <T>(query: string, variables: Record<string, unknown> = {}) =>
  graphql<T>(system.gatewayUrl, query, { token: user.token, variables });

/** The next message on the webhooks queue (what the notifier's sender would take). */
async function nextWebhookMessage(): Promise<WebhookDelivery> {
  const connection = await amqplib.connect(system.rabbitmqUrl);
  try {
    const channel = await connection.createChannel();
    for (let i = 0; i < 100; i++) {
      const message = await channel.get(Topology.webhooksQueue, { noAck: true });
      if (message) return WebhookDelivery.parse(JSON.parse(message.content.toString('utf8')));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error('no message on the webhooks queue within 10 s');
  } finally {
    await connection.close();
  }
}

const internal = (path: string, init: RequestInit = {}) =>
  fetch(`${system.services.users!.url}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${DEV_INTERNAL_API_TOKEN}`, 'content-type': 'application/json' },
  });

describe('webhooks through the gateway', () => {
  beforeEach(() => onTestFailed(() => console.error(system.logs())));

  it('creates, lists, sends a test event to, shows the deliveries of, and deletes a webhook', async () => {
    const created = await gql<{
      createWebhook: { webhook: { id: string; url: string; events: string[] }; secret: string };
    }>(
      `mutation ($url: String!) { createWebhook(url: $url, events: [JOB_SUCCEEDED, JOB_FAILED]) { webhook { ${WEBHOOK} } secret } }`,
      { url: receiverUrl },
    );
    expect(created.errors).toBeUndefined();
    const { webhook, secret } = created.data!.createWebhook;
    expect(webhook).toMatchObject({ url: receiverUrl, events: ['JOB_SUCCEEDED', 'JOB_FAILED'] });
    expect(secret).toMatch(/^whsec_/);

    const listed = await gql<{ me: { webhooks: { id: string; enabled: boolean }[] } }>(
      `{ me { webhooks { ${WEBHOOK} } } }`,
    );
    expect(listed.errors).toBeUndefined();
    expect(listed.data!.me.webhooks).toEqual([expect.objectContaining({ id: webhook.id, enabled: true })]);

    const test = await gql<{ sendTestWebhook: Delivery }>(
      `mutation ($id: ID!) { sendTestWebhook(id: $id) { ${DELIVERY} } }`,
      {
        id: webhook.id,
      },
    );
    expect(test.errors).toBeUndefined();
    const delivery = test.data!.sendTestWebhook;
    expect(delivery).toMatchObject({ eventType: 'webhook.test', status: 'PENDING', attempts: 0, responseStatus: null });

    const deliveries = await gql<{ webhookDeliveries: { edges: { node: Delivery }[] } }>(
      `query ($id: ID!) { webhookDeliveries(webhookId: $id) { edges { node { ${DELIVERY} } } pageInfo { hasNextPage } } }`,
      { id: webhook.id },
    );
    expect(deliveries.data!.webhookDeliveries.edges.map((e) => e.node)).toEqual([
      expect.objectContaining({ id: delivery.id, status: 'PENDING' }),
    ]);
    // Announced through the users outbox, for the sender.
    expect(await nextWebhookMessage()).toMatchObject({
      deliveryId: delivery.id,
      webhookId: webhook.id,
      eventId: delivery.eventId,
      eventType: 'webhook.test',
      attempt: 1,
    });

    const deleted = await gql<{ deleteWebhook: boolean }>('mutation ($id: ID!) { deleteWebhook(id: $id) }', {
      id: webhook.id,
    });
    expect(deleted.data).toEqual({ deleteWebhook: true });
    expect((await gql<{ me: { webhooks: unknown[] } }>('{ me { webhooks { id } } }')).data!.me.webhooks).toEqual([]);
    const gone = await gql('query ($id: ID!) { webhookDeliveries(webhookId: $id) { edges { cursor } } }', {
      id: webhook.id,
    });
    expect(errorCode(gone)).toBe('NOT_FOUND');
  });

  it('refuses a URL on a private network with a clear error, and another user sees nothing of yours', async () => {
    const refused = await gql(
      'mutation { createWebhook(url: "http://192.168.1.10/hook", events: [JOB_SUCCEEDED]) { secret } }',
    );
    expect(refused.errors?.[0]).toMatchObject({
      message: 'The address 192.168.1.10 is not a public one',
      extensions: { code: 'BAD_USER_INPUT', field: 'url' },
    });
    const mine = await gql<{ createWebhook: { webhook: { id: string } } }>(
      `mutation ($url: String!) { createWebhook(url: $url, events: [MEDIA_DELETED]) { webhook { id } } }`,
      { url: receiverUrl },
    );
    const other = await signUpUser(system.gatewayUrl);
    const res = await graphql(system.gatewayUrl, 'mutation ($id: ID!) { deleteWebhook(id: $id) }', {
      token: other.token,
      variables: { id: mine.data!.createWebhook.webhook.id },
    });
    expect(errorCode(res)).toBe('NOT_FOUND');
    const theirs = await graphql<{ me: { webhooks: unknown[] } }>(system.gatewayUrl, '{ me { webhooks { id } } }', {
      token: other.token,
    });
    expect(theirs.data!.me.webhooks).toEqual([]);
  });

  it('hands the sender what it needs to deliver a signed test event that the SDK verifies', async () => {
    const created = await gql<{ createWebhook: { webhook: { id: string }; secret: string } }>(
      `mutation ($url: String!) { createWebhook(url: $url, events: [JOB_QUEUED]) { webhook { id } secret } }`,
      { url: receiverUrl },
    );
    const { webhook, secret } = created.data!.createWebhook;
    receiver.secret = secret;
    await gql('mutation ($id: ID!) { sendTestWebhook(id: $id) { id } }', { id: webhook.id });
    const message = await nextWebhookMessage();

    // The sender's part, as the notifier does it: the target, a signed POST, the report of the attempt.
    const target = WebhookTarget.parse(
      await (await internal(InternalApi.webhookTarget.path(message.webhookId))).json(),
    );
    expect(target).toEqual({ url: receiverUrl, secret, enabled: true });
    const body = JSON.stringify(message.payload);
    const at = new Date();
    const answer = await fetch(target.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'webhook-id': message.eventId,
        'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
        'webhook-signature': new Webhook(target.secret).sign(message.eventId, at, body),
      },
      body,
    });
    expect(answer.status).toBe(204);
    const report: WebhookAttemptReport = {
      attempt: message.attempt,
      outcome: 'succeeded',
      responseStatus: answer.status,
      error: null,
      nextRetryAt: null,
    };
    const recorded = await internal(InternalApi.webhookAttempts.path(message.deliveryId), {
      method: 'POST',
      body: JSON.stringify(report),
    });
    expect(await recorded.json()).toEqual({ webhookEnabled: true });

    expect(receiver.received).toEqual([
      {
        id: message.eventId,
        payload: expect.objectContaining({ type: 'webhook.test', data: { webhookId: webhook.id } }) as unknown,
      },
    ]);
    const deliveries = await gql<{ webhookDeliveries: { edges: { node: Delivery }[] } }>(
      `query ($id: ID!) { webhookDeliveries(webhookId: $id) { edges { node { ${DELIVERY} } } } }`,
      { id: webhook.id },
    );
    expect(deliveries.data!.webhookDeliveries.edges[0]!.node).toMatchObject({
      id: message.deliveryId,
      status: 'SUCCEEDED',
      attempts: 1,
      responseStatus: 204,
    });
  });
});
