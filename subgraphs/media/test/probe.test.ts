import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { promisify } from 'node:util';
import { GraphQLError } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sample, sampleDurationSeconds, type SampleName } from '../../../e2e/fixtures.js';
import { acceptMp3, acceptVideo, probe, type ProbeOptions } from '../src/adapters/probe.js';

const ffprobePath = process.env.FFPROBE_PATH ?? 'ffprobe';
const options: ProbeOptions = { ffprobePath, timeoutMs: 20_000 };
const NOT_A_VIDEO =
  'This file is not a video we can read (supported: MP4, MOV, MKV, WebM, AVI, MPEG-TS, FLV, WMV, Ogg)';

/** What the media service does with an upload: probe it, then refuse what cannot be converted. */
async function probeVideo(path: string) {
  const result = await probe(path, options);
  acceptVideo(result);
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
    ['truncated.mp4', NOT_A_VIDEO],
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
