import { OUTBOX_TABLE_SQL, type Migration } from '@vidmp3/shared';

export const migrations: Migration[] = [
  {
    id: 1,
    name: 'create jobs and outbox',
    statements: [
      // `attempts` is the current attempt's number: events and claims for an older attempt are stale.
      `CREATE TABLE IF NOT EXISTS jobs (
        id CHAR(36) NOT NULL PRIMARY KEY,
        owner_id CHAR(36) NOT NULL,
        input_media_id CHAR(36) NOT NULL,
        status ENUM('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED') NOT NULL,
        progress DOUBLE NOT NULL DEFAULT 0,
        attempts INT NOT NULL DEFAULT 1,
        options JSON NOT NULL,
        input_duration_seconds DOUBLE NOT NULL,
        output_media_id CHAR(36) NULL,
        error_code VARCHAR(64) NULL,
        error_message VARCHAR(1000) NULL,
        claimed_by VARCHAR(200) NULL,
        created_at DATETIME(3) NOT NULL,
        queued_at DATETIME(3) NOT NULL,
        started_at DATETIME(3) NULL,
        finished_at DATETIME(3) NULL,
        KEY jobs_owner_created (owner_id, created_at, id),
        KEY jobs_owner_status_created (owner_id, status, created_at, id),
        KEY jobs_input (input_media_id),
        KEY jobs_status_queued (status, queued_at)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
      // Messages written in the same transaction as the state they announce; the relay publishes them.
      OUTBOX_TABLE_SQL, // the same statement this migration first ran, now shared by every service's outbox
    ],
  },
  {
    id: 2,
    name: 'per-user quotas and fair dispatch',
    statements: [
      // One row per user, locked (SELECT … FOR UPDATE) by every transaction that checks or changes what the
      // user runs: quota checks and dispatching are serialised per user, across all jobs replicas.
      `CREATE TABLE IF NOT EXISTS job_quota_users (
        user_id CHAR(36) NOT NULL PRIMARY KEY
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
      // Every conversion started (convertMedia, retryJob), for the per-hour limit; a retry reuses its job's row,
      // so the jobs table alone cannot count them. Rows older than the window are pruned.
      `CREATE TABLE IF NOT EXISTS conversion_starts (
        id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        owner_id CHAR(36) NOT NULL,
        job_id CHAR(36) NOT NULL,
        started_at DATETIME(3) NOT NULL,
        KEY conversion_starts_owner (owner_id, started_at),
        KEY conversion_starts_at (started_at)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
      // When the job's current attempt was handed to RabbitMQ (its request written to the outbox); NULL while
      // it waits its turn in MariaDB. Jobs queued before this migration had their request written at once.
      'ALTER TABLE jobs ADD COLUMN IF NOT EXISTS dispatched_at DATETIME(3) NULL',
      'UPDATE jobs SET dispatched_at = queued_at WHERE dispatched_at IS NULL',
    ],
  },
  {
    id: 3,
    name: 'jobs.updated_at',
    statements: [
      // Job.updatedAt: the last change, in ms, set by the repository on every update. Existing rows take their
      // latest known timestamp.
      'ALTER TABLE jobs ADD COLUMN IF NOT EXISTS updated_at DATETIME(3) NULL',
      'UPDATE jobs SET updated_at = COALESCE(finished_at, started_at, queued_at, created_at) WHERE updated_at IS NULL',
      'ALTER TABLE jobs MODIFY COLUMN updated_at DATETIME(3) NOT NULL',
    ],
  },
  {
    id: 4,
    name: 'jobs.lease_expires_at',
    statements: [
      // A RUNNING attempt's lease (services/job-state.ts): renewed by its worker's reports; once it runs out the
      // job is queued again. Jobs running when this is applied get a lease of 10 minutes to report in.
      'ALTER TABLE jobs ADD COLUMN IF NOT EXISTS lease_expires_at DATETIME(3) NULL',
      "UPDATE jobs SET lease_expires_at = DATE_ADD(NOW(3), INTERVAL 10 MINUTE) WHERE status = 'RUNNING' AND lease_expires_at IS NULL",
      'CREATE INDEX IF NOT EXISTS jobs_status_lease ON jobs (status, lease_expires_at)',
    ],
  },
  {
    id: 5,
    name: 'jobs.sweeps',
    statements: [
      // How many times the sweeper re-sent the current request: each further re-send waits twice as long.
      'ALTER TABLE jobs ADD COLUMN IF NOT EXISTS sweeps INT NOT NULL DEFAULT 0',
    ],
  },
];
