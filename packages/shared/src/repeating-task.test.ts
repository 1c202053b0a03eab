import { describe, expect, it, vi } from 'vitest';
import { RepeatingTask } from './repeating-task.js';

/** A run the test ends when it wants: `release()` ends the oldest run still going. */
function controlledRuns() {
  const ends: (() => void)[] = [];
  let started = 0;
  const run = vi.fn(
    () =>
      new Promise<void>((resolve) => {
        started++;
        ends.push(resolve);
      }),
  );
  return { run, started: () => started, release: () => ends.shift()?.() };
}

describe('RepeatingTask', () => {
  it('runs once at a time; kicks during a run ask for exactly one more run after it', async () => {
    const { run, started, release } = controlledRuns();
    const task = new RepeatingTask(run, () => undefined, 60_000);
    task.start();
    expect(started()).toBe(1);
    task.kick();
    task.kick();
    task.kick();
    expect(started()).toBe(1); // never two at once
    release();
    await vi.waitFor(() => expect(started()).toBe(2)); // the kicks, folded into one run
    release();
    await new Promise((resolve) => setImmediate(resolve));
    expect(started()).toBe(2); // nothing asked for more
    await task.stop();
  });

  it('hands a failed run to onError and runs again when kicked', async () => {
    const errors: unknown[] = [];
    let calls = 0;
    const task = new RepeatingTask(
      async () => {
        calls++;
        if (calls === 1) throw new Error('database away');
      },
      (err) => errors.push(err),
      60_000,
    );
    task.start();
    await vi.waitFor(() => expect(errors).toHaveLength(1));
    task.kick();
    await vi.waitFor(() => expect(calls).toBe(2));
    expect(errors).toHaveLength(1);
    await task.stop();
  });

  it('stop() waits for the run under way, then no kick runs it again', async () => {
    const { run, started, release } = controlledRuns();
    const task = new RepeatingTask(run, () => undefined, 60_000);
    task.start();
    let stopped = false;
    const stopping = task.stop().then(() => (stopped = true));
    expect(task.isStopped).toBe(true);
    await new Promise((resolve) => setImmediate(resolve));
    expect(stopped).toBe(false);
    release();
    await stopping;
    task.kick();
    expect(started()).toBe(1);
  });
});
