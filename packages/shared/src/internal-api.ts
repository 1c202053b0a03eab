// The internal HTTP APIs between services (service token; never routed by the gateway), declared once: the
// servers mount these routes and check these schemas, the clients build these paths and parse these answers.
import { z } from 'zod';

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
