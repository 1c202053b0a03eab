import { ErrorCode, userError, type UserContact, type Viewer } from '@vidmp3/shared';
import type { NotificationSettings, NotificationSettingsRepository } from '../adapters/notification-settings-repo.js';

/**
 * `me { notifications }` and `updateNotificationSettings`: which mails a user receives (off until they turn them
 * on), and the notifier's question "where, and may I?" (`contact`, internal API only).
 */
export class NotificationSettingsService {
  constructor(
    private readonly repo: NotificationSettingsRepository,
    /** The session check of every change (AccountService): a token of an ended session is refused at once. */
    private readonly accounts: { signedIn(viewer: Viewer | null): Promise<{ id: string }> },
  ) {}

  /**
   * `User.notifications`: only the user themselves. Reached only through a `User` that `me` or entity resolution
   * returned, which checked the session already.
   */
  async get(viewer: Viewer | null, userId: string): Promise<NotificationSettings> {
    if (!viewer || viewer.userId !== userId) throw userError(ErrorCode.NOT_FOUND, 'User not found');
    return this.repo.find(userId);
  }

  async update(viewer: Viewer | null, settings: NotificationSettings): Promise<NotificationSettings> {
    const user = await this.accounts.signedIn(viewer);
    try {
      await this.repo.save(user.id, settings, new Date());
    } catch (err) {
      // The account was deleted since the check: the foreign key refused the row.
      if ((err as { code?: string } | null)?.code === 'ER_NO_REFERENCED_ROW_2') {
        throw userError(ErrorCode.UNAUTHENTICATED, 'This account no longer exists');
      }
      throw err;
    }
    return this.repo.find(user.id);
  }

  /** For services only (service token): null when the user is gone. */
  async contact(userId: string): Promise<UserContact | null> {
    return this.repo.contact(userId);
  }
}
