/// <reference lib="dom" />
// The conversion page in a real browser against the whole system: from sign-up to a downloaded mp3.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORD, uniqueEmail } from '../client.js';
import { probeAudio, sample, sampleDurationSeconds } from '../fixtures.js';
import { startSystem, type System } from '../harness.js';
import { launchBrowser, openPage, screenshot } from './browser.js';

let system: System;
let browser: Browser;
let downloads: string;

beforeAll(async () => {
  [system, browser, downloads] = await Promise.all([
    // The worker reads its input at real time, so the page has a 3-second conversion to show progress of.
    // One conversion per user and hour: each test's user converts once, and the usage test runs into the limit.
    startSystem({ worker: { READRATE: '1' }, jobs: { MAX_CONVERSIONS_PER_HOUR: '1' } }, { workers: 1 }),
    launchBrowser(),
    mkdtemp(join(tmpdir(), 'vidmp3-downloads-')),
  ]);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await system?.stop();
  if (downloads) await rm(downloads, { recursive: true, force: true });
}, 60_000);

/** Presses Tab until the element with this id has the focus, as a keyboard user would; fails if it never does. */
async function tabTo(page: Page, id: string): Promise<void> {
  for (let presses = 0; presses < 20; presses++) {
    if ((await page.evaluate(() => document.activeElement?.id)) === id) return;
    await page.keyboard.press('Tab');
  }
  throw new Error(`#${id} cannot be reached with the Tab key`);
}

describe('the conversion page', () => {
  it('signs up, converts a real video with live progress, downloads the mp3 and explains a rejected file', async () => {
    const { page, context, offOrigin, errors } = await openPage(browser, system.gatewayUrl);
    try {
      await page.goto(`${system.gatewayUrl}/`);

      // Sign up through the form.
      const email = uniqueEmail('web');
      await page.getByLabel('Email', { exact: true }).fill(email);
      await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
      await page.getByRole('button', { name: 'Create account' }).click();
      await page.getByRole('heading', { name: 'Convert a video' }).waitFor();
      expect(await page.locator('#account-email').innerText()).toBe(email);
      // Keyboard users land on the file picker (the drop zone's input), ready to press Enter.
      expect(await page.evaluate(() => document.activeElement?.id)).toBe('file');

      // Everything the status line says is recorded, so that short-lived states can be checked afterwards.
      await page.evaluate(() => {
        const status = document.getElementById('status')!;
        const said: string[] = [];
        (window as unknown as { said: string[] }).said = said;
        new MutationObserver(() => said.push(status.textContent ?? '')).observe(status, {
          childList: true,
          characterData: true,
          subtree: true,
        });
      });

      // Choose a real video and convert it.
      const video = await sample('moov-at-end.mp4');
      await page.getByLabel('Choose a video').setInputFiles(video);
      expect(await page.locator('#file-name').innerText()).toContain('moov-at-end.mp4');
      await page.getByLabel('Quality').selectOption('128');
      await page.getByRole('button', { name: 'Convert to mp3' }).click();

      const downloadLink = page.locator('#result').getByRole('link', { name: 'Download moov-at-end.mp3' });
      await downloadLink.waitFor({ timeout: 60_000 });
      const said = await page.evaluate(() => (window as unknown as { said: string[] }).said);
      // The upload's percentage came from the upload's progress events, and the conversion's from the live updates.
      expect(said.some((s) => /^Uploading moov-at-end\.mp4… \d+%$/.test(s))).toBe(true);
      expect(said.some((s) => /^Converting… [1-9]\d?%$/.test(s))).toBe(true);
      expect(await page.locator('#status').innerText()).toMatch(/^Done: moov-at-end\.mp3 is ready/);
      expect(await page.locator('#upload-progress').evaluate((p: HTMLProgressElement) => p.value)).toBe(1);
      expect(await page.locator('#convert-progress').evaluate((p: HTMLProgressElement) => p.value)).toBe(1);

      // Download it as a person would, and check it is the mp3 of the whole video.
      const [download] = await Promise.all([page.waitForEvent('download'), downloadLink.click()]);
      expect(download.suggestedFilename()).toBe('moov-at-end.mp3');
      const saved = join(downloads, download.suggestedFilename());
      await download.saveAs(saved);
      const { codec, duration } = await probeAudio(saved);
      expect(codec).toBe('mp3');
      expect(duration).toBeGreaterThan(sampleDurationSeconds - 0.5);
      expect(duration).toBeLessThan(sampleDurationSeconds + 0.5);

      // The finished job is listed, with its own download link.
      const row = page.locator('#jobs li', { hasText: 'moov-at-end.mp4' });
      await row.getByText('Done').waitFor();
      expect(await row.getByRole('link', { name: 'Download moov-at-end.mp3' }).count()).toBe(1);
      await screenshot(page, 'page-desktop');

      // A file that is not a video is refused with a sentence a person understands.
      await page.getByLabel('Choose a video').setInputFiles(await sample('text.mp4'));
      await page.getByRole('button', { name: 'Convert to mp3' }).click();
      const status = page.locator('#status.problem');
      await status.waitFor({ timeout: 20_000 });
      expect(await status.innerText()).toMatch(/^This file isn't a video with an audio track/);
      expect(await page.getByRole('link', { name: /^Download/ }).count()).toBe(1); // only the listed mp3

      // A file dropped on the zone is chosen; one dropped beside it is not opened by the browser in place of the page.
      const dropped = await page.evaluate(() => {
        const drop = (target: Element) => {
          const data = new DataTransfer();
          data.items.add(new File(['not yet a video'], 'dropped.mp4', { type: 'video/mp4' }));
          const event = new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true });
          target.dispatchEvent(event);
          return event.defaultPrevented;
        };
        return { zone: drop(document.getElementById('drop')!), beside: drop(document.body) };
      });
      expect(dropped).toEqual({ zone: true, beside: true });
      expect(await page.locator('#file-name').innerText()).toContain('dropped.mp4');
      expect(await page.getByRole('button', { name: 'Convert to mp3' }).isEnabled()).toBe(true);

      // At phone width nothing needs sideways scrolling.
      await page.setViewportSize({ width: 360, height: 780 });
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
      await screenshot(page, 'page-phone');

      // Logging out forgets the session.
      await page.getByRole('button', { name: 'Log out' }).click();
      await page.getByRole('heading', { name: 'Log in' }).waitFor();
      expect(await page.evaluate(() => localStorage.getItem('vidmp3.session'))).toBeNull();

      expect(offOrigin).toEqual([]);
      expect(errors).toEqual([]);
    } catch (error) {
      await screenshot(page, 'page-failure-convert').catch(() => undefined); // what the page showed when it failed
      throw error;
    } finally {
      await context.close();
    }
  }, 120_000);
  it('can be used with the keyboard alone, from sign-up to the downloaded mp3', async () => {
    const { page, context, errors } = await openPage(browser, system.gatewayUrl);
    try {
      // Playwright turns on file-chooser interception with a message it does not wait for; a key pressed right
      // after it can open the picker before interception is on, and the event never comes (about half the time
      // here). Listening from the start leaves many round trips in between.
      const chooserOpened = page.waitForEvent('filechooser', { timeout: 60_000 });
      chooserOpened.catch(() => {}); // awaited below; this only keeps an early failure from being reported twice
      await page.goto(`${system.gatewayUrl}/`);
      await page.getByRole('heading', { name: 'Log in' }).waitFor();

      await tabTo(page, 'email');
      await page.keyboard.type(uniqueEmail('keys'));
      await tabTo(page, 'password');
      await page.keyboard.type(PASSWORD);
      await tabTo(page, 'signup');
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { name: 'Convert a video' }).waitFor();

      // The file picker opens from the keyboard, like any button.
      await tabTo(page, 'file');
      await page.keyboard.press('Enter');
      const chooser = await chooserOpened;
      await chooser.setFiles(await sample('faststart.mp4'));
      await tabTo(page, 'start');
      await page.keyboard.press('Enter');

      const link = page.locator('#result').getByRole('link', { name: 'Download faststart.mp3' });
      await link.waitFor({ timeout: 60_000 });
      await tabTo(page, 'download');
      const [download] = await Promise.all([page.waitForEvent('download'), page.keyboard.press('Enter')]);
      expect(download.suggestedFilename()).toBe('faststart.mp3');
      expect(errors).toEqual([]);
    } catch (error) {
      await screenshot(page, 'page-failure-keyboard').catch(() => undefined); // what the page showed when it failed
      throw error;
    } finally {
      await context.close();
    }
  }, 120_000);

  it("shows the user's usage, updates it after an upload and a conversion, and says which limit stops the next", async () => {
    const { page, context, errors } = await openPage(browser, system.gatewayUrl);
    try {
      await page.goto(`${system.gatewayUrl}/`);
      await page.getByLabel('Email', { exact: true }).fill(uniqueEmail('usage'));
      await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
      await page.getByRole('button', { name: 'Create account' }).click();
      const usage = page.locator('#usage');
      await usage.waitFor();
      expect(await usage.innerText()).toMatch(
        /^Storage 0 B of \d+(\.\d)? [KMGT]B · 0 of \d+ conversions running · 0 of 1 this hour$/,
      );

      await page.getByLabel('Choose a video').setInputFiles(await sample('faststart.mp4'));
      await page.getByRole('button', { name: 'Convert to mp3' }).click();
      await page.locator('#result').getByRole('link', { name: 'Download faststart.mp3' }).waitFor({ timeout: 60_000 });
      // The video and its mp3 are stored now, and the conversion is counted.
      await page.waitForFunction(() =>
        / · 1 of 1 this hour$/.test(document.getElementById('usage')!.textContent ?? ''),
      );
      expect(await usage.innerText()).toMatch(/^Storage [1-9][\d.]* [KMGT]?B of .* · 0 of \d+ conversions running/);
      expect(await usage.getAttribute('class')).toContain('near-limit');

      // The next conversion is over the hourly limit: the page says so with the figures.
      await page.getByLabel('Choose a video').setInputFiles(await sample('moov-at-end.mp4'));
      await page.getByRole('button', { name: 'Convert to mp3' }).click();
      const status = page.locator('#status.problem');
      await status.waitFor({ timeout: 30_000 });
      expect(await status.innerText()).toMatch(/^Hourly conversion limit reached: 1 of 1 in the last hour/);
      expect(errors).toEqual([]);
    } catch (error) {
      await screenshot(page, 'page-failure-usage').catch(() => undefined); // what the page showed when it failed
      throw error;
    } finally {
      await context.close();
    }
  }, 120_000);
});
