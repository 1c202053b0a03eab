// The upstream side: a client connection's identity, and the process-wide hub of shared upstream subscriptions.
import { randomUUID } from 'node:crypto';
import { CloseCode, createClient, type Client, type ExecutionResult, type SubscribePayload } from 'graphql-ws';
import type { FormattedExecutionResult, GraphQLFormattedError } from 'graphql';
import WebSocket from 'ws';
import { REQUEST_ID_HEADER, type Logger } from '@vidmp3/shared';
import type { GatewayContext } from '../context.js';
import { carriedJob, type CarriedJob } from './carry.js';
import { isRecord, isCloseEvent, refusals, sleep } from './support.js';

// ---------------------------------------------------------------------------------------------------------------
// Connection: who is calling

export interface UpstreamOptions {
  url: string;
  attempts: number;
  maxDelayMs: number;
  /** Sockets to jobs per gateway process; users are spread over them (a few sockets spread over jobs replicas). */
  sockets: number;
  log: Logger;
}

export type ConnectionIdentity = Omit<GatewayContext, 'signal'>;

let anonymousConnections = 0;

export class Connection {
  /** Slots this connection's subscriptions hold in the per-user limit: all given back when it closes. */
  private readonly held = new Set<() => void>();
  private readonly expiry: NodeJS.Timeout | undefined;
  /**
   * Whose upstream subscriptions this connection may share: the user's (jobs checks ownership per user, so
   * every connection of one user sees the same events); an anonymous connection shares with no one. (Sockets
   * to jobs are shared by everyone: each upstream subscription carries its own caller's token.)
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
// The hub: a few upstream sockets per gateway, one upstream subscription per (user, subscription), shared

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

/** What a client subscription asks of the hub: the upstream subscription, and what its events carry. */
export interface UpstreamSubscription {
  payload: SubscribePayload;
  field: string;
  /** jobUpdated starts with the job's current state; myJobUpdates does not. */
  replaysCurrent: boolean;
  /** Set when events carry the jobs fields of the per-event query's jobs fetch (carry.ts). */
  carried?: { fetch: string; idVariable: string };
}

/** Per-event results (and carried jobs) kept per feed for listeners still catching up; the newest is enough. */
const MAX_RESULTS_PER_FEED = 256;

class Feed {
  readonly listeners = new Set<FeedListener>();
  /** Sent to jobs: the subscription with its caller's credentials, read at every (re)subscription. */
  readonly payload: SubscribePayload;
  private readonly seqs = new Map<string, number>();
  private readonly results = new Map<string, { seq: number; shared: Promise<SharedResult> }>();
  /** The latest event's jobs fields per job, when events carry them. */
  private readonly carried = new Map<string, Record<string, unknown>>();
  private readonly aborted = new AbortController();
  /** jobUpdated's job once its first event came: a listener joining later starts from its current state. */
  private currentJob: string | undefined;
  private unsubscribe: (() => void) | undefined;
  private ended = false;

  constructor(
    private readonly upstream: SharedClient,
    private readonly subscription: UpstreamSubscription,
    private readonly first: ConnectionIdentity,
    private readonly onEnd: () => void,
  ) {
    const caller = () => this.caller();
    this.payload = {
      ...subscription.payload,
      // Getters: graphql-ws serialises the payload again when it resubscribes after a reconnection, by which
      // time the first listener's token may have expired; the freshest token of those still listening goes.
      extensions: {
        get authorization() {
          const { viewer } = caller();
          return viewer ? `Bearer ${viewer.token}` : undefined;
        },
        get requestId() {
          return caller().requestId;
        },
      },
    };
  }

  /** Of the connections listening, the one whose token expires last (the first one's when none is left). */
  private caller(): ConnectionIdentity {
    let best: ConnectionIdentity | undefined;
    for (const { connection } of this.listeners) {
      const expires = connection.identity.viewer?.expiresAt.getTime() ?? 0;
      if (!best || expires > (best.viewer?.expiresAt.getTime() ?? 0)) best = connection.identity;
    }
    return best ?? this.first;
  }

  start(): void {
    const { field, carried, replaysCurrent } = this.subscription;
    this.unsubscribe = this.upstream.client.subscribe<Record<string, unknown>, unknown>(this.payload, {
      next: (result: ExecutionResult<Record<string, unknown>, unknown>) => {
        const event = result.data?.[field];
        const job = isRecord(event) ? (carried ? carriedJob(event) : jobId(event)) : undefined;
        if (job) {
          const seq = (this.seqs.get(job.id) ?? 0) + 1;
          this.seqs.set(job.id, seq);
          // A partial event is not carried: its query fetches the jobs fields again and reports the errors.
          this.carried.delete(job.id);
          if (job.data && !result.errors?.length) {
            this.carried.set(job.id, job.data);
            this.trim(this.carried);
          }
          if (replaysCurrent) this.currentJob = job.id;
          for (const listener of this.listeners) listener.changed(job.id, seq);
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
    // jobs sends jobUpdated's current state once, when the upstream subscription starts: a client joining a
    // feed that has had it already gets the job's current state from its own first query.
    if (this.currentJob) listener.changed(this.currentJob, this.seqs.get(this.currentJob) ?? 0);
  }

  leave(listener: FeedListener): void {
    if (!this.listeners.delete(listener)) return;
    if (this.listeners.size === 0) this.end(true);
  }

  /**
   * The query's result for a job at least as new as its event `seq`: one execution for every listener asking
   * for the same job, query and event (the viewer is the feed's), whoever asks first runs it.
   */
  result(jobId: string, seq: number, query: FeedQuery, identity: ConnectionIdentity): Promise<SharedResult> {
    const key = `${jobId}\n${query.key}`;
    const existing = this.results.get(key);
    if (existing && existing.seq >= seq) return existing.shared;
    const data = this.carried.get(jobId);
    const { carried } = this.subscription;
    const context: GatewayContext = {
      ...identity,
      signal: this.aborted.signal,
      ...(carried && data ? { carried: { ...carried, jobId, data } satisfies CarriedJob } : {}),
    };
    const shared = query.run(jobId, context).then(
      (result) => ({ result, error: undefined, json: JSON.stringify(result) }),
      (error: unknown) => {
        identity.log.error({ err: error }, 'a subscription event could not be queried'); // once, not per client
        return { result: undefined, error, json: '' };
      },
    );
    // Taken at the start: the execution reads the job after every event counted so far (or carries the latest).
    this.results.delete(key);
    this.results.set(key, { seq: this.seqs.get(jobId) ?? seq, shared });
    this.trim(this.results);
    return shared;
  }

  private trim(map: Map<string, unknown>): void {
    if (map.size <= MAX_RESULTS_PER_FEED) return;
    const oldest = map.keys().next().value;
    if (oldest !== undefined) map.delete(oldest);
  }

  /**
   * Ends the feed: `unsubscribe` when its last listener left (or the gateway closes), which drops everything;
   * otherwise jobs ended it, and its listeners may still be draining their last events — the final state
   * among them — with the results and carried jobs kept here (the feed is gone from the hub, and from memory
   * once they are done).
   */
  end(unsubscribe: boolean): void {
    if (this.ended) return;
    this.ended = true;
    this.listeners.clear();
    if (unsubscribe) {
      this.results.clear();
      this.carried.clear();
      this.aborted.abort();
      this.unsubscribe?.(); // tells jobs "complete" unless it has finished already
    }
    this.onEnd();
  }
}

function jobId(event: Record<string, unknown>): { id: string; data?: undefined } | undefined {
  return typeof event.id === 'string' ? { id: event.id } : undefined;
}

/**
 * Every upstream subscription of this gateway process. Client subscriptions that would send jobs the same
 * subscription as the same user share one upstream subscription (a feed), and every feed of every user goes
 * over one of a few sockets (`sockets`, by default one) — each upstream subscription carries its own caller's
 * token, which jobs verifies: 1,000 users watching their jobs cost jobs one socket and 1,000 subscriptions,
 * 1,000 browser tabs of one user watching one job one subscription, and each event one query per distinct
 * selection. Feeds and sockets are reference-counted: the last client leaving ends the upstream subscription,
 * and a socket closes when it has none left.
 */
export class UpstreamHub {
  private readonly clients = new Map<number, SharedClient>();
  private readonly feeds = new Map<string, Feed>();

  constructor(private readonly options: UpstreamOptions) {}

  /** Joins (or starts) the feed for this subscription; returns how to leave it. */
  join(listener: FeedListener, upstream: UpstreamSubscription): { leave(): void; result: Feed['result'] } {
    const shareKey = listener.connection.shareKey;
    const key = `${shareKey}\n${JSON.stringify([upstream.payload.query, upstream.payload.variables ?? null])}`;
    let feed = this.feeds.get(key);
    if (!feed) {
      const slot = this.slotOf(shareKey);
      const client = this.clientFor(slot);
      client.feeds++;
      const created: Feed = new Feed(client, upstream, listener.connection.identity, () => {
        if (this.feeds.get(key) === created) this.feeds.delete(key);
        if (--client.feeds === 0) this.closeClient(slot, client);
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
    for (const [slot, client] of [...this.clients]) this.closeClient(slot, client);
  }

  /** A user's feeds all go over one socket (in order, on one jobs replica); users are spread over the sockets. */
  private slotOf(shareKey: string): number {
    if (this.options.sockets <= 1) return 0;
    let hash = 0;
    for (let i = 0; i < shareKey.length; i++) hash = (hash * 31 + shareKey.charCodeAt(i)) | 0;
    return Math.abs(hash) % this.options.sockets;
  }

  private clientFor(slot: number): SharedClient {
    let client = this.clients.get(slot);
    if (!client) {
      client = createSharedClient(this.options);
      this.clients.set(slot, client);
    }
    return client;
  }

  private closeClient(slot: number, upstream: SharedClient): void {
    if (this.clients.get(slot) === upstream) this.clients.delete(slot);
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
}

function createSharedClient(options: UpstreamOptions): SharedClient {
  const { log } = options;
  const sockets = new Set<WebSocket>();
  class UpstreamWebSocket extends WebSocket {
    constructor(address: string | URL, protocols?: string | string[]) {
      // The gateway's own socket: no caller's token (each subscription carries its caller's), a request id of
      // its own for jobs' logs.
      const headers = { [REQUEST_ID_HEADER]: randomUUID() };
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
  return { client, sockets, feeds: 0 };
}
