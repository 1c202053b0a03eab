// Process drills (issue #12): a worker SIGKILLed with its ffmpeg, a worker frozen (SIGSTOP) longer than its
// lease, and a jobs replica SIGKILLed while it publishes its outbox — each under a load of conversions from
// several users, with two jobs replicas and two workers throughout. After each: every job ends as its owner left
// it, with exactly one output and no orphan blob; the killed process is then started again, as an orchestrator
// would. Figures (printed as `drill figures`) are recorded in docs/RELIABILITY.md.
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import type { SignedUp } from './client.js';
import { generateVideo } from './fixtures.js';
import { startSystem, type ServiceProcess, type System } from './harness.js';
import { countIn, drillUsers, expectRecovered, inDatabase, queueLoad, untilRunning, watch } from './lib/drill.js';

const JOBS_PER_DRILL = 50;
const USERS = 3;
// A short lease, so that a frozen worker loses its job within seconds (workers heartbeat every third of it).
const LEASE_SECONDS = 4;
// 4 s clips read at 4× real time: about a second of ffmpeg each, so a fault finds conversions running.
const CLIP_SECONDS = 4;
const READRATE = '4';

let system: System;
let users: SignedUp[];
let videos: string[];
const figures: Record<string, unknown>[] = [];

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vidmp3-process-drills-'));
  const clip = join(dir, 'clip.mp4');
  await generateVideo(clip, CLIP_SECONDS);
  const jobs = {
    MAX_ACTIVE_JOBS_PER_USER: '100',
    MAX_CONVERSIONS_PER_HOUR: '1000',
    LEASE_SECONDS: String(LEASE_SECONDS),
  };
  system = await startSystem({ jobs, worker: { READRATE } }, { workers: 2, jobsReplicas: 2, proxies: true });
  ({ users, videos } = await drillUsers(system, clip, USERS));
}, 120_000);
afterAll(async () => {
  if (figures.length) console.log(`drill figures ${JSON.stringify(figures)}`);
  await system?.stop();
});
beforeEach(() => onTestFailed(() => console.error(system.logs())));

const workers = () => Object.values(system.services).filter((s) => s.name.startsWith('worker'));

/** The ffmpeg processes a worker runs now (its children). */
async function ffmpegPidsOf(worker: ServiceProcess): Promise<number[]> {
  const pids: number[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    const match = /^\d+ \((.*)\) \S+ (\d+)/.exec(stat); // "pid (comm) state ppid …"
    if (match?.[1] === 'ffmpeg' && Number(match[2]) === worker.child.pid) pids.push(Number(pid));
  }
  return pids;
}

/** Jobs a worker holds the running attempt of, from the jobs database. */
async function runningOn(worker: ServiceProcess, ids: string[]): Promise<{ id: string; attempts: number }[]> {
  return inDatabase(
    system.databases.jobs,
    "SELECT id, attempts FROM jobs WHERE id IN (?) AND status = 'RUNNING' AND claimed_by = ?",
    [ids, worker.env.WORKER_ID],
  );
}

const exited = (service: ServiceProcess) =>
  service.child.exitCode !== null || service.child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => service.child.once('exit', resolve));

/** Starts the load and a watched job in its middle; resolves once conversions are running. */
async function underLoad() {
  const load = await queueLoad(system, users, videos, JOBS_PER_DRILL);
  const watched = watch(system, load.jobs[Math.floor(JOBS_PER_DRILL / 2)]!);
  await expect.poll(() => watched.events.length, { timeout: 15_000 }).toBeGreaterThan(0);
  await untilRunning(system, load.ids);
  return { load, watched, started: Date.now() };
}

describe('process drills under a load of conversions', () => {
  it('a worker SIGKILLed with its ffmpeg: its job is converted by the other, once', async () => {
    const { load, watched, started } = await underLoad();
    // The victim: a worker with a conversion under way (its ffmpeg running and its claim recorded).
    let victim: ServiceProcess | undefined;
    let ffmpeg: number[] = [];
    await expect
      .poll(
        async () => {
          for (const worker of workers()) {
            const [pids, held] = await Promise.all([ffmpegPidsOf(worker), runningOn(worker, load.ids)]);
            if (pids.length > 0 && held.length > 0) {
              ffmpeg = pids;
              return (victim = worker);
            }
          }
          return undefined;
        },
        { timeout: 30_000, interval: 50 },
      )
      .toBeDefined();
    const killedAt = Date.now();
    victim!.child.kill('SIGKILL');
    for (const pid of ffmpeg) process.kill(pid, 'SIGKILL');
    try {
      await exited(victim!);
      // What it held when it died (a dead worker changes nothing more): taken over by the other, not lost.
      const orphaned = await runningOn(victim!, load.ids);
      expect(orphaned.length).toBeGreaterThan(0);
      const outcome = await expectRecovered(system, load, watched, killedAt);
      const after = await inDatabase<{ claimed_by: string }>(
        system.databases.jobs,
        'SELECT claimed_by FROM jobs WHERE id IN (?)',
        [orphaned.map((j) => j.id)],
      );
      expect(after.map((j) => j.claimed_by)).not.toContain(victim!.env.WORKER_ID);
      figures.push({
        drill: 'worker-sigkill',
        jobs: load.ids.length,
        orphaned: orphaned.length,
        ...outcome,
        wallMs: Date.now() - started,
      });
    } finally {
      await system.restart(victim!.name); // the orchestrator's part
    }
  }, 240_000);

  it('a worker frozen (SIGSTOP) longer than its lease: its job is taken back once and converted by the other', async () => {
    const { load, watched, started } = await underLoad();
    let victim: ServiceProcess | undefined;
    let held: { id: string; attempts: number }[] = [];
    await expect
      .poll(
        async () => {
          for (const worker of workers()) {
            held = await runningOn(worker, load.ids);
            if (held.length > 0) return (victim = worker);
          }
          return undefined;
        },
        { timeout: 30_000, interval: 50 },
      )
      .toBeDefined();
    const frozenAt = Date.now();
    victim!.child.kill('SIGSTOP');
    let outcome: Awaited<ReturnType<typeof expectRecovered>>;
    try {
      // What it holds now it is frozen, once the reports it sent just before (an outcome already in RabbitMQ)
      // have been applied: a job it finished then is not one it holds. (Half a second is well inside the
      // 4 s lease, which its last heartbeat renewed at most 1.3 s before the freeze.)
      await new Promise((resolve) => setTimeout(resolve, 500));
      held = await runningOn(victim!, load.ids);
      expect(held.length).toBeGreaterThan(0);
      // Taken back from the frozen worker (its lease expired) and run again by the other: once, whichever
      // jobs replica noticed.
      await expect
        .poll(
          async () =>
            (
              await runningOn(
                victim!,
                held.map((j) => j.id),
              )
            ).length,
          { timeout: 60_000, interval: 100 },
        )
        .toBe(0);
      outcome = await expectRecovered(system, load, watched, frozenAt);
    } finally {
      victim!.child.kill('SIGCONT');
    }
    const after = await inDatabase<{ id: string; attempts: number; claimed_by: string }>(
      system.databases.jobs,
      'SELECT id, attempts, claimed_by FROM jobs WHERE id IN (?)',
      [held.map((j) => j.id)],
    );
    for (const job of after) {
      expect(job.attempts).toBe(held.find((h) => h.id === job.id)!.attempts + 1);
      expect(job.claimed_by).not.toBe(victim!.env.WORKER_ID);
    }
    // The frozen worker wakes up holding a stale attempt: whatever it does then leaves no second output.
    await expect
      .poll(
        () =>
          victim!.logs.some(
            (l) =>
              held.some((j) => l.includes(j.id)) &&
              /conversion (succeeded|failed)|retrying later|not claimed|handed back/.test(l),
          ),
        { timeout: 60_000, interval: 250 },
      )
      .toBe(true);
    const outputs = await inDatabase<{ n: number }>(
      system.databases.media,
      'SELECT COUNT(*) AS n FROM media WHERE job_id IN (?)',
      [held.map((j) => j.id)],
    );
    expect(Number(outputs[0]!.n)).toBe(held.length);
    figures.push({
      drill: 'worker-sigstop',
      jobs: load.ids.length,
      jobsHeld: held.length,
      ...outcome!,
      wallMs: Date.now() - started,
    });
  }, 240_000);

  it('a jobs replica SIGKILLed while it publishes its outbox: nothing lost, nothing doubled', async () => {
    const { load, watched, started } = await underLoad();
    // A slow link to RabbitMQ keeps each replica's committed messages in its hands (published, not yet
    // confirmed and marked) for a few hundred ms: a kill then leaves rows only that replica was publishing.
    system.proxies!.rabbitmq.delay(150);
    let killed: ServiceProcess | undefined;
    let killedAt = 0;
    let kills = 0;
    let orphaned: number[] = [];
    try {
      // Proven by rows that stay unpublished once the killed replica is gone: the survivor publishes its own
      // within a second even over the slow link, so what is still there 3 s later was the dead one's. A kill
      // that found none of its rows in hand is done again, after the replica's restart.
      while (orphaned.length === 0) {
        expect(kills, 'no kill found a replica with messages in hand').toBeLessThan(5);
        const victim = system.jobsReplicas[kills % system.jobsReplicas.length]!;
        let pending: number[] = [];
        await expect
          .poll(async () => (pending = await unpublishedRows()).length, { timeout: 30_000, interval: 20 })
          .toBeGreaterThan(0);
        killedAt = Date.now();
        victim.child.kill('SIGKILL');
        kills++;
        killed = victim;
        await exited(victim);
        await new Promise((resolve) => setTimeout(resolve, 3_000));
        const still = new Set(await unpublishedRows());
        orphaned = pending.filter((id) => still.has(id));
        if (orphaned.length === 0) await system.restart(victim.name);
      }
    } finally {
      system.proxies!.rabbitmq.delay(0);
    }
    // The survivor's relay takes what the dead replica left once it is older than the relay's grace (15 s),
    // with the killed replica still down.
    await expect.poll(async () => (await unpublishedRows(orphaned)).length, { timeout: 40_000 }).toBe(0);
    const outcome = await expectRecovered(system, load, watched, killedAt);
    figures.push({
      drill: 'jobs-replica-sigkill-publishing',
      jobs: load.ids.length,
      kills,
      orphanedRows: orphaned.length,
      ...outcome,
      wallMs: Date.now() - started,
    });
    // Started again, it joins in: the outbox is empty once everything is final.
    await system.restart(killed!.name);
    await expect.poll(async () => (await unpublishedRows()).length, { timeout: 30_000 }).toBe(0);
    expect(await countIn(system, load.ids, 'SUCCEEDED')).toBe(load.ids.length - 1);
  }, 300_000);
});

/** Ids of the outbox rows not yet published (of `among` only, when given). */
async function unpublishedRows(among?: number[]): Promise<number[]> {
  const rows = await inDatabase<{ id: number }>(
    system.databases.jobs,
    among
      ? 'SELECT id FROM outbox WHERE published_at IS NULL AND id IN (?)'
      : 'SELECT id FROM outbox WHERE published_at IS NULL',
    among ? [among] : [],
  );
  return rows.map((r) => Number(r.id));
}
