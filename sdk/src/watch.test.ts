// watchJob's merging of subscription events and queries, with a fake graphql-ws client (the real one is
// exercised against the running system in sdk/test/client.test.ts).
import type { Client as WsClient, Sink } from 'graphql-ws/client';
import { describe, expect, it } from 'vitest';
import { Vidmp3Error } from './errors.js';
import type { JobUpdatedSubscription } from './generated/graphql.js';
import type { Job, JobStatus } from './types.js';
import { isNewer, shouldReconnect, watchJob } from './watch.js';

const job = (status: JobStatus, progress: number, attempts = 1): Job => ({
  id: 'j1',
  status,
  progress,
  attempts,
  createdAt: '2026-01-01T00:00:00.000Z',
  startedAt: null,
  finishedAt: null,
  error: null,
  input: { id: 'm1', filename: 'a.mp4' },
  output: null,
});

class FakeSocket {
  sink: Sink<{ data?: JobUpdatedSubscription; errors?: { message: string }[] }> | undefined;
  connected: (() => void) | undefined;
  unsubscribed = false;
  released = false;
  readonly client = {
    subscribe: (_payload: unknown, sink: NonNullable<FakeSocket['sink']>) => {
      this.sink = sink;
      return () => (this.unsubscribed = true);
    },
    on: (_event: string, listener: () => void) => {
      this.connected = listener;
      return () => (this.connected = undefined);
    },
  } as unknown as WsClient;
  push(state: Job) {
    this.sink!.next({ data: { jobUpdated: state } });
  }
}

function setup(answers: (Job | null)[]) {
  const socket = new FakeSocket();
  const queries: number[] = [];
  const deps = {
    socket: () => ({ client: socket.client, release: () => (socket.released = true) }),
    queryJob: async () => {
      queries.push(Date.now());
      return answers.length > 1 ? answers.shift()! : answers[0]!;
    },
    wsUrl: 'ws://127.0.0.1:1/graphql',
  };
  return { socket, queries, deps };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('watchJob', () => {
  it('orders states by attempt, then status, then progress', () => {
    expect(isNewer(job('RUNNING', 0.1), job('QUEUED', 0))).toBe(true);
    expect(isNewer(job('RUNNING', 0.5), job('RUNNING', 0.6))).toBe(false);
    expect(isNewer(job('RUNNING', 0.6), job('RUNNING', 0.6))).toBe(false);
    expect(isNewer(job('SUCCEEDED', 1), job('RUNNING', 1))).toBe(true);
    expect(isNewer(job('QUEUED', 0, 2), job('RUNNING', 0.9, 1))).toBe(true);
  });

  it('starts with the queried state, drops late older ones, and ends after the final one', async () => {
    const { socket, deps } = setup([job('RUNNING', 0.5)]);
    const iterator = watchJob(deps, 'j1');
    const seen: Job[] = [];
    const done = (async () => {
      for await (const state of iterator) seen.push(state);
    })();
    await tick();
    socket.push(job('QUEUED', 0)); // older than the query's answer
    socket.push(job('RUNNING', 0.5)); // the same
    socket.push(job('RUNNING', 0.8));
    socket.push(job('SUCCEEDED', 1));
    await done;
    expect(seen.map((s) => [s.status, s.progress])).toEqual([
      ['RUNNING', 0.5],
      ['RUNNING', 0.8],
      ['SUCCEEDED', 1],
    ]);
    expect(socket.unsubscribed && socket.released).toBe(true);
  });

  it('asks for the job again after a reconnect, so a final state reached meanwhile is not missed', async () => {
    const { socket, deps, queries } = setup([job('RUNNING', 0.2), job('SUCCEEDED', 1)]);
    const seen: Job[] = [];
    const done = (async () => {
      for await (const state of watchJob(deps, 'j1')) {
        seen.push(state);
        if (seen.length === 1) socket.connected!(); // the socket came back; the subscription stays silent
      }
    })();
    await done;
    expect(queries).toHaveLength(2);
    expect(seen.map((s) => s.status)).toEqual(['RUNNING', 'SUCCEEDED']);
  });

  it('keeps watching when the job cannot be fetched right after a reconnect, and fetches it again', async () => {
    const { socket, deps, queries } = setup([job('RUNNING', 0.2)]);
    const answers: (() => Promise<Job>)[] = [
      async () => job('RUNNING', 0.2),
      async () => {
        throw new Vidmp3Error('NETWORK_ERROR', 'jobs is restarting');
      },
      async () => job('SUCCEEDED', 1),
    ];
    deps.queryJob = () => {
      queries.push(Date.now());
      return answers.shift()!();
    };
    const seen: Job[] = [];
    for await (const state of watchJob(deps, 'j1')) {
      seen.push(state);
      if (seen.length === 1) socket.connected!();
    }
    expect(queries).toHaveLength(3);
    expect(seen.map((s) => s.status)).toEqual(['RUNNING', 'SUCCEEDED']);
  });

  it('ends the watch when a fetch after a reconnect is refused, without retrying', async () => {
    const { socket, deps, queries } = setup([job('RUNNING', 0.2)]);
    let calls = 0;
    deps.queryJob = async () => {
      queries.push(Date.now());
      if (calls++ === 0) return job('RUNNING', 0.2);
      throw new Vidmp3Error('UNAUTHENTICATED', 'token expired');
    };
    const done = (async () => {
      for await (const _ of watchJob(deps, 'j1')) socket.connected!();
    })();
    await expect(done).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(queries).toHaveLength(2);
  });

  it('fails with NETWORK_ERROR when the updates end before the job does', async () => {
    const { socket, deps } = setup([job('RUNNING', 0.2)]);
    const done = (async () => {
      for await (const _ of watchJob(deps, 'j1')) socket.sink!.complete();
    })();
    await expect(done).rejects.toMatchObject({ code: 'NETWORK_ERROR' });
  });

  it('maps subscription errors by their code, and a refused socket to FORBIDDEN or UNAUTHENTICATED', async () => {
    const first = setup([job('QUEUED', 0)]);
    const notFound = (async () => {
      for await (const _ of watchJob(first.deps, 'j1')) {
        first.socket.sink!.error([{ message: 'No such job', extensions: { code: 'NOT_FOUND' } }]);
      }
    })();
    await expect(notFound).rejects.toMatchObject({ code: 'NOT_FOUND', message: 'No such job' });

    const second = setup([job('QUEUED', 0)]);
    const refused = (async () => {
      for await (const _ of watchJob(second.deps, 'j1')) second.socket.sink!.error({ code: 4403, reason: 'Forbidden' });
    })();
    await expect(refused).rejects.toBeInstanceOf(Vidmp3Error);
    await expect(refused).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await expect(refused).rejects.toThrow(/Origin/);

    const third = setup([job('QUEUED', 0)]);
    const expired = (async () => {
      for await (const _ of watchJob(third.deps, 'j1')) third.socket.sink!.error({ code: 4401, reason: 'Expired' });
    })();
    await expect(expired).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    await expect(expired).rejects.toThrow('The server refused the WebSocket: Expired');
  });

  it('reconnects after a dropped socket, never after a refusal', () => {
    for (const code of [4400, 4401, 4403, 4406, 4409, 4429]) expect(shouldReconnect({ code, reason: '' })).toBe(false);
    for (const code of [1001, 1006, 1013, 4408, 4499]) expect(shouldReconnect({ code, reason: '' })).toBe(true);
    expect(shouldReconnect({ type: 'error', error: new Error('connect ECONNREFUSED') })).toBe(true);
  });

  it('stops with ABORTED when its signal fires, and unsubscribes', async () => {
    const { socket, deps } = setup([job('RUNNING', 0.1)]);
    const controller = new AbortController();
    const done = (async () => {
      for await (const _ of watchJob(deps, 'j1', controller.signal)) controller.abort();
    })();
    await expect(done).rejects.toMatchObject({ code: 'ABORTED' });
    expect(socket.unsubscribed).toBe(true);
  });
});
