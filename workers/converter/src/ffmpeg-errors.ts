import { JobErrorCode } from '@vidmp3/shared';
import { PermanentError, TransientError } from './errors.js';

// Sentences a user sees in `JobError.message`: what went wrong with their file, never a path, URL or stderr.
export const messages = {
  noAudio: 'The video has no audio track to convert.',
  unreadable: 'The video is damaged or in a format that cannot be converted.',
  inputGone: 'The video to convert no longer exists.',
  inputRefused: 'The video could not be read for conversion.',
  unreachable:
    'The video could not be read because the storage service was unavailable; the conversion will be retried.',
  unexpected: 'The conversion failed unexpectedly; it will be retried.',
  tooMuchMemory: 'The video needs more memory to convert than a conversion may use.',
  tooLarge: 'The converted file grew larger than its length and bitrate allow.',
  badOptions: 'The conversion options could not be applied to this video.',
} as const;

/** One rule: the first whose pattern matches ffmpeg's stderr decides. Order matters (most specific first). */
const rules: { pattern: RegExp; classify: () => PermanentError | TransientError }[] = [
  // ffmpeg refused its own command line (an option's value it cannot parse): the same arguments fail the same
  // way on every attempt, so retrying would only burn them.
  {
    pattern:
      /invalid duration specification|expected number for \S+ but found|error parsing options?\b|unrecognized option|error splitting the argument list/i,
    classify: () => new PermanentError(JobErrorCode.INVALID_OPTIONS, messages.badOptions),
  },
  // The per-process limits (prlimit). A failed allocation under the address-space limit recurs on every attempt
  // with the same input; so does writing past the output size limit (SIGXFSZ). The CPU limit kills with SIGKILL,
  // like the kernel's OOM killer would: that one stays "unexpected" and the attempt count bounds the retries.
  {
    pattern: /cannot allocate memory|out of memory/i,
    classify: () => new PermanentError(JobErrorCode.UNSUPPORTED_MEDIA, messages.tooMuchMemory),
  },
  {
    pattern: /killed with signal SIGXFSZ/,
    classify: () => new PermanentError(JobErrorCode.UNSUPPORTED_MEDIA, messages.tooLarge),
  },
  // The input's HTTP status. ffmpeg prints "Server returned 404 Not Found" (or "HTTP error 404 ...").
  {
    pattern: /(?:server returned|http error) (?:404|410)/i,
    classify: () => new PermanentError(JobErrorCode.INPUT_GONE, messages.inputGone),
  },
  { pattern: /(?:server returned|http error) 5(?:\d\d|XX)/i, classify: () => new TransientError(messages.unreachable) },
  {
    pattern: /(?:server returned|http error) 4(?:\d\d|XX)/i,
    classify: () => new PermanentError(JobErrorCode.UNSUPPORTED_MEDIA, messages.inputRefused),
  },
  // The connection to media, rather than the bytes it served.
  {
    pattern:
      /connection refused|connection reset|connection timed out|timed out|network is unreachable|no route to host|broken pipe|temporary failure in name resolution|name or service not known|failed to resolve hostname|i\/o error/i,
    classify: () => new TransientError(messages.unreachable),
  },
  // The bytes themselves: nothing another attempt could change.
  {
    pattern: /matches no streams|does not contain any stream|no audio stream/i,
    classify: () => new PermanentError(JobErrorCode.UNSUPPORTED_MEDIA, messages.noAudio),
  },
  {
    pattern:
      /moov atom not found|invalid data found when processing input|not on whitelist|could not find codec parameters|EBML header parsing failed|no decoder found|decoder .* not found|error while opening decoder/i,
    classify: () => new PermanentError(JobErrorCode.UNSUPPORTED_MEDIA, messages.unreadable),
  },
];

/**
 * Turns a failed ffmpeg run into a job error: permanent when the input itself is the problem (no audio,
 * unreadable, gone), transient when reaching it failed. Anything unrecognised (a crash, a full disk) is
 * transient: the attempt count bounds the retries.
 */
export function classifyFfmpegFailure(stderr: string): PermanentError | TransientError {
  for (const rule of rules) {
    if (rule.pattern.test(stderr)) return rule.classify();
  }
  return new TransientError(messages.unexpected);
}

/** ffmpeg's last few meaningful stderr lines, for the log (never for the user: they hold URLs). */
export function stderrTail(lines: readonly string[], count = 8): string {
  return lines.slice(-count).join('\n');
}

/**
 * True for lines ffmpeg prints on every conversion of a video, at -loglevel error: while probing, it tries to
 * open the decoder of each stream, and video decoders are not on the decoder whitelist. They say nothing about
 * a failure (a refused audio decoder ends in "Error while opening decoder for input stream …").
 */
export const isExpectedNoise = (line: string): boolean =>
  /Codec \(\w+\) not on whitelist|Failed to open codec in avformat_find_stream_info/.test(line);

/** True for ffmpeg's periodic `size=… time=…` statistics lines, which say nothing about a failure. */
export const isStatsLine = (line: string): boolean => /^\s*(?:frame|size)=/.test(line);
