// Upload benchmark: one large video through the gateway (→ media → disk blob store) next to the essential
// work done by bare tools: `curl -T` to a plain Node server that only drains the body, and to one that hashes
// (sha256) and writes it to disk. Reports wall times, their ratio, the CPU time each server used for the upload
// (steadier than wall time on a shared machine), and each process's peak RSS. Dirty pages are synced before each
// measurement, so that none pays for the previous one's writeback.
//
//   npm run bench:upload                      # 1 GiB
//   BENCH_UPLOAD_MB=256 npm run bench:upload  # smaller, quicker
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { signUpUser } from '../e2e/client.js';
import { startSystem } from '../e2e/harness.js';

const run = promisify(execFile);
const sizeMb = Number(process.env.BENCH_UPLOAD_MB ?? 1024);
const work = await mkdtemp(join(tmpdir(), 'vidmp3-bench-'));

/** Peak resident set size of a process, from the kernel's high-water mark (VmHWM). */
async function peakRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
  return Math.round(kb / 1024);
}

/** A real, probe-able video of about `mb` MiB made fast: raw frames need no encoding. */
async function makeVideo(mb: number): Promise<string> {
  const path = join(work, `bench-${mb}mb.mkv`);
  const frameBytes = 640 * 360 * 1.5;
  const frames = Math.ceil((mb * 1024 * 1024) / frameBytes);
  await run('ffmpeg', [
    '-v',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    'testsrc2=size=640x360:rate=25',
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=440:sample_rate=44100',
    '-frames:v',
    String(frames),
    '-shortest',
    '-c:v',
    'rawvideo',
    '-pix_fmt',
    'yuv420p',
    '-c:a',
    'pcm_s16le',
    path,
  ]);
  return path;
}

/** CPU seconds (user + system, every thread) a process has used so far. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

/**
 * Writes the page cache's dirty pages out before a measurement: otherwise the kernel may be writing back the
 * gigabytes the previous step wrote (the video, the baseline's file) while the next one writes its own, and
 * throttle it — a penalty for whoever runs later, not a property of the upload path.
 */
const settle = () => run('sync');

async function timed<T>(fn: () => Promise<T>): Promise<{ seconds: number; result: T }> {
  const started = process.hrtime.bigint();
  const result = await fn();
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, result };
}

/** Runs bench/lib/sink-server.ts in its own process, so its RSS is its own. */
async function withSink(mode: 'drain' | 'hash-write', fn: (url: string) => Promise<void>) {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(import.meta.dirname, 'lib/sink-server.ts'), mode, work],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const url = await new Promise<string>((resolve) =>
    child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())),
  );
  try {
    const cpu = await cpuSeconds(child.pid!);
    await fn(url);
    return { rss: await peakRssMb(child.pid!), cpu: (await cpuSeconds(child.pid!)) - cpu };
  } finally {
    child.kill('SIGTERM');
  }
}

const curl = (args: string[]) =>
  run('curl', ['-sS', '--fail-with-body', '-o', '/dev/null', ...args], { maxBuffer: 1 << 20 });

// A VM that hands freed memory back to its host (Linux free page reporting) makes whoever takes new page cache
// pages pay for them again, unevenly between the steps: see bench/README.md ("On this VM, measure with its memory
// held"). Said before the run, not changed by it.
const minFreeMs = await readFile('/sys/module/page_reporting/parameters/min_free_ms', 'utf8').catch(() => null);
if (minFreeMs !== null && Number(minFreeMs) < 60_000) {
  console.log(
    'note: this machine reports freed memory to its host at once; for comparable figures first run\n' +
      '  echo 60000 > /sys/module/page_reporting/parameters/min_free_ms; ' +
      'echo 16384 > /sys/module/page_reporting/parameters/max_waiting_mib',
  );
}

console.log(`making a ${sizeMb} MiB video…`);
const video = await makeVideo(sizeMb);
const warmUp = await makeVideo(4);
const bytes = (await stat(video)).size;
console.log(`${video}: ${(bytes / 1024 ** 2).toFixed(0)} MiB`);

const rows: { name: string; seconds: number; cpu: string; rss: string }[] = [];

let drain = 0;
await settle();
const drained = await withSink('drain', async (url) => {
  drain = (await timed(() => curl(['-T', video, url]))).seconds;
});
rows.push({
  name: 'curl -T → Node server that drains the body',
  seconds: drain,
  cpu: `${drained.cpu.toFixed(2)} s`,
  rss: `${drained.rss} MB`,
});

let sink = 0;
await settle();
const sunk = await withSink('hash-write', async (url) => {
  sink = (await timed(() => curl(['-T', video, url]))).seconds;
});
rows.push({
  name: 'curl -T → Node server that hashes (sha256) and writes to disk',
  seconds: sink,
  cpu: `${sunk.cpu.toFixed(2)} s`,
  rss: `${sunk.rss} MB`,
});

const limit = String(bytes + 1024 ** 2);
const system = await startSystem({
  gateway: { MAX_UPLOAD_BYTES: limit },
  media: { MAX_UPLOAD_BYTES: limit },
});
try {
  const user = await signUpUser(system.gatewayUrl);
  const operations = JSON.stringify({
    query: 'mutation ($file: Upload!) { uploadVideo(file: $file) { id byteSize sha256 } }',
    variables: { file: null },
  });
  const upload = (file: string) =>
    run(
      'curl',
      [
        '-sS',
        '--fail-with-body',
        '-H',
        'apollo-require-preflight: true',
        '-H',
        `authorization: Bearer ${user.token}`,
        '-F',
        `operations=${operations}`,
        '-F',
        'map={"0":["variables.file"]}',
        '-F',
        `0=@${file};type=video/x-matroska`,
        `${system.gatewayUrl}/graphql`,
      ],
      { maxBuffer: 1 << 20 },
    );
  const gatewayPid = system.services.gateway!.child.pid!;
  const mediaPid = system.services.media!.child.pid!;
  // One small upload first: the first signed-in request makes each service fetch the token keys, and Node's
  // fetch compiles its WebAssembly HTTP parser then (~30 MB for a moment, once per process). That, and the
  // first run of every code path, belong to starting the service, not to an upload.
  await upload(warmUp);
  const started = { gateway: await peakRssMb(gatewayPid), media: await peakRssMb(mediaPid) };
  // The peak is then measured from here ("5" resets VmHWM to the current RSS: Linux's clear_refs).
  await Promise.all([gatewayPid, mediaPid].map((pid) => writeFile(`/proc/${pid}/clear_refs`, '5')));
  const idle = { gateway: await peakRssMb(gatewayPid), media: await peakRssMb(mediaPid) };
  const cpu = { gateway: await cpuSeconds(gatewayPid), media: await cpuSeconds(mediaPid) };
  await settle();
  const { seconds, result } = await timed(() => upload(video));
  const body = JSON.parse(result.stdout) as { data?: { uploadVideo?: { byteSize: number } }; errors?: unknown };
  if (body.data?.uploadVideo?.byteSize !== bytes) throw new Error(`upload failed: ${result.stdout}`);
  const used = (pid: number, before: number) => cpuSeconds(pid).then((after) => (after - before).toFixed(2));
  rows.push({
    name: 'curl -F → gateway → media (hash, probe, store)',
    seconds,
    cpu: `gateway ${await used(gatewayPid, cpu.gateway)} s, media ${await used(mediaPid, cpu.media)} s`,
    rss:
      `gateway ${await peakRssMb(gatewayPid)} MB, media ${await peakRssMb(mediaPid)} MB ` +
      `(before it: ${idle.gateway}, ${idle.media}; peak from start-up to before it: ${started.gateway}, ${started.media})`,
  });
} finally {
  await system.stop();
  await rm(work, { recursive: true, force: true });
}

console.log(
  `\n| ${sizeMb} MiB upload | wall time | vs hash+write server | CPU of the server(s) | peak RSS |\n| --- | --- | --- | --- | --- |`,
);
for (const row of rows) {
  console.log(
    `| ${row.name} | ${row.seconds.toFixed(2)} s | ${(row.seconds / sink).toFixed(2)}× | ${row.cpu} | ${row.rss} |`,
  );
}
