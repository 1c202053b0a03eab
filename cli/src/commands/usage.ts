import type { Context } from '../context.js';
import { formatBinaryBytes, type Usage } from '../sdk.js';

/** One row per limit: what it is, the use, the limit — the figures the server enforces. */
export function formatUsageTable(usage: Usage): string[] {
  // Binary units, as in QUOTA_EXCEEDED messages: limits are set in GiB, so "2.0 GB" rather than "2.1 GB".
  const rows = [
    ['storage', formatBinaryBytes(usage.storageBytes), formatBinaryBytes(usage.storageLimitBytes)],
    ['uploads at once', String(usage.uploadsInProgress), String(usage.concurrentUploadsLimit)],
    ['conversions at once', String(usage.activeJobs), String(usage.activeJobsLimit)],
    ['conversions, last hour', String(usage.conversionsLastHour), String(usage.conversionsPerHourLimit)],
  ];
  const header = ['', 'USED', 'LIMIT'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((cells) =>
    cells
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

export async function usage(ctx: Context): Promise<void> {
  const client = await ctx.authedClient();
  const url = await ctx.url();
  const figures = await client.usage();
  ctx.print({ url, usage: figures }, formatUsageTable(figures));
}
