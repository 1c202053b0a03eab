// Conversion benchmark: the whole system (upload excluded; convertMedia → SUCCEEDED through the gateway)
// next to the bare ffmpeg command doing the same conversion, run side by side on this machine.
//
//   npm run bench:convert
//
// 1. one 10-minute 160x120 video: system end-to-end time vs `ffmpeg -i in.mp4 -vn -c:a libmp3lame -b:a 192k`;
// 2. twenty 12-second clips: jobs per minute with 1 and 2 workers vs bare ffmpeg one at a time and two at a time.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { graphql, signUpUser, uploadFile, type SignedUp } from '../e2e/client.js';
import { generateVideo } from '../e2e/fixtures.js';
import { startSystem, type System } from '../e2e/harness.js';

const run = promisify(execFile);
const work = await mkdtemp(join(tmpdir(), 'vidmp3-bench-convert-'));
const LONG_SECONDS = Number(process.env.BENCH_LONG_SECONDS ?? 600);
const CLIPS = Number(process.env.BENCH_CLIPS ?? 20);
const CLIP_SECONDS = 12;

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

/** convertMedia for every media, then wait until all have succeeded; returns the wall time. */
async function convertAll(system: System, user: SignedUp, mediaIds: string[]): Promise<number> {
  return seconds(async () => {
    const ids: string[] = [];
    for (const mediaId of mediaIds) {
      const res = await graphql<{ convertMedia: { id: string } }>(
        system.gatewayUrl,
        'mutation ($m: ID!) { convertMedia(mediaId: $m, options: { bitrateKbps: 192 }) { id } }',
        { token: user.token, variables: { m: mediaId } },
      );
      ids.push(res.data!.convertMedia.id);
    }
    for (;;) {
      const res = await graphql<{ me: { jobs: { edges: { node: { id: string; status: string } }[] } } }>(
        system.gatewayUrl,
        '{ me { jobs(first: 100) { edges { node { id status } } } } }',
        { token: user.token },
      );
      const mine = res.data!.me.jobs.edges.filter((e) => ids.includes(e.node.id));
      if (mine.some((e) => e.node.status === 'FAILED')) throw new Error('a conversion failed');
      if (mine.filter((e) => e.node.status === 'SUCCEEDED').length === ids.length) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  });
}

console.log(`making a ${LONG_SECONDS} s video and ${CLIPS} clips of ${CLIP_SECONDS} s…`);
const long = join(work, 'long.mp4');
await generateVideo(long, LONG_SECONDS);
const clips = Array.from({ length: CLIPS }, (_, i) => join(work, `clip-${i}.mp4`));
await Promise.all(clips.map((clip) => generateVideo(clip, CLIP_SECONDS)));

const bareLong = await seconds(() => bare(long, join(work, 'long.mp3')));
const bareSerial = await seconds(() => inBatches(clips, 1, (c) => bare(c, `${c}.mp3`)));
const bareParallel = await seconds(() => inBatches(clips, 2, (c) => bare(c, `${c}.mp3`)));

// One account queues every clip at once, twice: lift the per-user limits that protect a public instance, and
// let all of its requests into RabbitMQ at once (fair dispatch would hold back all but two), so this measures
// the pipeline as before the limits existed.
const system = await startSystem(
  {
    jobs: {
      MAX_ACTIVE_JOBS_PER_USER: String(CLIPS + 1),
      MAX_CONVERSIONS_PER_HOUR: String(2 * CLIPS + 1),
      MAX_DISPATCHED_PER_USER: String(CLIPS + 1),
    },
  },
  { workers: 1 },
);
let systemLong: number, oneWorker: number, twoWorkers: number;
try {
  const user = await signUpUser(system.gatewayUrl);
  const longId = await upload(system, user, long);
  systemLong = await convertAll(system, user, [longId]);
  const clipIds: string[] = [];
  for (const clip of clips) clipIds.push(await upload(system, user, clip));
  oneWorker = await convertAll(system, user, clipIds);
  await system.startWorker();
  twoWorkers = await convertAll(system, user, clipIds);
} finally {
  await system.stop();
  await rm(work, { recursive: true, force: true });
}

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
