/** `HH:MM:SS.cc` (ffmpeg's `time=`, fluent-ffmpeg's `timemark`) in seconds; NaN when it is not a time. */
export function timemarkToSeconds(timemark: string): number {
  const match = /^(-)?(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$/.exec(timemark.trim());
  if (!match) return Number.NaN;
  const [, minus, h, m, s] = match;
  const seconds = Number(h) * 3600 + Number(m) * 60 + Number(s);
  return minus ? -seconds : seconds;
}

export interface Span {
  durationSeconds: number;
  startSeconds?: number | null;
  endSeconds?: number | null;
  /** Output is cut at this length. */
  maxSeconds?: number;
}

/** How long the output will be: the trimmed span of the input, capped. Progress is measured against it. */
export function expectedSeconds({ durationSeconds, startSeconds, endSeconds, maxSeconds = Infinity }: Span): number {
  const start = Math.max(0, startSeconds ?? 0);
  const end = Math.min(durationSeconds, endSeconds ?? durationSeconds);
  return Math.max(0, Math.min(end - start, maxSeconds));
}

/** Fraction done, clamped to 0..1 (a timemark can run past a rounded duration, or be negative at start). */
export function progressFraction(doneSeconds: number, totalSeconds: number): number {
  if (!Number.isFinite(doneSeconds) || !(totalSeconds > 0)) return 0;
  return Math.min(1, Math.max(0, doneSeconds / totalSeconds));
}

export interface ThrottleOptions {
  /** Report at most about this often... */
  intervalMs?: number;
  /** ...unless progress moved at least this much since the last report. */
  minStep?: number;
  now?: () => number;
}

/**
 * Decides which progress values are worth an event: one a second at most, or sooner after a step of 5 %,
 * and only forward. ffmpeg reports twice a second or more; each event is a broker message and a database
 * write in jobs, for every job running.
 */
export class ProgressThrottle {
  private last = 0;
  private lastAt = Number.NEGATIVE_INFINITY;
  private readonly intervalMs: number;
  private readonly minStep: number;
  private readonly now: () => number;

  constructor({ intervalMs = 1000, minStep = 0.05, now = Date.now }: ThrottleOptions = {}) {
    this.intervalMs = intervalMs;
    this.minStep = minStep;
    this.now = now;
  }

  /** True when `progress` should be reported now (and it is then taken as the last one reported). */
  offer(progress: number): boolean {
    if (!(progress > this.last)) return false;
    const at = this.now();
    // (The epsilon: 0.15 - 0.1 is a hair under 0.05 in floating point.)
    if (progress - this.last < this.minStep - 1e-9 && at - this.lastAt < this.intervalMs) return false;
    this.last = progress;
    this.lastAt = at;
    return true;
  }
}
