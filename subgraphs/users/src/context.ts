import type { RequestContext } from '@vidmp3/shared';
import type { AccountService } from './services/accounts.js';

export interface Context extends RequestContext {
  services: { accounts: AccountService };
}
