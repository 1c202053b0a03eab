import type { JobRecord } from '../adapters/jobs-repo.js';

/** Jobs whose last state a subscription remembers, to skip sending it again (the oldest forgotten first). */
const REMEMBERED_JOBS = 100;

/**
 * A subscription's filter of states it has sent: true for a job state that differs from the last one sent for
 * that job. Every change reaches a replica twice when it made it (at once, then through RabbitMQ), and a state
 * read after the first may already include the second's.
 */
export function unseen(): (job: JobRecord) => boolean {
  const last = new Map<string, string>();
  return (job) => {
    const state = JSON.stringify(job);
    if (last.get(job.id) === state) return false;
    last.delete(job.id);
    last.set(job.id, state);
    if (last.size > REMEMBERED_JOBS) last.delete(last.keys().next().value!);
    return true;
  };
}
