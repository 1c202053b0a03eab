// The only module that knows fluent-ffmpeg. Its repository was archived in 2025: whatever replaces it only has
// to honour `transcode()` below.
import { rm } from 'node:fs/promises';
import ffmpeg from 'fluent-ffmpeg';
import type { ConversionOptions } from '@vidmp3/shared';
import { AbortError, type PermanentError, TimeoutError, type TransientError } from './errors.js';
import { classifyFfmpegFailure, isStatsLine, stderrTail } from './ffmpeg-errors.js';
import { expectedSeconds, progressFraction, timemarkToSeconds } from './progress.js';

/** Demuxers ffmpeg may pick for an input: the video containers media accepts. Never hls, concat or xbin. */
export const FORMAT_WHITELIST = 'mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,flv,asf,ogg,mpeg';
/** The input is media's internal HTTP API and nothing else: no file:, no pipe:, no subfile or data URIs. */
export const PROTOCOL_WHITELIST = 'http,https,tcp,tls';
/** ffmpeg gives up on a read or connect stalled this long (microseconds) rather than hang until the limit. */
const IO_TIMEOUT_US = 30_000_000;

export interface TranscodeRequest {
  /** Seekable (served with Range support): an mp4 whose moov atom is at the end cannot be read from a pipe. */
  inputUrl: string;
  /** Sent with every request for the input, e.g. the bearer token. */
  headers: Record<string, string>;
  /** The mp3 file to write; it exists afterwards only if the conversion succeeded. */
  output: string;
  options: ConversionOptions;
  /** Of the whole input: progress is measured against the trimmed span of it. */
  durationSeconds: number;
  /** Aborting kills ffmpeg at once (SIGKILL) and rejects with an AbortError. */
  signal: AbortSignal;
  /** 0..1, as ffmpeg reports its position (several times a second: throttle before publishing). */
  onProgress: (progress: number) => void;
  /** Testing aid: read the input at this multiple of realtime (`-readrate`). */
  readrate?: number;
  ffmpegPath: string;
  /** Wall-clock limit; past it ffmpeg is killed and the call rejects with a TimeoutError. */
  timeoutMs: number;
  /** The output is cut at this length (hostile inputs can claim any duration). */
  maxSeconds: number;
}

/** The arguments before `-i` (input) and after it (output), as ffmpeg receives them. */
export function ffmpegArguments(req: TranscodeRequest): { input: string[]; output: string[] } {
  const { bitrateKbps, sampleRateHz, channels, startSeconds, endSeconds } = req.options;
  const headers = Object.entries(req.headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  // prettier-ignore
  const input = [
    '-hide_banner', '-nostdin', '-loglevel', 'error', '-stats',
    '-protocol_whitelist', PROTOCOL_WHITELIST,
    '-format_whitelist', FORMAT_WHITELIST,
    '-rw_timeout', String(IO_TIMEOUT_US),
    ...(headers ? ['-headers', headers] : []),
    ...(req.readrate ? ['-readrate', String(req.readrate)] : []),
    ...(startSeconds != null ? ['-ss', String(startSeconds)] : []),
    ...(endSeconds != null ? ['-to', String(endSeconds)] : []),
  ];
  // prettier-ignore
  const output = [
    // Only the first audio stream: no video, subtitles, data or attachments, whatever the container holds.
    '-map', '0:a:0', '-vn', '-sn', '-dn',
    '-c:a', 'libmp3lame', '-b:a', `${bitrateKbps}k`,
    ...(sampleRateHz != null ? ['-ar', String(sampleRateHz)] : []),
    ...(channels != null ? ['-ac', String(channels)] : []),
    '-t', String(req.maxSeconds),
    '-f', 'mp3',
  ];
  return { input, output };
}

/**
 * fluent-ffmpeg asks ffmpeg for its formats and encoders (two extra runs) before the first command of a
 * process, then caches them: done at start, this moves that cost off the first job and fails the worker at
 * once when ffmpeg is missing or cannot write mp3.
 */
export function warmUp(ffmpegPath: string): Promise<void> {
  const command = ffmpeg().setFfmpegPath(ffmpegPath);
  return new Promise<void>((resolve, reject) => {
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
export function transcode(req: TranscodeRequest): Promise<void> {
  if (req.signal.aborted) return Promise.reject(new AbortError());
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
    const command = ffmpeg()
      .setFfmpegPath(req.ffmpegPath)
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
      })
      .on('stderr', (line: string) => {
        if (isStatsLine(line) || !line.trim()) return;
        stderr.push(line);
        if (stderr.length > 50) stderr.shift();
      })
      .on('progress', ({ timemark }) => {
        if (!stopped) req.onProgress(progressFraction(timemarkToSeconds(timemark), expected));
      })
      .on('error', (err: Error) => {
        if (stopped) return finish(stopped);
        const failure = classifyFfmpegFailure(stderr.join('\n') || err.message);
        // The user sees failure.message; the cause (ffmpeg's own words, with URLs) is for the log.
        failure.cause = new Error(stderrTail(stderr) || err.message);
        finish(failure);
      })
      .on('end', () => finish(stopped));

    command.run();
  });
}
