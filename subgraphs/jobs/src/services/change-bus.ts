import { EventEmitter, on } from 'node:events';
import type { JobChanged } from '@vidmp3/shared';

/**
 * In-process fan-out of job changes to this replica's subscribers. Fed by the replica's own exclusive queue on
 * the `job-changes` exchange, so every replica hears of every change, whoever made it.
 */
export class ChangeBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(0); // one listener per open subscription
  }

  publish(change: JobChanged): void {
    this.emitter.emit(`job:${change.jobId}`, change);
    this.emitter.emit(`owner:${change.ownerId}`, change);
  }

  /** Changes of one job; listening starts at the call, so nothing between it and the first read is lost. */
  job(jobId: string): AsyncIterableIterator<JobChanged> {
    return this.iterate(`job:${jobId}`);
  }

  owner(ownerId: string): AsyncIterableIterator<JobChanged> {
    return this.iterate(`owner:${ownerId}`);
  }

  // Not an async generator: its body (and so the listener) would only start at the first next().
  private iterate(name: string): AsyncIterableIterator<JobChanged> {
    const source = on(this.emitter, name) as AsyncIterableIterator<[JobChanged]>;
    const iterator: AsyncIterableIterator<JobChanged> = {
      async next() {
        const result = await source.next();
        return result.done ? { done: true, value: undefined } : { done: false, value: result.value[0] };
      },
      async return() {
        await source.return?.();
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }
}

/**
 * An async generator's return() waits for the await it is suspended at — here, the next change, which may
 * never come. Closing the change feed first ends that wait at once, so an unsubscribe releases its listener
 * immediately.
 */
export function closable<T>(
  changes: AsyncIterator<unknown>,
  inner: AsyncGenerator<T>,
  closed?: AbortController,
): AsyncIterableIterator<T> {
  const iterator: AsyncIterableIterator<T> = {
    next: () => inner.next(),
    async return() {
      closed?.abort(); // and a re-read waiting for the database gives up
      await changes.return?.();
      return inner.return(undefined);
    },
    throw: (err: unknown) => inner.throw(err),
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
