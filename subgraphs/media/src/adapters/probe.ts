import { open, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { ErrorCode, spawnConfined, userError, type ResourceLimits } from '@vidmp3/shared';

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

/**
 * How ffprobe is confined: it parses untrusted bytes, so it gets a minimal environment (none of the service's
 * secrets), a scratch directory of its own and rlimits (see `spawnConfined` in the shared library).
 */
export interface ProbeSandbox {
  /** HOME, TMPDIR and working directory of ffprobe; never the service's own directory. */
  scratchDir: string;
  limits: ResourceLimits;
  prlimitPath?: string;
  /** PATH of ffprobe's environment (where a bare `ffprobe` is found); defaults to the Debian one. */
  searchPath?: string;
}

export interface ProbeOptions {
  ffprobePath: string;
  timeoutMs: number;
  allow?: ProbeAllow;
  /** Cap on ffprobe's JSON; a file with absurd metadata or stream counts is refused, not buffered. */
  maxOutputBytes?: number;
  /** Defaults to the system temp dir, 1 GiB of address space and CPU seconds matching the wall-clock limit. */
  sandbox?: ProbeSandbox;
}

export interface ProbeResult {
  /** ffprobe's demuxer name, e.g. `mov,mp4,m4a,3gp,3g2,mj2`. */
  formatName: string;
  /** Derived from what ffprobe read, never from the client's claim. */
  contentType: string;
  durationSeconds: number | null;
  /** Where the container's timestamps start (mpegts starts at 1.4 s, webm slightly below 0); 0 when unknown. */
  startSeconds: number;
  /** The first audio stream's index and the length its own header declares (mp4/mov do; matroska does not). */
  audioStreamIndex: number | null;
  audioDurationSeconds: number | null;
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
// ffmpeg 5.1 maps ~290 MB of libraries before reading a byte; 1 GiB leaves a demuxer plenty and stops a bomb.
const DEFAULT_ADDRESS_SPACE_BYTES = 1024 ** 3;
const STDERR_TAIL_CHARS = 4096;

// ffprobe prints numbers it measured (durations) as strings and counts as numbers; accept either for both.
const numeric = z.union([z.string(), z.number()]).optional();

const FfprobeOutput = z.object({
  format: z.object({
    format_name: z.string(),
    start_time: numeric,
    duration: numeric,
    tags: z.record(z.string(), z.unknown()).optional(),
  }),
  streams: z
    .array(
      z.object({
        index: z.number().int().optional(),
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
  const run = await runFfprobe(options, args, { maxOutputBytes: options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES });

  if (run.outcome === 'overflow') throw unreadable(allow);
  assertRan(run);
  if (run.code !== 0) {
    // An mp4 whose index (moov) was to come after the data, cut before it: the upload stopped short.
    // (A text file named .mp4 gets the same complaint: only a file that starts as an mp4 does is incomplete.)
    if (allow === 'video' && /moov atom not found/.test(run.stderr) && (await startsWithFtyp(absolute))) {
      throw incomplete();
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
    startSeconds: seconds(output.format.start_time) ?? 0,
    audioStreamIndex: audio[0]?.index ?? null,
    audioDurationSeconds: seconds(audio[0]?.duration),
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

/** Whether the file opens with an ISO BMFF `ftyp` box (bytes 4–8), as every mp4 and QuickTime file does. */
async function startsWithFtyp(path: string): Promise<boolean> {
  const file = await open(path, 'r');
  try {
    const { buffer, bytesRead } = await file.read(Buffer.alloc(8), 0, 8, 0);
    return bytesRead === 8 && buffer.toString('latin1', 4, 8) === 'ftyp';
  } finally {
    await file.close();
  }
}

/** A run that did not get to look at the file at all is our failure (missing binary, killed, bad arguments). */
function assertRan(run: FfprobeRun): void {
  if (run.signal) throw new Error(`ffprobe was killed by ${run.signal}: ${run.stderr}`);
  // prlimit's own exit codes when it cannot exec the tool (util-linux: 126 not executable, 127 not found).
  if (run.code === 126 || run.code === 127) throw new Error(`ffprobe could not be run: ${run.stderr}`);
  // A bad argument fails every file alike: that is our configuration (or ffprobe version), not the upload.
  if (run.code !== 0 && /Unrecognized option|Option not found|Failed to set value/.test(run.stderr)) {
    throw new Error(`ffprobe refused its arguments: ${run.stderr}`);
  }
}

const INCOMPLETE_MESSAGE = 'The file is incomplete: it ends before the length it declares (was the upload cut short?)';
const incomplete = (reached?: number, declared?: number) =>
  userError(
    ErrorCode.UNSUPPORTED_MEDIA,
    reached !== undefined && declared !== undefined
      ? `The file is incomplete: its data ends at ${Math.max(0, reached).toFixed(1)} s of the ${declared.toFixed(1)} s it declares (was the upload cut short?)`
      : INCOMPLETE_MESSAGE,
  );

/** How far short of the declared length the data may end: muxers round, and streams end a frame apart. */
export const truncationToleranceSeconds = (declared: number): number => Math.max(2, declared * 0.01);
// Packets read before the point where the data must reach: a seek lands on a keyframe at or before it.
const TAIL_WINDOW_SECONDS = 5;

/**
 * Refuses a video whose data stops before the length its header declares — a file cut short whose header
 * survived (a faststart mp4, a matroska file): its probe reports the full length, but a conversion would
 * end where the bytes do. Reads only the packets near the declared end (the container's index makes that a
 * seek; without one, the demuxer skims packet headers, never decoding), so it stays cheap for a 2 GiB file.
 * The data must reach the declared length within a tolerance, the audio stream its own declared length, and
 * no packet may claim bytes past the end of the file.
 */
export async function checkComplete(
  path: string,
  result: ProbeResult & { durationSeconds: number },
  options: ProbeOptions,
): Promise<void> {
  const absolute = resolve(path);
  const { size } = await stat(absolute);
  const declared = result.durationSeconds;
  const audioDeclared = result.audioDurationSeconds;
  const tolerance = truncationToleranceSeconds(declared);
  const from = Math.max(0, Math.min(declared, audioDeclared ?? declared) - tolerance - TAIL_WINDOW_SECONDS);

  const read = async (seek: boolean) => {
    const tail = { end: -Infinity, audioEnd: -Infinity, packets: 0, beyondFile: false };
    // prettier-ignore
    const args = [
      '-v', 'error',
      '-hide_banner',
      '-protocol_whitelist', 'file',
      // The demuxer the first probe found, and only it.
      '-format_whitelist', result.formatName,
      ...(seek ? ['-read_intervals', `${(result.startSeconds + from).toFixed(6)}%`] : []),
      '-show_entries', 'packet=stream_index,pts_time,duration_time,pos,size',
      '-print_format', 'compact',
      '-i', `file:${absolute}`,
    ];
    // Streamed line by line into a few numbers: however many packets the tail holds, memory stays flat.
    const run = await runFfprobe(options, args, {
      onLine(line) {
        const packet = parsePacketLine(line);
        if (!packet || packet.pts === null) return;
        tail.packets++;
        const end = packet.pts + (packet.duration ?? 0) - result.startSeconds;
        tail.end = Math.max(tail.end, end);
        if (packet.stream === result.audioStreamIndex) tail.audioEnd = Math.max(tail.audioEnd, end);
        if (packet.pos !== null && packet.size !== null && packet.pos >= 0 && packet.pos + packet.size > size) {
          tail.beyondFile = true;
        }
      },
    });
    assertRan(run);
    return tail;
  };

  let tail = await read(from > 0);
  // A demuxer that cannot seek here reads nothing after a failed seek: read from the start instead.
  if (tail.packets === 0 && from > 0) tail = await read(false);

  const audioShort = audioDeclared !== null && tail.audioEnd < audioDeclared - tolerance;
  if (tail.end < declared - tolerance || audioShort || tail.beyondFile) {
    throw incomplete(Math.min(tail.end, audioShort ? tail.audioEnd : Infinity), declared);
  }
}

interface PacketLine {
  stream: number | null;
  pts: number | null;
  duration: number | null;
  pos: number | null;
  size: number | null;
}

/** One line of `-print_format compact` packets: `packet|stream_index=1|pts_time=11.9|…|pos=207866`. */
function parsePacketLine(line: string): PacketLine | null {
  const fields = line.split('|');
  if (fields[0] !== 'packet') return null;
  const values = new Map<string, string>();
  for (const field of fields.slice(1)) {
    const eq = field.indexOf('=');
    if (eq > 0) values.set(field.slice(0, eq), field.slice(eq + 1));
  }
  const num = (key: string) => {
    const raw = values.get(key);
    if (raw === undefined || raw === 'N/A') return null;
    const n = Number(raw);
    return Number.isFinite(n) ? n : null;
  };
  return {
    stream: num('stream_index'),
    pts: num('pts_time'),
    duration: num('duration_time'),
    pos: num('pos'),
    size: num('size'),
  };
}

interface FfprobeRun {
  outcome: 'exited' | 'overflow';
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** The last few KiB, for the log of an internal error. */
  stderr: string;
}

/** What to do with ffprobe's output: keep it whole up to a cap, or hand it over line by line and keep none. */
type OutputSink = { maxOutputBytes: number } | { onLine: (line: string) => void };

/**
 * Runs ffprobe confined (minimal environment, rlimits; no shell), with bounded output and a wall-clock limit.
 */
function runFfprobe(options: ProbeOptions, args: string[], sink: OutputSink): Promise<FfprobeRun> {
  const bin = options.ffprobePath;
  const { timeoutMs } = options;
  const sandbox = options.sandbox ?? {
    scratchDir: tmpdir(),
    limits: { addressSpaceBytes: DEFAULT_ADDRESS_SPACE_BYTES, cpuSeconds: Math.ceil(timeoutMs / 1000) },
  };
  return new Promise((resolveRun, reject) => {
    const { child, timedOut } = spawnConfined({
      command: bin,
      args,
      limits: sandbox.limits,
      scratchDir: sandbox.scratchDir,
      ...(sandbox.prlimitPath ? { prlimitPath: sandbox.prlimitPath } : {}),
      ...(sandbox.searchPath ? { path: sandbox.searchPath } : {}),
      timeoutMs,
    });
    const stdout = child.stdout!;
    const stderrStream = child.stderr!;
    // Bounded by maxOutputBytes, so collecting the chunks is safe.
    const chunks: Buffer[] = [];
    let received = 0;
    let overflow = false;
    let failed = false;
    let stderr = '';

    if ('onLine' in sink) {
      createInterface({ input: stdout, crlfDelay: Infinity }).on('line', sink.onLine);
    } else {
      stdout.on('data', (chunk: Buffer) => {
        if (overflow) return;
        received += chunk.length;
        if (received > sink.maxOutputBytes) {
          overflow = true;
          chunks.length = 0;
          child.kill('SIGKILL');
          return;
        }
        chunks.push(chunk);
      });
    }
    stderrStream.setEncoding('utf8');
    stderrStream.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_TAIL_CHARS);
    });

    child.once('error', (err) => {
      // Spawning failed (prlimit missing, not executable): the process may never emit 'close'.
      failed = true;
      reject(new Error(`ffprobe could not be run (${bin}): ${err.message}`, { cause: err }));
    });
    child.once('close', (code, signal) => {
      if (failed) return;
      if (timedOut()) {
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
