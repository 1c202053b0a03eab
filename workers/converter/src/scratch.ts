import { randomUUID } from 'node:crypto';
import { lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '@vidmp3/shared';

/**
 * The scratch directory where ffmpeg writes each mp3 until it is uploaded (and ffmpeg's HOME and TMPDIR). A
 * conversion removes its file when it ends; a worker that crashed (SIGKILL, out of memory) leaves it, so the
 * directory is swept at start and on a timer of what nothing can still be using: older than the longest
 * conversion plus a margin (several workers on one machine may share the directory, and another's file is
 * written to until its ffmpeg ends), and never a file a conversion of this worker holds.
 */
export class Scratch {
  /** Files of this worker's running conversions: never swept, however old. */
  private readonly inUse = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly dir: string,
    /** Entries untouched for longer than this are left-overs. */
    private readonly maxAgeMs: number,
    private readonly logger: Logger,
  ) {}

  /** A new file's path for one conversion (a name of our own: the job id comes from a message). */
  reserve(extension: string): string {
    const path = join(this.dir, `${randomUUID()}${extension}`);
    this.inUse.add(path);
    return path;
  }

  /** Removes the file, and lets the sweep forget it. */
  async release(path: string): Promise<void> {
    try {
      await rm(path, { force: true });
    } finally {
      this.inUse.delete(path);
    }
  }

  /** Sweeps now, then every `everyMs` until `stop()`. */
  async start(everyMs: number): Promise<void> {
    await this.sweep();
    this.timer = setInterval(() => void this.sweep(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Removes what a crashed conversion left; returns the names removed. Never throws: a sweep can wait. */
  async sweep(now = Date.now()): Promise<string[]> {
    const removed: string[] = [];
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      this.logger.warn({ err }, 'could not list the scratch directory');
      return removed;
    }
    for (const name of names) {
      const path = join(this.dir, name);
      try {
        const { mtimeMs } = await lstat(path);
        if (now - mtimeMs <= this.maxAgeMs || this.inUse.has(path)) continue;
        await rm(path, { recursive: true, force: true });
        removed.push(name);
      } catch (err) {
        // Removed meanwhile by its own conversion, or not ours to remove: the next sweep sees.
        this.logger.debug({ err, name }, 'could not sweep a scratch entry');
      }
    }
    if (removed.length > 0) this.logger.info({ removed }, 'removed scratch files a crashed worker left');
    return removed;
  }
}
