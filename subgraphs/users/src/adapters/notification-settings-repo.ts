import type { Pool, RowDataPacket } from 'mysql2/promise';

/** Which mails a user agreed to receive. A user without a row has agreed to none. */
export interface NotificationSettings {
  conversionEmails: boolean;
}

export const DEFAULT_NOTIFICATION_SETTINGS: NotificationSettings = { conversionEmails: false };

/** The notification_settings table (and the user's address, for the notifier); SQL lives here and nowhere else. */
export class NotificationSettingsRepository {
  constructor(private readonly pool: Pool) {}

  async find(userId: string): Promise<NotificationSettings> {
    const [rows] = await this.pool.execute<RowDataPacket[]>(
      'SELECT conversion_emails FROM notification_settings WHERE user_id = ?',
      [userId],
    );
    return rows[0] ? { conversionEmails: Boolean(rows[0].conversion_emails) } : { ...DEFAULT_NOTIFICATION_SETTINGS };
  }

  /** Writes the user's settings whole; fails (foreign key) when the user does not exist. */
  async save(userId: string, settings: NotificationSettings, now: Date): Promise<void> {
    await this.pool.execute(
      `INSERT INTO notification_settings (user_id, conversion_emails, updated_at) VALUES (?, ?, ?)
       ON DUPLICATE KEY UPDATE conversion_emails = VALUES(conversion_emails), updated_at = VALUES(updated_at)`,
      [userId, settings.conversionEmails, now],
    );
  }

  /** The user's address with their settings, in one read; null when there is no such user. */
  async contact(userId: string): Promise<({ email: string } & NotificationSettings) | null> {
    const [rows] = await this.pool.execute<RowDataPacket[]>(
      `SELECT u.email, s.conversion_emails FROM users u
       LEFT JOIN notification_settings s ON s.user_id = u.id WHERE u.id = ?`,
      [userId],
    );
    const row = rows[0];
    if (!row) return null;
    return { email: String(row.email), conversionEmails: Boolean(row.conversion_emails) };
  }
}
