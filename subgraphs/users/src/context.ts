import type { RequestContext } from '@vidmp3/shared';
import type { AccountService } from './services/accounts.js';
import type { ApiKeyService } from './services/api-keys.js';
import type { NotificationSettingsService } from './services/notification-settings.js';
import type { WebhookService } from './services/webhooks.js';

export interface Context extends RequestContext {
  services: {
    accounts: AccountService;
    notifications: NotificationSettingsService;
    apiKeys: ApiKeyService;
    webhooks: WebhookService;
  };
}
