// Relaying: the per-subscription iterator that turns shared upstream job events into results of the client's selection.
import { GraphQLError, type ExecutionResult, type GraphQLFormattedError } from 'graphql';
import { ErrorCode, userError } from '@vidmp3/shared';
import type { SubscriptionPlan } from './plan.js';
import type { JobQueryExecutor } from './server.js';
import { internalError, isCloseEvent, isFormattedError, refusals } from './support.js';
import type { Connection, FeedListener, FeedQuery, SharedResult, UpstreamHub } from './upstream.js';

// ---------------------------------------------------------------------------------------------------------------
// Relaying: upstream events in, the client's selection out

/**
 * What `subscribe` receives as the context value: the plan, for whom, how to run the per-event query, the hub
 * of shared upstream subscriptions, and the subscription's slot in the per-user limit, given back when the
 * relay ends.
 */
export class RelayTarget {
  constructor(
    readonly plan: SubscriptionPlan,
    readonly connection: Connection,
    readonly execute: JobQueryExecutor,
    readonly hub: UpstreamHub,
    readonly release: () => void = () => undefined,
  ) {}
}

type Pending = { kind: 'job'; id: string; seq: number } | { kind: 'errors'; errors: GraphQLError[] };
const finished: IteratorReturnResult<undefined> = { done: true, value: undefined };

/**
 * One client subscription, listening to a feed shared with every subscription of the same user that sends
 * jobs the same upstream subscription (upstream.ts). Events queue job ids; each `next()` takes one and gets
 * the result of the client's selection on it, shared with every listener of the feed asking the same query
 * about the same event. The buffer is bounded, latest state wins: an id already waiting is not queued again
 * (its event count is raised instead), so a slow client — whose `next()` graphql-ws calls only once the
 * previous message is written to its socket — skips progress it could not take, never the final state (the
 * queue is drained before the relay completes). A result equal to the previous one sent is not sent again.
 * Written as an explicit iterator, not an async generator, so that `return()` (the client unsubscribing or
 * leaving) takes effect at once — a generator's return waits until its pending `await` settles.
 */
export class JobRelay implements AsyncIterableIterator<ExecutionResult>, FeedListener {
  private readonly queue: Pending[] = [];
  private upstreamDone = false;
  private closed = false;
  /** Resolves `next()`'s wait for an event (an event came, or the relay closed). */
  private wake: (() => void) | undefined;
  /** Resolves `next()`'s wait for a result with nothing (the relay closed). */
  private abandon: (() => void) | undefined;
  private readonly feed: ReturnType<UpstreamHub['join']>;
  private readonly query: FeedQuery;
  /** The last result sent, serialised: the same state twice in a row is sent once. */
  private lastSent: string | undefined;

  constructor(private readonly target: RelayTarget) {
    const { plan, execute } = target;
    this.query = {
      key: `${plan.query}\n${JSON.stringify(plan.variables)}`,
      run: (jobId, context) => execute(plan.query, { ...plan.variables, [plan.idVariable]: jobId }, context),
    };
    this.feed = target.hub.join(this, {
      payload: plan.upstream,
      field: plan.field,
      replaysCurrent: plan.field === 'jobUpdated',
      ...(plan.carried ? { carried: plan.carried } : {}),
    });
  }

  get connection(): Connection {
    return this.target.connection;
  }

  // ---- FeedListener: called by the shared feed

  changed(jobId: string, seq: number): void {
    if (this.closed) return;
    const waiting = this.queue.find((p): p is Extract<Pending, { kind: 'job' }> => p.kind === 'job' && p.id === jobId);
    if (waiting) {
      waiting.seq = Math.max(waiting.seq, seq);
      return;
    }
    this.enqueue({ kind: 'job', id: jobId, seq });
  }

  errors(errors: readonly GraphQLFormattedError[]): void {
    if (this.closed) return;
    this.enqueue({ kind: 'errors', errors: errors.map((e) => this.upstreamError(e)) });
  }

  failed(err: unknown): void {
    if (this.closed) return;
    this.enqueue({ kind: 'errors', errors: this.upstreamFailure(err) });
    this.upstreamDone = true;
  }

  completed(): void {
    this.upstreamDone = true;
    this.signal();
  }

  // ---- AsyncIterator: pulled by graphql-ws

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<ExecutionResult>> {
    for (;;) {
      if (this.closed) return finished;
      const pending = this.queue.shift();
      if (pending?.kind === 'errors') return { done: false, value: { errors: pending.errors } };
      if (pending?.kind === 'job') {
        const shared = await this.until(
          this.feed.result(pending.id, pending.seq, this.query, this.target.connection.identity),
        );
        if (!shared || this.closed) return finished;
        if (shared.json !== '' && shared.json === this.lastSent) continue; // nothing new for this client
        this.lastSent = shared.json;
        return { done: false, value: this.toClient(shared) };
      }
      if (this.upstreamDone) {
        this.close();
        return finished;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  async return(): Promise<IteratorResult<ExecutionResult>> {
    this.close();
    return finished;
  }

  async throw(): Promise<IteratorResult<ExecutionResult>> {
    this.close();
    return finished;
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    // Every way a subscription ends (complete from the client, upstream done or failed, the socket gone) ends here.
    this.target.release();
    this.feed.leave(); // the last listener leaving ends the upstream subscription
    // A `next()` waiting returns at once.
    this.signal();
    this.abandon?.();
  }

  /**
   * The promise's value, or undefined as soon as the relay closes. (Not `Promise.race` with a promise of the
   * closing: each race would leave a reaction on that long-lived promise, one per event, until the client leaves.)
   */
  private until<T>(promise: Promise<T>): Promise<T | undefined> {
    return new Promise<T | undefined>((resolve) => {
      this.abandon = () => resolve(undefined);
      promise.then(resolve, () => resolve(undefined));
    }).finally(() => (this.abandon = undefined));
  }

  private enqueue(pending: Pending): void {
    this.queue.push(pending);
    this.signal();
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** The shared result as this client must see it: under its own response key, errors located there. */
  private toClient(shared: SharedResult): ExecutionResult {
    const { result, error } = shared;
    if (!result) {
      return { data: null, errors: [internalError(error)] };
    }
    const errors = (result.errors ?? []).map((e) => this.rebased(e, 'job'));
    const job = result.data?.job;
    if (job === null || job === undefined) {
      return { data: null, errors: errors.length > 0 ? errors : [userError(ErrorCode.NOT_FOUND, 'Job not found')] };
    }
    return { data: { [this.target.plan.responseKey]: job }, ...(errors.length > 0 ? { errors } : {}) };
  }

  /** An error as the client must see it: located under its own response key, with its code. */
  private rebased(error: GraphQLFormattedError, upstreamKey: string): GraphQLError {
    const [head, ...rest] = error.path ?? [];
    return new GraphQLError(error.message, {
      ...(head === upstreamKey ? { path: [this.target.plan.responseKey, ...rest] } : {}),
      extensions: { ...error.extensions },
    });
  }

  private upstreamError(error: GraphQLFormattedError): GraphQLError {
    return this.rebased(error, this.target.plan.field);
  }

  /** graphql-ws reports GraphQL errors as an array, a refused or lost connection as a close event or error. */
  private upstreamFailure(err: unknown): GraphQLError[] {
    if (Array.isArray(err) && err.every(isFormattedError)) return err.map((e) => this.upstreamError(e));
    if (isCloseEvent(err) && refusals.has(err.code)) {
      return [userError(ErrorCode.UNAUTHENTICATED, 'The jobs service refused the credentials')];
    }
    const log = this.target.connection.identity.log;
    log.error(
      isCloseEvent(err) ? { code: err.code, reason: err.reason } : { err },
      'the jobs subscription failed for good',
    );
    return [internalError(err, 'The jobs service is unavailable')];
  }
}
