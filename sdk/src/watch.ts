// watchJob: a graphql-ws subscription to jobUpdated(id), merged with job(id) queries over HTTP, so the
// iterator starts with the current state even when the job has already finished, and misses no final state
// across reconnects. Older states that arrive late are dropped.
import type { Client as WsClient } from 'graphql-ws/client';
import { aborted, fromGraphQLErrors, networkError, Vidmp3Error, type GraphQLErrorBody } from './errors.js';
import { JobUpdatedDocument, type JobUpdatedSubscription } from './generated/graphql.js';
import type { Job, JobStatus } from './types.js';

export const FINAL_STATUSES: readonly JobStatus[] = ['SUCCEEDED', 'FAILED', 'CANCELLED'];

/** SUCCEEDED, FAILED and CANCELLED: nothing changes after them (until a retry). */
export function isFinalStatus(status: JobStatus): boolean {
  return FINAL_STATUSES.includes(status);
}

const statusRank = (status: JobStatus): number => {
  switch (status) {
    case 'QUEUED':
      return 0;
    case 'RUNNING':
      return 1;
    case 'SUCCEEDED':
    case 'FAILED':
    case 'CANCELLED':
      return 2;
  }
};

/** Whether `next` is a later state of the job than `prev`: by attempt, then status, then progress. */
export function isNewer(next: Job, prev: Job): boolean {
  if (next.attempts !== prev.attempts) return next.attempts > prev.attempts;
  const byStatus = statusRank(next.status) - statusRank(prev.status);
  if (byStatus !== 0) return byStatus > 0;
  return next.progress > prev.progress;
}

type Event =
  { kind: 'job'; job: Job } | { kind: 'resync' } | { kind: 'complete' } | { kind: 'error'; error: Vidmp3Error };

/** A queue the subscription's callbacks push into and the iterator pulls from. */
class EventQueue {
  private readonly items: Event[] = [];
  private waiting: ((event: Event) => void) | undefined;

  push(event: Event): void {
    const waiting = this.waiting;
    if (waiting) {
      this.waiting = undefined;
      waiting(event);
    } else {
      this.items.push(event);
    }
  }

  next(): Promise<Event> {
    const item = this.items.shift();
    if (item) return Promise.resolve(item);
    return new Promise((resolve) => (this.waiting = resolve));
  }
}

export interface WatchDeps {
  socket(): { client: WsClient; release: () => void };
  queryJob(id: string): Promise<Job | null>;
  wsUrl: string;
  /**
   * The server closed the socket because its access token expired: make the session fresh (refresh it), and
   * say whether watching can go on with a new socket. Absent: such a close ends the watch.
   */
  renew?: () => Promise<boolean>;
}

/** A job fetched after a reconnect: tried up to 5 times, 0.5 s apart and doubling (7.5 s in all). */
const RESYNC_ATTEMPTS = 5;
const RESYNC_BACKOFF_MS = 500;
const RESYNC_RETRIED: ReadonlySet<string> = new Set(['NETWORK_ERROR', 'INTERNAL']);

/**
 * Close codes (graphql-ws's CloseCode) with which the server refuses this connection: reconnecting would only be
 * refused again. 4401 Unauthorized: the gateway rejected the token. 4403 Forbidden: the gateway does not allow the
 * page's Origin (graphql-ws itself would retry this one). 4400 BadRequest, 4406 SubprotocolNotAcceptable,
 * 4409 SubscriberAlreadyExists: the server and this client disagree on the protocol. 4429 TooManyInitialisationRequests:
 * the same, or (reason "Too many connections …") the gateway's limit of sockets per user or per address, which a
 * reconnection in a loop would only make worse. Not here, and so retried: 4408 (initialisation timeout), 4499 (terminated), 1013 (try again later).
 */
export const REFUSAL_CLOSE_CODES: ReadonlySet<number> = new Set([4400, 4401, 4403, 4406, 4409, 4429]);

function closeCode(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'number'
    ? err.code
    : undefined;
}

/**
 * The gateway closed the socket because its access token expired (4401 "Access token expired"). graphql-ws
 * never reconnects after a 4401, so the watch opens a new socket itself once the session is fresh.
 */
function isTokenExpiry(error: Vidmp3Error): boolean {
  const reason = error.extensions?.closeReason;
  return error.extensions?.closeCode === 4401 && typeof reason === 'string' && /expired/i.test(reason);
}

/** Whether graphql-ws should reconnect after `errOrCloseEvent`: yes, unless the server refused the connection. */
export function shouldReconnect(errOrCloseEvent: unknown): boolean {
  const code = closeCode(errOrCloseEvent);
  return code === undefined || !REFUSAL_CLOSE_CODES.has(code);
}

/** What graphql-ws hands `sink.error`: GraphQL errors, a CloseEvent, or an Error. */
export function subscriptionError(err: unknown, wsUrl: string): Vidmp3Error {
  if (Array.isArray(err)) return fromGraphQLErrors(err as GraphQLErrorBody[]);
  const code = closeCode(err);
  if (code !== undefined) {
    const reason =
      typeof err === 'object' && err !== null && 'reason' in err && typeof err.reason === 'string' ? err.reason : '';
    const extensions = { closeCode: code, closeReason: reason };
    if (code === 4401) {
      return new Vidmp3Error('UNAUTHENTICATED', `The server refused the WebSocket: ${reason || 'not authenticated'}`, {
        extensions,
      });
    }
    if (code === 4429 && /^too many connections/i.test(reason)) {
      // "Too many connections: at most 10 per user": the limit is in the words, since a close carries no extensions.
      const limit = /at most (\d+)/.exec(reason)?.[1];
      return new Vidmp3Error('QUOTA_EXCEEDED', `The server refused the WebSocket: ${reason}`, {
        extensions: {
          ...extensions,
          quota: 'webSocketConnections',
          ...(limit ? { limit: Number(limit), used: Number(limit) } : {}),
        },
      });
    }
    if (code === 4403) {
      return new Vidmp3Error(
        'FORBIDDEN',
        `The server refused the WebSocket to ${wsUrl} (4403 ${reason || 'Forbidden'}): ` +
          "in a browser, this page's Origin is not among the gateway's allowed origins (ALLOWED_ORIGINS)",
        { extensions },
      );
    }
    const suffix = reason ? ` ${reason}` : '';
    if (REFUSAL_CLOSE_CODES.has(code)) {
      return new Vidmp3Error('NETWORK_ERROR', `The server refused the WebSocket to ${wsUrl} (${code}${suffix})`, {
        extensions,
      });
    }
    return new Vidmp3Error('NETWORK_ERROR', `The WebSocket to ${wsUrl} closed (${code}${suffix})`, { extensions });
  }
  // A WebSocket 'error' event: `ws` puts the cause in `error`; browsers say nothing.
  if (typeof err === 'object' && err !== null && !(err instanceof Error)) {
    const cause = 'error' in err ? err.error : undefined;
    return networkError(cause instanceof Error ? cause : new Error('the WebSocket failed'), wsUrl);
  }
  return networkError(err, wsUrl);
}

export async function* watchJob(deps: WatchDeps, id: string, signal?: AbortSignal): AsyncGenerator<Job> {
  if (signal?.aborted) throw aborted(signal.reason);
  const queue = new EventQueue();
  let ended = false;
  /** Fetches the job into the queue; a transient failure is tried again up to `attempts` times in all. */
  const query = async (attempts: number) => {
    for (let attempt = 1; ; attempt++) {
      try {
        const job = await deps.queryJob(id);
        queue.push(job ? { kind: 'job', job } : { kind: 'error', error: new Vidmp3Error('NOT_FOUND', `No job ${id}`) });
        return;
      } catch (err) {
        const error = networkError(err, deps.wsUrl);
        if (ended) return;
        if (attempt >= attempts || !RESYNC_RETRIED.has(error.code)) return queue.push({ kind: 'error', error });
        await new Promise((resolve) => setTimeout(resolve, RESYNC_BACKOFF_MS * 2 ** (attempt - 1)));
        if (ended) return;
      }
    }
  };
  /** Subscribes on a socket of the moment; returns how to leave. Events of a subscription left are ignored. */
  const subscribe = () => {
    const { client, release } = deps.socket();
    let left = false;
    const push = (event: Event) => left || queue.push(event);
    const unsubscribe = client.subscribe<JobUpdatedSubscription>(
      { query: JobUpdatedDocument.toString(), variables: { id } },
      {
        next: (result) => {
          if (result.errors?.length) {
            push({ kind: 'error', error: fromGraphQLErrors(result.errors) });
          } else if (result.data) {
            push({ kind: 'job', job: result.data.jobUpdated });
          }
        },
        error: (err) => push({ kind: 'error', error: subscriptionError(err, deps.wsUrl) }),
        complete: () => push({ kind: 'complete' }),
      },
    );
    // After a reconnect graphql-ws subscribes again; a state reached while the socket was down is fetched here.
    // The socket being back does not mean every service is (a reconnect often follows a restart), so a failed
    // fetch is tried again a few times before it ends the watch.
    const offConnected = client.on('connected', () => push({ kind: 'resync' }));
    return () => {
      left = true;
      offConnected();
      unsubscribe();
      release();
    };
  };
  // Subscribe first, then query: a change between the two reaches us one way or the other.
  let leave = subscribe();
  const onAbort = () => queue.push({ kind: 'error', error: aborted(signal?.reason) });
  signal?.addEventListener('abort', onAbort, { once: true });
  void query(1);

  let last: Job | undefined;
  const fresh = (job: Job) => {
    if (last && !isNewer(job, last)) return false;
    last = job;
    return true;
  };
  try {
    for (;;) {
      const event = await queue.next();
      switch (event.kind) {
        case 'job':
          if (fresh(event.job)) {
            yield event.job;
            if (isFinalStatus(event.job.status)) return;
          }
          break;
        case 'resync':
          void query(RESYNC_ATTEMPTS);
          break;
        case 'error':
          if (deps.renew && isTokenExpiry(event.error) && (await deps.renew())) {
            leave();
            leave = subscribe();
            void query(RESYNC_ATTEMPTS); // what changed while no socket was open
            break;
          }
          throw event.error;
        case 'complete': {
          // The server ends the subscription after a final state; make sure we have seen it.
          const job = await deps.queryJob(id);
          if (job && fresh(job)) yield job;
          if (job && isFinalStatus(job.status)) return;
          throw new Vidmp3Error('NETWORK_ERROR', `The updates of job ${id} ended before it finished`);
        }
      }
    }
  } finally {
    ended = true;
    signal?.removeEventListener('abort', onAbort);
    leave();
  }
}
