// The upstream side: a client connection's identity, and the process-wide hub of shared upstream subscriptions.
import { CloseCode, createClient, type Client, type ExecutionResult, type SubscribePayload } from 'graphql-ws';
import type { FormattedExecutionResult, GraphQLFormattedError } from 'graphql';
import WebSocket from 'ws';
import { REQUEST_ID_HEADER } from '@vidmp3/shared';
import type { GatewayContext } from '../context.js';
import { isRecord, isCloseEvent, refusals, sleep } from './support.js';

// ---------------------------------------------------------------------------------------------------------------
// Connection: who is calling

export interface UpstreamOptions {
  url: string;
  attempts: number;
  maxDelayMs: number;
}

export type ConnectionIdentity = Omit<GatewayContext, 'signal'>;

let anonymousConnections = 0;

export class Connection {
  /** Slots this connection's subscriptions hold in the per-user limit: all given back when it closes. */
  private readonly held = new Set<() => void>();
  private readonly expiry: NodeJS.Timeout | undefined;
  /**
   * Whose upstream subscriptions this connection may share: the user's (jobs checks ownership per user, so
   * every connection of one user sees the same events); an anonymous connection shares with no one.
   */
  readonly shareKey: string;

  constructor(
    readonly identity: ConnectionIdentity,
    socket: Pick<WebSocket, 'close'>,
  ) {
    const viewer = identity.viewer;
    this.shareKey = viewer ? `user:${viewer.userId}` : `anonymous:${++anonymousConnections}`;
    if (viewer) {
      // A socket outlives its token: when the token expires the client must come back with a fresh one.
      const delay = Math.min(Math.max(viewer.expiresAt.getTime() - Date.now(), 0), 2 ** 31 - 1);
      this.expiry = setTimeout(() => socket.close(CloseCode.Unauthorized, 'Access token expired'), delay);
      this.expiry.unref();
    }
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
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The hub: one upstream socket per user, one upstream subscription per (user, subscription), shared

/** What a client subscription hears from the feed it joined. */
export interface FeedListener {
  readonly connection: Connection;
  /** A job changed: `seq` counts this job's events on the feed, so a listener can ask for a state at least that new. */
  changed(jobId: string, seq: number): void;
  /** GraphQL errors next to (or instead of) an event. */
  errors(errors: readonly GraphQLFormattedError[]): void;
  /** The upstream subscription failed for good (after reconnection attempts, or refused). */
  failed(err: unknown): void;
  /** The upstream subscription completed (jobUpdated after a final state). */
  completed(): void;
}

/** A per-event query to run for a job, shared by every listener with the same key. */
export interface FeedQuery {
  /** Tells queries apart within a feed: the document and the variables (the viewer is the feed's). */
  key: string;
  run(jobId: string, context: GatewayContext): Promise<FormattedExecutionResult>;
}

/** One execution of a per-event query, and its result serialised once for every listener's duplicate check. */
export interface SharedResult {
  result: FormattedExecutionResult | undefined;
  error: unknown;
  json: string;
}

/** Per-event results kept per feed for listeners still catching up; the newest per (job, query) is enough. */
const MAX_RESULTS_PER_FEED = 256;

class Feed {
  readonly listeners = new Set<FeedListener>();
  private readonly seqs = new Map<string, number>();
  private readonly results = new Map<string, { seq: number; shared: Promise<SharedResult> }>();
  private readonly aborted = new AbortController();
  /** jobUpdated's job once its first event came: a listener joining later starts from its current state. */
  private currentJob: string | undefined;
  private unsubscribe: (() => void) | undefined;
  private ended = false;

  constructor(
    private readonly upstream: SharedClient,
    readonly payload: SubscribePayload,
    private readonly field: string,
    private readonly replaysCurrent: boolean,
    private readonly onEnd: () => void,
  ) {}

  start(): void {
    this.unsubscribe = this.upstream.client.subscribe<Record<string, unknown>, unknown>(this.payload, {
      next: (result: ExecutionResult<Record<string, unknown>, unknown>) => {
        const event = result.data?.[this.field];
        if (isRecord(event) && typeof event.id === 'string') {
          const seq = (this.seqs.get(event.id) ?? 0) + 1;
          this.seqs.set(event.id, seq);
          if (this.replaysCurrent) this.currentJob = event.id;
          for (const listener of this.listeners) listener.changed(event.id, seq);
        }
        if (result.errors?.length) {
          const errors = result.errors as readonly GraphQLFormattedError[];
          for (const listener of this.listeners) listener.errors(errors);
        }
      },
      error: (err) => {
        const listeners = [...this.listeners];
        this.end(false);
        for (const listener of listeners) listener.failed(err);
      },
      complete: () => {
        const listeners = [...this.listeners];
        this.end(false);
        for (const listener of listeners) listener.completed();
      },
    });
  }

  join(listener: FeedListener): void {
    this.listeners.add(listener);
    this.upstream.holders.set(listener.connection, (this.upstream.holders.get(listener.connection) ?? 0) + 1);
    // jobs sends jobUpdated's current state once, when the upstream subscription starts: a client joining a
    // feed that has had it already gets the job's current state from its own first query.
    if (this.currentJob) listener.changed(this.currentJob, this.seqs.get(this.currentJob) ?? 0);
  }

  leave(listener: FeedListener): void {
    if (!this.listeners.delete(listener)) return;
    this.unhold(listener.connection);
    if (this.listeners.size === 0) this.end(true);
  }

  private unhold(connection: Connection): void {
    const left = (this.upstream.holders.get(connection) ?? 0) - 1;
    if (left > 0) this.upstream.holders.set(connection, left);
    else this.upstream.holders.delete(connection);
  }

  /**
   * The query's result for a job at least as new as its event `seq`: one execution for every listener asking
   * for the same job, query and event (the viewer is the feed's), whoever asks first runs it.
   */
  result(jobId: string, seq: number, query: FeedQuery, identity: ConnectionIdentity): Promise<SharedResult> {
    const key = `${jobId}\n${query.key}`;
    const existing = this.results.get(key);
    if (existing && existing.seq >= seq) return existing.shared;
    const context: GatewayContext = { ...identity, signal: this.aborted.signal };
    const shared = query.run(jobId, context).then(
      (result) => ({ result, error: undefined, json: JSON.stringify(result) }),
      (error: unknown) => {
        identity.log.error({ err: error }, 'a subscription event could not be queried'); // once, not per client
        return { result: undefined, error, json: '' };
      },
    );
    // Taken at the start: the execution reads the job after every event counted so far.
    this.results.delete(key);
    this.results.set(key, { seq: this.seqs.get(jobId) ?? seq, shared });
    if (this.results.size > MAX_RESULTS_PER_FEED) {
      const oldest = this.results.keys().next().value;
      if (oldest !== undefined) this.results.delete(oldest);
    }
    return shared;
  }

  end(unsubscribe: boolean): void {
    if (this.ended) return;
    this.ended = true;
    for (const listener of this.listeners) this.unhold(listener.connection);
    this.listeners.clear();
    this.results.clear();
    this.aborted.abort();
    if (unsubscribe) this.unsubscribe?.(); // tells jobs "complete" unless it has finished already
    this.onEnd();
  }
}

/**
 * Every upstream subscription of this gateway process. Client subscriptions that would send jobs the same
 * subscription as the same user share one upstream subscription (a feed), and every user's feeds share one
 * upstream socket: 1,000 browser tabs of one user watching one job cost jobs one socket and one subscription,
 * and each event one query per distinct selection. Feeds and sockets are reference-counted: the last client
 * leaving ends the upstream subscription, and the socket closes when it has none left.
 */
export class UpstreamHub {
  private readonly clients = new Map<string, SharedClient>();
  private readonly feeds = new Map<string, Feed>();

  constructor(private readonly options: UpstreamOptions) {}

  /** Joins (or starts) the feed for this subscription; returns how to leave it. */
  join(
    listener: FeedListener,
    upstream: { payload: SubscribePayload; field: string; replaysCurrent: boolean },
  ): { leave(): void; result: Feed['result'] } {
    const shareKey = listener.connection.shareKey;
    const key = `${shareKey}\n${JSON.stringify([upstream.payload.query, upstream.payload.variables ?? null])}`;
    let feed = this.feeds.get(key);
    if (!feed) {
      const client = this.clientFor(shareKey, listener.connection);
      client.feeds++;
      const created: Feed = new Feed(client, upstream.payload, upstream.field, upstream.replaysCurrent, () => {
        if (this.feeds.get(key) === created) this.feeds.delete(key);
        if (--client.feeds === 0) this.closeClient(shareKey, client);
      });
      feed = created;
      this.feeds.set(key, feed);
      feed.join(listener);
      feed.start();
    } else {
      feed.join(listener);
    }
    const joined = feed;
    return { leave: () => joined.leave(listener), result: joined.result.bind(joined) };
  }

  /** Ends every feed (their clients have gone) and closes every upstream socket. */
  close(): void {
    for (const feed of [...this.feeds.values()]) feed.end(true);
    for (const [key, client] of [...this.clients]) this.closeClient(key, client);
  }

  private clientFor(shareKey: string, first: Connection): SharedClient {
    let client = this.clients.get(shareKey);
    if (!client) {
      client = createSharedClient(first, this.options);
      this.clients.set(shareKey, client);
    }
    return client;
  }

  private closeClient(shareKey: string, upstream: SharedClient): void {
    if (this.clients.get(shareKey) === upstream) this.clients.delete(shareKey);
    // dispose() waits for a connection attempt in progress, and rejects when it fails: nothing is left then.
    void Promise.resolve(upstream.client.dispose()).catch(() => undefined);
    // An attempt still in its handshake would otherwise stay open until jobs answers, if it ever does.
    for (const socket of upstream.sockets) if (socket.readyState === WebSocket.CONNECTING) socket.terminate();
  }
}

interface SharedClient {
  client: Client;
  /** The client's sockets not closed yet (at most one, but a closing one may linger while the next opens). */
  sockets: ReadonlySet<WebSocket>;
  /** Feeds using it: the socket is closed when none is left. */
  feeds: number;
  /** Connections using it, with their subscriptions on it: a (re)connection presents the freshest token. */
  holders: Map<Connection, number>;
}

function createSharedClient(first: Connection, options: UpstreamOptions): SharedClient {
  const holders = new Map<Connection, number>();
  const { log } = first.identity;
  // Whose credentials open the next socket: of the connections still using it, the token that expires last
  // (a reconnection after the first client's token expired must not be refused by jobs).
  const current = (): ConnectionIdentity => {
    let best: ConnectionIdentity | undefined;
    for (const { identity } of holders.keys()) {
      const expires = identity.viewer?.expiresAt.getTime() ?? 0;
      if (!best || expires > (best.viewer?.expiresAt.getTime() ?? 0)) best = identity;
    }
    return best ?? first.identity;
  };
  const sockets = new Set<WebSocket>();
  class UpstreamWebSocket extends WebSocket {
    constructor(address: string | URL, protocols?: string | string[]) {
      const { viewer, requestId, ip } = current();
      // The upgrade request carries the same headers a subgraph sees on HTTP (datasource.ts forwardedHeaders).
      const headers = {
        ...(viewer ? { authorization: `Bearer ${viewer.token}` } : {}),
        [REQUEST_ID_HEADER]: requestId,
        'x-forwarded-for': ip,
      };
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
    connectionParams: () => {
      const { viewer, requestId } = current();
      return { ...(viewer ? { authorization: `Bearer ${viewer.token}` } : {}), requestId };
    },
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
  return { client, sockets, feeds: 0, holders };
}
