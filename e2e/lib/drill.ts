// What the fault drills (issue #12) share: a load of conversions from several users, a subscription open across
// the fault, and the checks after it — every job ends as its owner left it, with exactly one output, no orphan
// blob. The jobs database is read over the test's own connection (never through the proxies the drills cut).
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createClient } from 'graphql-ws';
import mysql from 'mysql2/promise';
import { expect } from 'vitest';
import WebSocket from 'ws';
import { signUpUser, uploadFile, type GraphQLErrorBody, type SignedUp } from '../client.js';
import { MYSQL_SERVER, type System } from '../harness.js';

export const FINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);

export interface Answer<T> {
  data?: T | null;
  errors?: GraphQLErrorBody[];
}

export interface Load {
  jobs: { id: string; user: SignedUp }[];
  /** Every job id of the drill (more may be added during it). */
  ids: string[];
  /** Cancelled by its owner right after queueing: must stay CANCELLED. */
  cancelled: string;
}

export interface Outcome {
  duplicates: number;
  lost: number;
  retried: number;
}

/** `count` users, each with one uploaded video (the file at `clip`): who queues the drills' load. */
export async function drillUsers(system: System, clip: string, count: number) {
  const users = await Promise.all(Array.from({ length: count }, () => signUpUser(system.gatewayUrl)));
  const videos = await Promise.all(
    users.map(async (user) => {
      const res = await uploadFile(system.gatewayUrl, clip, { token: user.token });
      if (!res.data) throw new Error(`upload failed: ${JSON.stringify(res.errors)}`);
      return res.data.uploadVideo.id;
    }),
  );
  return { users, videos };
}

/** One GraphQL request through the gateway; rejects if no answer comes within `boundMs` (a hang). */
export async function ask<T>(
  system: System,
  user: SignedUp,
  query: string,
  variables: Record<string, unknown> = {},
  boundMs = 15_000,
): Promise<Answer<T>> {
  const res = await fetch(`${system.gatewayUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${user.token}` },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(boundMs),
  });
  return (await res.json()) as Answer<T>;
}

export async function inDatabase<T>(database: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const conn = await mysql.createConnection(`${MYSQL_SERVER}/${database}`);
  try {
    const [rows] = await conn.query<mysql.RowDataPacket[]>(sql, params);
    return rows as T[];
  } finally {
    await conn.end();
  }
}

/** Job statuses straight from the jobs database. */
export async function statuses(system: System, ids: string[]): Promise<Map<string, string>> {
  const rows = await inDatabase<{ id: string; status: string }>(
    system.databases.jobs,
    'SELECT id, status FROM jobs WHERE id IN (?)',
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r.status]));
}

export async function countIn(system: System, ids: string[], status: string): Promise<number> {
  return [...(await statuses(system, ids)).values()].filter((s) => s === status).length;
}

/** `count` conversions round-robin over the users (one video each); the last one is cancelled at once. */
export async function queueLoad(system: System, users: SignedUp[], videos: string[], count: number): Promise<Load> {
  const jobs: Load['jobs'] = [];
  for (let i = 0; i < count; i++) {
    const user = users[i % users.length]!;
    const res = await ask<{ convertMedia: { id: string } }>(
      system,
      user,
      'mutation ($m: ID!) { convertMedia(mediaId: $m) { id } }',
      { m: videos[i % users.length] },
    );
    expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
    jobs.push({ id: res.data!.convertMedia.id, user });
  }
  const last = jobs.at(-1)!;
  const cancel = await ask<{ cancelJob: { status: string } }>(
    system,
    last.user,
    'mutation ($id: ID!) { cancelJob(id: $id) { status } }',
    { id: last.id },
  );
  expect(cancel.data?.cancelJob.status).toBe('CANCELLED');
  return { jobs, ids: jobs.map((j) => j.id), cancelled: last.id };
}

/** A subscription to one job through the gateway, open across the fault: every event it delivers. */
export function watch(system: System, job: { id: string; user: SignedUp }) {
  const client = createClient({
    url: `${system.gatewayUrl.replace('http', 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${job.user.token}` },
    retryAttempts: 0,
  });
  const events: { data?: { jobUpdated: { status: string } } | null; errors?: readonly unknown[] }[] = [];
  const done = (async () => {
    const iterator = client.iterate<{ jobUpdated: { status: string } }>({
      query: 'subscription ($id: ID!) { jobUpdated(id: $id) { id status progress } }',
      variables: { id: job.id },
    });
    for await (const event of iterator) events.push(event);
  })().finally(() => client.dispose());
  done.catch(() => undefined); // awaited by the drill; a drill failing earlier leaves it to the system's stop
  return { events, done };
}

/** Resolves once `count` of the load's jobs are RUNNING (conversions under way). */
export async function untilRunning(system: System, ids: string[], count = 1): Promise<void> {
  await expect
    .poll(() => countIn(system, ids, 'RUNNING'), { timeout: 30_000, interval: 100 })
    .toBeGreaterThanOrEqual(count);
}

/**
 * Waits for every job to be final (bounded: a stuck job fails the drill), then checks each ended as its owner
 * left it with exactly one output (none for the cancelled one), the watched subscription delivered SUCCEEDED,
 * and no blob is orphaned. Returns when the first job succeeded after `since` and when all were final.
 */
export async function expectRecovered(
  system: System,
  load: Load,
  watched: ReturnType<typeof watch>,
  since: number,
): Promise<Outcome & { firstSuccessAfterMs: number | null; allFinalAfterMs: number }> {
  const { ids } = load;
  const succeededAtStart = await countIn(system, ids, 'SUCCEEDED');
  let firstSuccessAt: number | undefined;
  await expect
    .poll(
      async () => {
        const now = [...(await statuses(system, ids)).values()];
        if (firstSuccessAt === undefined && now.filter((s) => s === 'SUCCEEDED').length > succeededAtStart) {
          firstSuccessAt = Date.now();
        }
        return now.filter((s) => FINAL.has(s)).length;
      },
      { timeout: 150_000, interval: 250 },
    )
    .toBe(ids.length);
  const allFinalAt = Date.now();
  const expected = new Map(ids.map((id) => [id, id === load.cancelled ? 'CANCELLED' : 'SUCCEEDED']));
  expect(await statuses(system, ids)).toEqual(expected);

  // Exactly one output per succeeded job, none for the cancelled one.
  const outputs = await inDatabase<{ job_id: string; n: number }>(
    system.databases.media,
    'SELECT job_id, COUNT(*) AS n FROM media WHERE job_id IN (?) GROUP BY job_id',
    [ids],
  );
  const perJob = new Map(outputs.map((r) => [r.job_id, Number(r.n)]));
  const duplicates = [...perJob.values()].filter((n) => n > 1).length;
  const lost = ids.filter((id) => id !== load.cancelled && !perJob.has(id)).length;
  expect({ duplicates, lost, cancelledOutputs: perJob.get(load.cancelled) ?? 0 }).toEqual({
    duplicates: 0,
    lost: 0,
    cancelledOutputs: 0,
  });
  // The user sees the same through the API: their output's download link.
  const owner = load.jobs[0]!;
  const seen = await ask<{ job: { status: string; output: { id: string } | null } }>(
    system,
    owner.user,
    'query ($id: ID!) { job(id: $id) { status output { id } } }',
    { id: owner.id },
  );
  expect(seen.data?.job.status).toBe('SUCCEEDED');
  expect(seen.data?.job.output?.id).toBeTypeOf('string');

  // The subscription opened before the fault delivers the final state and completes.
  await watched.done;
  expect(watched.events.at(-1)?.data?.jobUpdated.status, JSON.stringify(watched.events)).toBe('SUCCEEDED');

  await expectNoOrphanBlobs(system);
  const [retried] = await inDatabase<{ n: number }>(
    system.databases.jobs,
    'SELECT COUNT(*) AS n FROM jobs WHERE id IN (?) AND attempts > 1',
    [ids],
  );
  return {
    duplicates,
    lost,
    retried: Number(retried?.n),
    firstSuccessAfterMs: firstSuccessAt === undefined ? null : firstSuccessAt - since,
    allFinalAfterMs: allFinalAt - since,
  };
}

/** Every blob on disk belongs to a media row (and no temporary file is left once the system is idle). */
export async function expectNoOrphanBlobs(system: System): Promise<void> {
  const rows = await inDatabase<{ id: string }>(system.databases.media, 'SELECT id FROM media');
  const known = new Set(rows.map((r) => r.id));
  const blobs: string[] = [];
  for (const dir of await readdir(system.blobDir)) {
    if (dir === '.tmp') continue;
    blobs.push(...(await readdir(join(system.blobDir, dir))));
  }
  expect(blobs.filter((b) => !known.has(b))).toEqual([]);
  expect(blobs.length).toBe(known.size);
  await expect.poll(() => readdir(join(system.blobDir, '.tmp')), { timeout: 10_000 }).toEqual([]);
}
