// The Node entry (package.json "exports" → "node"/"default"). Browsers get ./browser.js instead.
import { createClientOn } from './client.js';
import { nodePlatform } from './node/platform.js';
import type { Client, ClientOptions } from './types.js';

export * from './common.js';
// Node only: a receiver runs on a server (the browser entry leaves the verifier out of page bundles).
export { verifyWebhook, type WebhookEventType, type WebhookHeaders, type WebhookPayload } from './webhooks.js';

/** A client for the vidmp3 API; see the README. */
export function createClient(options: ClientOptions): Client {
  return createClientOn(nodePlatform, options);
}
