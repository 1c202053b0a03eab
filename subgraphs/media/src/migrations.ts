import { OUTBOX_TABLE_SQL, type Migration } from '@vidmp3/shared';

export const migrations: Migration[] = [
  {
    id: 1,
    name: 'create media',
    statements: [
      // The blob key is the media id. job_id is set on derived audio and unique, which is what makes a
      // worker's retried write of the same job's output land on the one existing row.
      `CREATE TABLE IF NOT EXISTS media (
        id CHAR(36) NOT NULL PRIMARY KEY,
        owner_id CHAR(36) NOT NULL,
        kind ENUM('VIDEO', 'AUDIO') NOT NULL,
        filename VARCHAR(255) NOT NULL,
        content_type VARCHAR(100) NOT NULL,
        byte_size BIGINT UNSIGNED NOT NULL,
        sha256 CHAR(64) NOT NULL,
        duration_seconds DOUBLE NULL,
        source_media_id CHAR(36) NULL,
        job_id CHAR(36) NULL,
        created_at DATETIME(3) NOT NULL,
        UNIQUE KEY media_job_unique (job_id),
        KEY media_owner_created (owner_id, created_at, id),
        KEY media_owner_kind_created (owner_id, kind, created_at, id)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
    ],
  },
  {
    id: 2,
    name: 'soft delete',
    statements: [
      // A deleted media keeps its row (not its bytes): jobs still refer to it as their input or output, and
      // `Job.input { filename }` must keep answering after the video is gone.
      'ALTER TABLE media ADD COLUMN IF NOT EXISTS deleted_at DATETIME(3) NULL',
    ],
  },
  {
    id: 3,
    name: 'storage quotas',
    statements: [
      // Bytes held for uploads and job outputs still streaming in, so that parallel writes of one owner (on any
      // replica) cannot together pass the storage quota; UPLOAD rows are also the count of uploads in progress.
      // A row a dead replica left behind stops counting at expires_at (the live writer keeps pushing it on).
      `CREATE TABLE IF NOT EXISTS storage_reservations (
        id CHAR(36) NOT NULL PRIMARY KEY,
        owner_id CHAR(36) NOT NULL,
        kind ENUM('UPLOAD', 'OUTPUT') NOT NULL,
        reserved_bytes BIGINT UNSIGNED NOT NULL,
        expires_at DATETIME(3) NOT NULL,
        KEY storage_reservations_owner (owner_id, expires_at)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
      // One row per owner, locked (FOR UPDATE) by every quota decision of that owner: check-then-reserve is
      // then one step across replicas.
      `CREATE TABLE IF NOT EXISTS quota_owners (
        owner_id CHAR(36) NOT NULL PRIMARY KEY
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
    ],
  },
  {
    id: 4,
    name: 'create outbox',
    // Media events (a media deleted) are written here in the transaction that causes them, and published by the
    // relay (shared's outbox.ts).
    statements: [OUTBOX_TABLE_SQL],
  },
];
