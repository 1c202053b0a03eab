// The browser entry (package.json "exports" → "browser"): no node: modules, uploads through XMLHttpRequest.
import { browserPlatform } from './browser/platform.js';
import { createClientOn } from './client.js';
import type { Client, ClientOptions } from './types.js';

export * from './common.js';

/** A client for the vidmp3 API; see the README. */
export function createClient(options: ClientOptions): Client {
  return createClientOn(browserPlatform, options);
}
