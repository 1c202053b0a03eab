// The one module that names the SDK, so the rest of the CLI reads as plain TypeScript types.
export { createClient, isFinalStatus, Vidmp3Error } from '@vidmp3/sdk';
export type { Client, ConversionOptions, Job, JobStatus, Media, AuthPayload, User } from '@vidmp3/sdk';
