// Small helpers shared by the subscription modules: authentication, origins, request id, client address, errors.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { CloseCode } from 'graphql-ws';
import { ErrorCode, REQUEST_ID_HEADER, userError, type TokenVerifier, type Viewer } from '@vidmp3/shared';
import type { SubscriptionServerOptions } from './server.js';

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

export async function authenticate(
  verifier: TokenVerifier,
  params: Readonly<Record<string, unknown>> | undefined,
  clientAddress?: string,
): Promise<Viewer | null> {
  const authorization = params?.authorization ?? params?.Authorization;
  const token = params?.token;
  if (typeof authorization === 'string' && authorization !== '') {
    return verifier.authenticate(authorization, clientAddress);
  }
  if (typeof token === 'string' && token !== '') return verifier.verify(token, clientAddress);
  if (isMissing(authorization) && isMissing(token)) return null;
  throw userError(ErrorCode.UNAUTHENTICATED, 'Invalid access token: expected "authorization: Bearer <token>"');
}

const isMissing = (value: unknown) => value === undefined || value === null || value === '';

export function originMatcher(allowed: readonly string[]): (origin: string | undefined) => boolean {
  if (allowed.includes('*')) return () => true;
  const origins = new Set(allowed.map(normalizeOrigin));
  // No Origin header: not a browser, so no page of another site can be speaking through it.
  return (origin) => origin === undefined || origins.has(normalizeOrigin(origin));
}

function normalizeOrigin(origin: string): string {
  return URL.canParse(origin) ? new URL(origin).origin : origin.toLowerCase();
}

/** A well-formed request id from the caller (a proxy in front), else a new one, as on HTTP (shared http.ts). */
export function incomingRequestId(request: IncomingMessage): string {
  const incoming = request.headers[REQUEST_ID_HEADER];
  return typeof incoming === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(incoming) ? incoming : randomUUID();
}

/** The client's address the way Express computes `req.ip` (proxy-addr): walk X-Forwarded-For while trusted. */
export function clientAddress(request: IncomingMessage, trust: SubscriptionServerOptions['trustProxy']): string {
  const socketAddress = request.socket.remoteAddress ?? 'unknown';
  const forwarded = request.headers['x-forwarded-for'];
  if (!trust || typeof forwarded !== 'string') return socketAddress;
  const hops = [
    socketAddress,
    ...forwarded
      .split(',')
      .map((a) => a.trim())
      .filter(Boolean)
      .reverse(),
  ];
  for (let i = 0; i < hops.length - 1; i++) if (!trust(hops[i]!, i)) return hops[i]!;
  return hops[hops.length - 1]!;
}

/**
 * Open sockets or active subscriptions per key (a user, an address), in this process only. `acquire` either
 * takes a slot and returns its release (safe to call more than once) or refuses when the key is at the limit.
 */
export class SlotCounter {
  private readonly counts = new Map<string, number>();

  constructor(readonly limit: number) {}

  used(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  acquire(key: string): (() => void) | undefined {
    const used = this.used(key);
    if (used >= this.limit) return undefined;
    this.counts.set(key, used + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = this.used(key) - 1;
      // Keys at zero are dropped: a map of every address ever seen would grow without bound.
      if (left > 0) this.counts.set(key, left);
      else this.counts.delete(key);
    };
  }
}

/**
 * The close code for "too many connections". 4429 is graphql-ws's TooManyInitialisationRequests, which
 * graphql-ws clients (and the SDK) treat as fatal: a refused client does not reconnect in a loop.
 */
export const TOO_MANY_CONNECTIONS = 4429;

export function withCode(err: unknown, code: string): GraphQLError {
  if (!(err instanceof GraphQLError)) return internalError(err);
  return new GraphQLError(err.message, {
    nodes: err.nodes,
    source: err.source,
    positions: err.positions,
    originalError: err,
    extensions: { ...err.extensions, code },
  });
}

export const badRequest = (message: string) => new GraphQLError(message, { extensions: { code: 'BAD_REQUEST' } });

export function internalError(err: unknown, message = err instanceof Error ? err.message : String(err)): GraphQLError {
  return new GraphQLError(message, {
    extensions: { code: ErrorCode.INTERNAL },
    ...(err instanceof Error ? { originalError: err } : {}),
  });
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

export function isFormattedError(value: unknown): value is GraphQLFormattedError {
  return isRecord(value) && typeof value.message === 'string';
}

/** Close codes of a server refusing the credentials (or the caller): retrying will not change its mind. */
export const refusals: ReadonlySet<number> = new Set([CloseCode.Unauthorized, CloseCode.Forbidden]);

export function isCloseEvent(value: unknown): value is { code: number; reason: string } {
  return isRecord(value) && typeof value.code === 'number' && 'reason' in value;
}

/** A short close reason: the WebSocket protocol allows 123 bytes. */
export function closeReason(message: string): string {
  return Buffer.byteLength(message) <= 123 ? message : `${message.slice(0, 100)}…`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
