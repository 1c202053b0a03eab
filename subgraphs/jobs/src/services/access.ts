import { ErrorCode, requireCapability, userError, type Capability, type Viewer } from '@vidmp3/shared';
import type { JobRecord, JobsRepository } from '../adapters/jobs-repo.js';

// Every read of a job checks its owner: someone else's job and a missing one are the same NOT_FOUND, so ids
// reveal nothing.

export const notFound = () => userError(ErrorCode.NOT_FOUND, 'Job not found');

/** The signed-in viewer, allowed `capability` (an API key's scopes: FORBIDDEN without it). */
export function requireViewer(viewer: Viewer | null, capability: Capability = 'read'): Viewer {
  if (!viewer) throw userError(ErrorCode.UNAUTHENTICATED, 'Log in to use conversions');
  requireCapability(viewer, capability);
  return viewer;
}

/** The viewer's job, or NOT_FOUND. */
export async function ownJob(repo: JobsRepository, viewer: Viewer | null, id: string): Promise<JobRecord> {
  const { userId } = requireViewer(viewer);
  const job = await repo.find(repo.pool, id);
  if (!job || job.ownerId !== userId) throw notFound();
  return job;
}
