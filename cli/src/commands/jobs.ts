import { InvalidArgumentError } from 'commander';
import type { Context } from '../context.js';
import type { Job, JobStatus } from '../sdk.js';

export const JOB_STATUSES: readonly JobStatus[] = ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'];

export function parseStatus(value: string): JobStatus {
  const upper = value.trim().toUpperCase();
  const status = JOB_STATUSES.find((s) => s === upper);
  if (!status) throw new InvalidArgumentError(`Expected one of ${JOB_STATUSES.join(', ')}.`);
  return status;
}

// The API serves at most 100 jobs a page; a larger --limit is fetched page by page.
const PAGE_SIZE = 100;

export interface JobsFlags {
  status?: JobStatus;
  limit: number;
}

/** `2025-11-26T10:04:05.123Z` → `2025-11-26 10:04:05` (UTC, sortable, one column). */
const shortTime = (iso: string | null | undefined) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '') : '-');

export function formatJobTable(jobs: Job[]): string[] {
  const rows = jobs.map((job) => [
    job.id,
    job.status,
    `${Math.round(job.progress * 100)}%`,
    shortTime(job.createdAt),
    job.input.filename,
    job.error ? `${job.error.code}: ${job.error.message}` : (job.output?.filename ?? ''),
  ]);
  const header = ['ID', 'STATUS', 'PROGRESS', 'CREATED (UTC)', 'INPUT', 'OUTPUT / ERROR'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((cells) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

export async function jobs(ctx: Context, flags: JobsFlags): Promise<void> {
  const client = await ctx.authedClient();
  const found: Job[] = [];
  let after: string | undefined;
  let hasMore = false;
  while (found.length < flags.limit) {
    const page = await client.jobs({
      status: flags.status,
      first: Math.min(PAGE_SIZE, flags.limit - found.length),
      after,
    });
    found.push(...page.jobs);
    hasMore = page.pageInfo.hasNextPage;
    if (!hasMore || !page.pageInfo.endCursor) break;
    after = page.pageInfo.endCursor;
  }
  const text = found.length
    ? [...formatJobTable(found), ...(hasMore ? [`(more jobs: use --limit to see more than ${found.length})`] : [])]
    : [flags.status ? `No ${flags.status.toLowerCase()} jobs.` : 'No jobs yet.'];
  ctx.print({ jobs: found, hasMore }, text);
}

export async function cancel(ctx: Context, jobId: string): Promise<void> {
  const client = await ctx.authedClient();
  const job = await client.cancel(jobId);
  ctx.print({ job }, `job ${job.id}: ${job.status}`);
}
