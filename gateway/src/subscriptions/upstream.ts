// The upstream side: a client connection's identity and its one graphql-ws client to the jobs subgraph.
import { CloseCode, createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { REQUEST_ID_HEADER } from '@vidmp3/shared';
import type { GatewayContext } from '../context.js';
import { isCloseEvent, refusals, sleep } from './support.js';

// ---------------------------------------------------------------------------------------------------------------
// Connection: who is calling, and its one upstream client to jobs

export interface UpstreamOptions {
  url: string;
  attempts: number;
  maxDelayMs: number;
}

type ConnectionIdentity = Omit<GatewayContext, 'signal'>;

export class Connection {
  private upstreamClient: UpstreamClient | undefined;
  /** Slots this connection's subscriptions hold in the per-user limit: all given back when it closes. */
  private readonly held = new Set<() => void>();
  private readonly expiry: NodeJS.Timeout | undefined;

  constructor(
    readonly identity: ConnectionIdentity,
    socket: WebSocket,
    private readonly upstreamOptions: UpstreamOptions,
  ) {
    const viewer = identity.viewer;
    if (viewer) {
      // A socket outlives its token: when the token expires the client must come back with a fresh one.
      const delay = Math.min(Math.max(viewer.expiresAt.getTime() - Date.now(), 0), 2 ** 31 - 1);
      this.expiry = setTimeout(() => socket.close(CloseCode.Unauthorized, 'Access token expired'), delay);
      this.expiry.unref();
    }
  }

  /** Created on the first subscription; lazy, so its socket closes when the connection has none left. */
  upstream(): Client {
    this.upstreamClient ??= createUpstreamClient(this.identity, this.upstreamOptions);
    return this.upstreamClient.client;
  }

  /**
   * Keeps a subscription's release to run when the connection closes, whatever happened to the subscription;
   * returns the release to call when it ends first (which forgets it, so a long-lived socket holds nothing).
   */
  hold(release: () => void): () => void {
    const once = () => {
      this.held.delete(once);
      release();
    };
    this.held.add(once);
    return once;
  }

  close(): void {
    clearTimeout(this.expiry);
    for (const release of this.held) release();
    this.held.clear();
    const upstream = this.upstreamClient;
    this.upstreamClient = undefined;
    if (!upstream) return;
    // dispose() waits for a connection attempt in progress, and rejects when it fails: nothing is left then.
    void Promise.resolve(upstream.client.dispose()).catch(() => undefined);
    // An attempt still in its handshake would otherwise stay open until jobs answers, if it ever does.
    for (const socket of upstream.sockets) if (socket.readyState === WebSocket.CONNECTING) socket.terminate();
  }
}

interface UpstreamClient {
  client: Client;
  /** The client's sockets not closed yet (at most one, but a closing one may linger while the next opens). */
  sockets: ReadonlySet<WebSocket>;
}

function createUpstreamClient(identity: ConnectionIdentity, options: UpstreamOptions): UpstreamClient {
  const { viewer, requestId, ip, log } = identity;
  // The upgrade request carries the same headers a subgraph sees on HTTP (datasource.ts forwardedHeaders).
  const headers = {
    ...(viewer ? { authorization: `Bearer ${viewer.token}` } : {}),
    [REQUEST_ID_HEADER]: requestId,
    'x-forwarded-for': ip,
  };
  const sockets = new Set<WebSocket>();
  class UpstreamWebSocket extends WebSocket {
    constructor(address: string | URL, protocols?: string | string[]) {
      // Without a handshake timeout, a replica that accepts the TCP connection and never answers stalls us.
      super(address, protocols, { headers, maxPayload: 1 << 20, handshakeTimeout: 10_000 });
      sockets.add(this);
      this.once('close', () => sockets.delete(this));
    }
  }
  let pongWait: NodeJS.Timeout | undefined;
  const client: Client = createClient({
    url: options.url,
    webSocketImpl: UpstreamWebSocket,
    // Browsers cannot set headers on a WebSocket, so graphql-ws servers read credentials from here.
    connectionParams: { ...(viewer ? { authorization: `Bearer ${viewer.token}` } : {}), requestId },
    lazy: true,
    connectionAckWaitTimeout: 10_000,
    // A jobs replica that restarts or is replaced must not end the client's subscription: reconnect (the
    // client resubscribes every active subscription), with a bounded backoff.
    retryAttempts: options.attempts,
    retryWait: (retries) => sleep(Math.min(100 * 2 ** retries, options.maxDelayMs) + Math.random() * 100),
    // Connection refused (the replica is down) is an error event, not a close event: retry those too. A 4403
    // is a refusal that a retry will not change; graphql-ws itself never retries 4401 and protocol errors.
    shouldRetry: (errOrClose) => !(isCloseEvent(errOrClose) && refusals.has(errOrClose.code)),
    // A replica that vanished without closing the TCP connection is noticed by a missing pong.
    keepAlive: 10_000,
    on: {
      ping: (received) => {
        if (received) return;
        pongWait = setTimeout(() => client.terminate(), 5_000);
        pongWait.unref();
      },
      pong: (received) => {
        if (received) clearTimeout(pongWait);
      },
      closed: (event) => {
        clearTimeout(pongWait);
        if (isCloseEvent(event) && event.code !== 1000) {
          log.warn({ code: event.code, reason: event.reason }, 'jobs subscription socket closed');
        }
      },
      connected: (_socket, _payload, wasRetry) => {
        if (wasRetry) log.info('jobs subscription socket reconnected');
      },
    },
  });
  return { client, sockets };
}
