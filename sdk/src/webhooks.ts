// Receiving vidmp3 webhooks: deliveries follow the Standard Webhooks specification (HMAC-SHA256 over
// `${webhook-id}.${webhook-timestamp}.${body}`); the reference implementation, `standardwebhooks`, checks them.
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { Vidmp3Error } from './errors.js';

/** The event types a webhook can receive (`type` of a payload). */
export type WebhookEventType =
  'job.queued' | 'job.running' | 'job.succeeded' | 'job.failed' | 'job.cancelled' | 'media.deleted' | 'webhook.test';

/** The JSON body of a delivery. */
export interface WebhookPayload {
  type: WebhookEventType | (string & {});
  /** When the event happened (ISO 8601). */
  timestamp: string;
  data: Record<string, unknown>;
}

/** Request headers as Node (`req.headers`), Express or fetch (`Headers`) hand them over. */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

const HEADERS = ['webhook-id', 'webhook-timestamp', 'webhook-signature'] as const;

// Duck-typed: a Headers from another realm or a fetch polyfill is not `instanceof` this one.
const isHeaders = (h: WebhookHeaders): h is Headers => typeof (h as { get?: unknown }).get === 'function';

function pickHeaders(headers: WebhookHeaders): Record<string, string> {
  const picked: Record<string, string> = {};
  const get = (name: string): string | undefined => {
    if (isHeaders(headers)) return headers.get(name) ?? undefined;
    const entry = Object.entries(headers).find(([key]) => key.toLowerCase() === name)?.[1];
    return Array.isArray(entry) ? entry.join(', ') : entry;
  };
  for (const name of HEADERS) {
    const value = get(name);
    if (value !== undefined) picked[name] = value;
  }
  return picked;
}

/**
 * Checks that a delivery comes from vidmp3 and was signed with your webhook's secret (`whsec_…`, shown when you
 * created it), within five minutes of now (replays of old deliveries fail), and returns its parsed payload.
 * `body` must be the raw request body, byte for byte (a re-serialised JSON object would not match).
 * Throws a Vidmp3Error with code `INVALID_WEBHOOK` (the request is not a delivery signed with this secret, or is
 * too old) when anything is wrong: answer such a request with 400.
 * The `webhook-id` header is the same for every retry of one delivery: use it to drop duplicates.
 */
export function verifyWebhook(secret: string, headers: WebhookHeaders, body: string | Uint8Array): WebhookPayload {
  let payload: unknown;
  try {
    payload = new Webhook(secret).verify(body, pickHeaders(headers));
  } catch (err) {
    const reason =
      err instanceof WebhookVerificationError
        ? err.message
        : err instanceof SyntaxError
          ? 'the body is not JSON'
          : `cannot verify (${(err as Error).message})`;
    throw new Vidmp3Error('INVALID_WEBHOOK', `Webhook verification failed: ${reason}`, { cause: err });
  }
  const p = payload as Partial<WebhookPayload> | null;
  if (!p || typeof p.type !== 'string' || typeof p.timestamp !== 'string' || typeof p.data !== 'object' || !p.data) {
    throw new Vidmp3Error('INVALID_WEBHOOK', 'Webhook verification failed: the payload is not a vidmp3 event');
  }
  return p as WebhookPayload;
}
