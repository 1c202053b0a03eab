// The SDK with an API key against the whole system: the key is the bearer on HTTP and WebSocket, with nothing
// to refresh; a watch outlives the access tokens the gateway exchanges the key for; scopes are enforced.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { PASSWORD, uniqueEmail } from '../../e2e/client.js';
import { generateVideo } from '../../e2e/fixtures.js';
import { startSystem, type System } from '../../e2e/harness.js';
import { createClient, type Client, type Job } from '../src/index.js';

// Short-lived exchanged tokens (users' API_KEY_TOKEN_TTL_SECONDS): the watch below outlives a few.
const KEY_TOKEN_SECONDS = 10;

let system: System;
let url: string;
let workDir: string;
let owner: Client;
const clients: Client[] = [];

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'vidmp3-sdk-api-keys-'));
  system = await startSystem({ users: { API_KEY_TOKEN_TTL_SECONDS: String(KEY_TOKEN_SECONDS) } });
  url = `${system.gatewayUrl}/graphql`;
  owner = client();
  await owner.signUp(uniqueEmail('sdk-keys'), PASSWORD);
}, 120_000);
afterAll(async () => {
  for (const c of clients) c.close();
  await system?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});
beforeEach(() => onTestFailed(() => console.error(system.logs())));

function client(apiKey?: string): Client {
  const c = createClient({ url, apiKey });
  clients.push(c);
  return c;
}

describe('SDK with an API key', () => {
  it('creates, lists and revokes keys with a session; a key cannot', async () => {
    const created = await owner.createApiKey('sdk test', ['READ']);
    expect(created.key).toMatch(/^vmp3_/);
    expect((await owner.apiKeys()).map((k) => k.id)).toContain(created.apiKey.id);

    const keyed = client(created.key);
    expect((await keyed.me())?.id).toBe((await owner.me())?.id);
    expect((await keyed.apiKeys()).map((k) => k.name)).toContain('sdk test');
    await expect(keyed.createApiKey('more', ['READ'])).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await expect(keyed.revokeApiKey(created.apiKey.id)).rejects.toMatchObject({ code: 'FORBIDDEN' });

    await owner.revokeApiKey(created.apiKey.id);
    expect((await owner.apiKeys()).map((k) => k.id)).not.toContain(created.apiKey.id);
    await expect(keyed.me()).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
  });

  it('a READ key is refused uploads with FORBIDDEN', async () => {
    const keyed = client((await owner.createApiKey('reader', ['READ'])).key);
    const clip = join(workDir, 'read.mp4');
    await generateVideo(clip, 1);
    await expect(keyed.uploadVideo(clip)).rejects.toMatchObject({ code: 'FORBIDDEN' });
  });

  it('a CONVERT key watches a job across the expiry of its exchanged tokens', { timeout: 120_000 }, async () => {
    const keyed = client((await owner.createApiKey('converter', ['CONVERT'])).key);
    const clip = join(workDir, 'clip.mp4');
    await generateVideo(clip, 2);
    const media = await keyed.uploadVideo(clip);
    const job = await keyed.convert(media.id); // QUEUED: no worker yet

    const seen: Job[] = [];
    const watching = (async () => {
      for await (const update of keyed.watchJob(job.id)) seen.push(update);
    })();
    await expect.poll(() => seen.length, { timeout: 10_000 }).toBeGreaterThan(0);
    // The gateway closes the socket when the token it exchanged the key for expires (4401): the watch opens a
    // new one with the key, exchanged afresh.
    await new Promise((resolve) => setTimeout(resolve, (KEY_TOKEN_SECONDS + 3) * 1000));

    await system.startWorker();
    await watching;
    expect(seen.at(-1)?.status).toBe('SUCCEEDED');
  });
});
