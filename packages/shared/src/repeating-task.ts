/**
 * Work that runs on a timer and whenever asked (`kick`: new work was just written), never twice at once: a kick
 * during a run asks for one more run right after it, so nothing written meanwhile waits for the next tick. A
 * failed run goes to `onError`; the next run tries again. (The outbox relay, the notifier's mail sender.)
 */
export class RepeatingTask {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly run: () => Promise<void>,
    private readonly onError: (err: unknown) => void,
    private readonly intervalMs: number,
  ) {}

  /** True once stopped: a long run checks it to end early. */
  get isStopped(): boolean {
    return this.stopped;
  }

  start(): void {
    this.timer = setInterval(() => this.kick(), this.intervalMs);
    this.kick();
  }

  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.run()
      .catch(this.onError)
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** No more runs; resolves once the one under way (if any) has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }
}
