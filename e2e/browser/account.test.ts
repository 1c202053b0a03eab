/// <reference lib="dom" />
// The page's account in a real browser against the whole system: staying signed in across reloads with the refresh
// token out of the page's reach, the settings (password, emails, sessions), signing out, and a link to a job.
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { graphql, PASSWORD, signUpUser, uniqueEmail, uploadFile } from '../client.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateVideo, sample } from '../fixtures.js';
import { startSystem, type System } from '../harness.js';
import { launchBrowser, openPage, screenshot } from './browser.js';

/** The shortest access token the users service allows: the page renews it every 30 s here. */
const ACCESS_TOKEN_TTL_SECONDS = 60;
const NEW_PASSWORD = 'a whole new passphrase';

let system: System;
let browser: Browser;

beforeAll(async () => {
  [system, browser] = await Promise.all([
    // The worker reads its input at real time: a linked conversion is still running when the page opens on it.
    startSystem(
      { users: { ACCESS_TOKEN_TTL_SECONDS: String(ACCESS_TOKEN_TTL_SECONDS) }, worker: { READRATE: '1' } },
      { workers: 1 },
    ),
    launchBrowser(),
  ]);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await system?.stop();
}, 60_000);

beforeEach(() => onTestFailed(() => console.error(system.logs())));

const LOG_IN = `mutation ($email: String!, $password: String!) {
  logIn(email: $email, password: $password) { accessToken }
}`;

/** Logs in through the API, as another device would; its access token, or the error code. */
async function logInElsewhere(email: string, password = PASSWORD): Promise<string> {
  const res = await graphql<{ logIn: { accessToken: string } }>(system.gatewayUrl, LOG_IN, {
    variables: { email, password },
  });
  return res.data?.logIn.accessToken ?? String(res.errors?.[0]?.extensions?.code);
}

/** How many sessions of the user are going, as `me { sessions }` lists them for this access token. */
async function sessionsSeenFrom(token: string): Promise<number | undefined> {
  const res = await graphql<{ me: { sessions: unknown[] } }>(system.gatewayUrl, '{ me { sessions { id } } }', {
    token,
  });
  return res.data?.me.sessions.length;
}

/** What `me` answers for an access token: 'ok' or the error code. */
async function me(token: string): Promise<string> {
  const res = await graphql<{ me: { id: string } | null }>(system.gatewayUrl, '{ me { id } }', { token });
  return res.data?.me?.id ? 'ok' : String(res.errors?.[0]?.extensions?.code);
}

async function signUpInPage(page: Page, email: string): Promise<void> {
  await page.goto(`${system.gatewayUrl}/`);
  await page.getByLabel('Email', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { name: 'Convert a video' }).waitFor();
}

/** The refresh cookie as the browser holds it. */
async function refreshCookie(context: BrowserContext) {
  return (await context.cookies(`${system.gatewayUrl}/auth/refresh`)).find((c) => c.name === 'vidmp3-refresh');
}

/** Everything scripts on the page can read: its cookies and its storage. */
const readableByScripts = (page: Page) =>
  page.evaluate(() => ({
    cookie: document.cookie,
    storage: JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }),
  }));

async function run(page: Page, name: string, steps: () => Promise<void>): Promise<void> {
  try {
    await steps();
  } catch (error) {
    await screenshot(page, `account-failure-${name}`).catch(() => undefined);
    throw error;
  }
}

describe('the account on the page', () => {
  it('stays signed in across reloads, and page scripts never see the refresh token', async () => {
    const { page, context, errors, offOrigin } = await openPage(browser, system.gatewayUrl);
    await run(page, 'reload', async () => {
      const email = uniqueEmail('reload');
      await signUpInPage(page, email);

      const cookie = await refreshCookie(context);
      expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/auth' });
      expect(cookie?.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
      let readable = await readableByScripts(page);
      expect(readable.cookie).not.toContain(cookie!.value);
      expect(readable.storage).not.toContain(cookie!.value);

      const [atStart] = await Promise.all([
        page.waitForResponse((r) => r.url().endsWith('/auth/refresh')),
        page.reload(),
      ]);
      await page.getByRole('heading', { name: 'Convert a video' }).waitFor();
      expect(await page.locator('#account-email').innerText()).toBe(email);
      const startToken = ((await atStart.json()) as { accessToken: string }).accessToken;
      // The reload traded the cookie for a new one (rotation), still out of the scripts' reach.
      const rotated = await refreshCookie(context);
      expect(rotated?.value).not.toBe(cookie?.value);
      readable = await readableByScripts(page);
      expect(readable.cookie).not.toContain(rotated!.value);
      expect(readable.storage).not.toContain(rotated!.value);
      // The access token is not kept anywhere either: it lives in the page's memory only.
      expect(readable.storage).not.toMatch(/eyJ/);

      // The access token lives a minute here: the page renews it before it lapses, by itself, and goes on working.
      const renewal = await page.waitForResponse((r) => r.url().endsWith('/auth/refresh'), { timeout: 45_000 });
      expect(renewal.status()).toBe(200);
      const renewed = ((await renewal.json()) as { accessToken: string }).accessToken;
      expect(renewed).not.toBe(startToken);
      const [listing] = await Promise.all([
        page.waitForRequest((r) => r.url().endsWith('/graphql') && r.method() === 'POST'),
        page.getByRole('button', { name: 'Refresh' }).click(),
      ]);
      expect(listing.headers().authorization).toBe(`Bearer ${renewed}`);
      const answer = (await (await listing.response())?.json()) as { data?: { me?: unknown }; errors?: unknown };
      expect(answer.errors).toBeUndefined();
      expect(answer.data?.me).toBeTruthy();
      expect(await page.getByRole('heading', { name: 'Log in' }).isVisible()).toBe(false);
      expect(errors).toEqual([]);
      expect(offOrigin).toEqual([]);
    });
    await context.close();
  }, 120_000);

  it('changes the password, toggles emails, ends another session and signs out', async () => {
    const { page, context, errors } = await openPage(browser, system.gatewayUrl);
    await run(page, 'settings', async () => {
      const email = uniqueEmail('settings');
      await signUpInPage(page, email);
      const phone = await logInElsewhere(email);
      expect(await me(phone)).toBe('ok');

      await page.getByRole('link', { name: 'Settings' }).click();
      await page.getByRole('heading', { name: 'Account settings' }).waitFor();
      expect(await page.evaluate(() => document.activeElement?.id)).toBe('settings-title');
      const sessions = page.locator('#sessions li');
      await expect.poll(() => sessions.count()).toBe(2);
      expect(await page.locator('#sessions li.current').innerText()).toMatch(
        /^This browser\nSigned in .+\nLast used .+ from 127\.0\.0\.1$/,
      );
      await screenshot(page, 'account-settings');

      // Ends the phone's session: it is refused at once, and the list shows this browser alone.
      await page
        .locator('#sessions li:not(.current)')
        .getByRole('button', { name: /^Sign out the session last used/ })
        .click();
      await expect.poll(() => sessions.count()).toBe(1);
      expect(await me(phone)).toBe('UNAUTHENTICATED');

      // Emails: off by default, on after a click, and still on after a reload.
      const emails = page.getByLabel('Email me when a conversion finishes or fails');
      await expect.poll(() => emails.isEnabled()).toBe(true);
      expect(await emails.isChecked()).toBe(false);
      await emails.check();
      await expect.poll(() => emails.isEnabled()).toBe(true);
      await page.reload();
      await page.getByRole('heading', { name: 'Account settings' }).waitFor();
      await expect.poll(() => emails.isEnabled()).toBe(true);
      expect(await emails.isChecked()).toBe(true);

      // A wrong current password is named; the right one changes it and the page stays signed in.
      const tablet = await logInElsewhere(email);
      await page.getByLabel('Current password').fill('not my password');
      await page.getByLabel('New password').fill(NEW_PASSWORD);
      await page.getByRole('button', { name: 'Change password' }).click();
      await page.locator('#password-error').getByText('The current password is incorrect').waitFor();
      expect(await page.evaluate(() => document.activeElement?.id)).toBe('current-password');
      await page.getByLabel('Current password').fill(PASSWORD);
      await page.getByLabel('New password').fill(NEW_PASSWORD);
      await page.getByRole('button', { name: 'Change password' }).click();
      await page.getByText('Your password is changed.').waitFor();
      expect(await me(tablet)).toBe('UNAUTHENTICATED');
      expect(await logInElsewhere(email)).toBe('UNAUTHENTICATED');
      const other = await logInElsewhere(email, NEW_PASSWORD);
      expect(await me(other)).toBe('ok');
      await page.reload();
      await page.getByRole('heading', { name: 'Account settings' }).waitFor();
      expect(await page.locator('#account-email').innerText()).toBe(email);

      // Sign out everywhere: the other device's session ends too, and this page shows the login form.
      await page.getByRole('button', { name: 'Sign out everywhere' }).click();
      await page.locator('#notice').getByText('You are logged out everywhere.').waitFor();
      expect(await page.getByRole('heading', { name: 'Log in' }).isVisible()).toBe(true);
      expect(await me(other)).toBe('UNAUTHENTICATED');
      expect(await refreshCookie(context)).toBeUndefined();

      // Log in again and log out with the header's button: the session ends on the server, and a reload stays out.
      await page.getByLabel('Email', { exact: true }).fill(email);
      await page.getByLabel('Password', { exact: true }).fill(NEW_PASSWORD);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByRole('heading', { name: 'Account settings' }).waitFor();
      const laptop = await logInElsewhere(email, NEW_PASSWORD);
      await expect.poll(() => sessionsSeenFrom(laptop)).toBe(2);
      await page.getByRole('button', { name: 'Log out' }).click();
      await page.getByRole('heading', { name: 'Log in' }).waitFor();
      // The browser's session ended on the server (the laptop sees only itself), and its cookie is gone.
      await expect.poll(() => sessionsSeenFrom(laptop)).toBe(1);
      await expect.poll(() => refreshCookie(context)).toBeUndefined();
      await page.reload();
      await page.getByRole('heading', { name: 'Log in' }).waitFor();
      expect(await page.locator('#account').isVisible()).toBe(false);
      // The browser reports the refused password (HTTP 400) in its console; nothing else went wrong.
      expect(errors).toEqual([expect.stringMatching(/status of 400 .*\/auth\/password\)$/) as string]);
    });
    await context.close();
  }, 120_000);

  it('deletes the account from settings, once its password and a confirmation are given, and signs out', async () => {
    const { page, context, errors } = await openPage(browser, system.gatewayUrl);
    await run(page, 'delete', async () => {
      const email = uniqueEmail('delete');
      await signUpInPage(page, email);
      await page.getByRole('link', { name: 'Settings' }).click();
      await page.getByRole('heading', { name: 'Delete your account' }).waitFor();

      // Without the box ticked nothing happens; with a wrong password the API refuses and says so.
      await page.getByLabel('Your password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Delete account' }).click();
      await expect.poll(() => page.locator('#delete-error').innerText()).toBe('Tick the box to confirm.');
      expect(await logInElsewhere(email)).not.toBe('UNAUTHENTICATED');
      await page.getByLabel('Your password').fill('not the password at all');
      await page.getByLabel('I understand that everything in this account is deleted').check();
      await page.getByRole('button', { name: 'Delete account' }).click();
      await expect.poll(() => page.locator('#delete-error').innerText()).not.toBe('');

      await page.getByLabel('Your password').fill(PASSWORD);
      await page.getByLabel('I understand that everything in this account is deleted').check();
      await page.getByRole('button', { name: 'Delete account' }).click();
      await page.getByRole('button', { name: 'Create account' }).waitFor();
      // Said once this browser's session is let go as well (the log-out round trip after the sign-out view).
      await expect
        .poll(() => page.locator('#notice').innerText())
        .toBe('Your account is deleted, with everything in it.');
      // The account is gone: its email and password no longer sign in, and the cookie went with the session.
      expect(await logInElsewhere(email)).toBe('UNAUTHENTICATED');
      expect(await refreshCookie(context)).toBeUndefined();
      await page.reload();
      await page.getByRole('button', { name: 'Create account' }).waitFor();
    });
    expect(errors).toEqual([]);
    await context.close();
  }, 60_000);

  it('opens on the conversion a link names (?job=), after logging in, and shows it through to its download', async () => {
    const user = await signUpUser(system.gatewayUrl);
    const uploaded = await uploadFile(system.gatewayUrl, await sample('faststart.mp4'), { token: user.token });
    const mediaId = uploaded.data!.uploadVideo.id;
    const converted = await graphql<{ convertMedia: { id: string } }>(
      system.gatewayUrl,
      'mutation ($m: ID!) { convertMedia(mediaId: $m) { id } }',
      { token: user.token, variables: { m: mediaId } },
    );
    const jobId = converted.data!.convertMedia.id;

    const { page, context, errors } = await openPage(browser, system.gatewayUrl);
    await run(page, 'job-link', async () => {
      await page.goto(`${system.gatewayUrl}/?job=${jobId}`);
      await page.getByRole('heading', { name: 'Log in' }).waitFor();
      expect(await page.locator('#notice').innerText()).toBe('Log in to see your conversion.');
      await page.getByLabel('Email', { exact: true }).fill(user.email);
      await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
      await page.getByRole('button', { name: 'Log in' }).click();

      const focus = page.getByRole('region', { name: 'Your conversion', exact: true });
      await focus.waitFor();
      expect(await page.evaluate(() => document.activeElement?.id)).toBe('focus-title');
      await focus.locator('#focus-name').getByText('faststart.mp4', { exact: true }).waitFor();
      const link = focus.getByRole('link', { name: 'Download faststart.mp3' });
      await link.waitFor({ timeout: 60_000 });
      expect(await focus.locator('#focus-status').innerText()).toMatch(/^Done\./);
      const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
      expect(download.suggestedFilename()).toBe('faststart.mp3');
      await screenshot(page, 'account-job-link');

      // A job that is not the user's says so, without showing anything of it.
      const stranger = await signUpUser(system.gatewayUrl);
      const other = await graphql<{ convertMedia: { id: string } }>(
        system.gatewayUrl,
        'mutation ($m: ID!) { convertMedia(mediaId: $m) { id } }',
        {
          token: stranger.token,
          variables: {
            m: (await uploadFile(system.gatewayUrl, await sample('faststart.mp4'), { token: stranger.token })).data!
              .uploadVideo.id,
          },
        },
      );
      await page.goto(`${system.gatewayUrl}/?job=${other.data!.convertMedia.id}`);
      await focus.getByText('That conversion is not in your account').waitFor();
      expect(await focus.locator('#focus-name').innerText()).toBe('');

      // Closing the card drops the link: a reload shows the page as usual.
      await focus.getByRole('button', { name: 'Close' }).click();
      expect(new URL(page.url()).search).toBe('');
      expect(await focus.isVisible()).toBe(false);
      expect(errors).toEqual([]);
    });
    await context.close();
  }, 120_000);
  it('shows signed-out when a copy of its refresh token was used (the session ends), and in every tab on log-out', async () => {
    const { page, context, errors } = await openPage(browser, system.gatewayUrl);
    await run(page, 'reuse', async () => {
      const email = uniqueEmail('reuse');
      await signUpInPage(page, email);

      // Someone with a copy of the cookie refreshes first: the browser's own token is now a spent one.
      const stolen = (await refreshCookie(context))!.value;
      const thief = await fetch(`${system.gatewayUrl}/auth/refresh`, {
        method: 'POST',
        headers: {
          origin: new URL(system.gatewayUrl).origin,
          'x-vidmp3-auth': '1',
          cookie: `vidmp3-refresh=${stolen}`,
        },
      });
      expect(thief.status).toBe(200);
      const thiefToken = ((await thief.json()) as { accessToken: string }).accessToken;
      expect(await me(thiefToken)).toBe('ok');

      // The page's next refresh presents it again: the server ends the session, for the thief too.
      await page.reload();
      await page.getByRole('heading', { name: 'Log in' }).waitFor();
      expect(await page.locator('#notice').innerText()).toBe('Your session has ended. Please log in again.');
      expect(await me(thiefToken)).toBe('UNAUTHENTICATED');
      expect(await refreshCookie(context)).toBeUndefined();

      // Two tabs signed in: logging out in one signs the other out at once.
      await page.getByLabel('Email', { exact: true }).fill(email);
      await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByRole('heading', { name: 'Convert a video' }).waitFor();
      const second = await context.newPage();
      await second.goto(`${system.gatewayUrl}/`);
      await second.getByRole('heading', { name: 'Convert a video' }).waitFor();
      await page.getByRole('button', { name: 'Log out' }).click();
      await second.getByRole('heading', { name: 'Log in' }).waitFor({ timeout: 5_000 });
      await second.reload();
      await second.getByRole('heading', { name: 'Log in' }).waitFor();
      // The refused refresh is the browser's console's only complaint.
      expect(errors).toEqual([expect.stringMatching(/status of 401 .*\/auth\/refresh\)$/) as string]);
    });
    await context.close();
  }, 120_000);
  it('follows a conversion that outlasts its access token to the end, live, without signing out', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vidmp3-account-'));
    const { page, context, errors } = await openPage(browser, system.gatewayUrl);
    await run(page, 'long-watch', async () => {
      // Converted at real time: the live updates' socket outlives the token it opened with (closed at its expiry).
      const video = join(dir, 'long-talk.mp4');
      await generateVideo(video, ACCESS_TOKEN_TTL_SECONDS + 15);
      await signUpInPage(page, uniqueEmail('long'));
      const sockets: string[] = [];
      page.on('websocket', (socket) => sockets.push(socket.url()));
      await page.getByLabel('Choose a video').setInputFiles(video);
      await page.getByRole('button', { name: 'Convert to mp3' }).click();
      await page.getByText(/^Converting… \d+%$/).waitFor({ timeout: 30_000 });
      const renewed = page.waitForResponse((r) => r.url().endsWith('/auth/refresh'), { timeout: 60_000 });

      await page.locator('#result').getByRole('link', { name: 'Download long-talk.mp3' }).waitFor({ timeout: 150_000 });

      expect((await renewed).status()).toBe(200);
      // The first socket was closed when its token expired; the watch went on over a new one.
      expect(sockets.length).toBeGreaterThanOrEqual(2);
      expect(await page.locator('#account-email').isVisible()).toBe(true);
      expect(errors).toEqual([]);
    });
    await context.close();
    await rm(dir, { recursive: true, force: true });
  }, 240_000);
});
