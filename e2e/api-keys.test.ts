// API keys through the gateway: a key works wherever an access token does (HTTP and WebSocket), within its
// scopes; it never manages the account; a revoked one stops at once at users and everywhere within the bound.
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { errorCode, graphql, signUpUser, uploadFile, type SignedUp } from './client.js';
import { sample } from './fixtures.js';
import { startSystem, type System } from './harness.js';

/** The exchanged tokens' life here (users' API_KEY_TOKEN_TTL_SECONDS): the bound on a revoked key elsewhere. */
const KEY_TOKEN_SECONDS = 12;
/** Failed exchanges per client address before users answers 429 (API_KEY_MAX_FAILURES_PER_IP). */
const MAX_FAILURES = 6;

const CREATE_KEY = `mutation ($name: String!, $scopes: [ApiKeyScope!]!) {
  createApiKey(name: $name, scopes: $scopes) { key apiKey { id name scopes createdAt lastUsedAt } }
}`;

interface CreatedKey {
  key: string;
  apiKey: { id: string; name: string; scopes: string[]; createdAt: string; lastUsedAt: string | null };
}

let system: System;
let alice: SignedUp;

beforeAll(async () => {
  system = await startSystem(
    {
      users: {
        API_KEY_TOKEN_TTL_SECONDS: String(KEY_TOKEN_SECONDS),
        API_KEY_MAX_FAILURES_PER_IP: String(MAX_FAILURES),
      },
    },
    { workers: 1 },
  );
  alice = await signUpUser(system.gatewayUrl);
});
afterAll(async () => {
  await system?.stop();
});

async function createKey(token: string, scopes: string[], name = 'script'): Promise<CreatedKey> {
  const res = await graphql<{ createApiKey: CreatedKey }>(system.gatewayUrl, CREATE_KEY, {
    token,
    variables: { name, scopes },
  });
  if (!res.data?.createApiKey) throw new Error(`createApiKey failed: ${JSON.stringify(res.errors)}`);
  return res.data.createApiKey;
}

const query = <T>(token: string, text: string, variables: Record<string, unknown> = {}) =>
  graphql<T>(system.gatewayUrl, text, { token, variables });

describe('API keys through the gateway', () => {
  beforeEach(() => onTestFailed(() => console.error(system.logs())));

  it('shows a key once and lists it by name and scopes, with its last use', async () => {
    const created = await createKey(alice.token, ['READ'], 'nightly');
    expect(created.key).toMatch(/^vmp3_[A-Za-z0-9_-]{43}$/);
    expect(created.apiKey).toMatchObject({ name: 'nightly', scopes: ['READ'], lastUsedAt: null });

    const used = await query<{ me: { id: string } }>(created.key, '{ me { id } }');
    expect(used.data?.me.id).toBe(alice.id);
    const listed = await query<{ me: { apiKeys: CreatedKey['apiKey'][] } }>(
      alice.token,
      '{ me { apiKeys { id name scopes lastUsedAt } } }',
    );
    expect(listed.errors, JSON.stringify(listed.errors)).toBeUndefined();
    const mine = listed.data?.me.apiKeys.find((k) => k.id === created.apiKey.id);
    expect(mine).toMatchObject({ name: 'nightly', scopes: ['READ'] });
    expect(mine?.lastUsedAt).not.toBeNull();
    expect(JSON.stringify(listed)).not.toContain(created.key);
  });

  it('a READ key queries and subscribes, and gets FORBIDDEN on convertMedia, uploads and deleteMedia', async () => {
    const { key } = await createKey(alice.token, ['READ']);
    const uploaded = await uploadFile(system.gatewayUrl, await sample('faststart.mp4'), { token: alice.token });
    const mediaId = uploaded.data!.uploadVideo.id;

    const read = await query<{ me: { jobs: { edges: unknown[] }; media: { edges: { node: { id: string } }[] } } }>(
      key,
      '{ me { jobs { edges { node { id } } } media { edges { node { id } } } } }',
    );
    expect(read.errors).toBeUndefined();
    expect(read.data?.me.media.edges.map((e) => e.node.id)).toContain(mediaId);

    const convert = await query(key, 'mutation ($m: ID!) { convertMedia(mediaId: $m) { id } }', { m: mediaId });
    expect(errorCode(convert)).toBe('FORBIDDEN');
    expect(errorCode(await query(key, 'mutation ($m: ID!) { deleteMedia(id: $m) }', { m: mediaId }))).toBe('FORBIDDEN');
    const upload = await uploadFile(system.gatewayUrl, await sample('faststart.mp4'), { token: key });
    expect(upload.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');

    // Subscribed with the key, it sees the conversion the session starts.
    const client = createClient({
      url: `${system.gatewayUrl.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${key}` },
      retryAttempts: 0,
    });
    try {
      const events = client.iterate<{ myJobUpdates: { id: string; status: string } }>({
        query: 'subscription { myJobUpdates { id status } }',
      });
      const first = events.next();
      // The subscription is set up once the socket is: give it a moment before the conversion starts.
      await new Promise((resolve) => setTimeout(resolve, 500));
      const started = await query<{ convertMedia: { id: string } }>(
        alice.token,
        'mutation ($m: ID!) { convertMedia(mediaId: $m) { id } }',
        { m: mediaId },
      );
      const event = (await first).value as
        { data?: { myJobUpdates: { id: string } } | null; errors?: readonly unknown[] } | undefined;
      expect(event?.errors).toBeUndefined();
      expect(event?.data?.myJobUpdates.id).toBe(started.data?.convertMedia.id);
      await events.return?.();
    } finally {
      await client.dispose();
    }
  });

  it('a CONVERT key uploads and converts', async () => {
    const { key } = await createKey(alice.token, ['CONVERT']);
    const uploaded = await uploadFile(system.gatewayUrl, await sample('faststart.mp4'), { token: key });
    expect(uploaded.errors).toBeUndefined();
    const mediaId = uploaded.data!.uploadVideo.id;
    const converted = await query<{ convertMedia: { id: string } }>(
      key,
      'mutation ($m: ID!) { convertMedia(mediaId: $m) { id } }',
      { m: mediaId },
    );
    expect(converted.errors).toBeUndefined();
    const jobId = converted.data!.convertMedia.id;
    await expect
      .poll(
        async () =>
          (await query<{ job: { status: string } }>(key, 'query ($id: ID!) { job(id: $id) { status } }', { id: jobId }))
            .data?.job.status,
        { timeout: 90_000, interval: 200 },
      )
      .toBe('SUCCEEDED');
  });

  it('a key never manages the account', async () => {
    const { key, apiKey } = await createKey(alice.token, ['CONVERT']);
    expect(errorCode(await query(key, CREATE_KEY, { name: 'more', scopes: ['READ'] }))).toBe('FORBIDDEN');
    expect(errorCode(await query(key, 'mutation ($id: ID!) { revokeApiKey(id: $id) }', { id: apiKey.id }))).toBe(
      'FORBIDDEN',
    );
    expect(errorCode(await query(key, 'mutation { logOutEverywhere }'))).toBe('FORBIDDEN');
    expect(
      errorCode(
        await query(
          key,
          'mutation { changePassword(currentPassword: "x", newPassword: "another passphrase") { accessToken } }',
        ),
      ),
    ).toBe('FORBIDDEN');
    expect(
      errorCode(
        await query(key, 'mutation { updateNotificationSettings(conversionEmails: true) { conversionEmails } }'),
      ),
    ).toBe('FORBIDDEN');
    // The key still works for what it may do.
    expect((await query<{ me: { id: string } }>(key, '{ me { id } }')).data?.me.id).toBe(alice.id);
  });

  it('a revoked key is refused at once by users and everywhere within the token life', async () => {
    const { key, apiKey } = await createKey(alice.token, ['READ']);
    const uploaded = await uploadFile(system.gatewayUrl, await sample('faststart.mp4'), { token: alice.token });
    const mediaId = uploaded.data!.uploadVideo.id;
    expect(
      (await query<{ media: { id: string } }>(key, 'query ($id: ID!) { media(id: $id) { id } }', { id: mediaId })).data
        ?.media.id,
    ).toBe(mediaId);

    const revoked = await query(alice.token, 'mutation ($id: ID!) { revokeApiKey(id: $id) }', { id: apiKey.id });
    expect(revoked.data).toEqual({ revokeApiKey: true });
    const revokedAt = Date.now();

    expect(errorCode(await query(key, '{ me { id } }'))).toBe('UNAUTHENTICATED');
    await expect
      .poll(async () => errorCode(await query(key, 'query ($id: ID!) { media(id: $id) { id } }', { id: mediaId })), {
        timeout: (KEY_TOKEN_SECONDS + 5) * 1000,
        interval: 250,
      })
      .toBe('UNAUTHENTICATED');
    expect(Date.now() - revokedAt).toBeLessThanOrEqual((KEY_TOKEN_SECONDS + 5) * 1000);
    const refused = await query(key, '{ me { id } }');
    expect(refused.status).toBe(401);
    expect(refused.errors?.[0]?.message).toMatch(/Invalid API key/);
  });

  it('refuses a key it never issued with UNAUTHENTICATED, on HTTP and WebSocket', async () => {
    const made_up = `vmp3_${'A'.repeat(43)}`;
    const res = await query(made_up, '{ me { id } }');
    expect(res.status).toBe(401);
    expect(errorCode(res)).toBe('UNAUTHENTICATED');

    const closed = await new Promise<number>((resolve) => {
      const client = createClient({
        url: `${system.gatewayUrl.replace('http', 'ws')}/graphql`,
        webSocketImpl: WebSocket,
        connectionParams: { authorization: `Bearer ${made_up}` },
        retryAttempts: 0,
        on: { closed: (event) => resolve((event as { code: number }).code) },
      });
      client.subscribe(
        { query: 'subscription { myJobUpdates { id } }' },
        { next: () => {}, error: () => {}, complete: () => {} },
      );
    });
    expect(closed).toBe(4401);
  });

  it('throttles failed exchanges per client address (the one the gateway forwards), not for everyone', async () => {
    // The test talks to the gateway from loopback, a trusted proxy: X-Forwarded-For stands for the client.
    const from = (address: string) => ({ 'x-forwarded-for': address });
    const wrong = () => `vmp3_${randomBytes(32).toString('base64url')}`;
    for (let i = 0; i < MAX_FAILURES; i++) {
      const res = await graphql(system.gatewayUrl, '{ me { id } }', { token: wrong(), headers: from('198.51.100.77') });
      expect(errorCode(res)).toBe('UNAUTHENTICATED');
    }
    const { key } = await createKey(alice.token, ['READ']);
    const limited = await graphql(system.gatewayUrl, '{ me { id } }', { token: key, headers: from('198.51.100.77') });
    expect(limited.status).toBe(429);
    expect(limited.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED' });
    expect(limited.errors?.[0]?.extensions?.retryAfterSeconds).toBeGreaterThan(0);
    // Another address, with the same key, is not held up.
    const elsewhere = await graphql<{ me: { id: string } }>(system.gatewayUrl, '{ me { id } }', {
      token: key,
      headers: from('203.0.113.5'),
    });
    expect(elsewhere.data?.me.id).toBe(alice.id);
  });
});
