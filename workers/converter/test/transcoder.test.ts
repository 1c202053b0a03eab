// transcode() with the real ffmpeg, reading from a small HTTP server that serves samples the way media's
// internal API does: bearer token required, Range supported (so ffmpeg can seek to a moov atom at the end).
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { JobErrorCode, type ConversionOptions } from '@vidmp3/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sample, sampleDurationSeconds, type SampleName } from '../../../e2e/fixtures.js';
import { AbortError, PermanentError, TimeoutError, TransientError } from '../src/errors.js';
import { openInputProxy } from '../src/input-proxy.js';
import { ffmpegArguments, outputSizeLimit, transcode, warmUp, type TranscodeRequest } from '../src/transcoder.js';

const run = promisify(execFile);
const TOKEN = 'test-internal-token-0123456789';
const ffmpegPath = process.env.FFMPEG_PATH ?? 'ffmpeg';
const ffprobePath = process.env.FFPROBE_PATH ?? 'ffprobe';

let server: Server;
let baseUrl: string;
let scratch: string;
/** Requests that came without the right token (fluent-ffmpeg's own ffprobe would be one), and with it. */
let unauthorized = 0;
let authorized = 0;
/** Inputs made by a test, served like the samples: name → path. */
const generated = new Map<string, string>();
/** Range headers seen, by sample. */
const ranges = new Map<string, string[]>();
/** Requests for each sample (GET and HEAD, ranged or not). */
const requests = new Map<string, number>();

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'vidmp3-transcoder-test-'));
  server = createServer((req, res) => {
    void serve(req.url ?? '', req.method ?? 'GET', req.headers, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await rm(scratch, { recursive: true, force: true });
});

/** /media/<sample name> serves a sample; /status/<code> answers that status; everything needs the token. */
async function serve(
  url: string,
  method: string,
  headers: Record<string, string | string[] | undefined>,
  res: ServerResponse,
): Promise<void> {
  if (headers.authorization !== `Bearer ${TOKEN}`) {
    unauthorized++;
    res.writeHead(401).end();
    return;
  }
  authorized++;
  const status = /^\/status\/(\d{3})$/.exec(url);
  if (status) {
    res.writeHead(Number(status[1]), { 'content-type': 'text/plain' }).end('no');
    return;
  }
  const name = /^\/media\/([\w.-]+)$/.exec(url)?.[1];
  if (!name) {
    res.writeHead(404).end();
    return;
  }
  const path = generated.get(name) ?? (await sample(name as SampleName));
  const { size } = await stat(path);
  requests.set(name, (requests.get(name) ?? 0) + 1);
  const range = typeof headers.range === 'string' ? headers.range : undefined;
  if (range) ranges.set(name, [...(ranges.get(name) ?? []), range]);
  // One range of the forms ffmpeg sends: bytes=a- and bytes=a-b (and bytes=-n for completeness).
  const match = range ? /^bytes=(\d*)-(\d*)$/.exec(range) : null;
  let start = 0;
  let end = size - 1;
  if (match) {
    const [, from = '', to = ''] = match;
    if (from === '') start = Math.max(0, size - Number(to));
    else {
      start = Number(from);
      if (to !== '') end = Math.min(Number(to), size - 1);
    }
    if (start >= size || start > end) {
      res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
      return;
    }
  }
  res.writeHead(match ? 206 : 200, {
    'content-type': 'application/octet-stream',
    'accept-ranges': 'bytes',
    'content-length': end - start + 1,
    ...(match ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}),
  });
  if (method === 'HEAD') {
    res.end();
    return;
  }
  // ffmpeg drops connections when it seeks: that is not a test failure.
  await pipeline(createReadStream(path, { start, end }), res).catch(() => undefined);
}

let outputs = 0;
const outputPath = () => join(scratch, `out-${++outputs}.mp3`);

const defaults: ConversionOptions = {
  bitrateKbps: 128,
  sampleRateHz: null,
  channels: null,
  startSeconds: null,
  endSeconds: null,
};

function request(input: string, overrides: Partial<TranscodeRequest> = {}): TranscodeRequest {
  return {
    inputUrl: input.startsWith('http') ? input : `${baseUrl}/media/${input}`,
    headers: { Authorization: `Bearer ${TOKEN}` },
    output: outputPath(),
    options: defaults,
    durationSeconds: sampleDurationSeconds,
    signal: new AbortController().signal,
    onProgress: () => undefined,
    ffmpegPath,
    timeoutMs: 60_000,
    maxSeconds: 4 * 3600,
    limits: { addressSpaceBytes: 1024 * 1024 * 1024, cpuSeconds: 120 },
    ...overrides,
  };
}

interface Probe {
  streams: { codec_name: string; bit_rate?: string; sample_rate?: string; channels?: number }[];
  format: { duration: string };
}

async function probe(path: string): Promise<Probe> {
  const { stdout } = await run(ffprobePath, [
    '-v',
    'error',
    '-show_entries',
    'stream=codec_name,bit_rate,sample_rate,channels:format=duration',
    '-of',
    'json',
    path,
  ]);
  return JSON.parse(stdout) as Probe;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Running processes whose command line mentions `text` (the output path names one conversion's ffmpeg). */
async function processesMentioning(text: string): Promise<number[]> {
  const pids = (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry));
  const found: number[] = [];
  for (const pid of pids) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(text)) found.push(Number(pid));
  }
  return found;
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the conversion to fail');
}

/** A user-facing message: a sentence, with no URL, path or ffmpeg jargon in it. */
function expectReadable(message: string) {
  expect(message).toMatch(/^[A-Z].*\.$/);
  expect(message).not.toMatch(/https?:|\/|\\|ffmpeg|stderr|127\.0\.0\.1/i);
}

describe('transcode', () => {
  it('converts an mp4 whose moov atom is at the end, seeking over HTTP, to an mp3 as requested', async () => {
    const req = request('moov-at-end.mp4', {
      options: { ...defaults, bitrateKbps: 128, sampleRateHz: 22050, channels: 1 },
      // Read through, as an input over the copy limit is: every seek reaches the server.
      localCopyMaxBytes: 0,
    });
    await transcode(req);

    const { streams, format } = await probe(req.output);
    expect(streams).toHaveLength(1);
    const [audio] = streams;
    expect(audio!.codec_name).toBe('mp3');
    expect(Math.abs(Number(audio!.bit_rate) / 1000 - 128)).toBeLessThanOrEqual(2);
    expect(audio!.sample_rate).toBe('22050');
    expect(audio!.channels).toBe(1);
    expect(Math.abs(Number(format.duration) - sampleDurationSeconds)).toBeLessThanOrEqual(0.5);
    // It did seek: the index at the end of the file was fetched with a range request of its own.
    expect(ranges.get('moov-at-end.mp4')?.some((r) => r !== 'bytes=0-')).toBe(true);
  });

  it('reads a small input with one request, copied beside the output, and removes the copy afterwards', async () => {
    const name = 'moov-at-end-copied.mp4';
    generated.set(name, await sample('moov-at-end.mp4'));
    const req = request(name, { options: { ...defaults, bitrateKbps: 128 } });
    await transcode(req);

    const [audio] = (await probe(req.output)).streams;
    expect(audio!.codec_name).toBe('mp3');
    // ffmpeg still seeks (to the moov atom and back), but in the copy: the server saw one whole read.
    expect(requests.get(name)).toBe(1);
    expect(ranges.get(name)).toBeUndefined();
    expect(await exists(`${req.output}.input`)).toBe(false);
  });

  // Each with its own audio codec (AAC, Opus, ...), all on the decoder whitelist; the mp3 keeps the input's rate.
  it.each([
    ['faststart.mp4', '44100'],
    ['sample.mkv', '44100'],
    ['sample.webm', '48000'],
    ['sample.mov', '44100'],
    ['audio-only.m4a', '44100'],
  ] as const)('converts %s with the default sample rate and channels', async (name, rate) => {
    const req = request(name, { options: { ...defaults, bitrateKbps: 192 } });
    await transcode(req);

    const [audio] = (await probe(req.output)).streams;
    expect(audio!.codec_name).toBe('mp3');
    expect(Math.abs(Number(audio!.bit_rate) / 1000 - 192)).toBeLessThanOrEqual(2);
    expect(audio!.sample_rate).toBe(rate);
  });

  it('keeps only the span between startSeconds and endSeconds', async () => {
    const req = request('moov-at-end.mp4', { options: { ...defaults, startSeconds: 0.5, endSeconds: 2 } });
    await transcode(req);

    expect(Math.abs(Number((await probe(req.output)).format.duration) - 1.5)).toBeLessThanOrEqual(0.3);
  });

  it('takes a start as tiny as 1e-7 s (ffmpeg refuses exponent notation), and writes every time in fixed notation', async () => {
    const req = request('moov-at-end.mp4', { options: { ...defaults, startSeconds: 0.0000001, endSeconds: 1e-6 + 1 } });
    const { input, output } = ffmpegArguments(req);
    expect(input.slice(input.indexOf('-ss'), input.indexOf('-ss') + 4)).toEqual(['-ss', '0', '-to', '1.000001']);
    expect(output[output.indexOf('-t') + 1]).toMatch(/^\d+(\.\d+)?$/);

    await transcode(req);
    expect(Math.abs(Number((await probe(req.output)).format.duration) - 1)).toBeLessThanOrEqual(0.3);
  });

  it('cuts the output at the maximum length', async () => {
    const req = request('faststart.mp4', { maxSeconds: 1 });
    await transcode(req);

    expect(Math.abs(Number((await probe(req.output)).format.duration) - 1)).toBeLessThanOrEqual(0.3);
  });

  it('reports progress that only moves forward, stays within 0..1 and ends near 1', async () => {
    const seen: number[] = [];
    // Read at 2x realtime, so the 3-second sample takes long enough for ffmpeg to report more than once.
    await transcode(request('moov-at-end.mp4', { readrate: 2, onProgress: (p) => seen.push(p) }));

    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen.every((p) => p >= 0 && p <= 1)).toBe(true);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(seen.at(-1)).toBeGreaterThan(0.9);
  });

  it('measures progress against the trimmed span', async () => {
    const seen: number[] = [];
    await transcode(
      request('moov-at-end.mp4', {
        options: { ...defaults, startSeconds: 1, endSeconds: 2 },
        onProgress: (p) => seen.push(p),
      }),
    );
    expect(seen.at(-1)).toBeGreaterThan(0.9);
  });

  it('reads the input only with the given headers (no unauthenticated side probe)', async () => {
    // A conversion of its own (the test must not lean on the others): every read of it carries the token;
    // fluent-ffmpeg's own ffprobe, were it to run, would arrive without it.
    const before = { authorized, unauthorized };
    const req = request('faststart.mp4');
    await transcode(req);

    expect((await probe(req.output)).streams[0]?.codec_name).toBe('mp3');
    expect(authorized).toBeGreaterThan(before.authorized);
    expect(unauthorized).toBe(before.unauthorized);
  });

  it('refuses a video without an audio stream and keeps nothing', async () => {
    const req = request('no-audio.mp4');
    const err = await rejection(transcode(req));

    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).code).toBe(JobErrorCode.UNSUPPORTED_MEDIA);
    expect(err.message).toMatch(/no audio/i);
    expectReadable(err.message);
    expect(await exists(req.output)).toBe(false);
  });

  it.each(['truncated.mp4', 'text.mp4'] as const)('fails %s for good as unreadable media', async (name) => {
    const req = request(name);
    const err = await rejection(transcode(req));

    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).code).toBe(JobErrorCode.UNSUPPORTED_MEDIA);
    expectReadable(err.message);
    expect(await exists(req.output)).toBe(false);
  });

  it('fails for good with INPUT_GONE when the input answers 404', async () => {
    const err = await rejection(transcode(request(`${baseUrl}/status/404`)));

    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).code).toBe(JobErrorCode.INPUT_GONE);
    expectReadable(err.message);
  });

  it('fails for now (transient) when the input answers 503', async () => {
    const err = await rejection(transcode(request(`${baseUrl}/status/503`)));

    expect(err).toBeInstanceOf(TransientError);
    expectReadable(err.message);
  });

  it('fails for now (transient) when nothing listens at the input address', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));

    const err = await rejection(transcode(request(`http://127.0.0.1:${port}/media/faststart.mp4`)));

    expect(err).toBeInstanceOf(TransientError);
    expectReadable(err.message);
  });

  it('kills ffmpeg within 2 seconds when aborted, and leaves no output file', async () => {
    const controller = new AbortController();
    let progressed!: () => void;
    const running = new Promise<void>((resolve) => (progressed = resolve));
    // Half of realtime: the 3-second sample would take 6 s.
    const req = request('moov-at-end.mp4', {
      readrate: 0.5,
      signal: controller.signal,
      onProgress: () => progressed(),
    });
    const conversion = transcode(req);
    const outcome = rejection(conversion);

    await running;
    expect(await processesMentioning(req.output)).not.toHaveLength(0);
    const abortedAt = Date.now();
    controller.abort();
    const err = await outcome;

    // Rejected well before the 6 s the conversion would take to run its course: it was cut, not finished.
    expect(Date.now() - abortedAt).toBeLessThan(5000);
    expect(err).toBeInstanceOf(AbortError);
    expect(err.name).toBe('AbortError');
    expect(await processesMentioning(req.output)).toEqual([]);
    expect(await exists(req.output)).toBe(false);
  });

  it('starts nothing when the signal is already aborted', async () => {
    const req = request('moov-at-end.mp4', { signal: AbortSignal.abort() });
    const err = await rejection(transcode(req));

    expect(err).toBeInstanceOf(AbortError);
    expect(await exists(req.output)).toBe(false);
  });

  it('kills ffmpeg and rejects with a TimeoutError past the wall-clock limit', async () => {
    const req = request('moov-at-end.mp4', { readrate: 0.5, timeoutMs: 800 });
    const started = Date.now();
    const err = await rejection(transcode(req));

    expect(Date.now() - started).toBeLessThan(5000); // cut: running its course takes 6 s
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as TimeoutError).code).toBe(JobErrorCode.TIMEOUT);
    expectReadable(err.message);
    expect(await processesMentioning(req.output)).toEqual([]);
    expect(await exists(req.output)).toBe(false);
  });
});

/** The ffmpeg that this test process started for `output` (through prlimit, which execs it in place). */
async function ffmpegWriting(output: string): Promise<number> {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // "pid (comm) state ppid ...": comm may hold spaces, so split after its closing parenthesis.
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (comm !== 'ffmpeg' || ppid !== process.pid) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.split('\0').includes(output)) return Number(entry);
  }
  throw new Error(`no ffmpeg child of this process writes ${output}`);
}

/** `/proc/<pid>/limits` as soft/hard pairs by name ("Max address space" → ["1073741824", "1073741824"]). */
function parseLimits(text: string): Map<string, [string, string]> {
  const limits = new Map<string, [string, string]>();
  for (const line of text.split('\n').slice(1)) {
    const match = /^(.+?)\s{2,}(\S+)\s+(\S+)/.exec(line);
    if (match) limits.set(match[1]!, [match[2]!, match[3]!]);
  }
  return limits;
}

describe('ffmpeg isolation', () => {
  // What a converter's environment holds in production (its own settings, and whatever a deployment puts
  // there for its neighbours): each recognisable, so a leak anywhere shows.
  const secrets = {
    INTERNAL_API_TOKEN: TOKEN,
    DOWNLOAD_SIGNING_KEY: 'fake-download-signing-key-7d1e0c55',
    MYSQL_URL: 'mysql://vidmp3:fake-mysql-password-3b8a@db:3306/vidmp3',
    MONGODB_URL: 'mongodb://vidmp3:fake-mongo-password-91f2@mongo:27017/vidmp3',
    RABBITMQ_URL: 'amqp://vidmp3:fake-rabbit-password-a4c7@rabbit:5672',
  };
  beforeAll(() => {
    Object.assign(process.env, secrets);
  });
  afterAll(() => {
    for (const name of Object.keys(secrets)) delete process.env[name];
  });

  it('runs ffmpeg with no secret in its environment or command line, within its resource limits', async () => {
    let progressed!: () => void;
    const running = new Promise<void>((resolve) => (progressed = resolve));
    // Realtime: the 3-second sample keeps ffmpeg running while its /proc entries are read.
    const req = request('moov-at-end.mp4', { readrate: 1, onProgress: () => progressed() });
    const conversion = transcode(req);

    await running;
    const pid = await ffmpegWriting(req.output);
    const [environ, cmdline, limitsText] = await Promise.all(
      ['environ', 'cmdline', 'limits'].map((file) => readFile(`/proc/${pid}/${file}`, 'utf8')),
    );
    await conversion;

    const env = environ!.split('\0').filter(Boolean);
    expect(env.map((entry) => entry.slice(0, entry.indexOf('='))).sort()).toEqual([
      'HOME',
      'LANG',
      'LC_ALL',
      'PATH',
      'TMPDIR',
    ]);
    const argv = cmdline!.split('\0');
    for (const secret of [...Object.values(secrets), 'Bearer', 'fake-']) {
      expect(environ).not.toContain(secret);
      expect(cmdline).not.toContain(secret);
    }
    expect(argv).not.toContain('-headers');
    // The input it reads is the per-job loopback proxy, not media's address.
    const input = argv[argv.indexOf('-i') + 1]!;
    expect(input).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/[\w-]{43}$/);
    expect(input).not.toContain(baseUrl);

    const limits = parseLimits(limitsText!);
    expect(limits.get('Max address space')).toEqual([String(1024 ** 3), String(1024 ** 3)]);
    expect(limits.get('Max cpu time')).toEqual(['120', '120']);
    expect(limits.get('Max file size')).toEqual([String(outputSizeLimit(req)), String(outputSizeLimit(req))]);
    expect(limits.get('Max open files')).toEqual(['64', '64']);
    expect(limits.get('Max core file size')).toEqual(['0', '0']);

    // And the conversion, confined, is whole.
    expect(Math.abs(Number((await probe(req.output)).format.duration) - sampleDurationSeconds)).toBeLessThanOrEqual(
      0.5,
    );
  });

  it('fails for good an input whose audio codec is not on the decoder whitelist, and keeps nothing', async () => {
    // TTA: a real lossless codec ffmpeg decodes, but not one a video carries; it stands for the long tail.
    const path = join(scratch, 'tta-audio.mkv');
    await run(ffmpegPath, ['-v', 'error', '-f', 'lavfi', '-i', 'sine=duration=1', '-c:a', 'tta', '-y', path]);
    generated.set('tta-audio.mkv', path);
    const req = request('tta-audio.mkv');

    const err = await rejection(transcode(req));

    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).code).toBe(JobErrorCode.UNSUPPORTED_MEDIA);
    expectReadable(err.message);
    expect(await exists(req.output)).toBe(false);
  });

  it('checks at start that ffmpeg runs confined, and fails at once when prlimit is missing', async () => {
    const limits = { addressSpaceBytes: 1024 ** 3, cpuSeconds: 60 };
    await expect(warmUp(ffmpegPath, limits, scratch)).resolves.toBeUndefined();
    await expect(warmUp(ffmpegPath, { ...limits, prlimitPath: join(scratch, 'no-prlimit') }, scratch)).rejects.toThrow(
      /cannot be run/,
    );
  });
});

describe('the input proxy', () => {
  it('serves the one input, byte ranges included, with the headers added, and nothing else', async () => {
    const proxy = await openInputProxy(`${baseUrl}/media/faststart.mp4`, { Authorization: `Bearer ${TOKEN}` });
    try {
      const ranged = await fetch(proxy.url, { headers: { range: 'bytes=4-11' } });
      expect(ranged.status).toBe(206);
      const whole = await readFile(await sample('faststart.mp4'));
      expect(ranged.headers.get('content-range')).toBe(`bytes 4-11/${whole.length}`);
      expect(Buffer.from(await ranged.arrayBuffer())).toEqual(whole.subarray(4, 12));

      // Another path on the same port, even one that extends the secret path, reaches nothing.
      for (const other of [new URL('/media/sample.mkv', proxy.url).href, `${proxy.url}x`, `${proxy.url}/`]) {
        expect((await fetch(other)).status).toBe(404);
      }
      expect((await fetch(proxy.url, { method: 'POST', body: 'x' })).status).toBe(405);
    } finally {
      await proxy.close();
    }
    // Gone with the job.
    await expect(fetch(proxy.url)).rejects.toThrow();
  });

  it('answers every range of a small input from its one copy, like media would, and removes the copy', async () => {
    const name = 'faststart-proxied.mp4';
    generated.set(name, await sample('faststart.mp4'));
    const whole = await readFile(await sample('faststart.mp4'));
    const path = join(scratch, 'proxied.input');
    const proxy = await openInputProxy(
      `${baseUrl}/media/${name}`,
      { Authorization: `Bearer ${TOKEN}` },
      { path, maxBytes: whole.length },
    );
    try {
      const read = async (range?: string, method = 'GET') => {
        const res = await fetch(proxy.url, { method, ...(range ? { headers: { range } } : {}) });
        return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
      };
      const full = await read();
      expect([full.status, full.headers.get('content-length'), full.headers.get('accept-ranges')]).toEqual([
        200,
        String(whole.length),
        'bytes',
      ]);
      expect(full.body).toEqual(whole);
      const cases: [string, number, number][] = [
        ['bytes=4-11', 4, 12],
        [`bytes=${whole.length - 100}-`, whole.length - 100, whole.length],
        ['bytes=-50', whole.length - 50, whole.length],
        [`bytes=10-${whole.length + 1000}`, 10, whole.length],
      ];
      for (const [range, from, to] of cases) {
        const part = await read(range);
        expect(part.status, range).toBe(206);
        expect(part.headers.get('content-range'), range).toBe(`bytes ${from}-${to - 1}/${whole.length}`);
        expect(part.body.equals(whole.subarray(from, to)), range).toBe(true);
      }
      expect((await read(`bytes=${whole.length}-`)).status).toBe(416);
      const head = await read(undefined, 'HEAD');
      expect([head.status, head.headers.get('content-length'), head.body.length]).toEqual([
        200,
        String(whole.length),
        0,
      ]);
      expect(requests.get(name)).toBe(1);
    } finally {
      await proxy.close();
    }
    expect(await exists(path)).toBe(false);
  });

  it('passes an input over the copy limit through, range by range, and writes no copy', async () => {
    const name = 'faststart-large.mp4';
    generated.set(name, await sample('faststart.mp4'));
    const whole = await readFile(await sample('faststart.mp4'));
    const path = join(scratch, 'large.input');
    const proxy = await openInputProxy(
      `${baseUrl}/media/${name}`,
      { Authorization: `Bearer ${TOKEN}` },
      { path, maxBytes: whole.length - 1 },
    );
    try {
      const part = await fetch(proxy.url, { headers: { range: 'bytes=4-11' } });
      expect(Buffer.from(await part.arrayBuffer())).toEqual(whole.subarray(4, 12));
      expect(await exists(path)).toBe(false);
      // The attempt to copy (abandoned at its length), then the range itself.
      expect(requests.get(name)).toBe(2);
      expect(ranges.get(name)).toEqual(['bytes=4-11']);
    } finally {
      await proxy.close();
    }
  });

  it('answers 502 when media cannot be reached, so the conversion is retried', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));

    const proxy = await openInputProxy(`http://127.0.0.1:${port}/media/x`, {});
    try {
      expect((await fetch(proxy.url)).status).toBe(502);
    } finally {
      await proxy.close();
    }
  });
});
