/// <reference lib="dom" />
// A web app on another origin (a customer's site, a Vite dev server) calls the API from a real browser: a
// query, an upload and a subscription, with CORS for the origins the gateway is configured to allow.
import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { PASSWORD, uniqueEmail } from '../client.js';
import { sample } from '../fixtures.js';
import { freePort, startSystem, type System } from '../harness.js';
import { launchBrowser, openPage } from './browser.js';

let system: System;
let browser: Browser;
let site: Server;
/** The allowed web app's origin, and another one (same server, other host name) that is not allowed. */
let appOrigin: string;
let otherOrigin: string;

beforeAll(async () => {
  const port = await freePort();
  appOrigin = `http://127.0.0.1:${port}`;
  otherOrigin = `http://localhost:${port}`;
  // The web app: an empty page; its scripts run through page.evaluate, in the page's origin.
  site = createServer((_req, res) => {
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end('<!doctype html><html><head><title>someone else’s app</title></head><body></body></html>');
  });
  await new Promise<void>((resolve) => site.listen(port, '127.0.0.1', resolve));
  [system, browser] = await Promise.all([
    startSystem({ gateway: { ALLOWED_ORIGINS: appOrigin } }, { workers: 1 }),
    launchBrowser(),
  ]);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await system?.stop();
  await new Promise((resolve) => site?.close(resolve));
}, 60_000);
beforeEach(() => onTestFailed(() => console.error(system.logs())));

describe('a web app on another origin', () => {
  it('signs up, queries, uploads a video and follows its conversion over a subscription', async () => {
    const { page, context, errors } = await openPage(browser, appOrigin);
    try {
      await page.goto(`${appOrigin}/`);
      const video = (await readFile(await sample('faststart.mp4'))).toString('base64');
      const result = await page.evaluate(
        async ({ api, email, password, video }) => {
          // What Apollo Client or urql send: JSON POSTs (a preflighted content type) with a bearer token.
          const gql = async (query: string, variables: Record<string, unknown>, token?: string) => {
            const res = await fetch(`${api}/graphql`, {
              method: 'POST',
              headers: {
                'content-type': 'application/json',
                ...(token ? { authorization: `Bearer ${token}` } : {}),
              },
              body: JSON.stringify({ query, variables }),
            });
            return {
              body: (await res.json()) as { data?: Record<string, Record<string, unknown>>; errors?: unknown[] },
              requestId: res.headers.get('x-request-id'),
            };
          };
          const signUp = await gql(
            'mutation ($email: String!, $password: String!) { signUp(email: $email, password: $password) { accessToken } }',
            { email, password },
          );
          const token = signUp.body.data!.signUp!.accessToken as string;
          const me = await gql('{ me { email } }', {}, token);

          // An upload, by the multipart request spec, with the header Apollo's CSRF prevention asks for.
          const form = new FormData();
          form.set(
            'operations',
            JSON.stringify({
              query: 'mutation ($file: Upload!) { uploadVideo(file: $file) { id filename } }',
              variables: { file: null },
            }),
          );
          form.set('map', JSON.stringify({ 0: ['variables.file'] }));
          const bytes = Uint8Array.from(atob(video), (c) => c.charCodeAt(0));
          form.set('0', new File([bytes], 'from-another-origin.mp4', { type: 'video/mp4' }));
          const uploaded = (await (
            await fetch(`${api}/graphql`, {
              method: 'POST',
              headers: { authorization: `Bearer ${token}`, 'apollo-require-preflight': 'true' },
              body: form,
            })
          ).json()) as { data?: { uploadVideo: { id: string; filename: string } }; errors?: unknown[] };

          // A subscription over graphql-ws (the graphql-transport-ws protocol, written out by hand).
          const socket = new WebSocket(`${api.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
          const statuses: string[] = [];
          const finished = new Promise<void>((resolve, reject) => {
            socket.onerror = () => reject(new Error('WebSocket error'));
            socket.onclose = (e) => reject(new Error(`WebSocket closed ${e.code} ${e.reason}`));
            socket.onmessage = (event) => {
              const message = JSON.parse(String(event.data)) as {
                type: string;
                payload?: { data?: { myJobUpdates: { status: string } } };
              };
              if (message.type === 'connection_ack') {
                socket.send(
                  JSON.stringify({
                    id: '1',
                    type: 'subscribe',
                    payload: { query: 'subscription { myJobUpdates { id status } }' },
                  }),
                );
                // Now the conversion whose changes it reports (its final state comes seconds later, long after
                // the subscription is in place).
                void gql(
                  'mutation ($id: ID!) { convertMedia(mediaId: $id) { id } }',
                  { id: uploaded.data!.uploadVideo.id },
                  token,
                );
              } else if (message.type === 'next') {
                const status = message.payload!.data!.myJobUpdates.status;
                statuses.push(status);
                if (status === 'SUCCEEDED' || status === 'FAILED') resolve();
              } else if (message.type === 'ping') {
                socket.send(JSON.stringify({ type: 'pong' }));
              }
            };
          });
          socket.onopen = () =>
            socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
          await finished;
          socket.onclose = null;
          socket.close();
          return { me: me.body, requestId: me.requestId, uploaded, statuses };
        },
        { api: system.gatewayUrl, email: uniqueEmail('cors'), password: PASSWORD, video },
      );
      expect(result.me).toEqual({ data: { me: { email: expect.stringMatching(/^cors-/) as string } } });
      // The request id is exposed to the page, for its bug reports.
      expect(result.requestId).toMatch(/^[\w.:-]+$/);
      expect(result.uploaded.errors).toBeUndefined();
      expect(result.uploaded.data?.uploadVideo.filename).toBe('from-another-origin.mp4');
      expect(result.statuses.at(-1)).toBe('SUCCEEDED');
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 90_000);

  it('keeps CSRF prevention: a GET query without a preflight header is refused, one with it is served', async () => {
    const { page, context } = await openPage(browser, appOrigin);
    try {
      await page.goto(`${appOrigin}/`);
      const answers = await page.evaluate(async (api) => {
        const url = `${api}/graphql?query=${encodeURIComponent('{ __typename }')}`;
        // urql's default (GET, no extra header) and the fix (`preferGetMethod: false`, or this header).
        const plain = await fetch(url);
        const preflighted = await fetch(url, { headers: { 'apollo-require-preflight': 'true' } });
        return {
          plain: { status: plain.status, body: await plain.text() },
          preflighted: (await preflighted.json()) as unknown,
        };
      }, system.gatewayUrl);
      expect(answers.plain.status).toBe(400);
      expect(answers.plain.body).toMatch(/Cross-Site Request Forgery|CSRF/);
      expect(answers.preflighted).toEqual({ data: { __typename: 'Query' } });
    } finally {
      await context.close();
    }
  });
});

describe('a page on an origin that is not allowed', () => {
  it('cannot read any answer: the browser blocks the query, the upload and the WebSocket', async () => {
    const { page, context } = await openPage(browser, otherOrigin);
    try {
      await page.goto(`${otherOrigin}/`);
      const outcome = await page.evaluate(async (api) => {
        const attempt = (init: RequestInit) =>
          fetch(`${api}/graphql`, init).then(
            (res) => `read ${res.status}`,
            (err: unknown) => `blocked: ${String(err)}`,
          );
        const query = await attempt({
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query: '{ __typename }' }),
        });
        const form = new FormData();
        form.set('operations', '{"query":"mutation ($f: Upload!) { uploadVideo(file: $f) { id } }"}');
        form.set('map', '{"0":["variables.f"]}');
        form.set('0', new File(['x'], 'x.mp4'));
        const upload = await attempt({ method: 'POST', headers: { 'apollo-require-preflight': 'true' }, body: form });
        const socket = await new Promise<string>((resolve) => {
          const ws = new WebSocket(`${api.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
          ws.onopen = () => ws.send(JSON.stringify({ type: 'connection_init', payload: {} }));
          ws.onmessage = (e) => resolve(`message ${String(e.data)}`);
          ws.onclose = (e) => resolve(`closed ${e.code}`);
        });
        return { query, upload, socket };
      }, system.gatewayUrl);
      expect(outcome.query).toMatch(/^blocked/);
      expect(outcome.upload).toMatch(/^blocked/);
      expect(outcome.socket).toMatch(/^closed/);
      expect(outcome.socket).not.toMatch(/connection_ack/);
    } finally {
      await context.close();
    }
  });

  it('gets no CORS headers, and its preflight is refused', async () => {
    const preflight = await fetch(`${system.gatewayUrl}/graphql`, {
      method: 'OPTIONS',
      headers: {
        origin: otherOrigin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type, authorization',
      },
    });
    expect(preflight.status).toBe(403);
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    const post = await fetch(`${system.gatewayUrl}/graphql`, {
      method: 'POST',
      headers: { origin: otherOrigin, 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect(post.headers.get('access-control-allow-origin')).toBeNull();

    // The allowed origin's preflight, for comparison: no credentials, the CSRF header allowed.
    const allowed = await fetch(`${system.gatewayUrl}/graphql`, {
      method: 'OPTIONS',
      headers: {
        origin: appOrigin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'apollo-require-preflight, authorization',
      },
    });
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe(appOrigin);
    expect(allowed.headers.get('access-control-allow-headers')).toMatch(/apollo-require-preflight/);
    expect(allowed.headers.get('access-control-allow-credentials')).toBeNull();
  });
});
