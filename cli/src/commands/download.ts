import { basename, join } from 'node:path';
import type { Context } from '../context.js';
import { CliError, describeError, ExitCode } from '../errors.js';
import { onInterrupt } from '../interrupt.js';
import { checkOutputFree, resolveOutputTarget } from '../output.js';
import { createProgress, formatBytes, progressMode, type FileProgress } from '../progress.js';
import { isFinalStatus, type Media } from '../sdk.js';
import { downloadTo, jobFailure, waitForJob } from './convert.js';

export interface DownloadFlags {
  output?: string;
  force?: boolean;
}

/** The job with this id, or null when there is none (the id may be a media id). */
/** What `lookup` finds, or null when the API says NOT_FOUND (missing, or not yours). */
async function found<T>(lookup: Promise<T | null>): Promise<T | null> {
  try {
    return await lookup;
  } catch (err) {
    if (describeError(err).code === 'NOT_FOUND') return null;
    throw err;
  }
}

/** A server-chosen name reduced to a plain file name, so it can never point outside the target directory. */
export function safeFileName(name: string, fallback: string): string {
  const plain = basename(name.replace(/\\/g, '/')).replace(/^\.+/, '');
  return plain === '' ? fallback : plain;
}

export async function download(ctx: Context, id: string, flags: DownloadFlags): Promise<ExitCode> {
  const client = await ctx.authedClient();
  const interrupt = onInterrupt(ctx.io.stderr);
  let progress: FileProgress | undefined;
  try {
    const target = await resolveOutputTarget(flags.output, 1);
    let job = await found(client.job(id));
    progress = createProgress(progressMode(ctx.io.stderr, ctx.json), ctx.io.stderr, job?.input.filename ?? id);
    let media: Media | null;
    if (job) {
      // A job still running is waited for: `vidmp3 download <jobId>` right after a detached convert just works.
      if (!isFinalStatus(job.status)) job = await waitForJob(client, job, progress, interrupt.signal);
      if (job.status !== 'SUCCEEDED') throw jobFailure(job);
      media = job.output ?? null;
      if (!media) throw new CliError(`job ${job.id} succeeded but has no output`, ExitCode.UNEXPECTED);
    } else {
      media = await found(client.media(id));
      if (!media) throw new CliError(`no job or media with id ${id}`, ExitCode.INPUT, 'NOT_FOUND');
    }
    const name = safeFileName(media.filename, `${media.id}.mp3`);
    const destination =
      target.kind === 'file' ? target.path : join(target.kind === 'directory' ? target.path : process.cwd(), name);
    await checkOutputFree(destination, flags.force ?? false);
    await downloadTo(client, media, destination, flags.force ?? false, progress, interrupt.signal);
    progress.end();
    ctx.print({ path: destination, media, job }, `${destination} (${formatBytes(media.byteSize)})`);
    return ExitCode.OK;
  } catch (err) {
    if (interrupt.signal.aborted) throw new CliError('interrupted', ExitCode.INTERRUPTED);
    throw err;
  } finally {
    progress?.end();
    interrupt.dispose();
  }
}
