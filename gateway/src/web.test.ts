import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '@vidmp3/shared';
import { contentSecurityPolicy, webDoors } from './web.js';

const logger = createLogger('gateway-test', 'silent');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vidmp3-web-'));
  await mkdir(join(dir, 'playground'));
  await mkdir(join(dir, 'assets'));
  await writeFile(join(dir, 'index.html'), '<!doctype html><title>page</title>');
  await writeFile(join(dir, 'playground', 'index.html'), '<!doctype html><title>playground</title>');
  await writeFile(join(dir, 'assets', 'page-ABC123.js'), 'console.log(1)');
  await writeFile(join(dir, 'assets', 'playground-DEF456.js'), 'console.log(2)');
  // Stand-ins for the build's precompressed twins: their bytes show which file was sent.
  await writeFile(join(dir, 'assets', 'page-ABC123.js.br'), 'brotli bytes');
  await writeFile(join(dir, 'assets', 'page-ABC123.js.gz'), 'gzip bytes');
  await writeFile(join(dir, 'secret.txt'), 'outside the assets folder');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A gateway-like app: the web routes, then an API route standing in for /graphql. */
async function serve(options: { dir?: string; playground: boolean }) {
  const web = webDoors({ dir: options.dir ?? dir, playground: options.playground }, logger);
  const app = express();
  app.use(web.router);
  app.get('/graphql', (_req, res) => {
    res.status(400).json({ errors: [{ message: 'GET query missing.' }] });
  });
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { web, url, server };
}

const close = (server: Server) => new Promise((resolve) => server.close(resolve));

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * A raw GET: the path reaches the server exactly as written (fetch would normalise `..`), and the body comes as
 * sent (fetch would decompress it).
 */
function rawGet(url: string, path: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    request(`${url}${path}`, { path, headers }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    })
      .on('error', reject)
      .end();
  });
}

describe('the web routes', () => {
  it('names no socket host in the policy for a Host header that is not a plain host', () => {
    expect(contentSecurityPolicy('evil.example; script-src *')).toContain("connect-src 'self';");
    expect(contentSecurityPolicy(undefined)).toContain("connect-src 'self';");
    expect(contentSecurityPolicy('[::1]:4000')).toContain("connect-src 'self' ws://[::1]:4000 wss://[::1]:4000;");
  });

  it('serves the page and the playground as always-revalidated HTML under a same-origin-only CSP', async () => {
    const { url, server, web } = await serve({ playground: true });
    try {
      expect(web.servesPlayground).toBe(true);
      for (const path of ['/', '/playground', '/playground/']) {
        const res = await fetch(`${url}${path}`);
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toMatch(/^text\/html/);
        expect(res.headers.get('cache-control')).toBe('no-cache');
        expect(res.headers.get('x-content-type-options')).toBe('nosniff');
        const csp = res.headers.get('content-security-policy') ?? '';
        expect(csp).toContain("default-src 'self'");
        expect(csp).toContain("script-src 'self';");
        // Sockets to this host only: a bare ws:/wss: would let a script send the token anywhere.
        const host = new URL(url).host;
        expect(csp).toContain(`connect-src 'self' ws://${host} wss://${host};`);
        expect(csp).not.toMatch(/\bwss?:(?!\/\/)/);
        expect(csp).toContain("frame-ancestors 'none'");
      }
      expect(await (await fetch(`${url}/playground`)).text()).toContain('<title>playground</title>');
    } finally {
      await close(server);
    }
  });

  it('serves hashed assets with a year-long immutable cache, and nothing outside the assets folder', async () => {
    const { url, server } = await serve({ playground: true });
    try {
      const asset = await fetch(`${url}/assets/page-ABC123.js`);
      expect(asset.status).toBe(200);
      expect(asset.headers.get('content-type')).toMatch(/javascript/);
      expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(asset.headers.get('x-content-type-options')).toBe('nosniff');

      expect((await fetch(`${url}/assets/`)).status).toBe(404);
      expect((await fetch(`${url}/assets/missing-000.js`)).status).toBe(404);
      expect((await fetch(`${url}/assets/page-ABC123.js`, { method: 'POST' })).status).toBe(404);
      for (const path of ['/assets/../secret.txt', '/assets/%2e%2e/secret.txt', '/assets/..%2fsecret.txt']) {
        const res = await rawGet(url, path);
        expect(res.status).toBeGreaterThanOrEqual(400);
        expect(res.body).not.toContain('outside the assets folder');
      }
      expect((await fetch(`${url}/secret.txt`)).status).toBe(404);
    } finally {
      await close(server);
    }
  });

  it('sends the precompressed twin of a script to a browser that accepts it, and the file itself otherwise', async () => {
    const { url, server } = await serve({ playground: true });
    try {
      const br = await rawGet(url, '/assets/page-ABC123.js', { 'accept-encoding': 'gzip, deflate, br' });
      expect(br.status).toBe(200);
      expect(br.headers['content-encoding']).toBe('br');
      expect(br.headers['content-type']).toMatch(/javascript/);
      expect(br.headers.vary).toMatch(/accept-encoding/i);
      expect(br.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(br.body).toBe('brotli bytes');

      const gz = await rawGet(url, '/assets/page-ABC123.js', { 'accept-encoding': 'gzip' });
      expect(gz.headers['content-encoding']).toBe('gzip');
      expect(gz.body).toBe('gzip bytes');

      const plain = await rawGet(url, '/assets/page-ABC123.js', { 'accept-encoding': 'identity' });
      expect(plain.headers['content-encoding']).toBeUndefined();
      expect(plain.body).toBe('console.log(1)');
      expect((await rawGet(url, '/assets/page-ABC123.js')).body).toBe('console.log(1)');

      // No twins: the file as it is, whatever the browser accepts.
      const single = await rawGet(url, '/assets/playground-DEF456.js', { 'accept-encoding': 'br' });
      expect(single.status).toBe(200);
      expect(single.headers['content-encoding']).toBeUndefined();
      expect(single.body).toBe('console.log(2)');
    } finally {
      await close(server);
    }
  });

  it('sends a browser opening /graphql to the playground and leaves API clients alone', async () => {
    const { url, server } = await serve({ playground: true });
    try {
      const browser = await fetch(`${url}/graphql`, { headers: { accept: 'text/html' }, redirect: 'manual' });
      expect(browser.status).toBe(302);
      expect(browser.headers.get('location')).toBe('/playground');
      expect((await fetch(`${url}/graphql`, { headers: { accept: 'application/json' } })).status).toBe(400);
      expect((await fetch(`${url}/graphql?query={me{id}}`, { headers: { accept: 'text/html' } })).status).toBe(400);
    } finally {
      await close(server);
    }
  });

  it('answers 404 for the playground and its assets when PLAYGROUND is off', async () => {
    const { url, server, web } = await serve({ playground: false });
    try {
      expect(web.servesPlayground).toBe(false);
      expect((await fetch(`${url}/playground`)).status).toBe(404);
      expect((await fetch(`${url}/assets/playground-DEF456.js`)).status).toBe(404);
      expect((await fetch(`${url}/`)).status).toBe(200);
      const api = await fetch(`${url}/graphql`, { headers: { accept: 'text/html' }, redirect: 'manual' });
      expect(api.status).toBe(400);
    } finally {
      await close(server);
    }
  });

  it('keeps the API going without a web build, answering 404 for the pages', async () => {
    const { url, server, web } = await serve({ dir: join(dir, 'not-built'), playground: true });
    try {
      expect(web.servesPlayground).toBe(false);
      expect((await fetch(`${url}/`)).status).toBe(404);
      expect((await fetch(`${url}/playground`)).status).toBe(404);
      expect((await fetch(`${url}/graphql`)).status).toBe(400);
    } finally {
      await close(server);
    }
  });
});
