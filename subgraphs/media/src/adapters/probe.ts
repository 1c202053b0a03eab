import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { z } from 'zod';
import { ErrorCode, userError } from '@vidmp3/shared';

/**
 * The ffprobe adapter: what a stored file is, read by ffprobe under a protocol and demuxer whitelist.
 *
 * Files the user is to blame for (empty, unreadable, wrong container, missing streams) are UNSUPPORTED_MEDIA
 * user errors with a message a person understands and no path in it; our own failures (ffprobe missing,
 * killed, too slow) are plain Errors, which the server logs and masks as INTERNAL.
 */

/** ffprobe's names for the demuxers we accept, as it reports them in `format.format_name`. */
const videoDemuxers = [
  'mov,mp4,m4a,3gp,3g2,mj2',
  'matroska,webm',
  'avi',
  'mpegts',
  'flv',
  'asf',
  'ogg',
  'mpeg',
] as const;
// Converter workers hand back mp3 files, and nothing else is stored as audio.
const audioDemuxers = ['mp3'] as const;

type Demuxer = (typeof videoDemuxers)[number] | (typeof audioDemuxers)[number];

/** `video`: an uploaded video (the containers above); `audio-mp3`: a converter's mp3 output. */
export type ProbeAllow = 'video' | 'audio-mp3';

export interface ProbeOptions {
  ffprobePath: string;
  timeoutMs: number;
  allow?: ProbeAllow;
  /** Cap on ffprobe's JSON; a file with absurd metadata or stream counts is refused, not buffered. */
  maxOutputBytes?: number;
}

export interface ProbeResult {
  /** ffprobe's demuxer name, e.g. `mov,mp4,m4a,3gp,3g2,mj2`. */
  formatName: string;
  /** Derived from what ffprobe read, never from the client's claim. */
  contentType: string;
  durationSeconds: number | null;
  audioStreams: number;
  /** Real video streams: cover art (`disposition.attached_pic`) is not counted. */
  videoStreams: number;
  audioCodec?: string;
  videoCodec?: string;
}

export const SUPPORTED_VIDEO_MESSAGE =
  'This file is not a video we can read (supported: MP4, MOV, MKV, WebM, AVI, MPEG-TS, FLV, WMV, Ogg)';
const unreadable = (allow: ProbeAllow) =>
  userError(
    ErrorCode.UNSUPPORTED_MEDIA,
    allow === 'video' ? SUPPORTED_VIDEO_MESSAGE : 'This file is not an MP3 audio file we can read',
  );

const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024;
const STDERR_TAIL_CHARS = 4096;

// ffprobe prints numbers it measured (durations) as strings and counts as numbers; accept either for both.
const numeric = z.union([z.string(), z.number()]).optional();

const FfprobeOutput = z.object({
  format: z.object({
    format_name: z.string(),
    duration: numeric,
    tags: z.record(z.string(), z.unknown()).optional(),
  }),
  streams: z
    .array(
      z.object({
        codec_type: z.string().optional(),
        codec_name: z.string().optional(),
        duration: numeric,
        disposition: z.object({ attached_pic: z.number().optional() }).optional(),
      }),
    )
    .default([]),
});
type FfprobeOutput = z.output<typeof FfprobeOutput>;

/**
 * Probes a file on local disk. Throws UNSUPPORTED_MEDIA when the file is empty or not readable as one of the
 * allowed containers; it does not check which streams are present (see `acceptVideo`, `acceptMp3`).
 */
export async function probe(path: string, options: ProbeOptions): Promise<ProbeResult> {
  const allow = options.allow ?? 'video';
  const allowed: readonly Demuxer[] = allow === 'video' ? videoDemuxers : audioDemuxers;
  const absolute = resolve(path);

  // The service wrote this file itself, so a failing stat is our fault and stays a plain error.
  if ((await stat(absolute)).size === 0) throw userError(ErrorCode.UNSUPPORTED_MEDIA, 'The file is empty');

  // prettier-ignore
  const args = [
    '-v', 'error',
    '-hide_banner',
    // Only local files: a playlist or reference inside the file cannot make ffprobe open a URL.
    '-protocol_whitelist', 'file',
    // ffprobe picks the best-scoring demuxer among all it has and then refuses it when it is not listed,
    // so a playlist (hls, concat) or a text/image format fails instead of falling back to something else.
    '-format_whitelist', allowed.join(','),
    '-print_format', 'json',
    '-show_format',
    '-show_streams',
    // `file:` makes the rest a literal path: a name like `http://…`, `concat:…` or `-x` is never a protocol
    // or an option.
    '-i', `file:${absolute}`,
  ];
  const run = await runFfprobe(
    options.ffprobePath,
    args,
    options.timeoutMs,
    options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES,
  );

  if (run.outcome === 'overflow') throw unreadable(allow);
  if (run.signal) throw new Error(`ffprobe was killed by ${run.signal}: ${run.stderr}`);
  if (run.code !== 0) {
    // A bad argument fails every file alike: that is our configuration (or ffprobe version), not the upload.
    if (/Unrecognized option|Option not found|Failed to set value/.test(run.stderr)) {
      throw new Error(`ffprobe refused its arguments: ${run.stderr}`);
    }
    throw unreadable(allow);
  }

  let json: unknown;
  try {
    json = JSON.parse(run.stdout);
  } catch {
    throw new Error('ffprobe printed something that is not JSON');
  }
  const parsed = FfprobeOutput.safeParse(json);
  if (!parsed.success) throw unreadable(allow);
  const output = parsed.data;

  // Defence in depth: never trust the whitelist alone to have held.
  const demuxer = allowed.find((name) => name === output.format.format_name);
  if (!demuxer) throw unreadable(allow);

  const audio = output.streams.filter((s) => s.codec_type === 'audio');
  const video = output.streams.filter((s) => s.codec_type === 'video' && s.disposition?.attached_pic !== 1);
  const audioCodec = audio[0]?.codec_name;
  const videoCodec = video[0]?.codec_name;
  return {
    formatName: output.format.format_name,
    contentType: contentTypeOf(demuxer, output),
    durationSeconds: durationOf(output),
    audioStreams: audio.length,
    videoStreams: video.length,
    ...(audioCodec ? { audioCodec } : {}),
    ...(videoCodec ? { videoCodec } : {}),
  };
}

/** Refuses what cannot be converted: no picture, nothing to convert, or no length to convert. */
export function acceptVideo(result: ProbeResult): asserts result is ProbeResult & { durationSeconds: number } {
  if (result.videoStreams === 0) throw userError(ErrorCode.UNSUPPORTED_MEDIA, 'This file has no video stream');
  if (result.audioStreams === 0) {
    throw userError(ErrorCode.UNSUPPORTED_MEDIA, 'This video has no audio track to convert');
  }
  if (result.durationSeconds === null || !(result.durationSeconds > 0)) {
    throw userError(ErrorCode.UNSUPPORTED_MEDIA, 'The length of this video cannot be read, so it cannot be converted');
  }
}

/** A converter's output must be a playable mp3 (probed with `allow: 'audio-mp3'`). */
export function acceptMp3(result: ProbeResult): asserts result is ProbeResult & { durationSeconds: number } {
  if (result.contentType !== 'audio/mpeg' || result.audioStreams === 0 || result.audioCodec !== 'mp3') {
    throw userError(ErrorCode.UNSUPPORTED_MEDIA, 'This file is not an MP3 audio file we can read');
  }
  if (result.durationSeconds === null || !(result.durationSeconds > 0)) {
    throw userError(ErrorCode.UNSUPPORTED_MEDIA, 'The length of this audio file cannot be read');
  }
}

// WebM is the Matroska subset limited to these codecs (WebVTT being its subtitle format).
const webmCodecs = new Set(['vp8', 'vp9', 'av1', 'opus', 'vorbis', 'webvtt']);

function contentTypeOf(demuxer: Demuxer, output: FfprobeOutput): string {
  switch (demuxer) {
    case 'mov,mp4,m4a,3gp,3g2,mj2':
      // One demuxer reads both: the ftyp major brand tells QuickTime from MP4.
      return output.format.tags?.major_brand === 'qt  ' ? 'video/quicktime' : 'video/mp4';
    case 'matroska,webm':
      return output.streams.every((s) => s.codec_name !== undefined && webmCodecs.has(s.codec_name))
        ? 'video/webm'
        : 'video/x-matroska';
    case 'avi':
      return 'video/x-msvideo';
    case 'mpegts':
      return 'video/mp2t';
    case 'flv':
      return 'video/x-flv';
    case 'asf':
      return 'video/x-ms-asf';
    case 'ogg':
      return 'video/ogg';
    case 'mpeg':
      return 'video/mpeg';
    case 'mp3':
      return 'audio/mpeg';
  }
}

function seconds(value: string | number | undefined): number | null {
  if (value === undefined) return null;
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isFinite(n) ? n : null;
}

/** The container's duration; failing that (some streams carry their own), the longest stream's. */
function durationOf(output: FfprobeOutput): number | null {
  const format = seconds(output.format.duration);
  if (format !== null) return format;
  const streams = output.streams.map((s) => seconds(s.duration)).filter((d): d is number => d !== null);
  return streams.length > 0 ? Math.max(...streams) : null;
}

interface FfprobeRun {
  outcome: 'exited' | 'overflow';
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** The last few KiB, for the log of an internal error. */
  stderr: string;
}

/** Runs ffprobe without a shell, with bounded output and a wall-clock limit. */
function runFfprobe(bin: string, args: string[], timeoutMs: number, maxOutputBytes: number): Promise<FfprobeRun> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], shell: false });
    // Bounded by maxOutputBytes, so collecting the chunks is safe.
    const chunks: Buffer[] = [];
    let received = 0;
    let overflow = false;
    let timedOut = false;
    let failed = false;
    let stderr = '';

    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);

    child.stdout.on('data', (chunk: Buffer) => {
      if (overflow) return;
      received += chunk.length;
      if (received > maxOutputBytes) {
        overflow = true;
        chunks.length = 0;
        child.kill('SIGKILL');
        return;
      }
      chunks.push(chunk);
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_TAIL_CHARS);
    });

    child.once('error', (err) => {
      // Spawning failed (binary missing, not executable): the process may never emit 'close'.
      failed = true;
      clearTimeout(timer);
      reject(new Error(`ffprobe could not be run (${bin}): ${err.message}`, { cause: err }));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (failed) return;
      if (timedOut) {
        reject(new Error(`ffprobe did not finish within ${timeoutMs} ms`));
        return;
      }
      resolveRun({
        outcome: overflow ? 'overflow' : 'exited',
        code,
        signal,
        stdout: Buffer.concat(chunks).toString('utf8'),
        stderr: stderr.trim(),
      });
    });
  });
}
