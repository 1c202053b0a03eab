import { AbortError } from './errors.js';

/**
 * At most `size` holders at once, the others waiting in arrival order. The worker holds more requests than it
 * runs ffmpeg for (taken ahead, or PREFETCH over CONCURRENCY): one job's output upload and the next job's claim overlap the
 * running ffmpeg, while the number of ffmpeg processes (and so the cores they take) stays CONCURRENCY.
 */
export class Slots {
  private free: number;
  private readonly line: (() => void)[] = [];

  constructor(size: number) {
    this.free = size;
  }

  /** Requests waiting for a slot now. */
  get waiting(): number {
    return this.line.length;
  }

  /**
   * Resolves with the function that gives the slot back (idempotent) once one is free. Rejects with an
   * AbortError if `signal` aborts first, leaving the line without taking a slot.
   */
  acquire(signal: AbortSignal): Promise<() => void> {
    if (signal.aborted) return Promise.reject(new AbortError());
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => {
      const grant = () => {
        signal.removeEventListener('abort', onAbort);
        resolve(this.releaser());
      };
      const onAbort = () => {
        this.line.splice(this.line.indexOf(grant), 1);
        reject(new AbortError());
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.line.push(grant);
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // Handed straight to the next in line, so a newcomer cannot take it in between.
      const next = this.line.shift();
      if (next) next();
      else this.free++;
    };
  }
}
