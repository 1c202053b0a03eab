// Outage drills (issue #12): MariaDB, RabbitMQ, or both unreachable for a while under a load of conversions,
// through proxies the test cuts (the shared servers are never stopped). After each: every job ends as its
// owner left it, with exactly one output, no orphan blob, and no process restarted by hand. Figures (printed
// as `drill figures`) are recorded in docs/RELIABILITY.md.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import type { SignedUp } from './client.js';
import { generateVideo } from './fixtures.js';
import { startSystem, type System } from './harness.js';
import { ask, countIn, drillUsers, expectRecovered, queueLoad, untilRunning, watch, type Answer } from './lib/drill.js';
import type { CutMode } from './lib/tcp-proxy.js';

/** How long each outage lasts. */
const OUTAGE_MS = 20_000;
/** Conversions queued for each drill, round-robin over the users. */
const JOBS_PER_DRILL = 50;
const USERS = 3;
const SUBGRAPH_TIMEOUT_SECONDS = 10;
/** An answer during an outage must come within this (a hang fails the drill). */
const ANSWER_BOUND_MS = (SUBGRAPH_TIMEOUT_SECONDS + 5) * 1000;
// 4 s clips read at 4× real time: about a second of ffmpeg each, so an outage finds conversions running.
const CLIP_SECONDS = 4;
const READRATE = '4';

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
  // Two jobs replicas and two workers throughout, as in production.
  system = await startSystem(
    { jobs: quotas, worker: { READRATE }, gateway },
    { workers: 2, jobsReplicas: 2, proxies: true },
  );
  ({ users, videos } = await drillUsers(system, clip, USERS));
  for (const [name, service] of Object.entries(system.services)) pids.set(name, service.child.pid);
}, 120_000);
afterAll(async () => {
  if (figures.length) console.log(`drill figures ${JSON.stringify(figures)}`);
  await system?.stop();
});
beforeEach(() => onTestFailed(() => console.error(system.logs())));

type Target = 'mysql' | 'rabbitmq';

async function drill(name: string, targets: Target[], mode: CutMode = 'refuse') {
  const proxies = system.proxies!;
  const started = Date.now();
  const load = await queueLoad(system, users, videos, JOBS_PER_DRILL);
  // Watched: a job in the middle of the queue, still to run when the outage starts.
  const watched = watch(system, load.jobs[Math.floor(JOBS_PER_DRILL / 2)]!);
  // The outage begins once the subscription has its first state and conversions are running.
  await expect.poll(() => watched.events.length, { timeout: 15_000 }).toBeGreaterThan(0);
  await untilRunning(system, load.ids);
  const runningAtCut = await countIn(system, load.ids, 'RUNNING');
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
      ask<{ job: { id: string; status: string } }>(
        system,
        owner.user,
        'query ($id: ID!) { job(id: $id) { id status } }',
        { id: owner.id },
        ANSWER_BOUND_MS,
      ),
      ask<{ convertMedia: { id: string } }>(
        system,
        owner.user,
        'mutation ($m: ID!) { convertMedia(mediaId: $m) { id } }',
        { m: videos[0] },
        ANSWER_BOUND_MS,
      ),
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
    if (convertDuring.data?.convertMedia) load.ids.push(convertDuring.data.convertMedia.id);

    await new Promise((resolve) => setTimeout(resolve, Math.max(0, OUTAGE_MS - (Date.now() - cutAt))));
  } finally {
    for (const target of targets) proxies[target].restore();
  }
  const restoredAt = Date.now();
  const outcome = await expectRecovered(system, load, watched, restoredAt);

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
    jobs: load.ids.length,
    runningAtCut,
    outageMs: restoredAt - cutAt,
    ...outcome,
    wallMs: Date.now() - started,
    answerMs,
    codeDuring: during.errors?.[0]?.extensions?.code ?? null,
  });
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
