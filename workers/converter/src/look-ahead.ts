/**
 * When a worker should take its next request: once the running ffmpeg is expected to end within `windowMs`.
 * Taken then, the next job is at hand when the slot frees (its claim and ffmpeg follow at once, while the last
 * mp3 is stored) yet waits at most about `windowMs` in this worker — never behind a long conversion that
 * another, idle worker could have overtaken.
 */
export class EndEstimate {
  /** ffmpeg wall time per second of output in this worker's last conversions (start-up included). */
  private msPerSecond: number | undefined;

  constructor(private readonly windowMs: number) {}

  /** At ffmpeg's start: by what past conversions took, it ends soon. Unknown before the first one: no. */
  endsSoonAtStart(outputSeconds: number): boolean {
    return this.msPerSecond !== undefined && outputSeconds * this.msPerSecond <= this.windowMs;
  }

  /** While it runs, from ffmpeg's own pace so far: `fraction` of the output written in `elapsedMs`. */
  endsSoon(fraction: number, elapsedMs: number): boolean {
    if (!(fraction > 0) || !(elapsedMs >= 0)) return false;
    return (elapsedMs * (1 - fraction)) / fraction <= this.windowMs;
  }

  /** After a conversion that succeeded: `outputSeconds` took `ffmpegMs`. */
  learn(outputSeconds: number, ffmpegMs: number): void {
    if (!(outputSeconds > 0) || !(ffmpegMs >= 0)) return;
    const pace = ffmpegMs / outputSeconds;
    // Half the last pace, half the new one: a single fast run on an idle machine does not set it alone.
    this.msPerSecond = this.msPerSecond === undefined ? pace : (this.msPerSecond + pace) / 2;
  }
}
