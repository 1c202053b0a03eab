// Running a media tool (ffmpeg, ffprobe) on untrusted input. Its decoders and demuxers are the largest attack
// surface we have: a hostile file that finds a bug in one of them runs code as the tool. What it finds there
// should be worth nothing — no secret in its environment or its argv — and what it can take is bounded: memory,
// CPU time, the size of a file it writes, open files, no core dump. The same bounds stop a merely pathological
// file (a decompression bomb, a decoder spinning) from taking the whole machine.
import { type ChildProcess, spawn, type SpawnOptions } from 'node:child_process';

/** Per-process resource limits (setrlimit), applied before the tool runs its first instruction. */
export interface ResourceLimits {
  /**
   * Address space (RLIMIT_AS), bytes. Counts mapped memory, not only what is touched: ffmpeg 5.1 maps about
   * 290 MB of shared libraries before it reads a byte, so below ~512 MiB it does not start at all.
   */
  addressSpaceBytes: number;
  /**
   * CPU time (RLIMIT_CPU), seconds, all threads together. Soft and hard limit are equal, so at the limit the
   * kernel sends SIGKILL (SIGXCPU only comes between a lower soft and the hard limit, and ffmpeg catches it).
   */
  cpuSeconds: number;
  /** Largest file the process may write (RLIMIT_FSIZE), bytes; writing past it kills the process. */
  fileSizeBytes?: number;
  /** Open file descriptors (RLIMIT_NOFILE). */
  openFiles?: number;
}

export interface ConfinedCommandOptions {
  /** The tool: an absolute path, or a name looked up on `PATH`. */
  command: string;
  args: readonly string[];
  limits: ResourceLimits;
  /** HOME, TMPDIR and the working directory of the tool: a scratch directory, never the service's own. */
  scratchDir: string;
  /**
   * PATH given to the tool (not a secret), where a bare `ffmpeg` is looked up: the service's own PATH, read by
   * its config module; unset → the Debian default.
   */
  path?: string;
  /** util-linux prlimit (Debian: package util-linux, essential, so present in every bookworm image). */
  prlimitPath?: string;
}

export interface ConfinedCommand {
  command: string;
  args: string[];
  /** The whole environment of the tool: nothing else is inherited. */
  env: Record<string, string>;
  cwd: string;
}

export const DEFAULT_PRLIMIT_PATH = '/usr/bin/prlimit';
/** Where tools are looked up when the caller names no PATH. */
export const DEFAULT_TOOL_PATH = '/usr/local/bin:/usr/bin:/bin';

/**
 * The environment a media tool gets: PATH to find itself, the C locale (its messages are parsed, and no locale
 * files need be read), HOME/TMPDIR in scratch. Built from nothing rather than filtered from `process.env`, so
 * a secret added to a service's configuration tomorrow is not passed on by default.
 */
export function minimalEnv(scratchDir: string, path = DEFAULT_TOOL_PATH): Record<string, string> {
  return { PATH: path, LANG: 'C', LC_ALL: 'C', HOME: scratchDir, TMPDIR: scratchDir };
}

/** prlimit's options for the limits: each sets soft and hard limit alike, so the tool cannot raise them. */
export function prlimitArguments(limits: ResourceLimits): string[] {
  const whole = (name: string, value: number) => {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a whole number ≥ 0`);
    return String(value);
  };
  return [
    `--as=${whole('addressSpaceBytes', limits.addressSpaceBytes)}`,
    `--cpu=${whole('cpuSeconds', Math.ceil(limits.cpuSeconds))}`,
    ...(limits.fileSizeBytes != null ? [`--fsize=${whole('fileSizeBytes', limits.fileSizeBytes)}`] : []),
    ...(limits.openFiles != null ? [`--nofile=${whole('openFiles', limits.openFiles)}`] : []),
    // A core dump would write the tool's memory (the input, and whatever it held) to disk.
    '--core=0',
  ];
}

/**
 * How to start a media tool confined: `{command, args, env, cwd}` for `child_process.spawn`. The limits are
 * set by prlimit, which then execs the tool in the same process — the pid a caller sees is the tool's, the
 * limits hold from its first instruction (unlike `prlimit --pid` after the spawn), and they are inherited by
 * anything it would start. Node itself has no setrlimit for a child.
 */
export function confinedCommand(options: ConfinedCommandOptions): ConfinedCommand {
  return {
    command: options.prlimitPath ?? DEFAULT_PRLIMIT_PATH,
    args: [...prlimitArguments(options.limits), '--', options.command, ...options.args],
    env: minimalEnv(options.scratchDir, options.path),
    cwd: options.scratchDir,
  };
}

export interface SpawnConfinedOptions extends ConfinedCommandOptions {
  /** Wall-clock limit: past it the tool is killed (SIGKILL) and `timedOut()` answers true. */
  timeoutMs: number;
  /** Aborting kills the tool at once (SIGKILL). */
  signal?: AbortSignal;
  stdio?: SpawnOptions['stdio'];
}

export interface ConfinedProcess {
  child: ChildProcess;
  /** Whether the wall-clock limit killed it (its exit then shows signal SIGKILL). */
  timedOut: () => boolean;
}

/**
 * Spawns a media tool confined (see `confinedCommand`) with a wall-clock kill. Exceeding a resource limit shows
 * as an exit by signal: SIGKILL for CPU time, SIGXFSZ for file size, and a failed allocation (ffmpeg:
 * "Cannot allocate memory") for the address space.
 */
export function spawnConfined(options: SpawnConfinedOptions): ConfinedProcess {
  const { command, args, env, cwd } = confinedCommand(options);
  const child = spawn(command, args, {
    env,
    cwd,
    stdio: options.stdio ?? ['ignore', 'pipe', 'pipe'],
    signal: options.signal,
    killSignal: 'SIGKILL',
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, options.timeoutMs);
  // The timer must not keep a finished service alive, nor outlive the process it watches.
  timer.unref();
  child.once('exit', () => clearTimeout(timer));
  child.once('error', () => clearTimeout(timer));
  return { child, timedOut: () => timedOut };
}
