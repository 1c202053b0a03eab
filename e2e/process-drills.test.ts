// Process drills (issue #12): a worker SIGKILLed with its ffmpeg, a worker frozen (SIGSTOP) longer than its
// lease, and a jobs replica SIGKILLed while it relays the outbox — each under a load of conversions from
// several users, with two jobs replicas and two workers throughout. After each: every job ends as its owner left
// it, with exactly one output and no orphan blob; the killed process is then started again, as an orchestrator
// would. Figures (printed as `drill figures`) are recorded in docs/RELIABILITY.md.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import type { SignedUp } from './client.js';
import { generateVideo } from './fixtures.js';
import { MYSQL_SERVER, startSystem, type ServiceProcess, type System } from './harness.js';
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
      held = await runningOn(victim!, load.ids); // what it holds now it is frozen
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

  it('a jobs replica SIGKILLed while it relays the outbox: nothing lost, nothing doubled', async () => {
    const { load, watched, started } = await underLoad();
    // A slow link to RabbitMQ keeps each relay batch open (its outbox rows locked) for a few hundred ms:
    // long enough to see which replica holds one and kill it then.
    system.proxies!.rabbitmq.delay(150);
    let killed: ServiceProcess | undefined;
    let killedAt = 0;
    let kills = 0;
    try {
      // Killed mid-batch is proven by the batch's rollback: the row it held is still unpublished once its lock
      // is free. A kill that came a moment too late (the batch already committed) is done again, after the
      // replica's restart.
      for (let proven = false; !proven;) {
        expect(kills, 'no kill landed in the middle of a relay batch').toBeLessThan(5);
        let kill: Awaited<ReturnType<typeof killRelaying>>;
        await expect.poll(async () => (kill = await killRelaying()), { timeout: 30_000, interval: 20 }).not.toBeNull();
        kills++;
        killed = kill!.replica;
        killedAt = kill!.at;
        await exited(killed);
        proven = kill!.rolledBack;
        if (!proven) await system.restart(killed.name);
      }
    } finally {
      system.proxies!.rabbitmq.delay(0);
    }
    const outcome = await expectRecovered(system, load, watched, killedAt);
    figures.push({
      drill: 'jobs-replica-sigkill-relaying',
      jobs: load.ids.length,
      kills,
      ...outcome,
      wallMs: Date.now() - started,
    });
    // Started again, it joins in: the outbox is empty once everything is final.
    await system.restart(killed!.name);
    await expect
      .poll(
        async () =>
          (
            await inDatabase<{ n: number }>(
              system.databases.jobs,
              'SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL',
            )
          )[0]!.n,
        { timeout: 30_000 },
      )
      .toBe(0);
    expect(await countIn(system, load.ids, 'SUCCEEDED')).toBe(load.ids.length - 1);
  }, 300_000);
});

const sh = promisify(execFile);

/**
 * SIGKILLs the jobs replica that holds outbox rows locked right now — a relay between taking its batch and
 * committing it as published — found as MariaDB sees it: a locking read of the oldest committed, unpublished row
 * waits, and INNODB_LOCK_WAITS names the transaction it waits for; that one's connection comes through the
 * MariaDB proxy from a port the replica's process owns. Then the waiting read gets the row: still unpublished
 * means the batch was rolled back, i.e. the replica died mid-batch (`rolledBack`). Null when no relay held it.
 */
async function killRelaying(): Promise<{ replica: ServiceProcess; at: number; rolledBack: boolean } | null> {
  const url = `${MYSQL_SERVER}/${system.databases.jobs}`;
  const [probe, observer] = await Promise.all([mysql.createConnection(url), mysql.createConnection(url)]);
  try {
    const [[oldest]] = await probe.query<mysql.RowDataPacket[]>(
      'SELECT id FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1',
    );
    if (!oldest) return null;
    const [[self]] = await probe.query<mysql.RowDataPacket[]>('SELECT CONNECTION_ID() AS thread');
    await probe.beginTransaction();
    let settled = false;
    const waiting = probe
      .query<mysql.RowDataPacket[]>('SELECT published_at FROM outbox WHERE id = ? FOR UPDATE WAIT 10', [oldest.id])
      .finally(() => (settled = true));
    waiting.catch(() => undefined);
    let host: string | undefined;
    while (!settled && !host) {
      const [rows] = await observer.query<mysql.RowDataPacket[]>(
        `SELECT p.HOST AS host FROM information_schema.INNODB_LOCK_WAITS w
           JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id
           JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id
           JOIN information_schema.PROCESSLIST p ON p.ID = b.trx_mysql_thread_id
          WHERE r.trx_mysql_thread_id = ?`,
        [self!.thread],
      );
      host = rows[0]?.host as string | undefined;
    }
    const replica = host ? await replicaOf(Number(host.split(':').at(-1))) : undefined;
    const at = Date.now();
    replica?.child.kill('SIGKILL');
    const [[row]] = await waiting; // granted once the holder's transaction is gone (rolled back or committed)
    await probe.rollback();
    return replica ? { replica, at, rolledBack: row?.published_at === null } : null;
  } finally {
    await Promise.allSettled([probe.end(), observer.end()]);
  }
}

/** The jobs replica whose MariaDB connection leaves the proxy from this port. */
async function replicaOf(proxyPort: number): Promise<ServiceProcess | undefined> {
  const clientPort = system.proxies!.mysql.clientPortOf(proxyPort);
  if (clientPort === undefined) return undefined;
  const { stdout } = await sh('ss', ['-Htnp', 'state', 'established', `( sport = :${clientPort} )`]);
  const pid = Number(/pid=(\d+)/.exec(stdout)?.[1]);
  return system.jobsReplicas.find((r) => r.child.pid === pid);
}
