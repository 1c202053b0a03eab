// Headless Chromium (Debian's package) driven by playwright-core, with what every browser test checks: no
// request leaves the gateway's origin, and nothing is logged as an error on the page.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';
/** Screenshots are kept as test artifacts (gitignored). */
export const SCREENSHOTS_DIR = fileURLToPath(new URL('../../artifacts/screenshots/', import.meta.url));

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
}

export interface WatchedPage {
  context: BrowserContext;
  page: Page;
  /** Every request (WebSockets included) to anywhere but the gateway's origin. */
  offOrigin: string[];
  /** Console errors and uncaught exceptions. */
  errors: string[];
}

export async function openPage(
  browser: Browser,
  origin: string,
  viewport = { width: 1280, height: 900 },
): Promise<WatchedPage> {
  const context = await browser.newContext({ acceptDownloads: true, viewport });
  const page = await context.newPage();
  const offOrigin: string[] = [];
  const errors: string[] = [];
  const host = new URL(origin).host;
  const check = (url: string) => {
    const parsed = new URL(url);
    if (parsed.protocol === 'data:' || parsed.protocol === 'blob:') return;
    if (parsed.host !== host || !/^(https?|wss?):$/.test(parsed.protocol)) offOrigin.push(url);
  };
  page.on('request', (request) => check(request.url()));
  page.on('websocket', (socket) => check(socket.url()));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`${message.text()} (${message.location().url})`);
  });
  page.on('pageerror', (error) => errors.push(`uncaught: ${error.message}`));
  return { context, page, offOrigin, errors };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(SCREENSHOTS_DIR, { recursive: true });
  const path = join(SCREENSHOTS_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
