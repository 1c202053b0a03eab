import { describeQuota } from './sdk.js';

/** Exit codes scripts can rely on (also listed in `--help` and the README). */
export const ExitCode = {
  OK: 0,
  UNEXPECTED: 1,
  USAGE: 2,
  AUTH: 3,
  INPUT: 4,
  CONVERSION: 5,
  NETWORK: 6,
  RATE_LIMITED: 7,
  QUOTA_EXCEEDED: 8,
  INTERRUPTED: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export const EXIT_CODES_HELP = `
Exit codes:
  0    success
  1    unexpected error
  2    usage error (unknown or bad flags or arguments)
  3    not logged in, authentication failed or refused (UNAUTHENTICATED, FORBIDDEN)
  4    input rejected: file missing or unreadable, output already exists, BAD_USER_INPUT,
       UNSUPPORTED_MEDIA, PAYLOAD_TOO_LARGE, NOT_FOUND, CONFLICT
  5    conversion failed or cancelled
  6    cannot reach the server (NETWORK_ERROR)
  7    too many attempts, try again later (RATE_LIMITED)
  8    a limit of your account is reached (QUOTA_EXCEEDED): storage, uploads or conversions
       at once, conversions per hour; \`vidmp3 usage\` shows where you stand
  130  interrupted (Ctrl-C)
With several files, the others are still converted and the worst code is returned.`;

/** An error the CLI explains itself: one line on stderr and a known exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    /** The API or CLI error code shown in parentheses and in JSON output. */
    readonly code?: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export const usageError = (message: string) => new CliError(message, ExitCode.USAGE);
export const inputError = (message: string) => new CliError(message, ExitCode.INPUT);
export const notLoggedIn = (url: string) =>
  new CliError(`not logged in to ${url}: run \`vidmp3 login <email>\` first`, ExitCode.AUTH, 'UNAUTHENTICATED');

/** Maps an SDK or API error code to the exit code a script sees. */
export function exitCodeFor(code: string | undefined): ExitCode {
  switch (code ?? '') {
    case 'UNAUTHENTICATED':
    case 'FORBIDDEN':
      return ExitCode.AUTH;
    case 'BAD_USER_INPUT':
    case 'UNSUPPORTED_MEDIA':
    case 'PAYLOAD_TOO_LARGE':
    case 'NOT_FOUND':
    case 'CONFLICT':
      return ExitCode.INPUT;
    case 'JOB_FAILED':
    case 'CANCELLED':
      return ExitCode.CONVERSION;
    case 'NETWORK_ERROR':
      return ExitCode.NETWORK;
    case 'RATE_LIMITED':
      return ExitCode.RATE_LIMITED;
    case 'QUOTA_EXCEEDED':
      return ExitCode.QUOTA_EXCEEDED;
    case 'ABORTED':
      return ExitCode.INTERRUPTED;
    default:
      return ExitCode.UNEXPECTED;
  }
}

/** The most severe of two exit codes; any failure outranks success, and the higher code wins among failures. */
export const worstExitCode = (a: ExitCode, b: ExitCode): ExitCode => (a > b ? a : b);

export interface Failure {
  message: string;
  code: string | undefined;
  exitCode: ExitCode;
  /** QUOTA_EXCEEDED: which limit, the limit and the use, for --json output. */
  quota?: { quota: unknown; limit: unknown; used: unknown };
}

const errnoMessages: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'is a directory',
  ENOTDIR: 'not a directory',
  EEXIST: 'already exists',
  ENOSPC: 'no space left on device',
};

function hasStringField<K extends string>(value: unknown, key: K): value is Record<K, string> {
  return typeof value === 'object' && value !== null && typeof (value as Record<string, unknown>)[key] === 'string';
}

/** What any thrown value means for the user: a one-line message, the error code, and the exit code. */
export function describeError(err: unknown): Failure {
  if (err instanceof CliError) return { message: err.message, code: err.code, exitCode: err.exitCode };
  // Node's own file errors (ENOENT …) are about the user's files.
  if (err instanceof Error && hasStringField(err, 'code') && /^E[A-Z0-9]+$/.test(err.code)) {
    const text = errnoMessages[err.code] ?? err.message;
    const where = hasStringField(err, 'path') ? `${err.path}: ` : '';
    const exitCode = err.code === 'ENOSPC' ? ExitCode.UNEXPECTED : ExitCode.INPUT;
    return { message: `${where}${text}`, code: err.code, exitCode };
  }
  // Vidmp3Error from the SDK (matched by shape, so that a second copy of the SDK still counts).
  if (err instanceof Error && hasStringField(err, 'code') && /^[A-Z][A-Z_]+$/.test(err.code)) {
    const quota = describeQuota(err);
    if (quota !== undefined) {
      const { quota: name, limit, used } = (err as { extensions?: Record<string, unknown> }).extensions ?? {};
      // Our own words, with the figures: "Storage full: 2.0 GB of 2.0 GB used. Delete …" (kept as a sentence).
      return { message: quota, code: err.code, exitCode: exitCodeFor(err.code), quota: { quota: name, limit, used } };
    }
    return { message: sentence(err.message), code: err.code, exitCode: exitCodeFor(err.code) };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { message, code: undefined, exitCode: ExitCode.UNEXPECTED };
}

/** Server messages read as sentences ("The file is empty"); a CLI line reads better in lower case. */
function sentence(message: string): string {
  return /^[A-Z][a-z]/.test(message) ? message[0]!.toLowerCase() + message.slice(1) : message;
}

/** `vidmp3: <subject>: <message> (CODE)` — the one line a failure prints on stderr. */
export function formatFailure(failure: Failure, subject?: string): string {
  // API codes help when reading the docs or reporting a problem; errno codes are already in the words.
  const code = failure.code && !/^E[A-Z]+$/.test(failure.code) ? ` (${failure.code})` : '';
  return `vidmp3: ${subject ? `${subject}: ` : ''}${failure.message}${code}`;
}
