// Relaying: the per-subscription iterator that turns upstream job events into results of the client's selection.
import { GraphQLError, type ExecutionResult, type GraphQLFormattedError } from 'graphql';
import { ErrorCode, userError } from '@vidmp3/shared';
import type { GatewayContext } from '../context.js';
import type { SubscriptionPlan } from './plan.js';
import type { JobQueryExecutor } from './server.js';
import { internalError, isCloseEvent, isFormattedError, isRecord, refusals } from './support.js';
import type { Connection } from './upstream.js';

// ---------------------------------------------------------------------------------------------------------------
// Relaying: upstream events in, the client's selection out

/**
 * What `subscribe` receives as the context value: the plan, for whom, how to run the per-event query, and the
 * subscription's slot in the per-user limit, given back when the relay ends.
 */
export class RelayTarget {
  constructor(
    readonly plan: SubscriptionPlan,
    readonly connection: Connection,
    readonly execute: JobQueryExecutor,
    readonly release: () => void = () => undefined,
  ) {}
}

type Pending = { kind: 'job'; id: string } | { kind: 'errors'; errors: GraphQLError[] };
const finished: IteratorReturnResult<undefined> = { done: true, value: undefined };

/**
 * One client subscription. Upstream events queue job ids; each `next()` takes one and runs the client's
 * selection on it. An id already waiting in the queue is not queued twice: the query reads the job's
 * current state, so a slow client gets the latest state rather than a backlog. Written as an explicit
 * iterator, not an async generator, so that `return()` (the client unsubscribing or leaving) takes effect at
 * once — a generator's return waits until its pending `await` settles, here possibly the next job event.
 */
export class JobRelay implements AsyncIterableIterator<ExecutionResult> {
  private readonly queue: Pending[] = [];
  private upstreamDone = false;
  private closed = false;
  private wake: (() => void) | undefined;
  private readonly aborted = new AbortController();
  private readonly closing: Promise<void>;
  private readonly unsubscribe: () => void;

  constructor(private readonly target: RelayTarget) {
    this.closing = new Promise((resolve) => this.aborted.signal.addEventListener('abort', () => resolve()));
    const { plan, connection } = target;
    this.unsubscribe = connection.upstream().subscribe<Record<string, unknown>, unknown>(plan.upstream, {
      next: (result) => {
        const event = result.data?.[plan.field];
        if (isRecord(event) && typeof event.id === 'string') this.enqueueJob(event.id);
        if (result.errors?.length)
          this.enqueue({ kind: 'errors', errors: result.errors.map((e) => this.upstreamError(e)) });
      },
      error: (err) => {
        this.enqueue({ kind: 'errors', errors: this.upstreamFailure(err) });
        this.upstreamDone = true;
      },
      complete: () => {
        this.upstreamDone = true;
        this.signal();
      },
    });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<ExecutionResult>> {
    for (;;) {
      if (this.closed) return finished;
      const pending = this.queue.shift();
      if (pending?.kind === 'errors') return { done: false, value: { errors: pending.errors } };
      if (pending?.kind === 'job') {
        const result = await Promise.race([this.query(pending.id), this.closing]);
        return result && !this.closed ? { done: false, value: result } : finished;
      }
      if (this.upstreamDone) {
        this.close();
        return finished;
      }
      await Promise.race([new Promise<void>((resolve) => (this.wake = resolve)), this.closing]);
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
    this.unsubscribe(); // tells jobs "complete" unless it has finished already
    this.aborted.abort();
  }

  private enqueueJob(id: string): void {
    if (this.queue.some((p) => p.kind === 'job' && p.id === id)) return;
    this.enqueue({ kind: 'job', id });
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

  /** Never rejects: whatever goes wrong becomes an error in this event's result. */
  private async query(id: string): Promise<ExecutionResult> {
    const { plan, connection, execute } = this.target;
    const context: GatewayContext = { ...connection.identity, signal: this.aborted.signal };
    try {
      const result = await execute(plan.query, { ...plan.variables, [plan.idVariable]: id }, context);
      const errors = (result.errors ?? []).map((e) => this.rebased(e, 'job'));
      const job = result.data?.job;
      if (job === null || job === undefined) {
        return { data: null, errors: errors.length > 0 ? errors : [userError(ErrorCode.NOT_FOUND, 'Job not found')] };
      }
      return { data: { [plan.responseKey]: job }, ...(errors.length > 0 ? { errors } : {}) };
    } catch (err) {
      connection.identity.log.error({ err }, 'a subscription event could not be queried');
      return { data: null, errors: [internalError(err)] };
    }
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
