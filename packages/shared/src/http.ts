import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express, NextFunction, Request, Response } from 'express';
import type { Logger } from './logger.js';

export const REQUEST_ID_HEADER = 'x-request-id';

declare module 'express-serve-static-core' {
  interface Locals {
    requestId: string;
    log: Logger;
  }
}

/**
 * Carries one request id across services: taken from the caller when it looks like one (the gateway, or a
 * trusted proxy in front of it), generated otherwise, and echoed on the response.
 */
/** A caller's request id if it looks like one, else a new one: ids end up in logs, so nothing else passes. */
export function requestIdFrom(incoming: unknown): string {
  return isRequestId(incoming) ? incoming : randomUUID();
}

/** Whether a value received from elsewhere (a header, a message) is fit to be logged as a request id. */
export const isRequestId = (value: unknown): value is string =>
  typeof value === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(value);

export function requestContext(logger: Logger) {
  return (req: Request, res: Response, next: NextFunction) => {
    const requestId = requestIdFrom(req.header(REQUEST_ID_HEADER));
    res.locals.requestId = requestId;
    res.locals.log = logger.child({ requestId });
    res.setHeader(REQUEST_ID_HEADER, requestId);
    next();
  };
}

/** One log line per request (health probes and metrics scrapes excepted), with status and duration. */
export function accessLog() {
  return (req: Request, res: Response, next: NextFunction) => {
    const path = req.originalUrl.split('?')[0] ?? '';
    if (path === '/healthz' || path === '/readyz' || path === '/metrics') return next();
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      res.locals.log.info(
        { method: req.method, path, status: res.statusCode, ms: Math.round(ms * 10) / 10 },
        'request',
      );
    });
    next();
  };
}

export type ReadinessChecks = Record<string, () => Promise<boolean>>;

/** `/healthz`: the process serves requests. `/readyz`: every dependency it needs answers. */
export function healthRoutes(app: Express, checks: ReadinessChecks): void {
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const { ready, body } = await checkReadiness(checks);
    res.status(ready ? 200 : 503).json(body);
  });
}

/**
 * Runs every readiness check at once (each given 2 s). The body names each dependency and says `ok` or
 * `unavailable`, nothing more: no addresses, no error messages.
 */
export async function checkReadiness(checks: ReadinessChecks): Promise<{
  ready: boolean;
  body: { status: 'ready' | 'unavailable'; checks: Record<string, 'ok' | 'unavailable'> };
}> {
  const names = Object.keys(checks);
  const results = await Promise.all(names.map((name) => withTimeout(checks[name]!(), 2_000).catch(() => false)));
  const detail = Object.fromEntries(
    names.map((name, i) => [name, results[i] ? ('ok' as const) : ('unavailable' as const)]),
  );
  const ready = results.every(Boolean);
  return { ready, body: { status: ready ? 'ready' : 'unavailable', checks: detail } };
}

/** Rejects with `timeout` when `promise` has not settled within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timeout')), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** Listens and resolves with the URL actually bound (port 0 picks a free port). */
export function listen(server: Server, port: number, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address() as AddressInfo;
      const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      resolve(`http://${shownHost}:${address.port}`);
    });
  });
}

/**
 * Guards service-to-service routes (`/internal/…`) with a shared bearer token, compared in constant time
 * (over fixed-length digests, so not even the token's length leaks).
 */
export function serviceTokenAuth(token: string) {
  const digest = (value: string) => createHash('sha256').update(value).digest();
  const expected = digest(`Bearer ${token}`);
  return (req: Request, res: Response, next: NextFunction) => {
    if (!timingSafeEqual(digest(req.header('authorization') ?? ''), expected)) {
      res.status(401).json({ error: 'UNAUTHENTICATED' });
      return;
    }
    next();
  };
}
