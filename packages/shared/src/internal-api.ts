// The internal HTTP APIs between services (service token; never routed by the gateway), declared once: the
// servers mount these routes and check these schemas, the clients build these paths and parse these answers.
import { z } from 'zod';
import { WebhookEventType } from './messaging.js';

const segment = (value: string) => encodeURIComponent(value);

/** Routes as Express mounts them (`route`) and as clients call them (`path`). */
export const InternalApi = {
  /** POST, jobs: may this attempt of the job run on this worker? Body `ClaimRequest`, answer `ClaimResponse`. */
  claim: {
    route: '/internal/jobs/:id/claim',
    path: (jobId: string) => `/internal/jobs/${segment(jobId)}/claim`,
  },
  /** GET, media: what jobs needs to accept a conversion. Answer `MediaFacts`; 404 when there is no such media. */
  mediaFacts: {
    route: '/internal/media/:id',
    path: (mediaId: string) => `/internal/media/${segment(mediaId)}`,
  },
  /** GET/HEAD, media: the media's bytes, with Range support (ffmpeg seeks in an mp4 whose moov is at the end). */
  mediaContent: {
    route: '/internal/media/:id/content',
    path: (mediaId: string) => `/internal/media/${segment(mediaId)}/content`,
  },
  /**
   * PUT, media: a job's mp3 as the body (`audio/mpeg`, its length announced), with `OutputUploadHeaders`.
   * Idempotent per job: 201 with `OutputUploadResponse` when stored, 200 with the one stored before.
   */
  outputUpload: {
    route: '/internal/jobs/:jobId/output',
    path: (jobId: string) => `/internal/jobs/${segment(jobId)}/output`,
  },
  /** GET, users: where to write to a user and what they agreed to receive. Answer `UserContact`; 404 when gone. */
  userContact: {
    route: '/internal/users/:id/contact',
    path: (userId: string) => `/internal/users/${segment(userId)}/contact`,
  },
  /**
   * GET, users: a user's enabled webhooks subscribed to an event type (`?event=job.succeeded`). Answer
   * `UserWebhooks` (an empty list for a user without any, or gone); 400 for an unknown event type.
   */
  userWebhooks: {
    route: '/internal/users/:userId/webhooks',
    path: (userId: string, event: WebhookEventType) =>
      `/internal/users/${segment(userId)}/webhooks?event=${encodeURIComponent(event)}`,
  },
  /**
   * POST, users: record a delivery of an event to a webhook before sending it. Body `CreateWebhookDelivery`, answer
   * `CreatedWebhookDelivery`; idempotent per (webhook, eventId): a second call answers the same `deliveryId` with
   * `created: false`. 404 when the webhook is gone.
   */
  webhookDeliveries: {
    route: '/internal/webhooks/:id/deliveries',
    path: (webhookId: string) => `/internal/webhooks/${segment(webhookId)}/deliveries`,
  },
  /**
   * GET, users: where and with what to send, asked before every attempt. Answer `WebhookTarget` (the signing
   * secret decrypted); 404 when the webhook is gone. `enabled: false`: do not send.
   */
  webhookTarget: {
    route: '/internal/webhooks/:id/target',
    path: (webhookId: string) => `/internal/webhooks/${segment(webhookId)}/target`,
  },
  /**
   * POST, users: how an attempt of a delivery went. Body `WebhookAttemptReport`, answer `WebhookAttemptRecorded`;
   * a report of an attempt older than (or the same as) the last one recorded is ignored. 404 when the delivery
   * is gone (its webhook was deleted).
   */
  webhookAttempts: {
    route: '/internal/webhook-deliveries/:deliveryId/attempts',
    path: (deliveryId: string) => `/internal/webhook-deliveries/${segment(deliveryId)}/attempts`,
  },
} as const;

export const ClaimRequest = z.object({
  attempt: z.number().int().positive(),
  workerId: z.string().min(1).max(200),
  redelivered: z.boolean().default(false),
});
export type ClaimRequest = z.input<typeof ClaimRequest>;

/** `leaseSeconds`: the attempt is the worker's while it reports at least every third of it (jobs' LEASE_SECONDS). */
export const ClaimResponse = z.object({
  proceed: z.boolean(),
  reason: z.string().optional(),
  leaseSeconds: z.number().positive().optional(),
});
export type ClaimResponse = z.infer<typeof ClaimResponse>;

export const MediaFacts = z.object({
  id: z.string(),
  ownerId: z.string(),
  kind: z.enum(['VIDEO', 'AUDIO']),
  filename: z.string(),
  durationSeconds: z.number().nullable(),
});
export type MediaFacts = z.infer<typeof MediaFacts>;

/** Whose mp3 it is and which video it was made from (lower-case: as Node hands request headers over). */
export const OutputUploadHeaders = z.object({
  'x-owner-id': z.string().min(1).max(64),
  'x-source-media-id': z.string().min(1).max(64),
});
export type OutputUploadHeaders = z.infer<typeof OutputUploadHeaders>;

export const OutputUploadResponse = z.object({
  id: z.string().min(1),
  byteSize: z.number(),
  sha256: z.string(),
  durationSeconds: z.number().nullable(),
  created: z.boolean(),
});
export type OutputUploadResponse = z.infer<typeof OutputUploadResponse>;

/** A user's address and their mail settings (`me { notifications }`), for the notifier. */
export const UserContact = z.object({
  email: z.string().min(1),
  /** Opted in to "your mp3 is ready" / "your conversion failed" mails; off unless the user turned it on. */
  conversionEmails: z.boolean(),
});
export type UserContact = z.infer<typeof UserContact>;

/** A user's webhooks to send one event to. */
export const UserWebhooks = z.object({
  webhooks: z.array(z.object({ id: z.string().min(1), url: z.string().min(1) })),
});
export type UserWebhooks = z.infer<typeof UserWebhooks>;

/** The delivery to record; `payload` is the JSON body the sender will send (`WebhookDelivery.payload`). */
export const CreateWebhookDelivery = z.object({
  eventId: z.string().min(1).max(200),
  eventType: WebhookEventType,
  payload: z.object({ type: WebhookEventType, timestamp: z.iso.datetime(), data: z.record(z.string(), z.unknown()) }),
});
export type CreateWebhookDelivery = z.infer<typeof CreateWebhookDelivery>;

export const CreatedWebhookDelivery = z.object({ deliveryId: z.string().min(1), created: z.boolean() });
export type CreatedWebhookDelivery = z.infer<typeof CreatedWebhookDelivery>;

/** A webhook's URL and its Standard Webhooks signing secret (`whsec_…`), decrypted, for the next attempt. */
export const WebhookTarget = z.object({ url: z.string().min(1), secret: z.string().min(1), enabled: z.boolean() });
export type WebhookTarget = z.infer<typeof WebhookTarget>;

/**
 * How attempt `attempt` (1-based) of a delivery went: `succeeded` (a 2xx), `retrying` (failed; another attempt
 * comes at `nextRetryAt`) or `failed` (failed, and no attempt comes: the delivery has failed). `responseStatus`:
 * the receiver's HTTP status, null when there was no response (refused target, connection error, timeout).
 * `error`: what went wrong, for the owner to read (no secrets), null on success.
 */
export const WebhookAttemptReport = z.object({
  attempt: z.number().int().positive(),
  outcome: z.enum(['succeeded', 'retrying', 'failed']),
  responseStatus: z.number().int().min(100).max(599).nullable(),
  /** Cut to 1000 characters when stored. */
  error: z.string().max(10_000).nullable(),
  /** Kept only with `retrying`. */
  nextRetryAt: z.iso.datetime().nullable(),
});
export type WebhookAttemptReport = z.infer<typeof WebhookAttemptReport>;

/** `webhookEnabled: false`: the webhook is disabled (now or before): send no more of its deliveries. */
export const WebhookAttemptRecorded = z.object({ webhookEnabled: z.boolean() });
export type WebhookAttemptRecorded = z.infer<typeof WebhookAttemptRecorded>;
