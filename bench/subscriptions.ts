// Subscription benchmark: N graphql-ws clients watching one conversion through the gateway.
//
//   npm run bench:subscriptions                      # 100 and 1000 clients
//   BENCH_CLIENTS=100,1000,5000 npm run bench:subscriptions
//
// Every client (one user, all from 127.0.0.1: the gateway's WebSocket limits are raised for the run) subscribes
// to `jobUpdated` with fields of all three subgraphs and records each state it receives. The job is created
// with no worker running, so it waits QUEUED until every client has seen that first state. The worker reads the input at realtime (READRATE=1), so a 12 s clip emits a progress event about
// every second. Per run: delivery latency (receive time − the job's own `updatedAt`, ms precision: same
// machine, same clock), states missed and duplicated per client, and the gateway's and jobs' peak RSS (VmHWM).
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { graphql, signUpUser, uploadFile, type SignedUp } from '../e2e/client.js';
import { generateVideo } from '../e2e/fixtures.js';
import { startSystem, type System } from '../e2e/harness.js';

const COUNTS = (process.env.BENCH_CLIENTS ?? '100,1000').split(',').map(Number);
const CLIP_SECONDS = Number(process.env.BENCH_CLIP_SECONDS ?? 12);
const FINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);

const WATCH = `subscription ($id: ID!) {
  jobUpdated(id: $id) { id status progress updatedAt owner { email } input { filename } output { downloadUrl } }
}`;

interface State {
  status: string;
  progress: number;
  updatedAt: string;
  complete: boolean;
}
interface Received {
  state: State;
  at: number;
}
interface Watcher {
  client: Client;
  seen: Map<string, Received[]>;
  errors: string[];
}

const stateKey = (s: State) => `${s.status} ${s.progress} ${s.updatedAt}`;

async function vmHWM(pid: number | undefined): Promise<number> {
  if (!pid) return NaN;
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) / 1024 : NaN;
}

async function vmRSS(pid: number | undefined): Promise<number> {
  if (!pid) return NaN;
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) / 1024 : NaN;
}

// The same watch on the jobs subgraph itself (its own fields only): how much of the latency is jobs' own.
const WATCH_JOBS = `subscription ($id: ID!) { jobUpdated(id: $id) { id status progress updatedAt output { id } } }`;

function watcher(wsUrl: string, user: SignedUp, jobId: string, query = WATCH): Watcher {
  const seen = new Map<string, Received[]>();
  const errors: string[] = [];
  const client = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${user.token}` },
    retryAttempts: 0,
  });
  client.subscribe<{ jobUpdated: { id: string } & Omit<State, 'complete'> & { output: unknown } }>(
    { query, variables: { id: jobId } },
    {
      next: (result) => {
        const at = Date.now();
        if (result.errors) errors.push(result.errors.map((e) => e.message).join('; '));
        const job = result.data?.jobUpdated;
        if (!job) return;
        // A state counts as complete when every subgraph answered (a SUCCEEDED job has its output's URL).
        const complete = job.status !== 'SUCCEEDED' || job.output !== null;
        const list = seen.get(job.id) ?? [];
        list.push({ state: { status: job.status, progress: job.progress, updatedAt: job.updatedAt, complete }, at });
        seen.set(job.id, list);
      },
      error: (err) => errors.push(err instanceof Error ? err.message : JSON.stringify(err)),
      complete: () => undefined,
    },
  );
  return { client, seen, errors };
}

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function convert(system: System, user: SignedUp, mediaId: string): Promise<string> {
  const res = await graphql<{ convertMedia: { id: string } }>(
    system.gatewayUrl,
    'mutation ($m: ID!) { convertMedia(mediaId: $m) { id } }',
    { token: user.token, variables: { m: mediaId } },
  );
  if (!res.data) throw new Error(`convertMedia failed: ${JSON.stringify(res.errors)}`);
  return res.data.convertMedia.id;
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

async function runOnce(clients: number, clip: string): Promise<string> {
  const limit = String(clients + 100);
  // All clients come from 127.0.0.1 and one user: lift the per-user and per-address WebSocket limits.
  const system = await startSystem(
    {
      gateway: {
        MAX_WS_CONNECTIONS_PER_USER: limit,
        MAX_WS_CONNECTIONS_PER_IP: limit,
        MAX_SUBSCRIPTIONS_PER_USER: limit,
        MAX_SUBSCRIPTIONS_PER_IP: limit,
      },
    },
    { workers: 0 },
  );
  const watchers: Watcher[] = [];
  try {
    const user = await signUpUser(system.gatewayUrl);
    const upload = await uploadFile(system.gatewayUrl, clip, { token: user.token });
    if (!upload.data) throw new Error(`upload failed: ${JSON.stringify(upload.errors)}`);
    const wsUrl = system.gatewayUrl.replace(/^http/, 'ws') + '/graphql';
    const gatewayPid = system.services.gateway?.child.pid;
    const jobsPid = system.services.jobs?.child.pid;
    const idle = { gateway: await vmRSS(gatewayPid), jobs: await vmRSS(jobsPid) };

    // No worker yet: the job waits QUEUED while every client subscribes. jobUpdated starts with the job's
    // current state, so a client that has seen QUEUED is subscribed; then the worker starts the conversion.
    const jobId = await convert(system, user, upload.data.uploadVideo.id);
    const direct = watcher(`${system.services.jobs!.url.replace(/^http/, 'ws')}/graphql`, user, jobId, WATCH_JOBS);
    for (let i = 0; i < clients; i++) watchers.push(watcher(wsUrl, user, jobId));
    const subscribedAll = (w: Watcher) => w.errors.length > 0 || (w.seen.get(jobId) ?? []).length > 0;
    await until('every client to see the job QUEUED', () => [...watchers, direct].every(subscribedAll), 180_000);
    const subscribed = { gateway: await vmRSS(gatewayPid), jobs: await vmRSS(jobsPid) };
    const workerStarted = Date.now();
    await system.startWorker({ READRATE: '1' });

    const mine = watchers;
    const finished = (w: Watcher) =>
      w.errors.length > 0 || (w.seen.get(jobId) ?? []).some((r) => FINAL.has(r.state.status) && r.state.complete);
    await until('every client to see the final state', () => mine.every(finished), 180_000).catch((err: Error) =>
      console.error(err.message),
    );
    // Stragglers: give late deliveries a moment, they count as late rather than missed.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const peak = { gateway: await vmHWM(gatewayPid), jobs: await vmHWM(jobsPid) };

    // Every state any client saw (the job's history as the gateway delivered it), in order.
    const all = new Map<string, State>();
    for (const w of mine) for (const r of w.seen.get(jobId) ?? []) all.set(stateKey(r.state), r.state);
    const history = [...all.values()].sort((a, b) => Date.parse(a.updatedAt) - Date.parse(b.updatedAt));
    const latencies: number[] = [];
    let missedStates = 0;
    let clientsMissing = 0;
    let missedFinal = 0;
    let missedQueued = 0;
    let duplicates = 0;
    let incomplete = 0;
    for (const w of mine) {
      const got = w.seen.get(jobId) ?? [];
      for (const r of got) {
        if (Date.parse(r.state.updatedAt) >= workerStarted) latencies.push(r.at - Date.parse(r.state.updatedAt));
      }
      const keys = new Set(got.map((r) => stateKey(r.state)));
      const missed = history.filter((s) => !keys.has(stateKey(s))).length;
      missedStates += missed;
      if (missed > 0) clientsMissing++;
      if (!got.some((r) => FINAL.has(r.state.status))) missedFinal++;
      if (!got.some((r) => r.state.status === 'QUEUED')) missedQueued++;
      for (let i = 1; i < got.length; i++) if (stateKey(got[i]!.state) === stateKey(got[i - 1]!.state)) duplicates++;
      incomplete += got.filter((r) => !r.state.complete).length;
    }
    // Per state: when the first and the last client got it, after its updatedAt (where a tail comes from).
    const perState = history
      .filter((state) => Date.parse(state.updatedAt) >= workerStarted)
      .map((state) => {
        const at = mine.flatMap((w) =>
          (w.seen.get(jobId) ?? []).filter((r) => stateKey(r.state) === stateKey(state)).map((r) => r.at),
        );
        const t = Date.parse(state.updatedAt);
        return `${state.status} ${state.progress.toFixed(2)}: ${Math.min(...at) - t}–${Math.max(...at) - t} ms`;
      });
    console.log(`  first–last client per state: ${perState.join(', ')}`);
    const errors = mine.flatMap((w) => w.errors);
    latencies.sort((a, b) => a - b);
    const jobsOwn = (direct.seen.get(jobId) ?? [])
      .filter((r) => Date.parse(r.state.updatedAt) >= workerStarted)
      .map((r) => r.at - Date.parse(r.state.updatedAt))
      .sort((a, b) => a - b);
    void direct.client.dispose();
    const ms = (v: number) => `${Math.round(v)} ms`;
    return [
      `| ${clients} | ${history.length} | ${ms(percentile(latencies, 50))} | ${ms(percentile(latencies, 99))} | ${ms(latencies.at(-1) ?? NaN)} |`,
      ` ${missedStates} (${clientsMissing} clients) | ${missedFinal} | ${missedQueued} | ${duplicates} | ${errors.length}${errors[0] ? ` (${errors[0].slice(0, 60)})` : ''} |`,
      ` ${idle.gateway.toFixed(0)} → ${subscribed.gateway.toFixed(0)} / ${peak.gateway.toFixed(0)} MiB |`,
      ` ${idle.jobs.toFixed(0)} → ${subscribed.jobs.toFixed(0)} / ${peak.jobs.toFixed(0)} MiB |`,
      ` ${ms(percentile(jobsOwn, 50))} / ${ms(percentile(jobsOwn, 99))} |`,
      incomplete > 0 ? ` (${incomplete} SUCCEEDED without output)` : '',
    ].join('');
  } finally {
    await Promise.allSettled(watchers.map((w) => Promise.resolve(w.client.dispose())));
    await system.stop();
  }
}

const work = await mkdtemp(join(tmpdir(), 'vidmp3-bench-subscriptions-'));
const rows: string[] = [];
try {
  const clip = join(work, 'clip.mp4');
  await generateVideo(clip, CLIP_SECONDS);
  for (const clients of COUNTS) {
    console.log(`${clients} clients…`);
    rows.push(await runOnce(clients, clip));
    console.log(rows.at(-1));
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
console.log(
  `\n| clients | states | p50 | p99 | max | states missed | final missed | QUEUED missed | duplicates | errors | gateway RSS idle → subscribed / peak | jobs RSS idle → subscribed / peak | jobs subgraph directly, 1 client: p50 / p99 |`,
);
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const row of rows) console.log(row);
