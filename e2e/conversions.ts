// Conversions as the e2e tests drive and inspect them: through the gateway as a user, and from the outside
// (a worker's own metrics, the jobs database).
import { readdir, readFile } from 'node:fs/promises';
import mysql from 'mysql2/promise';
import { expect } from 'vitest';
import { graphql, type SignedUp } from './client.js';
import { MYSQL_SERVER, type ServiceProcess, type System } from './harness.js';

/**
 * `convertMedia`, `job` and a poll on a job, selecting `fields` (which must include `id`), as `user`. Both are
 * read at each call: test files start their system and sign up in `beforeAll`.
 */
export function conversionsOf<J extends { id: string }>(system: () => System, user: () => SignedUp, fields: string) {
  const as = () => ({ token: user().token });
  return {
    async convert(mediaId: string): Promise<string> {
      const res = await graphql<{ convertMedia: J }>(
        system().gatewayUrl,
        `mutation ($m: ID!) { convertMedia(mediaId: $m) { ${fields} } }`,
        { ...as(), variables: { m: mediaId } },
      );
      expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
      return res.data!.convertMedia.id;
    },
    async job(id: string): Promise<J> {
      const res = await graphql<{ job: J }>(system().gatewayUrl, `query ($id: ID!) { job(id: $id) { ${fields} } }`, {
        ...as(),
        variables: { id },
      });
      return res.data!.job;
    },
    /** Resolves once `done` holds for the job (polled every 100 ms), fails after `timeout`. */
    waitFor(id: string, done: (job: J) => boolean, timeout = 90_000) {
      return expect.poll(async () => done(await this.job(id)), { timeout, interval: 100 }).toBe(true);
    },
  };
}

/** Conversion requests a worker holds now (its own gauge). */
export async function conversionsHeld(worker: ServiceProcess): Promise<number> {
  const text = await (await fetch(`${worker.url}/metrics`)).text();
  return Number(/^vidmp3_conversions_in_progress(?:\{[^}]*\})? (\d+)$/m.exec(text)?.[1] ?? NaN);
}

/** The worker that holds the job's current claim, from the jobs database. */
export async function claimedBy(system: System, jobId: string): Promise<string | null> {
  const conn = await mysql.createConnection(`${MYSQL_SERVER}/${system.databases.jobs}`);
  try {
    const [rows] = await conn.query<mysql.RowDataPacket[]>('SELECT claimed_by FROM jobs WHERE id = ?', [jobId]);
    return (rows[0]?.claimed_by as string | null) ?? null;
  } finally {
    await conn.end();
  }
}

/** ffmpeg processes these workers run now (their children: prlimit execs ffmpeg in place). */
export async function ffmpegOf(...workers: ServiceProcess[]): Promise<number> {
  const parents = new Set(workers.map((w) => w.child.pid));
  let count = 0;
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    // "pid (comm) state ppid …"
    const match = /^\d+ \((.*)\) \S+ (\d+)/.exec(stat);
    if (match?.[1] === 'ffmpeg' && parents.has(Number(match[2]))) count++;
  }
  return count;
}
