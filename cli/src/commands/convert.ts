import { constants } from 'node:fs';
import { access, rm, stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import type { Context } from '../context.js';
import {
  CliError,
  describeError,
  ExitCode,
  formatFailure,
  inputError,
  worstExitCode,
  type Failure,
} from '../errors.js';
import { onInterrupt } from '../interrupt.js';
import { toConversionOptions, type ConversionFlags } from '../options.js';
import {
  checkOutputFree,
  outputPathFor,
  partialPath,
  publishFile,
  resolveOutputTarget,
  type OutputTarget,
} from '../output.js';
import { createProgress, formatBytes, progressMode, type FileProgress } from '../progress.js';
import { isFinalStatus, type Client, type ConversionOptions, type Job, type JobStatus, type Media } from '../sdk.js';

export interface ConvertFlags extends ConversionFlags {
  output?: string;
  force?: boolean;
  /** false with --no-wait: upload and queue only. */
  wait?: boolean;
}

/** One file's outcome, as printed with --json. */
export interface FileResult {
  input: string;
  /** Where the mp3 was written (absolute), once it was. */
  output: string | null;
  jobId: string | null;
  status: JobStatus | null;
  job: Job | null;
  /** With QUOTA_EXCEEDED, also `quota`, `limit` and `used`. */
  error: { code: string | null; message: string; quota?: unknown; limit?: unknown; used?: unknown } | null;
  exitCode: ExitCode;
}

/** Refuses what cannot be uploaded before any network traffic, with the reason a person expects. */
async function checkInput(path: string): Promise<void> {
  const info = await stat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') throw inputError('no such file');
    if (err.code === 'EACCES') throw inputError('permission denied');
    throw err;
  });
  if (info.isDirectory()) throw inputError('is a directory, not a video file');
  if (!info.isFile()) throw inputError('not a regular file');
  await access(path, constants.R_OK).catch(() => {
    throw inputError('permission denied');
  });
}

export function jobFailure(job: Job): CliError {
  if (job.status === 'CANCELLED') return new CliError(`job ${job.id} was cancelled`, ExitCode.CONVERSION, 'CANCELLED');
  const reason = job.error?.message ?? 'no reason given';
  return new CliError(`conversion failed: ${reason}`, ExitCode.CONVERSION, job.error?.code ?? 'JOB_FAILED');
}

/** Follows the job until it is final; the subscription yields the current state first. */
export async function waitForJob(client: Client, job: Job, progress: FileProgress, signal: AbortSignal): Promise<Job> {
  let current = job;
  progress.convert(current.status, current.progress, current.id);
  for await (const update of client.watchJob(job.id, { signal })) {
    current = update;
    progress.convert(current.status, current.progress, current.id);
    if (isFinalStatus(current.status)) break;
  }
  if (signal.aborted) throw new CliError('interrupted', ExitCode.INTERRUPTED);
  // The subscription ended early (server restart beyond the SDK's retries): ask once more.
  if (!isFinalStatus(current.status)) current = (await client.job(job.id)) ?? current;
  if (!isFinalStatus(current.status)) {
    throw new CliError(`lost track of job ${job.id} (${current.status}); check it with: vidmp3 jobs`, 1);
  }
  return current;
}

/** Streams a finished mp3 to a temporary name beside `destination`, then moves it into place. */
export async function downloadTo(
  client: Client,
  media: Media,
  destination: string,
  force: boolean,
  progress: FileProgress,
  signal: AbortSignal,
): Promise<void> {
  const partial = partialPath(destination);
  try {
    await client.download(media, partial, {
      signal,
      onProgress: ({ loaded, total }) => progress.download(loaded, total ?? media.byteSize),
    });
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  await publishFile(partial, destination, force);
}

interface Run {
  ctx: Context;
  client: Client;
  target: OutputTarget;
  options: ConversionOptions;
  force: boolean;
  wait: boolean;
  signal: AbortSignal;
  /** Outputs already planned in this run, so two inputs never write the same mp3. */
  claimed: Map<string, string>;
}

async function convertOne(run: Run, file: string): Promise<FileResult> {
  const { ctx, client, signal } = run;
  const result: FileResult = {
    input: file,
    output: null,
    jobId: null,
    status: null,
    job: null,
    error: null,
    exitCode: ExitCode.OK,
  };
  const progress = createProgress(progressMode(ctx.io.stderr, ctx.json), ctx.io.stderr, basename(file));
  let job: Job | undefined;
  try {
    const input = resolve(file);
    await checkInput(input);
    const output = outputPathFor(input, run.target);
    const other = run.claimed.get(output);
    if (other) throw inputError(`${other} is converted to ${output} already; convert this one with -o`);
    run.claimed.set(output, file);
    if (run.wait) await checkOutputFree(output, run.force);

    const media = await client.uploadVideo(input, {
      filename: basename(input),
      signal,
      onProgress: ({ loaded, total }) => progress.upload(loaded, total),
    });
    job = await client.convert(media.id, run.options);
    result.jobId = job.id;
    if (!run.wait) return result;
    job = await waitForJob(client, job, progress, signal);
    if (job.status !== 'SUCCEEDED') throw jobFailure(job);
    if (!job.output) throw new Error(`job ${job.id} succeeded but has no output`);
    await downloadTo(client, job.output, output, run.force, progress, signal);
    result.output = output;
  } catch (err) {
    let failure: Failure = describeError(err);
    if (signal.aborted) {
      if (job && !isFinalStatus(job.status)) job = await cancelQuietly(client, job);
      const cancelled = job?.status === 'CANCELLED' ? ` (job ${job.id} cancelled)` : '';
      failure = { message: `interrupted${cancelled}`, code: undefined, exitCode: ExitCode.INTERRUPTED };
    }
    result.error = { code: failure.code ?? null, message: failure.message, ...failure.quota };
    result.exitCode = failure.exitCode;
    progress.end();
    ctx.io.stderr.write(`${formatFailure(failure, file)}\n`);
    if (ctx.debug && err instanceof Error && err.stack) ctx.io.stderr.write(`${err.stack}\n`);
  } finally {
    progress.end();
    result.job = job ?? null;
    result.status = job?.status ?? null;
  }
  return result;
}

/** On Ctrl-C the server-side job is cancelled too, so it does not keep a worker busy for nothing. */
async function cancelQuietly(client: Client, job: Job): Promise<Job> {
  try {
    return await client.cancel(job.id);
  } catch {
    return job;
  }
}

export async function convert(ctx: Context, files: string[], flags: ConvertFlags): Promise<ExitCode> {
  const options = toConversionOptions(flags);
  const target = await resolveOutputTarget(flags.output, files.length);
  const client = await ctx.authedClient();
  const interrupt = onInterrupt(ctx.io.stderr);
  const run: Run = {
    ctx,
    client,
    target,
    options,
    force: flags.force ?? false,
    wait: flags.wait ?? true,
    signal: interrupt.signal,
    claimed: new Map(),
  };
  const results: FileResult[] = [];
  try {
    for (const file of files) {
      if (interrupt.signal.aborted) break;
      const result = await convertOne(run, file);
      results.push(result);
      if (!ctx.json && result.output) {
        const size = result.job?.output ? ` (${formatBytes(result.job.output.byteSize)})` : '';
        ctx.io.stdout.write(`${file} → ${result.output}${size}\n`);
      } else if (!ctx.json && result.job && !run.wait) {
        ctx.io.stdout.write(`${file}: job ${result.job.id} ${result.job.status.toLowerCase()}\n`);
      }
    }
  } finally {
    interrupt.dispose();
  }
  if (ctx.json) ctx.print({ files: results }, []);
  const worst = results.reduce<ExitCode>((code, r) => worstExitCode(code, r.exitCode), ExitCode.OK);
  return interrupt.signal.aborted ? ExitCode.INTERRUPTED : worst;
}
