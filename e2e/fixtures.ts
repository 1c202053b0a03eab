// Test samples made with the real ffmpeg on first use and cached under the system temp directory, so every
// test worker (and every later run) shares them. Each file is written under a temporary name and then
// published under its real one in a single step, so parallel workers never see a half-written sample.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, link, mkdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { FFMPEG_PATH } from './env.js';

const run = promisify(execFile);

/** Every generated video and audio sample lasts this long. */
export const sampleDurationSeconds = 3;

export type SampleName =
  | 'moov-at-end.mp4'
  | 'faststart.mp4'
  | 'sample.mkv'
  | 'sample.webm'
  | 'sample.mov'
  | 'no-audio.mp4'
  | 'audio-only.m4a'
  | 'sample.mp3'
  | 'truncated.mp4'
  | 'empty.mp4'
  | 'text.mp4'
  | 'playlist.m3u8'
  | 'unknown.bin';

export interface VideoOptions {
  /** Default `160x120`. */
  size?: `${number}x${number}`;
  /** Frames per second, default 15. */
  rate?: number;
  /** Include the 440 Hz tone (default true). */
  audio?: boolean;
  /** Include the test pattern (default true); false makes an audio-only file. */
  video?: boolean;
  /**
   * ffmpeg muxer, always passed explicitly so the file name does not matter (default `mp4`).
   * `webm` gets VP8 + Opus, `mp3` only audio (MP3), `ipod` is an .m4a; everything else H.264 + AAC.
   */
  format?: 'mp4' | 'mov' | 'matroska' | 'webm' | 'mpegts' | 'ipod' | 'mp3';
  /** Move the mp4/mov `moov` atom before the media data. By default ffmpeg writes it at the end. */
  faststart?: boolean;
}

const ffmpegPath = FFMPEG_PATH;

type Format = NonNullable<VideoOptions['format']>;

// Encoders chosen for speed: samples are about containers and streams, not picture or sound quality.
function videoCodecArgs(format: Format): string[] {
  return format === 'webm'
    ? ['-c:v', 'libvpx', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '300k']
    : ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p'];
}

function audioCodecArgs(format: Format): string[] {
  if (format === 'webm') return ['-c:a', 'libopus', '-b:a', '48k'];
  if (format === 'mp3') return ['-c:a', 'libmp3lame', '-b:a', '128k'];
  return ['-c:a', 'aac', '-b:a', '64k'];
}

/** Writes a test-pattern video (or audio) of the given length with the real ffmpeg, as fast as it can. */
export async function generateVideo(path: string, seconds: number, opts: VideoOptions = {}): Promise<void> {
  const { size = '160x120', rate = 15, audio = true, format = 'mp4', faststart = false } = opts;
  const video = (opts.video ?? true) && format !== 'mp3';
  if (!video && !audio) throw new Error('generateVideo: a file needs audio or video');
  // prettier-ignore
  const args = [
    '-nostdin', '-v', 'error', '-y',
    ...(video ? ['-f', 'lavfi', '-i', `testsrc=size=${size}:rate=${rate}`] : []),
    ...(audio ? ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100'] : []),
    '-t', String(seconds),
    ...(video ? videoCodecArgs(format) : ['-vn']),
    ...(audio ? audioCodecArgs(format) : ['-an']),
    ...(faststart ? ['-movflags', '+faststart'] : []),
    '-f', format,
    path,
  ];
  await run(ffmpegPath, args, { maxBuffer: 1024 * 1024 });
}

// The cache directory is keyed by this file's own source: change a recipe and every sample is made afresh,
// with no version number to remember to bump.
let cacheDirReady: Promise<string> | undefined;
const cacheDir = () =>
  (cacheDirReady ??= (async () => {
    const source = await readFile(fileURLToPath(import.meta.url));
    const version = createHash('sha256').update(source).digest('hex').slice(0, 12);
    const dir = join(tmpdir(), `vidmp3-samples-${process.getuid?.() ?? 'user'}-${version}`);
    await mkdir(dir, { recursive: true });
    return dir;
  })());

const HTTP_SEGMENT_URL = 'http://127.0.0.1:9/remote-segment.ts';
const PLAYLIST_SEGMENT = 'playlist-segment0.ts';

type Recipe = (path: string) => Promise<void>;

const recipes: Record<SampleName, Recipe> = {
  'moov-at-end.mp4': (p) => generateVideo(p, sampleDurationSeconds),
  'faststart.mp4': (p) => generateVideo(p, sampleDurationSeconds, { faststart: true }),
  'sample.mkv': (p) => generateVideo(p, sampleDurationSeconds, { format: 'matroska' }),
  'sample.webm': (p) => generateVideo(p, sampleDurationSeconds, { format: 'webm' }),
  'sample.mov': (p) => generateVideo(p, sampleDurationSeconds, { format: 'mov' }),
  'no-audio.mp4': (p) => generateVideo(p, sampleDurationSeconds, { audio: false }),
  'audio-only.m4a': (p) => generateVideo(p, sampleDurationSeconds, { video: false, format: 'ipod' }),
  'sample.mp3': (p) => generateVideo(p, sampleDurationSeconds, { format: 'mp3' }),
  // Cut in half, a moov-at-end mp4 has lost its index (moov) entirely: nothing can read it.
  'truncated.mp4': async (p) => {
    const whole = await sample('moov-at-end.mp4');
    await copyFile(whole, p);
    await truncate(p, Math.floor((await stat(whole)).size / 2));
  },
  'empty.mp4': (p) => writeFile(p, ''),
  'text.mp4': (p) => writeFile(p, 'This is a plain text file with an .mp4 name, not a video.\n'.repeat(20)),
  // A readable local segment next to it, so only the whitelists stand between ffprobe and reading it; the
  // remote segment comes first, so a reader that follows playlists would try the network at once.
  'playlist.m3u8': async (p) => {
    await publish(PLAYLIST_SEGMENT, (seg) => generateVideo(seg, sampleDurationSeconds, { format: 'mpegts' }));
    await writeFile(
      p,
      [
        '#EXTM3U',
        '#EXT-X-VERSION:3',
        `#EXT-X-TARGETDURATION:${sampleDurationSeconds}`,
        `#EXTINF:${sampleDurationSeconds}.0,`,
        HTTP_SEGMENT_URL,
        `#EXTINF:${sampleDurationSeconds}.0,`,
        PLAYLIST_SEGMENT,
        '#EXT-X-ENDLIST',
        '',
      ].join('\n'),
    );
  },
  // Pseudo-random but the same on every machine, so a pass or a failure can be reproduced.
  'unknown.bin': (p) => writeFile(p, deterministicBytes('vidmp3 unknown.bin', 16 * 1024)),
};

function deterministicBytes(seed: string, length: number): Buffer {
  const blocks: Buffer[] = [];
  for (let i = 0; i * 32 < length; i++) blocks.push(createHash('sha256').update(`${seed}:${i}`).digest());
  return Buffer.concat(blocks).subarray(0, length);
}

/**
 * Makes `name` in the cache directory with `make` unless it is there already. The file is written under a
 * unique temporary name and hard-linked into place: unlike rename, link never replaces a file another worker
 * published first, so a path once returned keeps the same bytes.
 */
async function publish(name: string, make: Recipe): Promise<string> {
  const dir = await cacheDir();
  const target = join(dir, name);
  if (await exists(target)) return target;
  const temp = join(dir, `.${name}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await make(temp);
    await link(temp, target).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  } finally {
    await rm(temp, { force: true });
  }
  return target;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false;
      throw err;
    },
  );
}

const pending = new Map<SampleName, Promise<string>>();

/** The absolute path of a sample file, named exactly `name`, generated on first use. */
export async function sample(name: SampleName): Promise<string> {
  let path = pending.get(name);
  if (!path) {
    path = publish(name, recipes[name]);
    pending.set(name, path);
    // A failed generation is not cached: the next call tries again.
    path.catch(() => pending.delete(name));
  }
  return path;
}

/** The hex sha256 of a file, read as a stream. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), async (chunks: AsyncIterable<Buffer>) => {
    for await (const chunk of chunks) hash.update(chunk);
  });
  return hash.digest('hex');
}

export interface AudioFacts {
  codec: string | undefined;
  channels: number | undefined;
  duration: number;
}

/** What ffprobe says of a file's audio: what a user checks of a converted mp3 (codec, channels, length). */
export async function probeAudio(path: string): Promise<AudioFacts> {
  const { stdout } = await run('ffprobe', [
    '-v',
    'error',
    '-print_format',
    'json',
    '-show_streams',
    '-show_format',
    path,
  ]);
  const info = JSON.parse(stdout) as {
    streams?: { codec_type?: string; codec_name?: string; channels?: number }[];
    format?: { duration?: string };
  };
  const audio = info.streams?.find((s) => s.codec_type === 'audio');
  return { codec: audio?.codec_name, channels: audio?.channels, duration: Number(info.format?.duration) };
}
