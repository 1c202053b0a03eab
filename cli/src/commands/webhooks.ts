import { InvalidArgumentError } from 'commander';
import type { Context } from '../context.js';
import type { Webhook, WebhookDelivery, WebhookEvent } from '../sdk.js';

/** The names on the command line, as in the payloads' `type` (job.succeeded), and the API's enum values. */
const EVENTS: Record<string, WebhookEvent> = {
  'job.queued': 'JOB_QUEUED',
  'job.running': 'JOB_RUNNING',
  'job.succeeded': 'JOB_SUCCEEDED',
  'job.failed': 'JOB_FAILED',
  'job.cancelled': 'JOB_CANCELLED',
  'media.deleted': 'MEDIA_DELETED',
};
export const EVENT_NAMES = Object.keys(EVENTS);

const eventName = (event: WebhookEvent) => event.toLowerCase().replace('_', '.');

/** `job.succeeded,job.failed` (or the API's `JOB_SUCCEEDED`) → the API's values. */
export function parseEvents(value: string): WebhookEvent[] {
  const names = value
    .split(',')
    .map((s) => s.trim().toLowerCase().replace('_', '.'))
    .filter(Boolean);
  const unknown = names.filter((name) => !(name in EVENTS));
  if (names.length === 0 || unknown.length > 0) {
    throw new InvalidArgumentError(`Expected a comma-separated list of: ${EVENT_NAMES.join(', ')}.`);
  }
  return [...new Set(names.map((name) => EVENTS[name]!))];
}

const shortTime = (iso: string | null | undefined) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '') : '-');

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((cells) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

export function formatWebhookTable(webhooks: Webhook[]): string[] {
  return table(
    ['ID', 'STATE', 'EVENTS', 'URL'],
    webhooks.map((w) => [
      w.id,
      w.enabled ? 'enabled' : `disabled: ${w.disabledReason ?? ''}`,
      w.events.map(eventName).join(','),
      w.url,
    ]),
  );
}

export function formatDeliveryTable(deliveries: WebhookDelivery[]): string[] {
  return table(
    ['ID', 'STATUS', 'EVENT', 'ATTEMPTS', 'RESPONSE', 'CREATED (UTC)', 'NEXT RETRY / ERROR'],
    deliveries.map((d) => [
      d.id,
      d.status,
      d.eventType,
      String(d.attempts),
      d.responseStatus === null ? '-' : String(d.responseStatus),
      shortTime(d.createdAt),
      d.nextRetryAt ? `retry at ${shortTime(d.nextRetryAt)}: ${d.lastError ?? ''}` : (d.lastError ?? ''),
    ]),
  );
}

export interface CreateWebhookFlags {
  events: WebhookEvent[];
}

export async function createWebhook(ctx: Context, url: string, flags: CreateWebhookFlags): Promise<void> {
  const client = await ctx.authedClient();
  const { webhook, secret } = await client.createWebhook(url, flags.events);
  ctx.print({ webhook, secret }, [
    `webhook ${webhook.id} created for ${webhook.url}`,
    `events: ${webhook.events.map(eventName).join(', ')}`,
    `signing secret (shown only now; give it to your receiver's verifyWebhook): ${secret}`,
  ]);
}

export async function listWebhooks(ctx: Context): Promise<void> {
  const client = await ctx.authedClient();
  const webhooks = await client.webhooks();
  ctx.print({ webhooks }, webhooks.length ? formatWebhookTable(webhooks) : 'No webhooks yet.');
}

export async function deleteWebhook(ctx: Context, id: string): Promise<void> {
  const client = await ctx.authedClient();
  await client.deleteWebhook(id);
  ctx.print({ deleted: id }, `webhook ${id} deleted`);
}

export async function enableWebhook(ctx: Context, id: string): Promise<void> {
  const client = await ctx.authedClient();
  const webhook = await client.enableWebhook(id);
  ctx.print({ webhook }, `webhook ${webhook.id} enabled`);
}

export async function testWebhook(ctx: Context, id: string): Promise<void> {
  const client = await ctx.authedClient();
  const delivery = await client.sendTestWebhook(id);
  ctx.print(
    { delivery },
    `test event sent: delivery ${delivery.id} ${delivery.status} (see: vidmp3 webhooks deliveries ${id})`,
  );
}

export async function webhookDeliveries(ctx: Context, id: string, flags: { limit: number }): Promise<void> {
  const client = await ctx.authedClient();
  // One page: the API serves at most 100 deliveries at a time.
  const page = await client.webhookDeliveries(id, { first: Math.min(flags.limit, 100) });
  ctx.print(
    { deliveries: page.deliveries, hasMore: page.pageInfo.hasNextPage },
    page.deliveries.length ? formatDeliveryTable(page.deliveries) : 'No deliveries yet.',
  );
}
