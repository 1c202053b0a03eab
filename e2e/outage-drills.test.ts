// Outage drills (issue #12): MariaDB, RabbitMQ, or both unreachable for a while under a load of conversions,
// through proxies the test cuts (the shared servers are never stopped). After each: every job ends as its
// owner left it, with exactly one output, no orphan blob, and no process restarted by hand. Figures (printed
// as `drill figures`) are recorded in docs/RELIABILITY.md.
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'graphql-ws';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import WebSocket from 'ws';
import { signUpUser, uploadFile, type GraphQLErrorBody, type SignedUp } from './client.js';
import { generateVideo } from './fixtures.js';
import { MYSQL_SERVER, startSystem, type System } from './harness.js';
import type { CutMode } from './lib/tcp-proxy.js';

/** How long each outage lasts. */
const OUTAGE_MS = 20_000;
/** Conversions queued for each drill, round-robin over the users. */
const JOBS_PER_DRILL = 24;
const USERS = 3;
const SUBGRAPH_TIMEOUT_SECONDS = 10;
/** An answer during an outage must come within this (a hang fails the drill). */
const ANSWER_BOUND_MS = (SUBGRAPH_TIMEOUT_SECONDS + 5) * 1000;
// 4 s clips read at 4× real time: about a second of ffmpeg each, so an outage finds conversions running.
const CLIP_SECONDS = 4;
const READRATE = '4';

const FINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);

let system: System;
let users: SignedUp[];
let videos: string[]; // one uploaded video per user
const pids = new Map<string, number | undefined>();
const figures: Record<string, unknown>[] = [];

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vidmp3-drills-'));
  const clip = join(dir, 'clip.mp4');
  await generateVideo(clip, CLIP_SECONDS);
  const quotas = { MAX_ACTIVE_JOBS_PER_USER: '100', MAX_CONVERSIONS_PER_HOUR: '1000' };
  // A subgraph stuck on a frozen database is cut short by the gateway: sooner than its default 30 s here.
  const gateway = { SUBGRAPH_TIMEOUT_SECONDS: String(SUBGRAPH_TIMEOUT_SECONDS) };
  system = await startSystem({ jobs: quotas, worker: { READRATE }, gateway }, { workers: 2, proxies: true });
  users = await Promise.all(Array.from({ length: USERS }, () => signUpUser(system.gatewayUrl)));
  videos = await Promise.all(
    users.map(async (user) => {
      const res = await uploadFile(system.gatewayUrl, clip, { token: user.token });
      if (!res.data) throw new Error(`upload failed: ${JSON.stringify(res.errors)}`);
      return res.data.uploadVideo.id;
    }),
  );
  for (const [name, service] of Object.entries(system.services)) pids.set(name, service.child.pid);
}, 120_000);
afterAll(async () => {
  if (figures.length) console.log(`drill figures ${JSON.stringify(figures)}`);
  await system?.stop();
});
beforeEach(() => onTestFailed(() => console.error(system.logs())));

interface Answer<T> {
  data?: T | null;
  errors?: GraphQLErrorBody[];
}

/** One GraphQL request through the gateway; rejects if no answer comes within ANSWER_BOUND_MS. */
async function ask<T>(user: SignedUp, query: string, variables: Record<string, unknown> = {}): Promise<Answer<T>> {
  const res = await fetch(`${system.gatewayUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${user.token}` },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(ANSWER_BOUND_MS),
  });
  return (await res.json()) as Answer<T>;
}

async function inDatabase<T>(database: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const conn = await mysql.createConnection(`${MYSQL_SERVER}/${database}`);
  try {
    const [rows] = await conn.query<mysql.RowDataPacket[]>(sql, params);
    return rows as T[];
  } finally {
    await conn.end();
  }
}

/** Job statuses straight from the jobs database (the test's own connection: not through the proxies). */
async function statuses(ids: string[]): Promise<Map<string, string>> {
  const rows = await inDatabase<{ id: string; status: string }>(
    system.databases.jobs,
    'SELECT id, status FROM jobs WHERE id IN (?)',
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r.status]));
}

interface Load {
  jobs: { id: string; user: SignedUp }[];
  cancelled: string;
}

async function queueLoad(): Promise<Load> {
  const jobs: Load['jobs'] = [];
  for (let i = 0; i < JOBS_PER_DRILL; i++) {
    const user = users[i % USERS]!;
    const res = await ask<{ convertMedia: { id: string } }>(
      user,
      'mutation ($m: ID!) { convertMedia(mediaId: $m) { id } }',
      { m: videos[i % USERS] },
    );
    expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
    jobs.push({ id: res.data!.convertMedia.id, user });
  }
  // The last one queued is cancelled at once: its owner's choice must outlive the outage.
  const last = jobs.at(-1)!;
  const cancel = await ask<{ cancelJob: { status: string } }>(
    last.user,
    'mutation ($id: ID!) { cancelJob(id: $id) { status } }',
    {
      id: last.id,
    },
  );
  expect(cancel.data?.cancelJob.status).toBe('CANCELLED');
  return { jobs, cancelled: last.id };
}

/** A subscription to one job through the gateway, open across the outage: every event it delivers. */
function watch(job: { id: string; user: SignedUp }) {
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

type Target = 'mysql' | 'rabbitmq';

async function drill(name: string, targets: Target[], mode: CutMode = 'refuse') {
  const proxies = system.proxies!;
  const started = Date.now();
  const load = await queueLoad();
  const ids = load.jobs.map((j) => j.id);
  // Watched: a job in the middle of the queue, still to run when the outage starts.
  const watched = watch(load.jobs[Math.floor(JOBS_PER_DRILL / 2)]!);
  // The outage begins once the subscription has its first state and conversions are running.
  await expect.poll(() => watched.events.length, { timeout: 15_000 }).toBeGreaterThan(0);
  await expect
    .poll(async () => [...(await statuses(ids)).values()].filter((s) => s === 'RUNNING').length, {
      timeout: 30_000,
      interval: 100,
    })
    .toBeGreaterThan(0);
  const before = await statuses(ids);
  const cutAt = Date.now();
  for (const target of targets) proxies[target].cut(mode);

  // Restored whatever happens, so that a failing drill leaves the next ones a system that works.
  let during: Answer<{ job: { id: string; status: string } }>;
  let convertDuring: Answer<{ convertMedia: { id: string } }>;
  let answerMs: number;
  const owner = load.jobs[0]!;
  try {
    // During the outage the API answers, within a bound, with data or a coded error: never a hang.
    // Sent together: a frozen database holds each for up to the gateway's subgraph timeout.
    const askedAt = Date.now();
    [during, convertDuring] = await Promise.all([
      ask<{ job: { id: string; status: string } }>(owner.user, 'query ($id: ID!) { job(id: $id) { id status } }', {
        id: owner.id,
      }),
      ask<{ convertMedia: { id: string } }>(owner.user, 'mutation ($m: ID!) { convertMedia(mediaId: $m) { id } }', {
        m: videos[0],
      }),
    ]);
    answerMs = Date.now() - askedAt;
    if (targets.includes('mysql')) {
      expect(during.errors?.[0]?.extensions?.code, JSON.stringify(during)).toBe('SERVICE_UNAVAILABLE');
      expect(convertDuring.errors?.[0]?.extensions?.code, JSON.stringify(convertDuring)).toBe('SERVICE_UNAVAILABLE');
    } else {
      // RabbitMQ alone: reads and new conversions go on (the outbox publishes them once the broker is back).
      expect(during.data?.job.id, JSON.stringify(during)).toBe(owner.id);
      expect(convertDuring.errors, JSON.stringify(convertDuring)).toBeUndefined();
    }
    if (convertDuring.data?.convertMedia) ids.push(convertDuring.data.convertMedia.id);

    await new Promise((resolve) => setTimeout(resolve, Math.max(0, OUTAGE_MS - (Date.now() - cutAt))));
  } finally {
    for (const target of targets) proxies[target].restore();
  }
  const restoredAt = Date.now();
  const succeededAtRestore = [...(await statuses(ids)).values()].filter((s) => s === 'SUCCEEDED').length;
  let resumedAt: number | undefined; // the first conversion to succeed after the outage

  // Every job ends as its owner left it.
  await expect
    .poll(
      async () => {
        const now = [...(await statuses(ids)).values()];
        if (resumedAt === undefined && now.filter((s) => s === 'SUCCEEDED').length > succeededAtRestore) {
          resumedAt = Date.now();
        }
        return now.filter((s) => FINAL.has(s)).length;
      },
      { timeout: 120_000, interval: 250 },
    )
    .toBe(ids.length);
  const recoveredAt = Date.now();
  const after = await statuses(ids);
  const expected = new Map(ids.map((id) => [id, id === load.cancelled ? 'CANCELLED' : 'SUCCEEDED']));
  expect(after).toEqual(expected);

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
  const seen = await ask<{ job: { status: string; output: { id: string } | null } }>(
    owner.user,
    'query ($id: ID!) { job(id: $id) { status output { id } } }',
    { id: owner.id },
  );
  expect(seen.data?.job.status).toBe('SUCCEEDED');
  expect(seen.data?.job.output?.id).toBeTypeOf('string');

  // The subscription opened before the outage delivers the final state and completes.
  await watched.done;
  expect(watched.events.at(-1)?.data?.jobUpdated.status, JSON.stringify(watched.events)).toBe('SUCCEEDED');

  await expectNoOrphanBlobs();
  // Nobody restarted anything.
  for (const [serviceName, service] of Object.entries(system.services)) {
    expect({ serviceName, pid: service.child.pid, exit: service.child.exitCode }).toEqual({
      serviceName,
      pid: pids.get(serviceName),
      exit: null,
    });
  }
  figures.push({
    drill: name,
    jobs: ids.length,
    runningAtCut: [...before.values()].filter((s) => s === 'RUNNING').length,
    outageMs: restoredAt - cutAt,
    firstSuccessAfterMs: resumedAt === undefined ? null : resumedAt - restoredAt,
    allFinalAfterMs: recoveredAt - restoredAt,
    retried: (
      await inDatabase<{ n: number }>(
        system.databases.jobs,
        'SELECT COUNT(*) AS n FROM jobs WHERE id IN (?) AND attempts > 1',
        [ids],
      )
    )[0]!.n,
    wallMs: recoveredAt - started,
    answerMs,
    codeDuring: during.errors?.[0]?.extensions?.code ?? null,
    duplicates,
    lost,
  });
}

/** Every blob on disk belongs to a media row (and no temporary file is left once the system is idle). */
async function expectNoOrphanBlobs() {
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

describe('outage drills under a load of conversions', () => {
  it('MariaDB unreachable for 20 s, then back', () => drill('mariadb', ['mysql']), 150_000);
  it('RabbitMQ unreachable for 20 s, then back', () => drill('rabbitmq', ['rabbitmq']), 150_000);
  it(
    'MariaDB frozen (connections hang) for 20 s, then back',
    () => drill('mariadb-frozen', ['mysql'], 'hang'),
    150_000,
  );
  it(
    'MariaDB and RabbitMQ unreachable at once for 20 s, then back',
    () => drill('both', ['mysql', 'rabbitmq']),
    150_000,
  );
});
