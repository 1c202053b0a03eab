// What both entries export besides createClient.
export {
  describeQuota,
  formatBytes,
  Vidmp3Error,
  type ErrorCode,
  type KnownErrorCode,
  type KnownQuota,
  type Quota,
  type Vidmp3ErrorOptions,
} from './errors.js';
export { isFinalStatus, FINAL_STATUSES } from './watch.js';
export { webSocketUrl } from './client.js';
export type * from './types.js';
