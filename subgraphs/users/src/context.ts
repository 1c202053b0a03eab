import type { RequestContext } from '@vidmp3/shared';
import type { AccountEmailService } from './services/account-emails.js';
import type { AccountService } from './services/accounts.js';
import type { NotificationSettingsService } from './services/notification-settings.js';

export interface Context extends RequestContext {
  services: {
    accounts: AccountService;
    notifications: NotificationSettingsService;
    accountEmails: AccountEmailService;
  };
}
