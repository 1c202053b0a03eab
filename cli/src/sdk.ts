// The one module that names the SDK, so the rest of the CLI reads as plain TypeScript types.
export { createClient, describeQuota, formatBytes as formatBinaryBytes, isFinalStatus, Vidmp3Error } from '@vidmp3/sdk';
export type { Client, ConversionOptions, Job, JobStatus, Media, AuthPayload, Usage, User } from '@vidmp3/sdk';
export type { ApiKey, ApiKeyScope } from '@vidmp3/sdk';
export type { Webhook, WebhookDelivery, WebhookEvent } from '@vidmp3/sdk';
export type { Session as SdkSession } from '@vidmp3/sdk';
