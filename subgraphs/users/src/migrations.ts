import { OUTBOX_TABLE_SQL, type Migration } from '@vidmp3/shared';

export const migrations: Migration[] = [
  {
    id: 1,
    name: 'create users',
    statements: [
      `CREATE TABLE IF NOT EXISTS users (
        id CHAR(36) NOT NULL PRIMARY KEY,
        email VARCHAR(254) NOT NULL,
        password_hash VARCHAR(255) NOT NULL,
        created_at DATETIME(3) NOT NULL,
        UNIQUE KEY users_email_unique (email)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
    ],
  },
  {
    id: 2,
    name: 'create login_throttle',
    // rate-limiter-flexible's layout (key, points, expire in ms), with room for an email and its prefix.
    statements: [
      `CREATE TABLE IF NOT EXISTS login_throttle (
        \`key\` VARCHAR(320) NOT NULL PRIMARY KEY,
        points INT NOT NULL DEFAULT 0,
        expire BIGINT UNSIGNED NULL
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
    ],
  },
  {
    id: 3,
    name: 'create auth_throttle',
    // The sign-in throttle's counters (adapters/throttle-store.ts), times in epoch ms. They replace
    // rate-limiter-flexible's table, whose counts are throwaway state.
    statements: [
      `CREATE TABLE IF NOT EXISTS auth_throttle (
        k VARCHAR(400) NOT NULL PRIMARY KEY,
        count INT NOT NULL,
        blocked_until BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        KEY auth_throttle_expires (expires_at)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
      'DROP TABLE IF EXISTS login_throttle',
    ],
  },
  {
    id: 4,
    name: 'create sessions and refresh_tokens',
    // A session is one sign-in and the chain of refresh tokens rotated from it (services/session-policy.ts).
    // Refresh tokens are stored as their sha256 only; spent ones stay until their own expiry so that a reused
    // one is recognised. Both go with their account.
    statements: [
      `CREATE TABLE IF NOT EXISTS sessions (
        id CHAR(36) NOT NULL PRIMARY KEY,
        user_id CHAR(36) NOT NULL,
        created_at DATETIME(3) NOT NULL,
        last_used_at DATETIME(3) NOT NULL,
        expires_at DATETIME(3) NOT NULL,
        revoked_at DATETIME(3) NULL,
        revoked_reason VARCHAR(32) NULL,
        created_ip VARCHAR(64) NOT NULL,
        last_used_ip VARCHAR(64) NOT NULL,
        KEY sessions_user (user_id, revoked_at),
        KEY sessions_expires (expires_at),
        KEY sessions_revoked (revoked_at),
        CONSTRAINT sessions_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
      `CREATE TABLE IF NOT EXISTS refresh_tokens (
        token_hash BINARY(32) NOT NULL PRIMARY KEY,
        session_id CHAR(36) NOT NULL,
        issued_at DATETIME(3) NOT NULL,
        expires_at DATETIME(3) NOT NULL,
        spent_at DATETIME(3) NULL,
        KEY refresh_tokens_session (session_id),
        KEY refresh_tokens_expires (expires_at),
        CONSTRAINT refresh_tokens_session_fk FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
    ],
  },
  {
    id: 5,
    name: 'create notification_settings',
    // Which mails a user agreed to (`me { notifications }`); no row means none. Goes with its account.
    statements: [
      `CREATE TABLE IF NOT EXISTS notification_settings (
        user_id CHAR(36) NOT NULL PRIMARY KEY,
        conversion_emails BOOLEAN NOT NULL DEFAULT FALSE,
        updated_at DATETIME(3) NOT NULL,
        CONSTRAINT notification_settings_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
    ],
  },
  {
    id: 6,
    name: 'create api_keys',
    // API keys (services/api-keys.ts): stored as their sha256 only; a revoked key's row is deleted. Scopes are
    // the space-separated `scope` claim of the tokens a key is exchanged for. Go with their account.
    statements: [
      `CREATE TABLE IF NOT EXISTS api_keys (
        id CHAR(36) NOT NULL PRIMARY KEY,
        user_id CHAR(36) NOT NULL,
        name VARCHAR(100) NOT NULL,
        key_hash BINARY(32) NOT NULL,
        scopes VARCHAR(64) NOT NULL,
        created_at DATETIME(3) NOT NULL,
        last_used_at DATETIME(3) NULL,
        UNIQUE KEY api_keys_hash_unique (key_hash),
        KEY api_keys_user (user_id, created_at),
        CONSTRAINT api_keys_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
    ],
  },
  {
    id: 7,
    name: 'create outbox',
    // Account events (mails to send, an account deleted) are written here in the transaction that causes them,
    // and published by the relay (shared's outbox.ts).
    statements: [OUTBOX_TABLE_SQL],
  },
  {
    id: 9,
    name: 'create webhooks and webhook_deliveries',
    // A user's webhooks (services/webhooks.ts) and every delivery of an event to one, listed for 30 days. The
    // signing secret is stored encrypted (adapters/secret-box.ts: AES-256-GCM under WEBHOOK_SECRET_KEY, the
    // webhook's id as associated data); the sender needs it back to sign. Both go with their account.
    statements: [
      `CREATE TABLE IF NOT EXISTS webhooks (
        id CHAR(36) NOT NULL PRIMARY KEY,
        user_id CHAR(36) NOT NULL,
        url VARCHAR(2000) NOT NULL,
        events VARCHAR(255) NOT NULL,
        secret_ciphertext VARBINARY(255) NOT NULL,
        enabled BOOLEAN NOT NULL DEFAULT TRUE,
        disabled_reason VARCHAR(500) NULL,
        disabled_at DATETIME(3) NULL,
        failed_deliveries_in_a_row INT NOT NULL DEFAULT 0,
        created_at DATETIME(3) NOT NULL,
        KEY webhooks_user (user_id, created_at),
        CONSTRAINT webhooks_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
      `CREATE TABLE IF NOT EXISTS webhook_deliveries (
        id CHAR(36) NOT NULL PRIMARY KEY,
        webhook_id CHAR(36) NOT NULL,
        event_id VARCHAR(200) NOT NULL,
        event_type VARCHAR(40) NOT NULL,
        status VARCHAR(16) NOT NULL,
        attempts INT NOT NULL DEFAULT 0,
        response_status INT NULL,
        last_error VARCHAR(1000) NULL,
        next_retry_at DATETIME(3) NULL,
        created_at DATETIME(3) NOT NULL,
        updated_at DATETIME(3) NOT NULL,
        UNIQUE KEY webhook_deliveries_event (webhook_id, event_id),
        KEY webhook_deliveries_page (webhook_id, created_at, id),
        KEY webhook_deliveries_created (created_at),
        CONSTRAINT webhook_deliveries_webhook_fk FOREIGN KEY (webhook_id) REFERENCES webhooks (id) ON DELETE CASCADE
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
    ],
  },
];
