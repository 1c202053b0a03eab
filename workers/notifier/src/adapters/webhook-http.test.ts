import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { addressChecker, postWebhook, USER_AGENT, webhookPoster, type HttpLimits } from './webhook-http.js';

const secret = `whsec_${randomBytes(24).toString('base64')}`;
const limits: HttpLimits = { connectTimeoutMs: 2_000, timeoutMs: 2_000, maxResponseBytes: 4096 };
const loopback = { address: '127.0.0.1', family: 4 } as const;
const payload = { type: 'job.succeeded', timestamp: '2026-12-06T12:00:00.000Z', data: { id: 'job-1' } };

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

/** A receiver on 127.0.0.1 answering with `respond`; returns its port and what it received. */
async function receiver(respond: (req: IncomingMessage, res: ServerResponse) => void) {
  const received: Received[] = [];
  server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      respond(req, res);
    });
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, received };
}

const send = (url: string, overrides: Partial<HttpLimits> = {}) =>
  webhookPoster(async () => loopback, { ...limits, ...overrides })({ url, secret }, { eventId: 'evt-1', payload });

describe('sending a webhook', () => {
  it('POSTs the JSON body with Standard Webhooks headers that the standardwebhooks package verifies', async () => {
    const { port, received } = await receiver((_req, res) => res.writeHead(204).end());
    // A name that resolves nowhere: the connection goes to the checked address, and the Host stays the URL's.
    const result = await send(`http://receiver.invalid:${port}/hooks?x=1`);

    expect(result).toEqual({ ok: true, status: 204, error: null });
    expect(received).toHaveLength(1);
    const [request] = received;
    expect(request).toMatchObject({ method: 'POST', url: '/hooks?x=1' });
    expect(request?.headers).toMatchObject({
      host: `receiver.invalid:${port}`,
      'content-type': 'application/json',
      'user-agent': USER_AGENT,
      'webhook-id': 'evt-1',
    });
    expect(JSON.parse(request?.body ?? '')).toEqual(payload);
    const headers = request?.headers as Record<string, string>;
    expect(new Webhook(secret).verify(request?.body ?? '', headers)).toEqual(payload);
    expect(Math.abs(Number(headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(5);
    // Signed with this secret only.
    const other = `whsec_${randomBytes(24).toString('base64')}`;
    expect(() => new Webhook(other).verify(request?.body ?? '', headers)).toThrow(/signature/i);
  });

  it('fails an attempt the receiver answers with an error status, keeping the status', async () => {
    const { port } = await receiver((_req, res) => res.writeHead(503).end('busy'));
    expect(await send(`http://127.0.0.1:${port}/`)).toEqual({
      ok: false,
      status: 503,
      error: 'the receiver answered 503',
    });
  });

  it('does not follow a redirect: a 3xx fails the attempt and the new location is never asked', async () => {
    const { port, received } = await receiver((req, res) => {
      if (req.url === '/moved') res.writeHead(200).end();
      else res.writeHead(307, { location: `/moved` }).end();
    });
    const result = await send(`http://127.0.0.1:${port}/hook`);
    expect(result).toMatchObject({ ok: false, status: 307 });
    expect(result.error).toMatch(/redirect/);
    expect(received.map((r) => r.url)).toEqual(['/hook']);
  });

  it('reads no more than the cap of a response that never ends', async () => {
    let written = 0;
    await receiver((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const chunk = Buffer.alloc(1024, 'x');
      const timer = setInterval(() => {
        written += chunk.length;
        res.write(chunk);
      }, 5);
      res.on('close', () => clearInterval(timer));
    });
    const port = (server?.address() as AddressInfo).port;
    const started = Date.now();
    const result = await send(`http://127.0.0.1:${port}/`, { timeoutMs: 5_000 });
    expect(result).toEqual({ ok: true, status: 200, error: null });
    // Stopped at the cap (4 KiB), long before the timeout: a few chunks, not the seconds of them.
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(written).toBeLessThan(64 * 1024);
  });

  it('gives up on a receiver that does not answer in time', async () => {
    const { port } = await receiver(() => undefined); // never answers
    const started = Date.now();
    const result = await send(`http://127.0.0.1:${port}/`, { timeoutMs: 300 });
    expect(result).toEqual({ ok: false, status: null, error: 'no answer within 300 ms' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('reports a refused connection as a failed attempt', async () => {
    const { port } = await receiver((_req, res) => res.end());
    await new Promise((resolve) => server?.close(resolve));
    const result = await postWebhook(`http://127.0.0.1:${port}/`, loopback, {}, '{}', limits);
    expect(result).toMatchObject({ ok: false, status: null });
    expect(result.error).toMatch(/ECONNREFUSED/);
  });

  it('sends nothing when the secret cannot sign', async () => {
    const { port, received } = await receiver((_req, res) => res.end());
    const post = webhookPoster(async () => loopback, limits);
    const result = await post({ url: `http://127.0.0.1:${port}/`, secret: 'whsec_@@@' }, { eventId: 'e', payload });
    expect(result).toEqual({ ok: false, status: null, error: 'the webhook’s signing secret is unusable' });
    expect(received).toEqual([]);
  });

  it('sends nothing to a target the check refuses', async () => {
    const { port, received } = await receiver((_req, res) => res.end());
    const post = webhookPoster(addressChecker({ allowLoopback: false, allowHttp: true }), limits);
    const result = await post({ url: `http://127.0.0.1:${port}/`, secret }, { eventId: 'evt-1', payload });
    expect(result).toMatchObject({ ok: false, status: null });
    expect(result.error).toMatch(/127\.0\.0\.1 is not a public/);
    expect(received).toEqual([]);
  });
});

describe('the check before every attempt (shared’s, as users applies it)', () => {
  it('connects to the checked address: loopback only when allowed, http only when allowed', async () => {
    const lenient = addressChecker({ allowLoopback: true, allowHttp: true });
    expect(await lenient('http://127.0.0.1:8080/')).toEqual({ address: '127.0.0.1', family: 4 });
    expect(await lenient('http://[::1]:8080/')).toEqual({ address: '::1', family: 6 });
    await expect(lenient('http://169.254.169.254/latest/meta-data')).rejects.toThrow(/not a public/);
    await expect(addressChecker({ allowLoopback: true, allowHttp: false })('http://127.0.0.1/')).rejects.toThrow(
      /https/,
    );
  });
});
