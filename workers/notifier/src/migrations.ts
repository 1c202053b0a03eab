import type { Migration } from '@vidmp3/shared';

export const migrations: Migration[] = [
  {
    id: 1,
    name: 'create notifications',
    // One row per event heard, keyed by its id: written when the mail is decided (pending, or skipped with the
    // reason), so a duplicate of the event finds it and does nothing. A pending row holds the whole mail until
    // the sender has handed it to the SMTP server (sent), or given it up (failed).
    statements: [
      `CREATE TABLE IF NOT EXISTS notifications (
        event_id VARCHAR(200) NOT NULL PRIMARY KEY,
        kind VARCHAR(40) NOT NULL,
        user_id VARCHAR(64) NOT NULL,
        status VARCHAR(16) NOT NULL,
        reason VARCHAR(40) NULL,
        recipient VARCHAR(320) NULL,
        subject VARCHAR(255) NULL,
        text_body MEDIUMTEXT NULL,
        html_body MEDIUMTEXT NULL,
        attempts INT NOT NULL DEFAULT 0,
        next_attempt_at DATETIME(3) NULL,
        last_error VARCHAR(1000) NULL,
        created_at DATETIME(3) NOT NULL,
        sent_at DATETIME(3) NULL,
        KEY notifications_due (status, next_attempt_at),
        KEY notifications_created (created_at)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
    ],
  },
  {
    id: 5,
    name: 'deleted accounts',
    // Tombstones of deleted accounts (an AccountDeleted event heard): events about them that arrive later (an
    // outbox of jobs that was behind) decide nothing and keep nothing. The id only. (Ids 2-4: other features.)
    statements: [
      `CREATE TABLE IF NOT EXISTS deleted_accounts (
        user_id VARCHAR(64) NOT NULL PRIMARY KEY,
        deleted_at DATETIME(3) NOT NULL
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
    ],
  },
];
