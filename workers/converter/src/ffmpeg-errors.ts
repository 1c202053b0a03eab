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
} as const;

/** One rule: the first whose pattern matches ffmpeg's stderr decides. Order matters (most specific first). */
const rules: { pattern: RegExp; classify: () => PermanentError | TransientError }[] = [
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
      /moov atom not found|invalid data found when processing input|not on whitelist|could not find codec parameters|EBML header parsing failed|no decoder found|decoder .* not found/i,
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

/** True for ffmpeg's periodic `size=… time=…` statistics lines, which say nothing about a failure. */
export const isStatsLine = (line: string): boolean => /^\s*(?:frame|size)=/.test(line);
