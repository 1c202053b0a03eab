/// <reference lib="dom" />
// The links of account mails opened in a real browser: the page reads the token from its URL, takes it out of
// the address bar, and does what the link is for. Mails arrive through the notifier at a real SMTP server.
import mysql from 'mysql2/promise';
import type { ParsedMail } from 'mailparser';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { graphql, signUpUser, uniqueEmail } from '../client.js';
import {
  freePort,
  MYSQL_SERVER,
  startService,
  startSystem,
  stopService,
  type ServiceProcess,
  type System,
} from '../harness.js';
import { links, MailServer } from '../lib/mail-server.js';
import { launchBrowser, openPage, screenshot } from './browser.js';

let system: System;
let browser: Browser;
let notifier: ServiceProcess;
let smtp: MailServer;
let notifierDb: string;

beforeAll(async () => {
  [system, browser] = await Promise.all([startSystem({}), launchBrowser()]);
  smtp = new MailServer(await freePort());
  await smtp.listen();
  notifierDb = system.databases.jobs.replace('_jobs_', '_notifier_');
  notifier = await startService('notifier', 'workers/notifier/dist/main.js', {
    RABBITMQ_URL: system.rabbitmqUrl,
    MYSQL_URL: `${MYSQL_SERVER}/${notifierDb}`,
    USERS_INTERNAL_URL: system.services.users!.url,
    PUBLIC_URL: system.gatewayUrl,
    SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
    SEND_POLL_INTERVAL_MS: '100',
    HEALTH_PORT: '0',
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  if (notifier) await stopService(notifier);
  await smtp?.close();
  await system?.stop();
  if (notifierDb) {
    const conn = await mysql.createConnection(MYSQL_SERVER);
    await conn.query(`DROP DATABASE IF EXISTS \`${notifierDb}\``);
    await conn.end();
  }
}, 60_000);

async function linkIn(to: string, subject: string): Promise<string> {
  const matching = (): ParsedMail[] => smtp.to(to).filter((m) => m.subject === subject);
  await expect.poll(() => matching().length, { timeout: 30_000 }).toBeGreaterThanOrEqual(1);
  return links(matching().at(-1)!.text!)[0]!;
}

describe('account links on the page', () => {
  it('verify the address, reset a forgotten password and confirm a new address, keeping tokens out of the URL', async () => {
    const { page, context, offOrigin, errors } = await openPage(browser, system.gatewayUrl);
    try {
      const user = await signUpUser(system.gatewayUrl, uniqueEmail('web-links'));

      // The verification link verifies as the page opens, and leaves a clean address behind.
      const verify = await linkIn(user.email, 'Confirm your email address');
      await page.goto(verify);
      await page.getByText(`Your email address ${user.email} is verified.`).waitFor();
      expect(page.url()).toBe(`${system.gatewayUrl}/`);

      // Forgot password: asked from the sign-in form, with the address typed there.
      await page.goto(`${system.gatewayUrl}/`);
      await page.getByLabel('Email', { exact: true }).fill(user.email);
      await page.getByRole('button', { name: 'Forgot password?' }).click();
      await page
        .getByText(`If an account uses ${user.email}, a link to choose a new password is on its way.`)
        .waitFor();
      const reset = await linkIn(user.email, 'Reset your vidmp3 password');
      await page.goto(reset);
      expect(page.url()).toBe(`${system.gatewayUrl}/`);
      await page.getByLabel('Your new password').fill('a brand new passphrase');
      await page.getByRole('button', { name: 'Set new password' }).click();
      await page.getByText('Your password is changed and you are logged in.').waitFor();
      // Signed in with the new session.
      await page.getByRole('heading', { name: 'Convert a video' }).waitFor();
      expect(await page.locator('#account-email').innerText()).toBe(user.email);
      await screenshot(page, 'account-link-reset');

      // A used link says so in words.
      await page.goto(reset);
      await page.getByLabel('Your new password').fill('yet another passphrase');
      await page.getByRole('button', { name: 'Set new password' }).click();
      await page.getByText('This link is not valid or has expired; ask for a new one').waitFor();

      // Change of address: asked through the API, confirmed on the page.
      const login = await graphql<{ logIn: { accessToken: string } }>(
        system.gatewayUrl,
        'mutation ($e: String!, $p: String!) { logIn(email: $e, password: $p) { accessToken } }',
        { variables: { e: user.email, p: 'a brand new passphrase' } },
      );
      const newEmail = uniqueEmail('web-moved');
      const asked = await graphql(
        system.gatewayUrl,
        'mutation ($e: String!, $p: String!) { requestEmailChange(newEmail: $e, password: $p) }',
        { variables: { e: newEmail, p: 'a brand new passphrase' }, token: login.data!.logIn.accessToken },
      );
      expect(asked.errors).toBeUndefined();
      await page.goto(await linkIn(newEmail, 'Confirm your new email address'));
      expect(page.url()).toBe(`${system.gatewayUrl}/`);
      await page.getByRole('button', { name: 'Use this address' }).click();
      await page.getByText(`Your account now uses ${newEmail}`).waitFor();

      expect(offOrigin).toEqual([]);
      // The one failed request: the used reset link, refused by the gateway's /auth/reset (said in words above).
      expect(errors).toEqual([expect.stringMatching(/status of 400 .*\/auth\/reset\)$/) as string]);
    } catch (err) {
      await screenshot(page, 'account-link-failure').catch(() => undefined);
      throw err;
    } finally {
      await context.close();
    }
  }, 120_000);
});
