// The GraphQL playground in a real browser against the whole system: a query and a live subscription.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { graphql, signUpUser, uploadFile, type SignedUp } from '../client.js';
import { sample } from '../fixtures.js';
import { startService, startSystem, stopService, type System } from '../harness.js';
import { launchBrowser, openPage, screenshot } from './browser.js';

let system: System;
let browser: Browser;
let user: SignedUp;

beforeAll(async () => {
  // No worker yet: the job waits in QUEUED until the test starts one while the subscription is open.
  [system, browser] = await Promise.all([startSystem({}, { workers: 0 }), launchBrowser()]);
  user = await signUpUser(system.gatewayUrl);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await system?.stop();
}, 60_000);

const playgroundUrl = (query: string) => `${system.gatewayUrl}/playground?query=${encodeURIComponent(query)}`;

describe('the GraphQL playground', () => {
  it('runs a query with the token set and streams a subscription over graphql-ws, all from the gateway itself', async () => {
    const { page, offOrigin, errors, context } = await openPage(browser, system.gatewayUrl);
    const response = page.locator('.graphiql-response');
    const run = page.getByRole('button', { name: /execute query/i });
    try {
      // A query with the bearer token from the bar.
      await page.goto(playgroundUrl('{ me { email } }'));
      await page.getByLabel('Access token').fill(user.token);
      await page.getByRole('button', { name: 'Use', exact: true }).click();
      await run.click();
      await expect.poll(() => response.innerText(), { timeout: 20_000 }).toContain(user.email);
      // The schema (introspected through the same fetcher) is browsable in the docs.
      await page.getByRole('button', { name: /show documentation explorer/i }).click();
      await page.getByText('Root Types').waitFor({ timeout: 10_000 });
      await page.getByRole('link', { name: 'Subscription' }).click();
      await page.getByText('jobUpdated').first().waitFor({ timeout: 10_000 });
      await screenshot(page, 'playground-query');

      // A subscription to one job: its current state first, then its changes as a worker converts it.
      const uploaded = await uploadFile(system.gatewayUrl, await sample('faststart.mp4'), { token: user.token });
      const queued = await graphql<{ convertMedia: { id: string } }>(
        system.gatewayUrl,
        'mutation ($id: ID!) { convertMedia(mediaId: $id) { id } }',
        { token: user.token, variables: { id: uploaded.data!.uploadVideo.id } },
      );
      const jobId = queued.data!.convertMedia.id;
      await page.goto(
        playgroundUrl(`subscription { jobUpdated(id: "${jobId}") { status progress input { filename } } }`),
      );
      await run.click();
      await expect.poll(() => response.innerText(), { timeout: 20_000 }).toContain('QUEUED');
      await system.startWorker();
      await expect.poll(() => response.innerText(), { timeout: 40_000 }).toContain('SUCCEEDED');
      expect(await response.innerText()).toContain('faststart.mp4');
      await screenshot(page, 'playground-subscription');

      expect(offOrigin).toEqual([]);
      expect(errors).toEqual([]);
    } catch (error) {
      await screenshot(page, 'playground-failure').catch(() => undefined); // what the page showed when it failed
      throw error;
    } finally {
      await context.close();
    }
  }, 120_000);

  it('is not served when PLAYGROUND=false, while the page and the API stay up', async () => {
    // The gateway alone is enough: it loads the committed supergraph and calls no subgraph until asked.
    const gateway = await startService('gateway', 'gateway/dist/main.js', {
      PLAYGROUND: 'false',
      JWKS_URL: `${system.services.users!.url}/.well-known/jwks.json`,
    });
    try {
      const playground = await fetch(`${gateway.url}/playground`, { headers: { accept: 'text/html' } });
      expect(playground.status).toBe(404);
      expect((await fetch(`${gateway.url}/`)).status).toBe(200);
      // No landing page in its place either: a browser's GET /graphql is an ordinary API request.
      const api = await fetch(`${gateway.url}/graphql`, { headers: { accept: 'text/html' }, redirect: 'manual' });
      expect(api.status).toBe(400);
      expect(api.headers.get('content-type')).toMatch(/json/);
    } finally {
      await stopService(gateway);
    }
  }, 60_000);
});
