// Conversion benchmark: the whole system (upload excluded; convertMedia → SUCCEEDED through the gateway)
// next to the bare ffmpeg command doing the same conversion, run side by side on this machine.
//
//   npm run bench:convert
//
// 1. one 10-minute 160x120 video: system end-to-end time vs `ffmpeg -i in.mp4 -vn -c:a libmp3lame -b:a 192k`;
// 2. twenty 12-second clips: jobs per minute with 1 and 2 workers vs bare ffmpeg one at a time and two at a time;
// 3. where each job's time goes: the median of each step (jobs' outbox rows and the worker's log line give the
//    timestamps), how long a worker's ffmpeg sits idle between two jobs, and how busy ffmpeg kept the workers.
//
// BENCH_LONG_SECONDS (600) and BENCH_CLIPS (20) shorten a run; BENCH_LOG_FILE keeps the services' logs;
// BENCH_WORKER_ENV='{"PREFETCH":"1"}' and BENCH_JOBS_ENV='{"MAX_DISPATCHED_PER_USER":"2"}' pass settings to the
// workers and to jobs (to compare a setting's effect).
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import { Topology } from '@vidmp3/shared';
import { graphql, signUpUser, uploadFile, type SignedUp } from '../e2e/client.js';
import { generateVideo } from '../e2e/fixtures.js';
import { MYSQL_SERVER } from '../e2e/env.js';
import { startSystem, type ServiceProcess, type System } from '../e2e/harness.js';

const run = promisify(execFile);
const work = await mkdtemp(join(tmpdir(), 'vidmp3-bench-convert-'));
const LONG_SECONDS = Number(process.env.BENCH_LONG_SECONDS ?? 600);
const CLIPS = Number(process.env.BENCH_CLIPS ?? 20);
const CLIP_SECONDS = 12;
/** Extra settings of the workers, as JSON (e.g. '{"PREFETCH":"1"}' to compare a setting's effect). */
const WORKER_ENV = JSON.parse(process.env.BENCH_WORKER_ENV ?? '{}') as Record<string, string>;
/** Extra settings of jobs, as JSON (e.g. '{"MAX_DISPATCHED_PER_USER":"2"}' to measure with fair dispatch on). */
const JOBS_ENV = JSON.parse(process.env.BENCH_JOBS_ENV ?? '{}') as Record<string, string>;

async function seconds(fn: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

const bare = (input: string, output: string) =>
  run('ffmpeg', ['-v', 'error', '-y', '-i', input, '-vn', '-c:a', 'libmp3lame', '-b:a', '192k', output]);

async function inBatches<T>(items: T[], width: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: width }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await fn(item);
    }),
  );
}

async function upload(system: System, user: SignedUp, path: string): Promise<string> {
  const res = await uploadFile(system.gatewayUrl, path, { token: user.token });
  if (!res.data) throw new Error(`upload failed: ${JSON.stringify(res.errors)}`);
  return res.data.uploadVideo.id;
}

/** Workers started after the system (not in `system.services`). */
const extraWorkers: ServiceProcess[] = [];
const workers = (system: System) => [
  ...Object.values(system.services).filter((s) => s.name.startsWith('worker')),
  ...extraWorkers,
];

interface Sent {
  id: string;
  /** Epoch ms just before the convertMedia request was sent. */
  sentAt: number;
}

/**
 * convertMedia for every media, then wait until all have succeeded. Completion is read from the jobs database
 * (every 100 ms) rather than polled through the gateway, whose load would slow the conversions it measures; the
 * wall time ends when jobs applied the last `succeeded` event (the job-changed announcement written in the
 * same transaction), to the millisecond.
 */
async function convertAll(system: System, db: Connection, user: SignedUp, mediaIds: string[]): Promise<Round> {
  const cpuBefore = await cpuOf(system);
  const sent: Sent[] = [];
  for (const mediaId of mediaIds) {
    const sentAt = Date.now();
    const res = await graphql<{ convertMedia: { id: string } }>(
      system.gatewayUrl,
      'mutation ($m: ID!) { convertMedia(mediaId: $m, options: { bitrateKbps: 192 }) { id } }',
      { token: user.token, variables: { m: mediaId } },
    );
    sent.push({ id: res.data!.convertMedia.id, sentAt });
  }
  const ids = sent.map((s) => s.id);
  for (;;) {
    const [rows] = await db.query<RowDataPacket[]>(
      'SELECT status, COUNT(*) AS n FROM jobs WHERE id IN (?) GROUP BY status',
      [ids],
    );
    const count = (status: string) => Number(rows.find((r) => r.status === status)?.n ?? 0);
    if (count('FAILED') > 0) throw new Error('a conversion failed');
    if (count('SUCCEEDED') === ids.length) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const cpuAfter = await cpuOf(system);
  const cpuMs = Object.fromEntries(
    Object.entries(cpuAfter).map(([name, ms]) => [name, (ms - (cpuBefore[name] ?? 0)) / ids.length]),
  );
  // The worker logs its steps just after jobs may have applied the event: give its log a moment to arrive.
  for (let tries = 0; ; tries++) {
    try {
      return { ...(await timeline(system, db, sent)), cpuMs };
    } catch (err) {
      if (tries >= 50) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** One job's steps, epoch ms. */
interface Steps {
  sent: number;
  queued: number;
  published: number;
  received: number;
  slotted: number;
  claimed: number;
  ffmpegStarted: number;
  ffmpegEnded: number;
  uploaded: number;
  succeededPublished: number;
  applied: number;
  worker: string;
}

/** Two consecutive jobs of one worker. */
interface Gap {
  before: Steps;
  after: Steps;
}

/**
 * CPU time (user + system, ms) each service's process has used so far, workers together (their ffmpeg
 * children are not counted: prlimit execs ffmpeg in a process of its own).
 */
async function cpuOf(system: System): Promise<Record<string, number>> {
  const cpu: Record<string, number> = {};
  for (const service of [...Object.values(system.services), ...extraWorkers]) {
    const name = service.name.startsWith('worker') ? 'workers' : service.name;
    cpu[name] = (cpu[name] ?? 0) + (await cpuMsOf(service.child.pid));
  }
  // The servers too (shared with anything else on the machine: read them on a quiet one): every statement and
  // message the services send costs CPU there as well, on the same two cores.
  for (const [name, pids] of Object.entries(await serverPids())) {
    for (const pid of pids) cpu[name] = (cpu[name] ?? 0) + (await cpuMsOf(pid));
  }
  return cpu;
}

/** user + system CPU ms of one process so far, all threads. */
async function cpuMsOf(pid: number | undefined): Promise<number> {
  const ticks = 100; // USER_HZ on Linux
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // "pid (comm) state …": utime and stime are fields 14 and 15, counted after the closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) || 0) + (Number(fields[12]) || 0)) * (1000 / ticks);
}

/** The MariaDB and RabbitMQ servers' processes, by command name (`mariadbd`; RabbitMQ's Erlang VM `beam.smp`). */
async function serverPids(): Promise<Record<string, number[]>> {
  const found: Record<string, number[]> = { 'MariaDB (server)': [], 'RabbitMQ (server)': [] };
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const comm = (await readFile(`/proc/${entry}/comm`, 'utf8').catch(() => '')).trim();
    if (comm === 'mariadbd' || comm === 'mysqld') found['MariaDB (server)']!.push(Number(entry));
    else if (comm === 'beam.smp') found['RabbitMQ (server)']!.push(Number(entry));
  }
  return found;
}

interface Round {
  wallSeconds: number;
  /** Per worker, from one ffmpeg's end to the start of its next: what the pipeline costs between jobs. */
  gapsMs: number[];
  /** The two jobs on either side of each of those gaps. */
  gaps: Gap[];
  jobs: Steps[];
  /** Share of the round's wall time × workers that ffmpeg was running. */
  ffmpegBusy: number;
  /** CPU ms per job of each service's process (ffmpeg excluded), over the whole round. */
  cpuMs: Record<string, number>;
}

/**
 * Lines up each job's steps: jobs' database gives when the request was written to the outbox and published
 * and when the `succeeded` event was applied; the worker's "conversion succeeded" log line gives the rest.
 */
async function timeline(system: System, db: Connection, sent: Sent[]): Promise<Omit<Round, 'cpuMs'>> {
  const ids = sent.map((s) => s.id);
  const [outbox] = await db.query<RowDataPacket[]>(
    `SELECT JSON_VALUE(payload, '$.jobId') AS jobId, routing_key AS routingKey, created_at AS createdAt,
            published_at AS publishedAt
     FROM outbox WHERE JSON_VALUE(payload, '$.jobId') IN (?) ORDER BY id`,
    [ids],
  );
  const workerSteps = new Map<string, { worker: string; steps: Record<string, number> }>();
  for (const { name, logs } of workers(system)) {
    for (const line of logs) {
      if (!line.includes('conversion succeeded')) continue;
      const entry = JSON.parse(line) as { jobId?: string; steps?: Record<string, number> };
      if (entry.jobId && entry.steps && ids.includes(entry.jobId))
        workerSteps.set(entry.jobId, { worker: name, steps: entry.steps });
    }
  }
  const jobs = sent.map(({ id, sentAt }): Steps => {
    const rows = outbox.filter((r) => r.jobId === id);
    const request = rows.find((r) => r.routingKey === Topology.conversionsQueue);
    const changes = rows.filter((r) => r.routingKey !== Topology.conversionsQueue);
    const worker = workerSteps.get(id)?.steps;
    const name = workerSteps.get(id)?.worker;
    if (!request || changes.length === 0 || !worker) throw new Error(`job ${id}: steps missing`);
    return {
      sent: sentAt,
      queued: (request.createdAt as Date).getTime(),
      published: (request.publishedAt as Date).getTime(),
      received: worker.received!,
      // Workers before PREFETCH had no slots: the claim followed the delivery at once.
      slotted: worker.slotted ?? worker.received!,
      claimed: worker.claimed!,
      ffmpegStarted: worker.ffmpegStarted!,
      ffmpegEnded: worker.ffmpegEnded!,
      uploaded: worker.uploaded!,
      succeededPublished: worker.succeededPublished!,
      applied: Math.max(...changes.map((r) => (r.createdAt as Date).getTime())),
      worker: name!,
    };
  });
  const gapsMs: number[] = [];
  const gaps: Gap[] = [];
  for (const name of new Set(jobs.map((j) => j.worker))) {
    const mine = jobs.filter((j) => j.worker === name).sort((a, b) => a.ffmpegStarted - b.ffmpegStarted);
    for (let i = 1; i < mine.length; i++) {
      gapsMs.push(mine[i]!.ffmpegStarted - mine[i - 1]!.ffmpegEnded);
      gaps.push({ before: mine[i - 1]!, after: mine[i]! });
    }
  }
  const first = Math.min(...jobs.map((j) => j.sent));
  const last = Math.max(...jobs.map((j) => j.applied));
  const busyWorkers = new Set(sent.map(({ id }) => workerSteps.get(id)?.worker));
  const ffmpegMs = jobs.reduce((sum, j) => sum + (j.ffmpegEnded - j.ffmpegStarted), 0);
  return {
    wallSeconds: (last - first) / 1000,
    gapsMs,
    gaps,
    jobs,
    ffmpegBusy: ffmpegMs / ((last - first) * busyWorkers.size),
  };
}

const STEPS: [string, Exclude<keyof Steps, 'worker'>, Exclude<keyof Steps, 'worker'>][] = [
  ['convertMedia → request in the outbox', 'sent', 'queued'],
  // Marked once confirmed, by the writer, in batches every 50 ms: a worker may receive a request before its mark.
  ['outbox → marked published (confirmed)', 'queued', 'published'],
  ['marked → worker receives (queue wait)', 'published', 'received'],
  ['receive → an ffmpeg slot is free (held in the worker)', 'received', 'slotted'],
  ['slot → claim answered', 'slotted', 'claimed'],
  ['claim → ffmpeg spawned', 'claimed', 'ffmpegStarted'],
  ['ffmpeg running', 'ffmpegStarted', 'ffmpegEnded'],
  ['ffmpeg end → output stored in media', 'ffmpegEnded', 'uploaded'],
  ['stored → succeeded event published', 'uploaded', 'succeededPublished'],
  ['published → succeeded applied in jobs', 'succeededPublished', 'applied'],
];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** What happened between one ffmpeg's end and the worker's next ffmpeg, ms after that end. */
const GAP_MARKS: [string, (g: Gap) => number][] = [
  ['its mp3 stored', (g) => g.before.uploaded],
  ['its succeeded published (then acked)', (g) => g.before.succeededPublished],
  ['next request published', (g) => g.after.published],
  ['next request received', (g) => g.after.received],
  ['next slot', (g) => g.after.slotted],
  ['next claim answered', (g) => g.after.claimed],
  ['next ffmpeg spawned', (g) => g.after.ffmpegStarted],
];

/** The gaps between two jobs of a worker, taken apart: the median one and the longest ones of each round. */
function printGaps(rounds: [string, Round][]): void {
  for (const [name, round] of rounds) {
    if (round.gaps.length === 0) continue;
    const sorted = [...round.gaps].sort(
      (a, b) => a.after.ffmpegStarted - a.before.ffmpegEnded - (b.after.ffmpegStarted - b.before.ffmpegEnded),
    );
    const shown = [sorted[Math.floor(sorted.length / 2)]!, ...sorted.slice(-3)];
    console.log(
      `\n| ${name}: ms after an ffmpeg's end | median gap | ${shown
        .slice(1)
        .map(() => 'long gap')
        .join(' | ')} |`,
    );
    console.log(`| --- |${shown.map(() => ' --- |').join('')}`);
    console.log(`| worker | ${shown.map((g) => g.after.worker).join(' | ')} |`);
    for (const [label, at] of GAP_MARKS) {
      console.log(`| ${label} | ${shown.map((g) => (at(g) - g.before.ffmpegEnded).toFixed(0)).join(' | ')} |`);
    }
  }
}

function printCpu(rounds: [string, Round][]): void {
  const names = [...new Set(rounds.flatMap(([, r]) => Object.keys(r.cpuMs)))];
  console.log(`\n| CPU ms per job (ffmpeg excluded) | ${rounds.map(([name]) => name).join(' | ')} |`);
  console.log(`| --- |${rounds.map(() => ' --- |').join('')}`);
  for (const name of names) {
    console.log(`| ${name} | ${rounds.map(([, r]) => (r.cpuMs[name] ?? 0).toFixed(0)).join(' | ')} |`);
  }
}

function printSteps(rounds: [string, Round][]): void {
  console.log(`\n| step (median ms per job) | ${rounds.map(([name]) => name).join(' | ')} |`);
  console.log(`| --- |${rounds.map(() => ' --- |').join('')}`);
  for (const [label, from, to] of STEPS) {
    console.log(
      `| ${label} | ${rounds.map(([, r]) => median(r.jobs.map((j) => j[to] - j[from])).toFixed(0)).join(' | ')} |`,
    );
  }
  console.log(
    `| a worker's ffmpeg idle between two jobs, mean (a few long stalls hide under a median) | ${rounds.map(([, r]) => (r.gapsMs.length ? (r.gapsMs.reduce((a, b) => a + b, 0) / r.gapsMs.length).toFixed(0) : '–')).join(' | ')} |`,
  );
  console.log(
    `| a worker's ffmpeg idle between two jobs | ${rounds.map(([, r]) => (r.gapsMs.length ? median(r.gapsMs).toFixed(0) : '–')).join(' | ')} |`,
  );
  console.log(
    `| a worker's ffmpeg idle between two jobs, 90th percentile | ${rounds.map(([, r]) => (r.gapsMs.length ? percentile(r.gapsMs, 0.9).toFixed(0) : '–')).join(' | ')} |`,
  );
  console.log(
    `| ffmpeg busy (share of wall time × workers) | ${rounds.map(([, r]) => `${(r.ffmpegBusy * 100).toFixed(0)} %`).join(' | ')} |`,
  );
}

console.log(`making a ${LONG_SECONDS} s video and ${CLIPS} clips of ${CLIP_SECONDS} s…`);
const long = join(work, 'long.mp4');
await generateVideo(long, LONG_SECONDS);
const clips = Array.from({ length: CLIPS }, (_, i) => join(work, `clip-${i}.mp4`));
await Promise.all(clips.map((clip) => generateVideo(clip, CLIP_SECONDS)));

// Each bare run goes right before the system's matching round (the system idle meanwhile), so that both see
// the same machine: on a shared machine the load can change several-fold within minutes.
const bareLongRun = () => seconds(() => bare(long, join(work, 'long.mp3')));
const bareClips = (width: number) => seconds(() => inBatches(clips, width, (c) => bare(c, `${c}.mp3`)));

// One account queues every clip at once, twice: lift the per-user limits that protect a public instance, and
// let all of its requests into RabbitMQ at once (fair dispatch would hold back all but two), so this measures
// the pipeline as before the limits existed.
const system = await startSystem(
  {
    // One access token serves the whole run (several rounds of a 10-minute video), longer than the default 15 min.
    users: { ACCESS_TOKEN_TTL_SECONDS: '7200' },
    jobs: {
      MAX_ACTIVE_JOBS_PER_USER: String(CLIPS + 1),
      MAX_CONVERSIONS_PER_HOUR: String(2 * CLIPS + 2),
      MAX_DISPATCHED_PER_USER: String(CLIPS + 1),
      ...JOBS_ENV,
    },
    worker: WORKER_ENV,
  },
  { workers: 1 },
);
let longRound: Round, oneRound: Round, twoRound: Round;
let bareLong: number, bareSerial: number, bareParallel: number;
const db = await mysql.createConnection(`${MYSQL_SERVER}/${system.databases.jobs}`);
try {
  const user = await signUpUser(system.gatewayUrl);
  // One conversion first, not measured: the services' first requests (JIT, connection pools, fluent-ffmpeg's
  // first command) are a start-up cost, not a per-job one, and would otherwise all fall on the long video.
  await convertAll(system, db, user, [await upload(system, user, clips[0]!)]);
  const longId = await upload(system, user, long);
  bareLong = await bareLongRun();
  longRound = await convertAll(system, db, user, [longId]);
  const clipIds: string[] = [];
  for (const clip of clips) clipIds.push(await upload(system, user, clip));
  bareSerial = await bareClips(1);
  oneRound = await convertAll(system, db, user, clipIds);
  extraWorkers.push(await system.startWorker());
  bareParallel = await bareClips(2);
  twoRound = await convertAll(system, db, user, clipIds);
} finally {
  // BENCH_LOG_FILE=path keeps every service's log lines, to look into a stall the tables show.
  if (process.env.BENCH_LOG_FILE) {
    const lines = [...Object.values(system.services), ...extraWorkers].flatMap((s) =>
      s.logs.map((line) => `[${s.name}] ${line}`),
    );
    await writeFile(process.env.BENCH_LOG_FILE, `${lines.join('\n')}\n`);
  }
  await db.end();
  await system.stop();
  await rm(work, { recursive: true, force: true });
}

const [systemLong, oneWorker, twoWorkers] = [longRound, oneRound, twoRound].map((r) => r.wallSeconds) as [
  number,
  number,
  number,
];
const perMinute = (s: number) => ((CLIPS / s) * 60).toFixed(0);
console.log(`\n| ${LONG_SECONDS} s video → mp3 192k | wall time | ratio |\n| --- | --- | --- |`);
console.log(`| bare ffmpeg | ${bareLong.toFixed(2)} s | 1.00× |`);
console.log(
  `| system (convertMedia → SUCCEEDED) | ${systemLong.toFixed(2)} s | ${(systemLong / bareLong).toFixed(2)}× |`,
);
console.log(`\n| ${CLIPS} clips of ${CLIP_SECONDS} s | wall time | jobs per minute |\n| --- | --- | --- |`);
console.log(`| bare ffmpeg, one at a time | ${bareSerial.toFixed(2)} s | ${perMinute(bareSerial)} |`);
console.log(`| bare ffmpeg, two at a time | ${bareParallel.toFixed(2)} s | ${perMinute(bareParallel)} |`);
console.log(`| system, 1 worker | ${oneWorker.toFixed(2)} s | ${perMinute(oneWorker)} |`);
console.log(`| system, 2 workers | ${twoWorkers.toFixed(2)} s | ${perMinute(twoWorkers)} |`);
console.log(`\n| ratios | value | goal |\n| --- | --- | --- |`);
console.log(`| ${LONG_SECONDS} s video: system ÷ bare | ${(systemLong / bareLong).toFixed(2)}× | ≤ 1.1× |`);
console.log(`| clips: 1 worker ÷ bare one at a time (jobs/min) | ${(bareSerial / oneWorker).toFixed(2)} | ≥ 0.9 |`);
console.log(`| clips: 2 workers ÷ 1 worker (jobs/min) | ${(oneWorker / twoWorkers).toFixed(2)} | ≥ 1.9 |`);
console.log(`| bare: two at a time ÷ one at a time | ${(bareSerial / bareParallel).toFixed(2)} | |`);
printSteps([
  [`${LONG_SECONDS} s video`, longRound],
  ['clips, 1 worker', oneRound],
  ['clips, 2 workers', twoRound],
]);
printCpu([
  [`${LONG_SECONDS} s video`, longRound],
  ['clips, 1 worker', oneRound],
  ['clips, 2 workers', twoRound],
]);
printGaps([
  ['clips, 1 worker', oneRound],
  ['clips, 2 workers', twoRound],
]);
