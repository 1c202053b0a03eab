// A stand-in for users' internal webhook routes (InternalApi.userWebhooks…webhookAttempts in shared), in memory, over real
// HTTP: for the notifier's integration tests, and for the end-to-end test until users' own routes (branch
// webhooks-api) are merged. Anything else answers users' 404, so a contact lookup finds no user (no mail).
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StandInAttempt {
  attempt: number;
  outcome: 'succeeded' | 'retrying' | 'failed';
  responseStatus: number | null;
  error: string | null;
  nextRetryAt: string | null;
  /** When the stand-in heard of it. */
  recordedAt: number;
}

export interface StandInDelivery {
  id: string;
  webhookId: string;
  eventId: string;
  eventType: string;
  payload: unknown;
  attempts: StandInAttempt[];
}

interface Webhook {
  id: string;
  userId: string;
  url: string;
  secret: string;
  events: string[];
  enabled: boolean;
}

export interface UsersStandIn {
  url: string;
  addWebhook(userId: string, url: string, events: string[]): { id: string; secret: string };
  deleteWebhook(id: string): void;
  deliveries(webhookId: string): StandInDelivery[];
  /** Requests answered with a 2xx, by route (`subscribed`, `deliveries`, `target`, `attempts`). */
  calls: Record<string, number>;
  /** The next `count` requests to record an attempt answer 503, as users does while its database is away. */
  failAttempts(count: number): void;
  close(): Promise<void>;
}

export async function startUsersStandIn(token: string): Promise<UsersStandIn> {
  const webhooks = new Map<string, Webhook>();
  const deliveries = new Map<string, StandInDelivery>();
  const calls: Record<string, number> = { subscribed: 0, deliveries: 0, target: 0, attempts: 0 };
  let attemptsToFail = 0;

  const json = (res: ServerResponse, status: number, body: unknown) =>
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  const notFound = (res: ServerResponse) => json(res, 404, { error: 'NOT_FOUND' });
  const readBody = async (req: IncomingMessage) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
  };

  const server = createServer((req, res) => {
    void (async () => {
      if (req.headers.authorization !== `Bearer ${token}`) return json(res, 401, { error: 'UNAUTHENTICATED' });
      const url = new URL(req.url ?? '/', 'http://stand-in');
      let m: RegExpExecArray | null;
      if (req.method === 'GET' && (m = /^\/internal\/users\/([^/]+)\/webhooks$/.exec(url.pathname))) {
        const [userId, event] = [decodeURIComponent(m[1]!), url.searchParams.get('event') ?? ''];
        calls.subscribed!++;
        return json(res, 200, {
          webhooks: [...webhooks.values()]
            .filter((w) => w.userId === userId && w.enabled && w.events.includes(event))
            .map(({ id, url: target }) => ({ id, url: target })),
        });
      }
      if (req.method === 'POST' && (m = /^\/internal\/webhooks\/([^/]+)\/deliveries$/.exec(url.pathname))) {
        const webhook = webhooks.get(decodeURIComponent(m[1]!));
        if (!webhook) return notFound(res);
        const body = await readBody(req);
        const existing = [...deliveries.values()].find((d) => d.webhookId === webhook.id && d.eventId === body.eventId);
        calls.deliveries!++;
        if (existing) return json(res, 200, { deliveryId: existing.id, created: false });
        const delivery: StandInDelivery = {
          id: randomUUID(),
          webhookId: webhook.id,
          eventId: String(body.eventId),
          eventType: String(body.eventType),
          payload: body.payload,
          attempts: [],
        };
        deliveries.set(delivery.id, delivery);
        return json(res, 200, { deliveryId: delivery.id, created: true });
      }
      if (req.method === 'GET' && (m = /^\/internal\/webhooks\/([^/]+)\/target$/.exec(url.pathname))) {
        const webhook = webhooks.get(decodeURIComponent(m[1]!));
        if (!webhook) return notFound(res);
        calls.target!++;
        return json(res, 200, { url: webhook.url, secret: webhook.secret, enabled: webhook.enabled });
      }
      if (req.method === 'POST' && (m = /^\/internal\/webhook-deliveries\/([^/]+)\/attempts$/.exec(url.pathname))) {
        const delivery = deliveries.get(decodeURIComponent(m[1]!));
        const webhook = delivery && webhooks.get(delivery.webhookId);
        if (!delivery || !webhook) return notFound(res);
        const body = (await readBody(req)) as unknown as Omit<StandInAttempt, 'recordedAt'>;
        if (attemptsToFail > 0) {
          attemptsToFail--;
          return json(res, 503, { error: 'UNAVAILABLE' });
        }
        delivery.attempts.push({ ...body, recordedAt: Date.now() });
        calls.attempts!++;
        return json(res, 200, { webhookEnabled: webhook.enabled });
      }
      return notFound(res);
    })().catch(() => json(res, 500, { error: 'INTERNAL' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    addWebhook(userId, url, events) {
      const webhook: Webhook = {
        id: randomUUID(),
        userId,
        url,
        secret: `whsec_${randomBytes(24).toString('base64')}`,
        events,
        enabled: true,
      };
      webhooks.set(webhook.id, webhook);
      return { id: webhook.id, secret: webhook.secret };
    },
    deleteWebhook: (id) => void webhooks.delete(id),
    deliveries: (webhookId) => [...deliveries.values()].filter((d) => d.webhookId === webhookId),
    calls,
    failAttempts: (count) => void (attemptsToFail = count),
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
