import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { promisify } from 'node:util';
import { GraphQLError } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  generateVideo,
  sample,
  sampleDurationSeconds,
  type SampleName,
  type VideoOptions,
} from '../../../e2e/fixtures.js';
import { acceptMp3, acceptVideo, checkComplete, probe, type ProbeOptions } from '../src/adapters/probe.js';

const ffprobePath = process.env.FFPROBE_PATH ?? 'ffprobe';
const options: ProbeOptions = { ffprobePath, timeoutMs: 20_000 };
const INCOMPLETE = 'The file is incomplete: it ends before the length it declares (was the upload cut short?)';
const NOT_A_VIDEO =
  'This file is not a video we can read (supported: MP4, MOV, MKV, WebM, AVI, MPEG-TS, FLV, WMV, Ogg)';

/** What the media service does with an upload: probe it, then refuse what cannot be converted or is cut short. */
async function probeVideo(path: string, opts: ProbeOptions = options) {
  const result = await probe(path, opts);
  acceptVideo(result);
  await checkComplete(path, result, opts);
  return result;
}

/** The error a promise fails with (the test fails if it succeeds). */
async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => {
      throw new Error(`expected a failure, got ${JSON.stringify(value)}`);
    },
    (err: unknown) => err,
  );
}

function expectUnsupported(err: unknown, message: string) {
  expect(err).toBeInstanceOf(GraphQLError);
  const error = err as GraphQLError;
  expect(error.extensions.code).toBe('UNSUPPORTED_MEDIA');
  expect(error.message).toBe(message);
  expect(error.message).not.toMatch(/\/|ffprobe/);
}

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'vidmp3-probe-test-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('probing an uploaded video', () => {
  const accepted: [SampleName, string, { video: string; audio: string }][] = [
    ['moov-at-end.mp4', 'video/mp4', { video: 'h264', audio: 'aac' }],
    ['faststart.mp4', 'video/mp4', { video: 'h264', audio: 'aac' }],
    ['sample.mkv', 'video/x-matroska', { video: 'h264', audio: 'aac' }],
    ['sample.webm', 'video/webm', { video: 'vp8', audio: 'opus' }],
    ['sample.mov', 'video/quicktime', { video: 'h264', audio: 'aac' }],
  ];

  it.each(accepted)('reads %s as %s with its streams and its length', async (name, contentType, codecs) => {
    const result = await probeVideo(await sample(name));
    expect(result).toMatchObject({
      contentType,
      audioStreams: 1,
      videoStreams: 1,
      videoCodec: codecs.video,
      audioCodec: codecs.audio,
    });
    expect(Math.abs(result.durationSeconds - sampleDurationSeconds)).toBeLessThanOrEqual(0.2);
  });

  const refused: [SampleName, string][] = [
    ['empty.mp4', 'The file is empty'],
    ['text.mp4', NOT_A_VIDEO],
    ['truncated.mp4', INCOMPLETE],
    ['playlist.m3u8', NOT_A_VIDEO],
    ['unknown.bin', NOT_A_VIDEO],
    ['sample.mp3', NOT_A_VIDEO],
    ['no-audio.mp4', 'This video has no audio track to convert'],
    ['audio-only.m4a', 'This file has no video stream'],
  ];

  it.each(refused)('refuses %s as UNSUPPORTED_MEDIA: "%s"', async (name, message) => {
    expectUnsupported(await failure(probeVideo(await sample(name))), message);
  });

  it('does not count cover art as a video stream', async () => {
    const path = join(work, 'cover.m4a');
    // prettier-ignore
    await promisify(execFile)('ffmpeg', [
      '-nostdin', '-v', 'error', '-y',
      '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100',
      '-f', 'lavfi', '-i', 'color=c=red:size=64x64',
      '-t', '1', '-map', '0:a', '-map', '1:v', '-frames:v', '1',
      '-c:a', 'aac', '-c:v', 'png', '-disposition:v:0', 'attached_pic', '-f', 'ipod', path,
    ]);
    const result = await probe(path, options);
    expect(result).toMatchObject({ audioStreams: 1, videoStreams: 0 });
    expectUnsupported(await failure(probeVideo(path)), 'This file has no video stream');
  });

  it('reads a file whose name would mean something to a shell, a protocol parser or an option parser', async () => {
    const names = [`a b'"; $(echo x) \`y\`.mp4`, 'http:x.mp4', '-i.mp4', 'concat:a.mp4|b.mp4', 'x.mp4%00.m3u8'];
    for (const name of names) {
      const path = join(work, name);
      await copyFile(await sample('faststart.mp4'), path);
      expect((await probeVideo(path)).contentType).toBe('video/mp4');
    }
  });
});

describe('a video cut short', () => {
  /** A 12 s video of the given kind, and the same file cut after its first `keep` bytes. */
  async function cutVideo(name: string, opts: VideoOptions, keep = 30_000): Promise<{ whole: string; cut: string }> {
    const whole = join(work, `whole-${name}`);
    const cut = join(work, `cut-${name}`);
    await generateVideo(whole, 12, opts);
    expect((await stat(whole)).size).toBeGreaterThan(keep * 4);
    await copyFile(whole, cut);
    await truncate(cut, keep);
    return { whole, cut };
  }

  // The header (moov first; matroska's segment info) survives the cut and still declares 12 s.
  const headerFirst: [string, VideoOptions][] = [
    ['faststart.mp4', { faststart: true }],
    ['sample.mkv', { format: 'matroska' }],
    ['sample.webm', { format: 'webm' }],
  ];

  it.each(headerFirst)(
    'refuses %s cut after 30 kB as incomplete, although its header still declares 12 s',
    async (name, opts) => {
      const { whole, cut } = await cutVideo(name, opts);
      expect((await probeVideo(whole)).durationSeconds).toBeCloseTo(12, 0);
      // What made the defect: the header alone still reads as a whole 12 s video.
      expect((await probe(cut, options)).durationSeconds).toBeCloseTo(12, 0);
      const err = await failure(probeVideo(cut));
      expect(err).toBeInstanceOf(GraphQLError);
      expect((err as GraphQLError).extensions.code).toBe('UNSUPPORTED_MEDIA');
      expect((err as GraphQLError).message).toMatch(
        /^The file is incomplete: its data ends at \d+\.\d s of the 12\.0 s/,
      );
      expect((err as GraphQLError).message).not.toMatch(/\/|ffprobe/);
    },
  );

  it('refuses an mp4 whose index was to come at the end, cut before it, as incomplete', async () => {
    const { cut } = await cutVideo('moov-at-end.mp4', {});
    expectUnsupported(await failure(probeVideo(cut)), INCOMPLETE);
  });

  it('accepts a 12 s video whose audio stops early but whose picture runs to the end', async () => {
    // A video longer than its soundtrack is whole: only data stopping short of the declared length is a cut.
    const path = join(work, 'short-audio.mp4');
    // prettier-ignore
    await promisify(execFile)('ffmpeg', [
      '-nostdin', '-v', 'error', '-y',
      '-f', 'lavfi', '-i', 'testsrc=size=160x120:rate=15:duration=12',
      '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100:duration=4',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-f', 'matroska', path,
    ]);
    expect((await probeVideo(path)).durationSeconds).toBeCloseTo(12, 0);
  });
});

describe('the ffprobe process', () => {
  it('gets a minimal environment without the service’s secrets, and resource limits', async () => {
    const record = join(work, 'ffprobe-env.txt');
    const spy = join(work, 'ffprobe-spy');
    await writeFile(spy, `#!/bin/sh\n{ env; echo ---; cat /proc/self/limits; } > '${record}'\nexec ffprobe "$@"\n`);
    await chmod(spy, 0o755);
    const secret = 'download-signing-key-that-must-stay-in-the-service';
    process.env.VIDMP3_TEST_SECRET = secret;
    try {
      await probeVideo(await sample('faststart.mp4'), {
        ...options,
        ffprobePath: spy,
        sandbox: { scratchDir: work, limits: { addressSpaceBytes: 900 * 1024 ** 2, cpuSeconds: 7 } },
      });
    } finally {
      delete process.env.VIDMP3_TEST_SECRET;
    }
    const [env, limits] = (await readFile(record, 'utf8')).split('---\n') as [string, string];
    expect(env).not.toContain(secret);
    const names = env
      .trim()
      .split('\n')
      .map((line) => line.slice(0, line.indexOf('=')));
    // `PWD` and `SHLVL` come from the spy's own shell, not from us.
    expect(names.filter((n) => !['PWD', 'SHLVL', '_', 'OLDPWD'].includes(n)).sort()).toEqual(
      ['HOME', 'LANG', 'LC_ALL', 'PATH', 'TMPDIR'].sort(),
    );
    expect(limits).toMatch(/Max cpu time\s+7\s+7\s+seconds/);
    expect(limits).toMatch(new RegExp(`Max address space\\s+${900 * 1024 ** 2}\\s+${900 * 1024 ** 2}\\s+bytes`));
    expect(limits).toMatch(/Max core file size\s+0\s+0\s+bytes/);
  });
});

describe('the playlist in an upload', () => {
  let server: Server;
  let requests: string[];
  let playlist: string;

  beforeAll(async () => {
    requests = [];
    server = createServer((req, res) => {
      requests.push(req.url ?? '');
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;

    // The sample playlist, its remote segment pointed at a server that notes every request.
    const fixture = await sample('playlist.m3u8');
    const lines = (await readFile(fixture, 'utf8')).split('\n').map((line) => {
      if (line.startsWith('http://')) return `http://127.0.0.1:${port}/remote-segment.ts`;
      if (line && !line.startsWith('#') && !isAbsolute(line)) return join(dirname(fixture), line);
      return line;
    });
    playlist = join(work, 'watched.m3u8');
    await writeFile(playlist, lines.join('\n'));
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('is refused without ffprobe opening any URL', async () => {
    requests.length = 0;
    expectUnsupported(await failure(probeVideo(playlist)), NOT_A_VIDEO);
    expect(requests).toEqual([]);
  });

  it('would reach the network if ffprobe were allowed to follow it (so the test above can see a request)', async () => {
    // The control: bare ffprobe with http allowed follows the playlist to the server.
    await promisify(execFile)(ffprobePath, [
      '-v',
      'quiet',
      '-protocol_whitelist',
      'file,http,tcp',
      '-show_format',
      `file:${playlist}`,
    ]).catch(() => undefined);
    expect(requests).toContain('/remote-segment.ts');
  });
});

describe('probing a converter’s mp3', () => {
  it('reads an mp3 as audio/mpeg with the audio option', async () => {
    const result = await probe(await sample('sample.mp3'), { ...options, allow: 'audio-mp3' });
    acceptMp3(result);
    expect(result).toMatchObject({
      formatName: 'mp3',
      contentType: 'audio/mpeg',
      audioStreams: 1,
      videoStreams: 0,
      audioCodec: 'mp3',
    });
    expect(Math.abs(result.durationSeconds - sampleDurationSeconds)).toBeLessThanOrEqual(0.2);
  });

  it('refuses an mp3 as a video, and a video as an mp3', async () => {
    expectUnsupported(await failure(probe(await sample('sample.mp3'), options)), NOT_A_VIDEO);
    expectUnsupported(
      await failure(probe(await sample('faststart.mp4'), { ...options, allow: 'audio-mp3' })),
      'This file is not an MP3 audio file we can read',
    );
    expectUnsupported(
      await failure(probe(await sample('unknown.bin'), { ...options, allow: 'audio-mp3' })),
      'This file is not an MP3 audio file we can read',
    );
  });
});

describe('when ffprobe itself fails', () => {
  /** A stand-in executable: these failures are about our process handling, not about reading media. */
  async function fakeFfprobe(name: string, script: string): Promise<string> {
    const path = join(work, name);
    await writeFile(path, `#!/bin/sh\n${script}\n`);
    await chmod(path, 0o755);
    return path;
  }

  it('reports a missing ffprobe binary as an internal error, not as the user’s fault', async () => {
    const err = await failure(
      probe(await sample('faststart.mp4'), { ...options, ffprobePath: join(work, 'no-such-ffprobe') }),
    );
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(GraphQLError);
  });

  it('kills an ffprobe that runs past the time limit and reports an internal error', async () => {
    const ffprobe = await fakeFfprobe('hangs', 'exec sleep 30');
    const started = Date.now();
    const err = await failure(probe(await sample('faststart.mp4'), { ffprobePath: ffprobe, timeoutMs: 300 }));
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(err).not.toBeInstanceOf(GraphQLError);
    expect((err as Error).message).toMatch(/did not finish within 300 ms/);
  });

  it('stops reading at the output cap instead of buffering without end', async () => {
    const ffprobe = await fakeFfprobe('floods', "exec yes '{}'");
    const err = await failure(
      probe(await sample('faststart.mp4'), { ffprobePath: ffprobe, timeoutMs: 10_000, maxOutputBytes: 64 * 1024 }),
    );
    expectUnsupported(err, NOT_A_VIDEO);
  });
});
