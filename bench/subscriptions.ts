// Subscription benchmark: N graphql-ws clients watching one conversion through our gateway, then the same N
// clients watching another conversion through Hive Gateway, in the same run on the same system.
//
//   npm run bench:subscriptions                      # 100 and 1000 clients, ours then Hive Gateway
//   BENCH_CLIENTS=100,1000,5000 npm run bench:subscriptions
//   BENCH_SUB_TARGETS=ours npm run bench:subscriptions   # one side only (ours, hive; the order is kept)
//
// Every client (one user, all from 127.0.0.1: our gateway's WebSocket limits are raised for the run)
// subscribes to `jobUpdated` with fields of all three subgraphs and records each state it receives. Each
// target gets a conversion of its own (a job of the same user, on its own upload), created while the one worker
// (warm, reading at realtime: READRATE=1, so a 12 s clip emits progress about every second) is busy with a long
// blocker job of the same user and jobs dispatches one job per user at a time, so that it waits QUEUED until
// every client has seen that first state; then the blocker is cancelled and the worker takes the watched job.
// The targets run one after the other, never overlapping. Per target: delivery
// latency (receive time − the job's own `updatedAt`, ms precision: same machine, same clock), states missed
// and duplicated per client, errors, the gateway's RSS idle → subscribed / peak (VmHWM, reset per target),
// and after every client has left: how long the gateway took to close their sockets and its RSS about 10 s
// later (no forced GC: what a production process would show), then after one full GC (what it still holds),
// with the growth per subscriber.
// Hive Gateway (bench/lib/hive-gateway.ts) runs as shipped, subscribing to jobs over graphql-ws.
import { readFile, readdir, readlink, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { graphql, signUpUser, uploadFile, type SignedUp } from '../e2e/client.js';
import { generateVideo } from '../e2e/fixtures.js';
import { startService, startSystem, stopService, type ServiceProcess, type System } from '../e2e/harness.js';

const COUNTS = (process.env.BENCH_CLIENTS ?? '100,1000').split(',').map(Number);
const CLIP_SECONDS = Number(process.env.BENCH_CLIP_SECONDS ?? 12);
const TARGETS = (process.env.BENCH_SUB_TARGETS ?? 'ours,hive').split(',') as TargetName[];
/** How long every client gets to see the final state (Hive Gateway needs long at thousands of clients). */
const FINAL_TIMEOUT_MS = Number(process.env.BENCH_SUB_FINAL_TIMEOUT_S ?? 300) * 1000;
/** After the clients leave: RSS is read this long after they closed (and not before their sockets are gone). */
const AFTER_LEAVE_MS = Number(process.env.BENCH_AFTER_LEAVE_SECONDS ?? 10) * 1000;
/**
 * Unset: each gateway gets V8's default heap limit for this machine (about 4 GiB on 24 GiB, so garbage may grow
 * a long way before a full collection). Set: every gateway (ours and Hive) runs with `--max-old-space-size=<this>`,
 * as Node sizes it from a container's memory limit in production.
 */
const MAX_OLD_SPACE_MB = process.env.BENCH_GATEWAY_MAX_OLD_SPACE_MB;
const heapOption = MAX_OLD_SPACE_MB ? `--max-old-space-size=${Number(MAX_OLD_SPACE_MB)}` : '';
/** …but no longer than this waiting for the gateway to close their sockets. */
const RELEASE_TIMEOUT_MS = 30_000;
const FINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);
const root = fileURLToPath(new URL('..', import.meta.url));

type TargetName = 'ours' | 'hive';
for (const t of TARGETS as string[]) {
  if (t !== 'ours' && t !== 'hive') throw new Error(`BENCH_SUB_TARGETS: unknown target ${t}`);
}
const LABELS: Record<TargetName, string> = { ours: 'ours', hive: 'Hive Gateway' };

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
  /** GraphQL errors delivered with (or instead of) a state; the subscription goes on. */
  errors: string[];
  /** Why the subscription ended without completing (connection refused or closed, subscription refused). */
  failed: string | undefined;
}

/** A readable reason from what graphql-ws hands `error`: an Error, GraphQL errors, or a WebSocket close/error event. */
function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (Array.isArray(err)) return err.map(describe).join('; ');
  if (err !== null && typeof err === 'object') {
    const e = err as { code?: unknown; reason?: unknown; message?: unknown; type?: unknown };
    if (typeof e.code === 'number')
      return `closed ${e.code}${typeof e.reason === 'string' && e.reason ? ` ${e.reason}` : ''}`;
    if (typeof e.message === 'string') return e.message;
    if (typeof e.type === 'string') return `${e.type} event`;
  }
  return JSON.stringify(err);
}

/** "count × reason" for the most frequent reasons. */
function summarize(reasons: string[], top = 2): string {
  const counts = new Map<string, number>();
  for (const r of reasons) counts.set(r, (counts.get(r) ?? 0) + 1);
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([reason, n]) => `${n} × ${reason.slice(0, 60)}`)
    .join(', ');
}

const stateKey = (s: State) => `${s.status} ${s.progress} ${s.updatedAt}`;

async function procStatus(pid: number | undefined, field: 'VmHWM' | 'VmRSS'): Promise<number> {
  if (!pid) return NaN;
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
  return match ? Number(match[1]) / 1024 : NaN;
}
const vmRSS = (pid: number | undefined) => procStatus(pid, 'VmRSS');
const vmHWM = (pid: number | undefined) => procStatus(pid, 'VmHWM');
/** Resets the process's peak RSS (Linux clear_refs 5) so that VmHWM afterwards is this target's peak. */
const resetPeak = (pid: number | undefined) =>
  pid
    ? writeFile(`/proc/${pid}/clear_refs`, '5').then(
        () => true,
        () => false,
      )
    : Promise.resolve(false);

/** Open sockets of a process (client WebSockets, upstream and pool connections, listeners). */
async function sockets(pid: number | undefined): Promise<number> {
  if (!pid) return NaN;
  const dir = `/proc/${pid}/fd`;
  const fds = await readdir(dir).catch(() => []);
  const links = await Promise.all(fds.map((fd) => readlink(join(dir, fd)).catch(() => '')));
  return links.filter((l) => l.startsWith('socket:')).length;
}

// The same watch on the jobs subgraph itself (its own fields only): how much of the latency is jobs' own.
const WATCH_JOBS = `subscription ($id: ID!) { jobUpdated(id: $id) { id status progress updatedAt output { id } } }`;

function watcher(wsUrl: string, user: SignedUp, jobId: string, query = WATCH): Watcher {
  const seen = new Map<string, Received[]>();
  const errors: string[] = [];
  const w: Watcher = { client: undefined as unknown as Client, seen, errors, failed: undefined };
  const client = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${user.token}` },
    retryAttempts: 0,
    // The socket stays open after the subscription completes (a lazy client would close it right after the
    // final state): the clients leave when the benchmark says so, all at once.
    lazy: false,
    // A failed connection is recorded by the subscription's error sink below (not printed once per client).
    onNonLazyError: () => undefined,
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
      error: (err) => {
        w.failed = describe(err);
      },
      complete: () => undefined,
    },
  );
  w.client = client;
  return w;
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function convert(gatewayUrl: string, user: SignedUp, mediaId: string): Promise<string> {
  const res = await graphql<{ convertMedia: { id: string } }>(
    gatewayUrl,
    'mutation ($m: ID!) { convertMedia(mediaId: $m) { id } }',
    { token: user.token, variables: { m: mediaId } },
  );
  if (!res.data) throw new Error(`convertMedia failed: ${JSON.stringify(res.errors)}`);
  return res.data.convertMedia.id;
}

/**
 * One full garbage collection in a gateway process, through its inspector: SIGUSR1 opens it (on 127.0.0.1:9229,
 * Node's default), and the DevTools protocol's `HeapProfiler.collectGarbage` runs the collection. The inspector is
 * checked to be that process's (another one holding the port would be collected instead) and closed afterwards,
 * which frees the port for the next gateway.
 */
async function collectGarbage(pid: number): Promise<void> {
  process.kill(pid, 'SIGUSR1');
  let targets: { webSocketDebuggerUrl: string }[] = [];
  for (let tries = 0; tries < 50 && targets.length === 0; tries++) {
    targets = await fetch('http://127.0.0.1:9229/json/list')
      .then((res) => res.json() as Promise<typeof targets>)
      .catch(async () => (await sleep(100), []));
  }
  if (targets.length === 0) throw new Error(`the inspector of ${pid} did not open`);
  const inspector = new WebSocket(targets[0]!.webSocketDebuggerUrl);
  const pending = new Map<number, (result: unknown) => void>();
  inspector.on('message', (data: Buffer) => {
    const message = JSON.parse(data.toString()) as { id?: number; result?: unknown };
    if (message.id !== undefined) pending.get(message.id)?.(message.result);
  });
  let nextId = 0;
  const call = (method: string, params: object = {}) =>
    new Promise<unknown>((resolve) => {
      pending.set(++nextId, resolve);
      inspector.send(JSON.stringify({ id: nextId, method, params }));
    });
  await new Promise<void>((resolve, reject) => {
    inspector.once('open', resolve);
    inspector.once('error', reject);
  });
  const evaluate = (expression: string) => call('Runtime.evaluate', { expression, returnByValue: true });
  try {
    const owner = (await evaluate('process.pid')) as { result?: { value?: unknown } };
    if (owner.result?.value !== pid) throw new Error(`the inspector on 9229 is not ${pid}'s`);
    await call('HeapProfiler.collectGarbage');
  } finally {
    // Closing the inspector from inside ends this connection too: no answer is awaited.
    inspector.send(
      JSON.stringify({
        id: ++nextId,
        method: 'Runtime.evaluate',
        params: { expression: "process.getBuiltinModule('node:inspector').close()" },
      }),
    );
    inspector.close();
  }
}

/** Our gateway's V8 heap in use, MiB (prom-client's `nodejs_heap_size_used_bytes`); NaN for Hive. */
async function heapUsed(target: Target): Promise<number> {
  if (target.name !== 'ours') return NaN;
  // Once more if the first try fails: a pooled connection the gateway has just closed as idle resets.
  const scrape = () => fetch(`${target.url}/metrics`).then((res) => res.text());
  const text = await scrape().catch(scrape);
  const line = text.split('\n').find((l) => l.startsWith('nodejs_heap_size_used_bytes'));
  return line ? Number(line.split(' ').at(-1)) / 1024 ** 2 : NaN;
}

async function jobStatus(gatewayUrl: string, user: SignedUp, id: string): Promise<string | undefined> {
  const res = await graphql<{ job: { status: string } }>(gatewayUrl, 'query ($id: ID!) { job(id: $id) { status } }', {
    token: user.token,
    variables: { id },
  });
  return res.data?.job.status;
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

const load = () =>
  loadavg()
    .map((n) => n.toFixed(1))
    .join(' / ');

interface TargetResult {
  clients: number;
  target: TargetName;
  states: number;
  p50: number;
  p99: number;
  max: number;
  missedStates: number;
  clientsMissing: number;
  missedFinal: number;
  missedQueued: number;
  duplicates: number;
  incomplete: number;
  errors: string[];
  failed: string[];
  rss: { idle: number; subscribed: number; peak: number; afterLeave: number; afterGc: number };
  /** V8 heap in use (MiB, from our gateway's /metrics; Hive has none): idle, subscribed, after leave. */
  heap: { idle: number; subscribed: number; afterLeave: number; afterGc: number };
  /** Open sockets of the gateway: idle, subscribed, after the clients left; ms until back near idle. */
  socks: { idle: number; subscribed: number; afterLeave: number; releasedMs: number | undefined };
  jobs: { idle: number; subscribed: number; peak: number };
  jobsOwn: { p50: number; p99: number };
  load: string;
}

interface Target {
  name: TargetName;
  /** Base URL (GraphQL at /graphql, HTTP and graphql-ws). */
  url: string;
  process: ServiceProcess;
}

/** One target's turn: a fresh conversion watched by `clients` clients, then every client leaves. */
async function runTarget(
  system: System,
  target: Target,
  user: SignedUp,
  media: { watched: string; blocker: string },
  clients: number,
): Promise<TargetResult> {
  const gatewayPid = target.process.child.pid;
  const jobsPid = system.services.jobs?.child.pid;
  const wsUrl = `${target.url.replace(/^http/, 'ws')}/graphql`;
  const watchers: Watcher[] = [];
  let direct: Watcher | undefined;
  try {
    // The same HTTP request through either gateway first, so that neither is measured cold.
    const warm = await graphql(target.url, '{ me { email } }', { token: user.token });
    if (warm.errors) throw new Error(`${target.name}: warm-up query failed: ${JSON.stringify(warm.errors)}`);
    const loadAtStart = load();
    await Promise.all([resetPeak(gatewayPid), resetPeak(jobsPid)]);
    const idle = { gateway: await vmRSS(gatewayPid), jobs: await vmRSS(jobsPid), sockets: await sockets(gatewayPid) };
    const idleHeap = await heapUsed(target);

    // The worker is busy with a long blocker job of the same user, and jobs dispatches one job of a user at a
    // time (MAX_DISPATCHED_PER_USER=1): the watched job waits QUEUED while every client subscribes (jobUpdated
    // starts with the job's current state, so a client that has seen QUEUED is subscribed). Cancelling the
    // blocker then dispatches it to the warm worker — no process start-up in the measured window.
    const blocker = await convert(target.url, user, media.blocker);
    await until('the blocker to run', async () => (await jobStatus(target.url, user, blocker)) === 'RUNNING', 60_000);
    const jobId = await convert(target.url, user, media.watched);
    direct = watcher(`${system.services.jobs!.url.replace(/^http/, 'ws')}/graphql`, user, jobId, WATCH_JOBS);
    for (let i = 0; i < clients; i++) watchers.push(watcher(wsUrl, user, jobId));
    // A client has its answer once a result (data or errors) came, or its subscription failed.
    const subscribedAll = (w: Watcher) =>
      w.failed !== undefined || w.errors.length > 0 || (w.seen.get(jobId) ?? []).length > 0;
    await until('every client to see the job QUEUED', () => [...watchers, direct!].every(subscribedAll), 180_000);
    const subscribed = {
      gateway: await vmRSS(gatewayPid),
      jobs: await vmRSS(jobsPid),
      sockets: await sockets(gatewayPid),
    };
    const subscribedHeap = await heapUsed(target);
    const released = Date.now();
    const cancelled = await graphql(target.url, 'mutation ($id: ID!) { cancelJob(id: $id) { id } }', {
      token: user.token,
      variables: { id: blocker },
    });
    if (cancelled.errors) throw new Error(`cancelling the blocker failed: ${JSON.stringify(cancelled.errors)}`);

    const finished = (w: Watcher) =>
      w.failed !== undefined || (w.seen.get(jobId) ?? []).some((r) => FINAL.has(r.state.status) && r.state.complete);
    await until('every client to see the final state', () => watchers.every(finished), FINAL_TIMEOUT_MS).catch(
      (err: Error) => console.error(`  ${target.name}: ${err.message}`),
    );
    // Stragglers: give late deliveries a moment, they count as late rather than missed.
    await sleep(1_000);
    const peak = { gateway: await vmHWM(gatewayPid), jobs: await vmHWM(jobsPid) };
    const loadAtEnd = load();

    // The job's history: every state any client, or the client on jobs directly, saw, in order. A state that
    // jobs emitted but no gateway delivered to anyone still counts as missed.
    const all = new Map<string, State>();
    for (const w of [...watchers, direct]) for (const r of w.seen.get(jobId) ?? []) all.set(stateKey(r.state), r.state);
    const history = [...all.values()].sort((a, b) => Date.parse(a.updatedAt) - Date.parse(b.updatedAt));
    const latencies: number[] = [];
    let missedStates = 0;
    let clientsMissing = 0;
    let missedFinal = 0;
    let missedQueued = 0;
    let duplicates = 0;
    let incomplete = 0;
    const duplicated: string[] = [];
    for (const w of watchers) {
      const got = w.seen.get(jobId) ?? [];
      for (const r of got) {
        if (Date.parse(r.state.updatedAt) >= released) latencies.push(r.at - Date.parse(r.state.updatedAt));
      }
      const keys = new Set(got.map((r) => stateKey(r.state)));
      const missed = history.filter((s) => !keys.has(stateKey(s))).length;
      missedStates += missed;
      if (missed > 0) clientsMissing++;
      if (!got.some((r) => FINAL.has(r.state.status))) missedFinal++;
      if (!got.some((r) => r.state.status === 'QUEUED')) missedQueued++;
      for (let i = 1; i < got.length; i++) {
        if (stateKey(got[i]!.state) !== stateKey(got[i - 1]!.state)) continue;
        duplicates++;
        duplicated.push(`${got[i]!.state.status} ${got[i]!.state.progress.toFixed(2)}`);
      }
      incomplete += got.filter((r) => !r.state.complete).length;
    }
    // Per state: when the first and the last client got it, after its updatedAt (where a tail comes from).
    const perState = history
      .filter((state) => Date.parse(state.updatedAt) >= released)
      .map((state) => {
        const at = watchers.flatMap((w) =>
          (w.seen.get(jobId) ?? []).filter((r) => stateKey(r.state) === stateKey(state)).map((r) => r.at),
        );
        const t = Date.parse(state.updatedAt);
        const name = `${state.status} ${state.progress.toFixed(2)}`;
        if (at.length === 0) return `${name}: no client`;
        const short = at.length === clients ? '' : ` (${at.length} deliveries)`;
        return `${name}: ${Math.min(...at) - t}–${Math.max(...at) - t} ms${short}`;
      });
    console.log(`  ${LABELS[target.name]}, first–last client per state: ${perState.join(', ')}`);
    if (duplicated.length > 0) console.log(`  ${LABELS[target.name]}, states duplicated: ${summarize(duplicated, 5)}`);
    const errors = watchers.flatMap((w) => w.errors);
    const failed = watchers.flatMap((w) => (w.failed === undefined ? [] : [w.failed]));
    latencies.sort((a, b) => a - b);
    const jobsOwn = (direct.seen.get(jobId) ?? [])
      .filter((r) => Date.parse(r.state.updatedAt) >= released)
      .map((r) => r.at - Date.parse(r.state.updatedAt))
      .sort((a, b) => a - b);

    // Every client leaves. The gateway should close their sockets and give back what they held: wait for its
    // socket count to drop to near idle (bounded), and read RSS no earlier than AFTER_LEAVE_MS after the close.
    const left = Date.now();
    await Promise.allSettled([...watchers, direct].map((w) => Promise.resolve(w.client.dispose())));
    watchers.length = 0;
    direct = undefined;
    let releasedMs: number | undefined;
    let open = await sockets(gatewayPid);
    while (Date.now() - left < RELEASE_TIMEOUT_MS) {
      if (releasedMs === undefined && open <= idle.sockets + 5) releasedMs = Date.now() - left;
      if (releasedMs !== undefined && Date.now() - left >= AFTER_LEAVE_MS) break;
      await sleep(250);
      open = await sockets(gatewayPid);
    }
    const afterLeave = await vmRSS(gatewayPid);
    const afterLeaveHeap = await heapUsed(target);
    // Then one full collection: what the gateway still holds once garbage is gone (V8 collects lazily, so RSS
    // after leave also counts garbage no allocation has yet asked it to reclaim).
    await collectGarbage(gatewayPid!);
    const afterGc = await vmRSS(gatewayPid);
    const afterGcHeap = await heapUsed(target);

    return {
      clients,
      target: target.name,
      states: history.length,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: latencies.at(-1) ?? NaN,
      missedStates,
      clientsMissing,
      missedFinal,
      missedQueued,
      duplicates,
      incomplete,
      errors,
      failed,
      rss: { idle: idle.gateway, subscribed: subscribed.gateway, peak: peak.gateway, afterLeave, afterGc },
      heap: { idle: idleHeap, subscribed: subscribedHeap, afterLeave: afterLeaveHeap, afterGc: afterGcHeap },
      socks: { idle: idle.sockets, subscribed: subscribed.sockets, afterLeave: open, releasedMs },
      jobs: { idle: idle.jobs, subscribed: subscribed.jobs, peak: peak.jobs },
      jobsOwn: { p50: percentile(jobsOwn, 50), p99: percentile(jobsOwn, 99) },
      load: `${loadAtStart} → ${loadAtEnd}`,
    };
  } finally {
    await Promise.allSettled(
      [...watchers, ...(direct ? [direct] : [])].map((w) => Promise.resolve(w.client.dispose())),
    );
  }
}

async function runCount(clients: number, clip: string, blockerClip: string): Promise<TargetResult[]> {
  const limit = String(clients + 100);
  // All clients come from 127.0.0.1 and one user: lift the per-user and per-address WebSocket limits.
  const system = await startSystem(
    {
      gateway: {
        MAX_WS_CONNECTIONS_PER_USER: limit,
        MAX_WS_CONNECTIONS_PER_IP: limit,
        MAX_SUBSCRIPTIONS_PER_USER: limit,
        MAX_SUBSCRIPTIONS_PER_IP: limit,
        ...(heapOption ? { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${heapOption}`.trim() } : {}),
      },
      // One of the user's jobs in the converters' queue at a time: the watched job waits behind the blocker.
      jobs: { MAX_DISPATCHED_PER_USER: '1' },
      // Realtime reading: a 12 s clip emits progress about every second, and the blocker runs until cancelled.
      worker: { READRATE: '1' },
    },
    { workers: 1 },
  );
  let hive: ServiceProcess | undefined;
  try {
    const subgraphUrl = (name: string) => `${system.services[name]!.url}/graphql`;
    if (TARGETS.includes('hive')) {
      hive = await startService('hive', 'bench/lib/hive-gateway.ts', {
        // The fixture is TypeScript: node runs it through tsx's loader (a cost at start only).
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import tsx ${heapOption}`.trim(),
        HIVE_SUPERGRAPH_PATH: join(root, 'supergraph.graphql'),
        HIVE_USERS_URL: subgraphUrl('users'),
        HIVE_MEDIA_URL: subgraphUrl('media'),
        HIVE_JOBS_URL: subgraphUrl('jobs'),
      });
    }
    const targets: Record<TargetName, Target | undefined> = {
      ours: { name: 'ours', url: system.gatewayUrl, process: system.services.gateway! },
      hive: hive && { name: 'hive', url: hive.url, process: hive },
    };
    const user = await signUpUser(system.gatewayUrl);
    const results: TargetResult[] = [];
    for (const name of TARGETS) {
      // Uploads per target, so that each conversion is a job of its own from the start.
      const [watched, blocker] = await Promise.all(
        [clip, blockerClip].map(async (path) => {
          const upload = await uploadFile(system.gatewayUrl, path, { token: user.token });
          if (!upload.data) throw new Error(`upload failed: ${JSON.stringify(upload.errors)}`);
          return upload.data.uploadVideo.id;
        }),
      );
      console.log(`${clients} clients, ${LABELS[name]}…`);
      results.push(await runTarget(system, targets[name]!, user, { watched: watched!, blocker: blocker! }, clients));
      console.log(row(results.at(-1)!, results));
    }
    // Logging costs CPU on the gateway's event loop: how much each printed (LOG_LEVEL=info for both).
    const logLines = TARGETS.map((name) => `${LABELS[name]} ${targets[name]!.process.logs.length}`).join(', ');
    console.log(`  lines the gateways logged during the run: ${logLines}`);
    return results;
  } finally {
    if (hive) await stopService(hive);
    await system.stop();
  }
}

const ms = (v: number) => (Number.isNaN(v) ? 'n/a' : `${Math.round(v).toLocaleString('en-US')} ms`);
const mib = (v: number) => v.toFixed(0);

function row(r: TargetResult, all: TargetResult[]): string {
  const ours = all.find((o) => o.clients === r.clients && o.target === 'ours');
  const ratio = r.target === 'hive' && ours ? `${(r.p99 / ours.p99).toFixed(1)}×` : '';
  const perSubscriber = ((r.rss.subscribed - r.rss.idle) * 1024) / r.clients;
  const released = r.socks.releasedMs === undefined ? 'not within 30 s' : `within ${ms(r.socks.releasedMs)}`;
  const errors = [
    r.failed.length > 0 ? `${r.failed.length} clients failed (${summarize(r.failed)})` : '',
    r.errors.length > 0 ? `${r.errors.length} results with errors (${summarize(r.errors)})` : '',
    r.incomplete > 0 ? `${r.incomplete} SUCCEEDED without output` : '',
  ].filter(Boolean);
  return [
    `| ${r.clients.toLocaleString('en-US')} | ${LABELS[r.target]} | ${r.states} | ${ms(r.p50)} | ${ms(r.p99)} | ${ms(r.max)} |`,
    ` ${r.missedStates} (${r.clientsMissing} clients) | ${r.missedFinal} | ${r.missedQueued} | ${r.duplicates} |`,
    ` ${errors.length > 0 ? errors.join('; ') : '0'} |`,
    ` ${mib(r.rss.idle)} → ${mib(r.rss.subscribed)} / ${mib(r.rss.peak)} MiB | ${mib(r.rss.afterLeave)} MiB |`,
    ` ${mib(r.rss.afterGc)} MiB |`,
    Number.isNaN(r.heap.idle)
      ? ' n/a |'
      : ` ${mib(r.heap.idle)} → ${mib(r.heap.subscribed)} → ${mib(r.heap.afterLeave)} → ${mib(r.heap.afterGc)} MiB |`,
    ` ${perSubscriber.toFixed(1)} KiB |`,
    ` ${r.socks.idle} → ${r.socks.subscribed} → ${r.socks.afterLeave} (${released}) |`,
    ` ${mib(r.jobs.idle)} → ${mib(r.jobs.subscribed)} / ${mib(r.jobs.peak)} MiB |`,
    ` ${ms(r.jobsOwn.p50)} / ${ms(r.jobsOwn.p99)} | ${r.load} | ${ratio} |`,
  ].join('');
}

const HEADER = [
  '| clients | gateway | states | p50 | p99 | max | states missed | final missed | QUEUED missed | duplicates | errors',
  ` | gateway RSS idle → subscribed / peak | gateway RSS after leave (~${AFTER_LEAVE_MS / 1000} s)`,
  ' | gateway RSS after a full GC | gateway V8 heap used idle → subscribed → after leave → after a full GC',
  ' | RSS growth per subscriber',
  ' | gateway sockets idle → subscribed → after leave (back near idle) | jobs RSS idle → subscribed / peak',
  ' | jobs subgraph directly, 1 client: p50 / p99 | load average 1/5/15 min (start → end) | Hive p99 ÷ ours |',
].join('');

let commit = 'unknown';
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
} catch {
  // not a git checkout: the table says "unknown"
}
const startedAt = new Date().toISOString();
const work = await mkdtemp(join(tmpdir(), 'vidmp3-bench-subscriptions-'));
const results: TargetResult[] = [];
try {
  const clip = join(work, 'clip.mp4');
  await generateVideo(clip, CLIP_SECONDS);
  // Long enough to keep the worker busy while thousands of clients subscribe; it is cancelled then.
  const blockerClip = join(work, 'blocker.mp4');
  await generateVideo(blockerClip, 300);
  for (const clients of COUNTS) results.push(...(await runCount(clients, clip, blockerClip)));
} finally {
  await rm(work, { recursive: true, force: true });
}
console.log(`\n${startedAt}, commit ${commit}, Node ${process.version}, ${CLIP_SECONDS} s clip.\n`);
console.log(HEADER);
console.log(`|${' --- |'.repeat(HEADER.split(' | ').length)}`);
for (const r of results) console.log(row(r, results));
