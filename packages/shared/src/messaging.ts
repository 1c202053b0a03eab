import { z } from 'zod';

/**
 * The RabbitMQ topology and message contracts between jobs and the converter workers. Declared by code at
 * start by whoever uses them (declarations are idempotent), validated on both ends.
 *
 *   jobs (outbox relay) ──conversion request──▶ exchange vidmp3.conversions ──▶ queue vidmp3.conversions
 *       (quorum, x-delivery-limit, dead-letters to vidmp3.conversions.dlx ──▶ queue vidmp3.conversions.dead)
 *   worker, transient failure ──▶ queue vidmp3.conversions.retry.<delay> (TTL) ──dead-letters back──▶ work queue
 *   worker ──job event──▶ exchange vidmp3.job-events ──▶ queue vidmp3.job-events (quorum; one jobs replica
 *       applies each event to the database)
 *   jobs (after a state change) ──▶ fanout vidmp3.job-changes ──▶ one exclusive queue per jobs replica, so
 *       every replica can push to every subscriber
 *   jobs (cancelJob) ──▶ fanout vidmp3.job-control ──▶ one exclusive queue per worker (kill ffmpeg)
 *   jobs (a job succeeded or failed) ──ConversionFinished──▶ exchange vidmp3.notifications ──▶ queue
 *       vidmp3.notifications (quorum, x-delivery-limit, dead-letters to vidmp3.notifications.dead): the notifier;
 *       also JobStatusChanged (jobs), MediaDeleted (media), AccountMail and WebhookDisabled (users)
 *   notifier or users (test event) ──WebhookDelivery──▶ exchange vidmp3.webhooks ──▶ queue vidmp3.webhooks: the
 *       notifier sends; a failed attempt waits in vidmp3.webhooks.retry.<delay> (TTL), then comes back
 *   users (deleteAccount) ──AccountDeleted──▶ fanout vidmp3.accounts ──▶ vidmp3.accounts.{media,jobs,notifier}
 */
export const Topology = {
  conversionsExchange: 'vidmp3.conversions',
  conversionsQueue: 'vidmp3.conversions',
  deadLetterExchange: 'vidmp3.conversions.dlx',
  deadLetterQueue: 'vidmp3.conversions.dead',
  /** Delayed retries: one queue per delay, whose expired messages dead-letter back to the work exchange. */
  retryQueue: (delayMs: number) => `vidmp3.conversions.retry.${delayMs}`,
  eventsExchange: 'vidmp3.job-events',
  eventsQueue: 'vidmp3.job-events',
  changesExchange: 'vidmp3.job-changes',
  controlExchange: 'vidmp3.job-control',
  /** What the notifier hears about (NotifierEvent), through the jobs outbox. */
  notificationsExchange: 'vidmp3.notifications',
  notificationsQueue: 'vidmp3.notifications',
  /** Notifier events that could never be handled (malformed, or delivered too often), for an operator to read. */
  notificationsDeadQueue: 'vidmp3.notifications.dead',
  /**
   * Deliveries of one notifier event before RabbitMQ dead-letters it. The notifier holds an event while a
   * dependency is down rather than handing it back, so only crashes, restarts and lost connections count.
   */
  notificationsDeliveryLimit: 20,
  /** Webhook deliveries (WebhookDelivery), sent by the notifier; retries wait in per-delay queues. */
  webhooksExchange: 'vidmp3.webhooks',
  webhooksQueue: 'vidmp3.webhooks',
  webhooksDeadQueue: 'vidmp3.webhooks.dead',
  webhookRetryQueue: (delayMs: number) => `vidmp3.webhooks.retry.${delayMs}`,
  /** Account events (AccountDeleted): a fanout, one quorum queue per consuming service. */
  accountsExchange: 'vidmp3.accounts',
  accountsQueue: (service: 'media' | 'jobs' | 'notifier') => `vidmp3.accounts.${service}`,
  /** Deliveries of one request before RabbitMQ dead-letters it (a message that kills every worker). */
  deliveryLimit: 5,
} as const;

/** Retry delays for transient failures, by attempt (1-based); the last applies beyond. */
export const RETRY_DELAYS_MS = [5_000, 30_000, 120_000] as const;

/**
 * Waits before the attempts after a failed webhook delivery: nine attempts over about a day (23.6 h), then the
 * delivery has failed. The notifier takes these unless configured otherwise (tests use short ones).
 */
export const WEBHOOK_RETRY_DELAYS_MS = [
  10_000, 60_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 28_800_000, 28_800_000,
] as const;

/**
 * Delays before a worker asks jobs again about a request whose claim jobs could not answer (jobs or its database
 * away), by how many times it has waited already; the last applies beyond. Short: no attempt is spent, and the
 * request should run within seconds of jobs coming back.
 */
export const CLAIM_RETRY_DELAYS_MS = [1_000, 2_000, 5_000] as const;

export const ConversionOptions = z.object({
  bitrateKbps: z.number().int(),
  sampleRateHz: z.number().int().nullable(),
  channels: z.number().int().nullable(),
  startSeconds: z.number().nullable(),
  endSeconds: z.number().nullable(),
});
export type ConversionOptions = z.infer<typeof ConversionOptions>;

/** jobs → worker: convert this media for this job's attempt. */
export const ConversionRequest = z.object({
  jobId: z.string().min(1),
  attempt: z.number().int().positive(),
  ownerId: z.string().min(1),
  inputMediaId: z.string().min(1),
  /** Of the input, from media; the worker's progress is measured against it (or the trimmed span). */
  inputDurationSeconds: z.number().positive(),
  options: ConversionOptions,
  requestId: z.string().optional(),
});
export type ConversionRequest = z.infer<typeof ConversionRequest>;

export const JobErrorPayload = z.object({ code: z.string(), message: z.string() });

/** What every job event carries: the attempt it is about, when, and the request id that queued the attempt. */
const EventBase = {
  jobId: z.string(),
  attempt: z.number().int(),
  at: z.iso.datetime(),
  requestId: z.string().optional(),
};

/** worker → jobs: what happened to an attempt. */
export const JobEvent = z.discriminatedUnion('type', [
  /** Sent by workers before the claim made a job RUNNING by itself; still applied (a lease renewal at most). */
  z.object({ type: z.literal('started'), ...EventBase }),
  z.object({ type: z.literal('progress'), ...EventBase, progress: z.number().min(0).max(1) }),
  z.object({ type: z.literal('succeeded'), ...EventBase, outputMediaId: z.string() }),
  /** Transient failure: the request went to a retry queue as `nextAttempt`. */
  z.object({ type: z.literal('retrying'), ...EventBase, nextAttempt: z.number().int(), error: JobErrorPayload }),
  z.object({ type: z.literal('failed'), ...EventBase, error: JobErrorPayload }),
  z.object({ type: z.literal('cancelled'), ...EventBase }),
]);
export type JobEvent = z.infer<typeof JobEvent>;

/** jobs → every jobs replica: this job's row changed; push it to its subscribers. */
export const JobChanged = z.object({ jobId: z.string(), ownerId: z.string() });
export type JobChanged = z.infer<typeof JobChanged>;

/**
 * jobs → every worker: stop working on this job's attempt now. A cancel names the attempt it was meant for, so
 * one that arrives late leaves a later attempt alone (optional: a cancel without one stops any attempt).
 */
export const JobControl = z.object({
  type: z.literal('cancel'),
  jobId: z.string(),
  attempt: z.number().int().positive().optional(),
});
export type JobControl = z.infer<typeof JobControl>;

/**
 * jobs → notifier: a job ended in SUCCEEDED or FAILED (cancelled jobs are the user's own doing: nothing to tell).
 * Written to the outbox in the transaction that records the end, so it is announced exactly when the job ends,
 * and at least once. `eventId` names this end of this attempt (`${jobId}:${attempt}:${status}`): a redelivered
 * or re-published copy carries the same one, and the notifier sends at most one mail per eventId. A job retried
 * after failing ends again under a new attempt: a new event.
 */
export const ConversionFinished = z.object({
  type: z.literal('conversion-finished'),
  eventId: z.string().min(1).max(200),
  jobId: z.string().min(1),
  attempt: z.number().int().positive(),
  ownerId: z.string().min(1),
  status: z.enum(['SUCCEEDED', 'FAILED']),
  outputMediaId: z.string().nullable(),
  /** `JobErrorCode` of a failed job (null when it succeeded). */
  errorCode: z.string().nullable(),
  finishedAt: z.iso.datetime(),
});
export type ConversionFinished = z.infer<typeof ConversionFinished>;

export const conversionFinishedEventId = (jobId: string, attempt: number, status: ConversionFinished['status']) =>
  `${jobId}:${attempt}:${status}`;

/**
 * users → notifier: a mail the account itself needs (not subject to the opt-in settings): verify an address,
 * reset a password, confirm a new address, or tell the old one it changed. `link` carries a single-use,
 * short-lived token: the notifier puts it in the mail and never logs it. `eventId` is unique per mail asked for.
 */
export const AccountMail = z.object({
  type: z.literal('account-mail'),
  eventId: z.string().min(1).max(200),
  userId: z.string().min(1),
  kind: z.enum(['verify-email', 'reset-password', 'confirm-email-change', 'email-changed', 'password-changed']),
  /** The address to write to (for `confirm-email-change`, the new one; otherwise the account's). */
  to: z.email(),
  /** The page link to act on (with its token), absent for a mail that only informs. */
  link: z.url().nullable(),
  /** When the link stops working. */
  expiresAt: z.iso.datetime().nullable(),
  at: z.iso.datetime(),
});
export type AccountMail = z.infer<typeof AccountMail>;

/** Webhook event types (the `type` field of a webhook payload; `WebhookEvent` in the API, lower-case dotted). */
export const WebhookEventType = z.enum([
  'job.queued',
  'job.running',
  'job.succeeded',
  'job.failed',
  'job.cancelled',
  'media.deleted',
  'webhook.test',
]);
export type WebhookEventType = z.infer<typeof WebhookEventType>;

/**
 * jobs → notifier: a job's status changed (QUEUED when created or retried, RUNNING, SUCCEEDED, FAILED,
 * CANCELLED); for webhooks. Written to the outbox with the change. `eventId`: `${jobId}:${attempt}:${status}`.
 */
export const JobStatusChanged = z.object({
  type: z.literal('job-status-changed'),
  eventId: z.string().min(1).max(200),
  jobId: z.string().min(1),
  ownerId: z.string().min(1),
  attempt: z.number().int().positive(),
  status: z.enum(['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED']),
  inputMediaId: z.string().min(1),
  outputMediaId: z.string().nullable(),
  error: JobErrorPayload.nullable(),
  at: z.iso.datetime(),
});
export type JobStatusChanged = z.infer<typeof JobStatusChanged>;

/** media → notifier: a media was deleted (by its owner); for webhooks. `eventId`: `${mediaId}:deleted`. */
export const MediaDeleted = z.object({
  type: z.literal('media-deleted'),
  eventId: z.string().min(1).max(200),
  mediaId: z.string().min(1),
  ownerId: z.string().min(1),
  at: z.iso.datetime(),
});
export type MediaDeleted = z.infer<typeof MediaDeleted>;

/** users → notifier: a webhook was disabled after repeated failed deliveries; its owner gets a mail. */
export const WebhookDisabled = z.object({
  type: z.literal('webhook-disabled'),
  eventId: z.string().min(1).max(200),
  userId: z.string().min(1),
  webhookId: z.string().min(1),
  url: z.string(),
  reason: z.string(),
  at: z.iso.datetime(),
});
export type WebhookDisabled = z.infer<typeof WebhookDisabled>;

/** Everything on the notifier's queue. */
export const NotifierEvent = z.discriminatedUnion('type', [
  ConversionFinished,
  AccountMail,
  JobStatusChanged,
  MediaDeleted,
  WebhookDisabled,
]);
export type NotifierEvent = z.infer<typeof NotifierEvent>;

/**
 * One delivery of one event to one webhook (queue vidmp3.webhooks): recorded by users first (so it is listed in
 * `webhookDeliveries`), then sent by the notifier, which takes the webhook's current URL and secret from users at
 * each attempt. `attempt` counts from 1; a failed attempt goes to a retry queue as attempt + 1.
 */
export const WebhookDelivery = z.object({
  deliveryId: z.string().min(1),
  webhookId: z.string().min(1),
  /** The Standard Webhooks `webhook-id`: the same for every attempt of this delivery. */
  eventId: z.string().min(1).max(200),
  eventType: WebhookEventType,
  /** The JSON body sent: `{ type, timestamp, data }`. */
  payload: z.object({ type: WebhookEventType, timestamp: z.iso.datetime(), data: z.record(z.string(), z.unknown()) }),
  attempt: z.number().int().positive(),
});
export type WebhookDelivery = z.infer<typeof WebhookDelivery>;

/**
 * users → media, jobs and the notifier (fanout vidmp3.accounts, one queue each): an account was deleted. Each
 * removes everything it holds of the user, idempotently, and refuses the user's tokens from then on.
 */
export const AccountDeleted = z.object({
  type: z.literal('account-deleted'),
  eventId: z.string().min(1).max(200),
  userId: z.string().min(1),
  at: z.iso.datetime(),
});
export type AccountDeleted = z.infer<typeof AccountDeleted>;

/** Parses a message body against its schema; throws on anything else (the consumer dead-letters it). */
export function decodeMessage<S extends z.ZodType>(schema: S, content: Buffer): z.output<S> {
  return schema.parse(JSON.parse(content.toString('utf8')));
}

export const encodeMessage = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

/** Error codes a job can fail with (`JobError.code`). */
export const JobErrorCode = {
  /** The input has no audio, is corrupt or unreadable: retrying cannot help. */
  UNSUPPORTED_MEDIA: 'UNSUPPORTED_MEDIA',
  /** The input no longer exists. */
  INPUT_GONE: 'INPUT_GONE',
  /** The mp3 would take its owner over their storage quota (media refused it): deleting media makes room. */
  QUOTA_EXCEEDED: 'QUOTA_EXCEEDED',
  /** ffmpeg refused the conversion's options (a value it cannot parse): retrying cannot help. */
  INVALID_OPTIONS: 'INVALID_OPTIONS',
  /** The conversion ran past the wall-clock limit. */
  TIMEOUT: 'TIMEOUT',
  /** Transient failures kept happening until the attempts ran out. */
  GAVE_UP: 'GAVE_UP',
  /** RabbitMQ gave up delivering the request (it crashed workers every time). */
  DELIVERY_LIMIT: 'DELIVERY_LIMIT',
  /** Not final: the last attempt hit a transient failure and the job is queued for another. */
  TEMPORARY_FAILURE: 'TEMPORARY_FAILURE',
} as const;
