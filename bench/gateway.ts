// Gateway benchmark: requests per second through our gateway next to Hive Gateway over the same
// supergraph and the same running subgraphs (as shipped, and with its in-flight request deduplication off),
// and the users subgraph called directly — every response body checked for the expected data.
//
//   npm run bench:gateway      (BENCH_GATEWAY_SECONDS=10 per case, BENCH_GATEWAY_CONNECTIONS=32,
//                               BENCH_GATEWAY_WARMUP_SECONDS=2 per case, not counted)
//
// The whole system runs as separate processes on loopback (e2e/harness.ts); one user signs up once (the
// login throttle is never involved), uploads a clip and converts it, so the 3-subgraph query returns data
// from users, media and jobs. Hive Gateway runs as a process of its own too (bench/lib/hive-gateway.ts).
// Every request carries the user's token, as a signed-in client sends it, also for `{ __typename }`.
// A response counts only if it has no `errors` and its `data` equals, field for field, the data our
// gateway returned for the same query before the load (checked to be the real thing first); everything
// else — another body, a status other than 2xx, a connection error, a timeout — counts as an error.
// Per case it also reports the target process's CPU time per answered request and its peak RSS (VmHWM,
// reset before each case).
import { readFile, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { graphql, signUpUser, uploadFile } from '../e2e/client.js';
import { generateVideo } from '../e2e/fixtures.js';
import { startService, startSystem, stopService, type ServiceProcess } from '../e2e/harness.js';

const SECONDS = Number(process.env.BENCH_GATEWAY_SECONDS ?? 10);
const WARMUP_SECONDS = Number(process.env.BENCH_GATEWAY_WARMUP_SECONDS ?? 2);
const CONNECTIONS = Number(process.env.BENCH_GATEWAY_CONNECTIONS ?? 32);
/**
 * Unset: each gateway gets the V8 heap limit Node derives from the machine (a quarter of its memory, up to
 * 4 GiB). Set: every gateway (ours and both Hives) runs with `--max-old-space-size=<this>` — what Node derives
 * in a container with a memory limit (the gateway's Kubernetes pod: 512 MiB). V8 lets garbage grow to up to
 * 4× the live heap between full collections under a large limit, much less under a small one, so peak RSS
 * depends on it.
 */
const MAX_OLD_SPACE_MB = process.env.BENCH_GATEWAY_MAX_OLD_SPACE_MB;
const heapOption = MAX_OLD_SPACE_MB ? `--max-old-space-size=${Number(MAX_OLD_SPACE_MB)}` : '';
const root = fileURLToPath(new URL('..', import.meta.url));
/** A comma-separated subset of typename, me, threeSubgraphs (default: all three). */
const SELECTED = (process.env.BENCH_GATEWAY_QUERIES?.split(',') ?? ['typename', 'me', 'threeSubgraphs']) as QueryName[];

const QUERIES = {
  typename: '{ __typename }',
  me: '{ me { id email } }',
  threeSubgraphs:
    '{ me { email media(first: 5) { edges { node { id filename conversions(first: 2) { edges { node { id status } } } } } } jobs(first: 5) { edges { node { id status input { filename } } } } } }',
} as const;
type QueryName = keyof typeof QUERIES;
for (const name of SELECTED) if (!(name in QUERIES)) throw new Error(`BENCH_GATEWAY_QUERIES: unknown query ${name}`);
const QUERY_LABELS: Record<QueryName, string> = {
  typename: '`{ __typename }`',
  me: '`me { id email }`',
  threeSubgraphs: '3 subgraphs (`me { email media { … conversions } jobs { … input } }`)',
};

interface Target {
  label: string;
  url: string;
  process: ServiceProcess;
}

interface CaseResult {
  query: QueryName;
  target: Target;
  rps: number;
  ok: number;
  errors: number;
  /** The first failing body or error of the case, to say what went wrong. */
  firstFailure?: string;
  p99Ms: number;
  cpuMsPerRequest: number;
  /** users + media + jobs together (for the users subgraph called directly: users alone, it is the target). */
  subgraphCpuMsPerRequest: number;
  peakRssMb: number | undefined;
}

// Other processes on a shared machine move every figure: the load is printed beside the results.
const loadAtStart = loadavg();
const work = await mkdtemp(join(tmpdir(), 'vidmp3-bench-gateway-'));
const clip = join(work, 'clip.mp4');
await generateVideo(clip, 2);
const system = await startSystem(
  heapOption ? { gateway: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${heapOption}`.trim() } } : {},
  { workers: 1 },
);
const hives: ServiceProcess[] = [];

/** utime + stime of a process, in milliseconds (clock ticks are 1/100 s on Linux). */
async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

const peakRssMb = async (pid: number) =>
  Math.round(Number(/VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024);
/** Each process's peak RSS over the whole run, kept across the per-case resets. */
const runPeakMb = new Map<number, number>();
/** Resets the process's peak RSS (Linux clear_refs 5) so VmHWM afterwards is this case's peak; false if refused. */
async function resetPeakRss(pid: number): Promise<boolean> {
  await notePeak(pid);
  return writeFile(`/proc/${pid}/clear_refs`, '5').then(
    () => true,
    () => false,
  );
}
async function notePeak(pid: number): Promise<number> {
  const peak = Math.max(runPeakMb.get(pid) ?? 0, await peakRssMb(pid));
  runPeakMb.set(pid, peak);
  return peak;
}

function load(target: Target, query: string, token: string, expected: string, seconds: number) {
  let firstFailure: string | undefined;
  const verifyBody = (raw: string | Buffer | undefined): boolean => {
    const body = String(raw ?? '');
    try {
      const parsed = JSON.parse(body) as { data?: unknown; errors?: unknown };
      if (parsed.errors === undefined && JSON.stringify(parsed.data) === expected) return true;
    } catch {
      // not JSON: a failure like any other
    }
    firstFailure ??= body.slice(0, 300);
    return false;
  };
  return new Promise<{ result: autocannon.Result; firstFailure: string | undefined }>((resolve, reject) => {
    const instance = autocannon(
      {
        url: target.url,
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query }),
        connections: CONNECTIONS,
        duration: seconds,
        timeout: 10,
        verifyBody,
      },
      (err: Error | null, result: autocannon.Result) => (err ? reject(err) : resolve({ result, firstFailure })),
    );
    instance.on('reqError', (err: Error) => {
      firstFailure ??= `request error: ${err.message}`;
    });
  });
}

try {
  // A user with one converted video: media lists the video and its mp3, jobs the conversion.
  const user = await signUpUser(system.gatewayUrl);
  const uploaded = await uploadFile(system.gatewayUrl, clip, { token: user.token });
  const mediaId = uploaded.data?.uploadVideo.id;
  if (!mediaId) throw new Error(`upload failed: ${JSON.stringify(uploaded.errors)}`);
  const converted = await graphql<{ convertMedia: { id: string } }>(
    system.gatewayUrl,
    'mutation ($m: ID!) { convertMedia(mediaId: $m) { id } }',
    { variables: { m: mediaId }, token: user.token },
  );
  const jobId = converted.data?.convertMedia.id;
  if (!jobId) throw new Error(`convertMedia failed: ${JSON.stringify(converted.errors)}`);
  for (let status = '', polls = 0; status !== 'SUCCEEDED'; polls++) {
    if (polls > 600 || status === 'FAILED') throw new Error(`the conversion did not succeed (${status})`);
    await new Promise((r) => setTimeout(r, 100));
    const job = await graphql<{ job: { status: string } }>(
      system.gatewayUrl,
      'query ($id: ID!) { job(id: $id) { status } }',
      {
        variables: { id: jobId },
        token: user.token,
      },
    );
    status = job.data?.job.status ?? '';
  }
  // The worker has nothing left to do: stopped, so that it takes no CPU from the measured processes.
  for (const service of Object.values(system.services))
    if (service.name.startsWith('worker')) await stopService(service);

  const users = system.services.users!;
  const subgraphNames = ['users', 'media', 'jobs'] as const;
  const subgraphUrl = (name: (typeof subgraphNames)[number]) => `${system.services[name]!.url}/graphql`;
  const startHive = (dedupe: boolean) =>
    startService(`hive-dedupe-${dedupe ? 'on' : 'off'}`, 'bench/lib/hive-gateway.ts', {
      // The fixture is TypeScript: node runs it through tsx's loader (a cost at start only).
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import tsx ${heapOption}`.trim(),
      HIVE_SUPERGRAPH_PATH: join(root, 'supergraph.graphql'),
      HIVE_USERS_URL: subgraphUrl('users'),
      HIVE_MEDIA_URL: subgraphUrl('media'),
      HIVE_JOBS_URL: subgraphUrl('jobs'),
      HIVE_DEDUPE: String(dedupe),
    }).then((s) => {
      hives.push(s);
      return s;
    });
  const [hiveOff, hiveOn] = await Promise.all([startHive(false), startHive(true)]);
  const ours: Target = { label: 'our gateway', url: `${system.gatewayUrl}/graphql`, process: system.services.gateway! };
  const targets = {
    ours,
    hiveOff: { label: 'Hive Gateway, dedupe off', url: `${hiveOff.url}/graphql`, process: hiveOff },
    hiveOn: { label: 'Hive Gateway, as shipped (dedupe on)', url: `${hiveOn.url}/graphql`, process: hiveOn },
    users: { label: 'users subgraph, direct', url: subgraphUrl('users'), process: users },
  } satisfies Record<string, Target>;

  const results: CaseResult[] = [];
  for (const query of SELECTED) {
    // The reference answer, from our gateway before any load; it must be real data.
    const reference = await graphql(system.gatewayUrl, QUERIES[query], { token: user.token });
    const me = reference.data?.me as
      { media?: { edges: { node: { conversions: { edges: unknown[] } } }[] }; jobs?: { edges: unknown[] } } | undefined;
    const real =
      reference.errors === undefined &&
      (query === 'typename'
        ? reference.data?.__typename === 'Query'
        : query === 'me'
          ? JSON.stringify(me) === JSON.stringify({ id: user.id, email: user.email })
          : me?.jobs?.edges.length === 1 &&
            me.media?.edges.some((e) => e.node.conversions.edges.length === 1) === true);
    if (!real) throw new Error(`unexpected reference answer for ${query}: ${JSON.stringify(reference)}`);
    const expected = JSON.stringify(reference.data);

    const forQuery = query === 'me' ? Object.values(targets) : [targets.ours, targets.hiveOff, targets.hiveOn];
    for (const target of forQuery) {
      const pid = target.process.child.pid!;
      await load(target, QUERIES[query], user.token, expected, WARMUP_SECONDS);
      const rssReset = await resetPeakRss(pid);
      const subgraphPids = target === targets.users ? [] : subgraphNames.map((n) => system.services[n]!.child.pid!);
      const subgraphCpu = async () => (await Promise.all(subgraphPids.map(cpuMs))).reduce((a, b) => a + b, 0);
      const cpuBefore = await cpuMs(pid);
      const subgraphCpuBefore = await subgraphCpu();
      const { result, firstFailure } = await load(target, QUERIES[query], user.token, expected, SECONDS);
      const cpu = (await cpuMs(pid)) - cpuBefore;
      const subgraphCpuUsed = (await subgraphCpu()) - subgraphCpuBefore;
      const ok = result.requests.total - result.mismatches;
      results.push({
        query,
        target,
        rps: ok / result.duration,
        ok,
        errors: result.mismatches + result.errors,
        ...(firstFailure === undefined ? {} : { firstFailure }),
        p99Ms: result.latency.p99,
        cpuMsPerRequest: ok > 0 ? cpu / ok : Number.NaN,
        subgraphCpuMsPerRequest: target === targets.users ? Number.NaN : ok > 0 ? subgraphCpuUsed / ok : Number.NaN,
        peakRssMb: rssReset ? await peakRssMb(pid) : undefined,
      });
      const last = results.at(-1)!;
      console.error(
        `${query} → ${target.label}: ${last.rps.toFixed(0)} RPS, ${last.errors} errors${firstFailure ? ` (first: ${firstFailure})` : ''}`,
      );
    }
  }

  const lifetimePeak = Object.fromEntries(
    await Promise.all(
      [targets.ours, targets.hiveOff, targets.hiveOn].map(async (t) => [t.label, await notePeak(t.process.child.pid!)]),
    ),
  ) as Record<string, number>;

  const rpsOf = (query: QueryName, target: Target) =>
    results.find((r) => r.query === query && r.target === target)!.rps;
  const lines = [
    `| query | target | RPS | errors | p99 latency | target CPU / request | subgraphs CPU / request | target peak RSS | ours ÷ this (RPS) |`,
    `| --- | --- | --: | --: | --: | --: | --: | --: | --: |`,
    ...results.map((r) => {
      const ratio = r.target === ours ? '' : `${(rpsOf(r.query, ours) / r.rps).toFixed(2)}×`;
      const rss = r.peakRssMb === undefined ? 'n/a' : `${r.peakRssMb} MB`;
      return `| ${QUERY_LABELS[r.query]} | ${r.target.label} | ${Math.round(r.rps)} | ${r.errors} | ${r.p99Ms} ms | ${r.cpuMsPerRequest.toFixed(2)} ms | ${Number.isNaN(r.subgraphCpuMsPerRequest) ? '' : `${r.subgraphCpuMsPerRequest.toFixed(2)} ms`} | ${rss} | ${ratio} |`;
    }),
  ];
  const load1 = (l: number[]) => l.map((n) => n.toFixed(1)).join(' / ');
  console.log(
    `\n${cpus().length} × ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 1024 ** 3)} GiB, Node ${process.version}; ` +
      `load average (1/5/15 min) ${load1(loadAtStart)} at the start, ${load1(loadavg())} at the end.`,
  );
  console.log(
    `${SECONDS} s per case after ${WARMUP_SECONDS} s of warm-up, ${CONNECTIONS} connections, every body checked` +
      `${heapOption ? `; every gateway with ${heapOption}` : ''}.\n`,
  );
  console.log(lines.join('\n'));
  console.log(
    `\nPeak RSS over the whole run (VmHWM): ${Object.entries(lifetimePeak)
      .map(([label, mb]) => `${label} ${mb} MB`)
      .join(', ')}.`,
  );
} finally {
  await Promise.allSettled(hives.map(stopService));
  await system.stop();
  await rm(work, { recursive: true, force: true });
}
