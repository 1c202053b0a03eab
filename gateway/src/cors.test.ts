import express from 'express';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cors } from './cors.js';

let base: string;
let close: () => void;

beforeAll(async () => {
  const app = express();
  app.use('/graphql', cors(['https://app.example', 'http://127.0.0.1:5173']), (_req, res) => {
    res.json({ ok: true });
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  close = () => server.close();
});
afterAll(() => close());

const preflight = (origin: string) =>
  fetch(`${base}/graphql`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
  });

describe('CORS on /graphql', () => {
  it('answers an allowed origin’s preflight: its origin, the methods and headers, never credentials', async () => {
    const res = await preflight('https://app.example');
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(res.headers.get('access-control-allow-methods')).toBe('GET, POST, OPTIONS');
    expect(res.headers.get('access-control-allow-headers')).toBe(
      'authorization, content-type, apollo-require-preflight, x-apollo-operation-name, x-request-id',
    );
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
    expect(res.headers.get('vary')).toMatch(/origin/i);
  });

  it('refuses another origin’s preflight, with no CORS header', async () => {
    const res = await preflight('https://evil.example');
    expect(res.status).toBe(403);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('serves requests without CORS headers to other origins and to clients that send no Origin', async () => {
    for (const headers of [{ origin: 'https://evil.example' }, {}] as Record<string, string>[]) {
      const res = await fetch(`${base}/graphql`, { method: 'POST', headers });
      expect(await res.json()).toEqual({ ok: true });
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
    }
  });

  it('marks an allowed origin’s answer readable, with the request id exposed', async () => {
    const res = await fetch(`${base}/graphql`, { method: 'POST', headers: { origin: 'http://127.0.0.1:5173' } });
    expect(res.headers.get('access-control-allow-origin')).toBe('http://127.0.0.1:5173');
    expect(res.headers.get('access-control-expose-headers')).toBe('x-request-id');
  });

  it('allows any origin with *, still without credentials', async () => {
    const app = express();
    app.use(cors(['*']), (_req, res) => {
      res.end();
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, {
        headers: { origin: 'https://anywhere.example' },
      });
      expect(res.headers.get('access-control-allow-origin')).toBe('*');
      expect(res.headers.get('access-control-allow-credentials')).toBeNull();
    } finally {
      server.close();
    }
  });
});
