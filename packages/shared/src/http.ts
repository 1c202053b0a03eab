import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express, NextFunction, Request, RequestHandler, Response } from 'express';
import { z } from 'zod';
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

/**
 * How long a request body may take to arrive, for every HTTP service (spread into each `config.ts`). Node's own
 * default cut every request at 300 s, so an upload slower than 7 MB/s of a 2 GiB file was lost (issue #10,
 * defect 3). Instead: a body gets a base time, extended as its bytes arrive (a second per
 * UPLOAD_MIN_BYTES_PER_SECOND received, as Apache's `RequestReadTimeout … MinRate`), so a slow but steady
 * upload completes whatever its length, while one that stalls, or trickles to hold a connection, is cut.
 */
export const httpTimeoutSettings = {
  /** Every request body gets this long to arrive, plus a second per UPLOAD_MIN_BYTES_PER_SECOND received. */
  REQUEST_BODY_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(86_400).default(60),
  /** The slowest sustained upload rate accepted (after the base time above). */
  UPLOAD_MIN_BYTES_PER_SECOND: z.coerce
    .number()
    .int()
    .min(1)
    .default(128 * 1024),
  /** A request body from which no byte arrives for this long is cut. */
  UPLOAD_IDLE_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(86_400).default(60),
};

export interface HttpTimeouts {
  bodyBaseMs: number;
  minBytesPerSecond: number;
  idleMs: number;
  /** The largest body the service accepts (its upload limit), for the server's absolute backstop. */
  maxBodyBytes: number;
}

type TimeoutConfig = { [K in keyof typeof httpTimeoutSettings]: z.output<(typeof httpTimeoutSettings)[K]> };

/** A service's timeout settings, with the largest body it accepts (its upload limit, else the JSON limit). */
export function httpTimeouts(config: TimeoutConfig, maxBodyBytes = 1024 * 1024): HttpTimeouts {
  return {
    bodyBaseMs: config.REQUEST_BODY_TIMEOUT_SECONDS * 1000,
    minBytesPerSecond: config.UPLOAD_MIN_BYTES_PER_SECOND,
    idleMs: config.UPLOAD_IDLE_TIMEOUT_SECONDS * 1000,
    maxBodyBytes,
  };
}

export const defaultHttpTimeouts = (maxBodyBytes?: number): HttpTimeouts =>
  httpTimeouts(z.object(httpTimeoutSettings).parse({}), maxBodyBytes);

/** How long every server keeps an idle keep-alive connection: above every client's idle timeout. */
export const SERVER_KEEP_ALIVE_TIMEOUT_MS = 65_000;

/**
 * Node's whole-request limit, as an absolute backstop behind `requestBodyDeadline`: the time the largest
 * accepted body takes at the minimum rate, plus the base twice over (multipart framing, headers).
 */
export function applyServerTimeouts(server: Server, timeouts: HttpTimeouts): void {
  // An idle keep-alive connection is kept longer than any of our clients keeps one (the gateway's subgraph
  // client: SUBGRAPH_IDLE_TIMEOUT_SECONDS, 30 s), so the server never closes a socket just as a client reuses
  // it: Node's 5 s default lost that race under load ("socket hang up", ECONNRESET). Headers get a little
  // more than the keep-alive time, as Node advises (nodejs/node#27363).
  server.keepAliveTimeout = SERVER_KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = SERVER_KEEP_ALIVE_TIMEOUT_MS + 1_000;
  const slowest = Math.ceil((timeouts.maxBodyBytes / timeouts.minBytesPerSecond) * 1000);
  server.requestTimeout = Math.max(server.headersTimeout, slowest + 2 * timeouts.bodyBaseMs);
}

/** What `requestBodyDeadline` decided about a request body so far: keep reading, or why to cut it. */
export function bodyVerdict(
  state: { elapsedMs: number; sinceProgressMs: number; excusedMs: number; bytes: number },
  timeouts: HttpTimeouts,
): 'ok' | 'idle' | 'too-slow' {
  if (state.sinceProgressMs >= timeouts.idleMs) return 'idle';
  const allowedMs = timeouts.bodyBaseMs + (state.bytes / timeouts.minBytesPerSecond) * 1000 + state.excusedMs;
  return state.elapsedMs > allowedMs ? 'too-slow' : 'ok';
}

/**
 * Cuts a request whose body stalls (no byte for `idleMs`) or trickles (below the minimum rate once the base
 * time is spent). Bytes are read off the socket's counter on a timer: listening to the body itself would
 * change how it flows. Time the service itself holds the body back (the reader is paused: media is slower than
 * the client) is not the client's, and is excused.
 */
export function requestBodyDeadline(timeouts: HttpTimeouts): RequestHandler {
  const tickMs = Math.min(1_000, timeouts.idleMs, timeouts.bodyBaseMs);
  return (req, res, next) => {
    const length = req.headers['content-length'];
    const hasBody = req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
    if (!hasBody || req.complete) return next();
    const socket = req.socket;
    const startBytes = socket.bytesRead;
    const started = Date.now();
    let last = { at: started, bytes: startBytes };
    let excusedMs = 0;
    const timer = setInterval(() => {
      if (req.complete || socket.destroyed) {
        clearInterval(timer);
        return;
      }
      const now = Date.now();
      const bytes = socket.bytesRead;
      const heldBack = req.readableFlowing !== true || req.readableLength > 0;
      if (bytes > last.bytes || heldBack) {
        if (heldBack) excusedMs += now - last.at;
        last = { at: now, bytes };
      }
      const verdict = bodyVerdict(
        { elapsedMs: now - started, sinceProgressMs: now - last.at, excusedMs, bytes: bytes - startBytes },
        timeouts,
      );
      if (verdict === 'ok') return;
      clearInterval(timer);
      res.locals.log.warn(
        { reason: verdict, receivedBytes: bytes - startBytes, ms: now - started },
        verdict === 'idle' ? 'request body stalled; connection cut' : 'request body too slow; connection cut',
      );
      socket.destroy();
    }, tickMs);
    timer.unref();
    // 'end' and 'close' listeners leave the body's flow alone ('data' would start it). All three go with the
    // request: a kept-alive socket serves many requests, and a listener left on it per request would pile up
    // for the connection's life.
    const stop = () => {
      clearInterval(timer);
      req.off('end', stop);
      res.off('close', stop);
      socket.off('close', stop);
    };
    req.once('end', stop);
    res.once('close', stop);
    socket.once('close', stop);
    next();
  };
}

/**
 * A request answered before its body was read — an upload refused for its token, its first bytes or its size
 * — must not leave that body in the connection: on a kept-alive connection the next request (another user's
 * upload, when the caller is the gateway) would queue behind the unread bytes and fail (issue #10, defect 8).
 * Such an answer says `Connection: close`; what the client still sends is then read and discarded for at most
 * `lingerMs` (closing at once, with unread bytes, would reset the connection and could lose the answer).
 */
export function closeAfterEarlyAnswer(lingerMs = 5_000): RequestHandler {
  return (req, res, next) => {
    const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => Response;
    res.writeHead = function (...args: unknown[]) {
      if (!req.complete && !res.headersSent) {
        res.setHeader('connection', 'close');
        // Node destroys a `Connection: close` socket as soon as the answer is written: with the client's bytes
        // still arriving, that is a reset. Half-close instead; the linger below ends the connection.
        const socket = req.socket;
        socket.destroySoon = () => void socket.end();
      }
      return writeHead(...args);
    } as typeof res.writeHead;
    res.once('finish', () => {
      if (req.readableEnded) return;
      req.unpipe();
      req.resume();
      if (req.complete) return;
      const timer = setTimeout(() => req.socket.destroy(), lingerMs);
      timer.unref();
      req.socket.once('close', () => clearTimeout(timer));
    });
    next();
  };
}
