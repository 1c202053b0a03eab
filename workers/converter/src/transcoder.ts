// The only module that knows fluent-ffmpeg. Its repository was archived in 2025: whatever replaces it only has
// to honour `transcode()` below.
import type { SpawnOptions } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { dirname, resolve as resolvePath } from 'node:path';
import ffmpeg, { type FfmpegCommand } from 'fluent-ffmpeg';
import {
  confinedCommand,
  DEFAULT_PRLIMIT_PATH,
  spawnConfined,
  type ConversionOptions,
  type ResourceLimits,
} from '@vidmp3/shared';
import { AbortError, type PermanentError, TimeoutError, type TransientError } from './errors.js';
import { classifyFfmpegFailure, isExpectedNoise, isStatsLine, stderrTail } from './ffmpeg-errors.js';
import { openInputProxy, type InputProxy } from './input-proxy.js';
import { expectedSeconds, progressFraction, timemarkToSeconds } from './progress.js';

/** Demuxers ffmpeg may pick for an input: the video containers media accepts. Never hls, concat or xbin. */
export const FORMAT_WHITELIST = 'mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,flv,asf,ogg,mpeg';
/**
 * The input is the loopback proxy in front of media's internal HTTP API (input-proxy.ts) and nothing else: no
 * file:, no pipe:, no subfile or data URIs, and no https either, since the proxy is plain http on 127.0.0.1.
 */
export const PROTOCOL_WHITELIST = 'http,tcp';
/**
 * The decoders ffmpeg may open (ffmpeg 5.1's names: where there are a float and a fixed-point decoder, both):
 * the audio codecs that the accepted containers carry in practice. Every decoder is attack surface, and most of
 * ffmpeg's ~200 audio decoders (game, telephony and tracker formats) are rarely fuzzed by their users. Video
 * decoders are absent on purpose: only audio is converted, and without them ffmpeg merely notes that it cannot
 * open the video stream while probing. Add a name here when a real-world input needs it.
 */
export const DECODER_WHITELIST = [
  'aac',
  'aac_fixed',
  'aac_latm',
  'mp3float',
  'mp3',
  'mp2float',
  'mp2',
  'mp1float',
  'mp1',
  'opus',
  'vorbis',
  'flac',
  'alac',
  'ac3',
  'ac3_fixed',
  'eac3',
  'amrnb',
  'amrwb',
  'wmav1',
  'wmav2',
  'wmapro',
  'pcm_s16le',
  'pcm_s16be',
  'pcm_s24le',
  'pcm_s24be',
  'pcm_s32le',
  'pcm_s32be',
  'pcm_f32le',
  'pcm_f32be',
  'pcm_f64le',
  'pcm_f64be',
  'pcm_u8',
  'pcm_s8',
  'pcm_alaw',
  'pcm_mulaw',
  'pcm_dvd',
  'pcm_bluray',
].join(',');
/** Descriptors ffmpeg needs: stdio, the connection to the proxy, the output, a few for libraries at start. */
const FFMPEG_OPEN_FILES = 64;
/** Room over the mp3's nominal size for its headers and the encoder's bit reservoir, in the file size limit. */
const OUTPUT_SLACK_BYTES = 1024 * 1024;
/**
 * Inputs up to this size are copied beside the output before ffmpeg starts and read from there (input-proxy.ts):
 * a clip then costs media one request instead of one per seek. Larger ones stream through as ffmpeg reads them:
 * a copy is made before ffmpeg starts, and for a job that was not taken ahead (nothing queued behind a running
 * one) its time would add to the job's; at 8 MiB that is a few ms on loopback.
 */
export const LOCAL_COPY_MAX_BYTES = 8 * 1024 * 1024;
/** ffmpeg gives up on a read or connect stalled this long (microseconds) rather than hang until the limit. */
const IO_TIMEOUT_US = 30_000_000;

export interface TranscodeRequest {
  /** Seekable (served with Range support): an mp4 whose moov atom is at the end cannot be read from a pipe. */
  inputUrl: string;
  /**
   * Sent with every request for the input, e.g. the bearer token. They never reach ffmpeg: a loopback proxy in
   * this process adds them (see input-proxy.ts).
   */
  headers: Record<string, string>;
  /** The mp3 file to write; it exists afterwards only if the conversion succeeded. */
  output: string;
  options: ConversionOptions;
  /** Of the whole input: progress is measured against the trimmed span of it. */
  durationSeconds: number;
  /** Aborting kills ffmpeg at once (SIGKILL) and rejects with an AbortError. */
  signal: AbortSignal;
  /** Called once ffmpeg has been spawned (for the job's timeline). */
  onStart?: () => void;
  /** 0..1, as ffmpeg reports its position (several times a second: throttle before publishing). */
  onProgress: (progress: number) => void;
  /** Inputs up to this size are copied before ffmpeg starts (LOCAL_COPY_MAX_BYTES unless given; 0: never). */
  localCopyMaxBytes?: number;
  /** The input opened ahead by `openInput` (e.g. while the ffmpeg before this one ran); closed by `transcode`. */
  input?: Promise<InputProxy>;
  /** Testing aid: read the input at this multiple of realtime (`-readrate`). */
  readrate?: number;
  ffmpegPath: string;
  /** Wall-clock limit; past it ffmpeg is killed and the call rejects with a TimeoutError. */
  timeoutMs: number;
  /** The output is cut at this length (hostile inputs can claim any duration). */
  maxSeconds: number;
  /** Per-process limits of ffmpeg; the output file size limit is derived from maxSeconds and the bitrate. */
  limits: FfmpegLimits;
}

export interface FfmpegLimits {
  /** Address space (RLIMIT_AS) of ffmpeg, bytes. */
  addressSpaceBytes: number;
  /** CPU time of ffmpeg, seconds, all threads together. */
  cpuSeconds: number;
  /** util-linux prlimit, which sets the limits and execs ffmpeg; defaults to /usr/bin/prlimit. */
  prlimitPath?: string;
  /** PATH of ffmpeg's environment (where a bare `ffmpeg` is found); defaults to the Debian one. */
  searchPath?: string;
}

/** How the confined tool is found: prlimit's path and the PATH it looks `ffmpeg` up on. */
const toolLocation = (limits: Pick<FfmpegLimits, 'prlimitPath' | 'searchPath'>) => ({
  ...(limits.prlimitPath ? { prlimitPath: limits.prlimitPath } : {}),
  ...(limits.searchPath ? { path: limits.searchPath } : {}),
});

/** The largest mp3 a conversion may write: maxSeconds at the requested bitrate, plus slack. */
export function outputSizeLimit(req: Pick<TranscodeRequest, 'maxSeconds' | 'options'>): number {
  return Math.ceil(req.maxSeconds * req.options.bitrateKbps * 125) + OUTPUT_SLACK_BYTES;
}

/** The internals of fluent-ffmpeg that `confine` hooks (fluent-ffmpeg is archived: they will not move). */
interface FluentSpawning {
  _getFfmpegPath: (callback: (err: Error | null, path: string) => void) => void;
  _spawnFfmpeg: (args: string[], options: SpawnOptions | ((...a: unknown[]) => void), ...callbacks: unknown[]) => void;
}

/**
 * Makes every ffmpeg this command starts (the conversion, and fluent-ffmpeg's capability checks) run confined:
 * through prlimit with the limits, with the minimal environment of `confinedCommand` in place of this
 * process's (which holds the download signing key, the internal token, the broker URL), in the scratch
 * directory. fluent-ffmpeg has no option for a child's environment (it spawns with `process.env`), hence the
 * hook on the one method that spawns.
 */
function confine(
  command: FfmpegCommand,
  ffmpegPath: string,
  limits: ResourceLimits,
  scratchDir: string,
  location: Pick<FfmpegLimits, 'prlimitPath' | 'searchPath'>,
): FfmpegCommand {
  const fluent = command as unknown as FluentSpawning;
  const spawnFfmpeg = fluent._spawnFfmpeg;
  let confined: ReturnType<typeof confinedCommand> | undefined;
  // _spawnFfmpeg asks this for the program to run, after we set `confined` below.
  fluent._getFfmpegPath = (callback) => callback(null, confined?.command ?? '');
  fluent._spawnFfmpeg = (args, options, ...callbacks) => {
    confined = confinedCommand({
      command: ffmpegPath,
      args,
      limits,
      scratchDir,
      ...toolLocation(location),
    });
    // Called without options, fluent-ffmpeg shifts the callbacks: keep its calling convention.
    const spawnOptions = typeof options === 'function' ? {} : options;
    const rest = typeof options === 'function' ? [options, ...callbacks] : callbacks;
    spawnFfmpeg.call(command, confined.args, { ...spawnOptions, env: confined.env, cwd: confined.cwd }, ...rest);
  };
  return command;
}

/**
 * A time in seconds as ffmpeg's duration syntax reads it: fixed notation, to the microsecond (its precision).
 * `String(1e-7)` is "1e-7", which ffmpeg refuses ("Invalid duration specification").
 */
export function ffmpegSeconds(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) throw new RangeError(`not a time in seconds: ${seconds}`);
  return seconds.toFixed(6).replace(/\.?0+$/, '') || '0';
}

/**
 * The arguments before `-i` (input) and after it (output), as ffmpeg receives them. No headers: whatever is in
 * argv, any process on the host can read.
 */
export function ffmpegArguments(req: Omit<TranscodeRequest, 'headers'>): { input: string[]; output: string[] } {
  const { bitrateKbps, sampleRateHz, channels, startSeconds, endSeconds } = req.options;
  // prettier-ignore
  const input = [
    '-hide_banner', '-nostdin', '-loglevel', 'error', '-stats',
    '-protocol_whitelist', PROTOCOL_WHITELIST,
    '-format_whitelist', FORMAT_WHITELIST,
    '-codec_whitelist', DECODER_WHITELIST,
    '-rw_timeout', String(IO_TIMEOUT_US),
    ...(req.readrate ? ['-readrate', String(req.readrate)] : []),
    ...(startSeconds != null ? ['-ss', ffmpegSeconds(startSeconds)] : []),
    ...(endSeconds != null ? ['-to', ffmpegSeconds(endSeconds)] : []),
  ];
  // prettier-ignore
  const output = [
    // Only the first audio stream: no video, subtitles, data or attachments, whatever the container holds.
    '-map', '0:a:0', '-vn', '-sn', '-dn',
    '-c:a', 'libmp3lame', '-b:a', `${bitrateKbps}k`,
    ...(sampleRateHz != null ? ['-ar', String(sampleRateHz)] : []),
    ...(channels != null ? ['-ac', String(channels)] : []),
    '-t', ffmpegSeconds(req.maxSeconds),
    '-f', 'mp3',
  ];
  return { input, output };
}

/**
 * Fails the worker at start, with one clear line, when ffmpeg cannot run confined (prlimit missing, a memory
 * limit too small for ffmpeg to load its libraries) or cannot write mp3. Also moves fluent-ffmpeg's capability
 * checks (two extra ffmpeg runs before its first command in a process, cached afterwards) off the first job.
 */
export async function warmUp(ffmpegPath: string, limits: FfmpegLimits, scratchDir: string): Promise<void> {
  const resourceLimits = { ...limits, fileSizeBytes: OUTPUT_SLACK_BYTES, openFiles: FFMPEG_OPEN_FILES };
  // Run directly, not through fluent-ffmpeg: its capability answers are cached per process, so they would not
  // tell whether ffmpeg still starts under these limits.
  const probe = spawnConfined({
    command: ffmpegPath,
    args: ['-hide_banner', '-version'],
    limits: resourceLimits,
    scratchDir,
    ...toolLocation(limits),
    timeoutMs: 30_000,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  probe.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk.slice(0, 1000)));
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => {
    probe.child.once('error', (err) => resolve([null, err.message]));
    probe.child.once('exit', (exitCode, exitSignal) => resolve([exitCode, exitSignal]));
  });
  if (code !== 0) {
    const prlimit = limits.prlimitPath ?? DEFAULT_PRLIMIT_PATH;
    const why = code === null ? String(signal) : `exit code ${code}: ${stderr.trim()}`;
    throw new Error(`ffmpeg at "${ffmpegPath}" cannot be run through "${prlimit}" with its limits (${why})`);
  }

  const command = confine(ffmpeg(), ffmpegPath, resourceLimits, scratchDir, limits);
  await new Promise<void>((resolve, reject) => {
    command.availableFormats((formatsErr, formats) => {
      if (formatsErr) return reject(new Error(`ffmpeg at "${ffmpegPath}" cannot be run: ${formatsErr.message}`));
      if (!formats.mp3?.canMux) return reject(new Error('this ffmpeg cannot write mp3'));
      command.availableEncoders((encodersErr) => (encodersErr ? reject(encodersErr) : resolve()));
    });
  });
}

/**
 * Converts the input's first audio stream to an mp3 file with ffmpeg. Resolves once ffmpeg exited 0 and the
 * file is complete; on any failure the file is removed and the promise rejects with a PermanentError (the
 * input is the problem), a TransientError (reaching it failed), a TimeoutError or an AbortError.
 */
export async function transcode(req: TranscodeRequest): Promise<void> {
  if (req.signal.aborted) {
    void req.input?.then((opened) => opened.close());
    throw new AbortError();
  }
  const proxy = await (req.input ?? openInput(req));
  try {
    if (req.signal.aborted) throw new AbortError();
    // ffmpeg's working directory becomes the scratch directory: a relative output path would move with it.
    await runFfmpeg({ ...req, inputUrl: proxy.url, output: resolvePath(req.output) });
  } finally {
    await proxy.close();
  }
}

/**
 * Opens the input's loopback proxy for `transcode`, copying a small input first (LOCAL_COPY_MAX_BYTES): called
 * ahead of it, the copy is made while the worker still waits for its ffmpeg slot. Never rejects for the input's
 * sake (a failed copy passes reads through, and ffmpeg meets the failure itself); close it if it is not used.
 */
export function openInput(
  req: Pick<TranscodeRequest, 'inputUrl' | 'headers' | 'output' | 'signal' | 'localCopyMaxBytes'>,
): Promise<InputProxy> {
  const maxBytes = req.localCopyMaxBytes ?? LOCAL_COPY_MAX_BYTES;
  const copy = maxBytes > 0 ? { path: `${resolvePath(req.output)}.input`, maxBytes, signal: req.signal } : undefined;
  return openInputProxy(req.inputUrl, req.headers, copy);
}

/** `transcode` once the input is reachable without headers (through the proxy). */
function runFfmpeg(req: Omit<TranscodeRequest, 'headers'>): Promise<void> {
  const { input, output } = ffmpegArguments(req);
  const expected = expectedSeconds({
    durationSeconds: req.durationSeconds,
    startSeconds: req.options.startSeconds,
    endSeconds: req.options.endSeconds,
    maxSeconds: req.maxSeconds,
  });

  return new Promise<void>((resolve, reject) => {
    // Multiple arguments, not an array: given an array, fluent-ffmpeg splits every "-flag value" string at its
    // space, which would also split a header value that happens to contain exactly one.
    const limits: ResourceLimits = {
      addressSpaceBytes: req.limits.addressSpaceBytes,
      cpuSeconds: req.limits.cpuSeconds,
      fileSizeBytes: outputSizeLimit(req),
      openFiles: FFMPEG_OPEN_FILES,
    };
    const command = confine(ffmpeg(), req.ffmpegPath, limits, dirname(req.output), req.limits)
      .input(req.inputUrl)
      .inputOptions(...input)
      .output(req.output)
      .outputOptions(...output);
    // With a 'progress' listener, fluent-ffmpeg runs ffprobe on the input only to compute its own `percent`: a
    // second read of the input without our headers or whitelists, in a process nobody would kill. We know
    // the duration already, so that probe answers "nothing" at once.
    Object.assign(command, {
      ffprobe: (...args: unknown[]) => {
        const callback = args.at(-1);
        if (typeof callback === 'function') (callback as (err: null) => void)(null);
      },
    });

    const stderr: string[] = [];
    let started = false;
    /** Why we killed ffmpeg, once we have. */
    let stopped: AbortError | TimeoutError | undefined;
    const stop = (why: AbortError | TimeoutError) => {
      if (stopped) return;
      stopped = why;
      // Before 'start' there is no process yet (fluent-ffmpeg is still checking capabilities): it is killed
      // as soon as it appears.
      if (started) command.kill('SIGKILL');
    };
    const onAbort = () => stop(new AbortError());
    req.signal.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => stop(new TimeoutError(req.timeoutMs)), req.timeoutMs);

    const finish = (failure: PermanentError | TransientError | AbortError | undefined) => {
      clearTimeout(timer);
      req.signal.removeEventListener('abort', onAbort);
      if (!failure) {
        resolve();
        return;
      }
      // A killed or failed ffmpeg may have left a partial mp3 that would look complete to anyone else.
      rm(req.output, { force: true }).then(
        () => reject(failure),
        () => reject(failure),
      );
    };

    command
      .on('start', () => {
        started = true;
        if (stopped) command.kill('SIGKILL');
        else req.onStart?.();
      })
      .on('stderr', (line: string) => {
        if (isStatsLine(line) || isExpectedNoise(line) || !line.trim()) return;
        stderr.push(line);
        if (stderr.length > 50) stderr.shift();
      })
      .on('progress', ({ timemark }) => {
        if (!stopped) req.onProgress(progressFraction(timemarkToSeconds(timemark), expected));
      })
      .on('error', (err: Error) => {
        if (stopped) return finish(stopped);
        // err.message adds how ffmpeg ended: an exit code, or the signal of a resource limit (SIGXCPU, SIGXFSZ).
        // Only its first words: fluent-ffmpeg appends all of stderr after a colon, expected noise included.
        const failure = classifyFfmpegFailure([...stderr, err.message.split(':')[0]].join('\n'));
        // The user sees failure.message; the cause (ffmpeg's own words, with URLs) is for the log.
        failure.cause = new Error(stderrTail(stderr) || err.message);
        finish(failure);
      })
      .on('end', () => finish(stopped));

    command.run();
  });
}
