import { DateTimeScalar } from '@vidmp3/shared';
import type { Resolvers } from './generated/graphql.js';

export const resolvers: Resolvers = {
  DateTime: DateTimeScalar,
  Query: {
    job: (_parent, { id }, ctx) => ctx.services.jobs.get(ctx.viewer, id),
  },
  Mutation: {
    convertMedia: (_parent, { mediaId, options }, ctx) =>
      ctx.services.jobs.convert(ctx.viewer, mediaId, options, ctx.requestId),
    cancelJob: (_parent, { id }, ctx) => ctx.services.jobs.cancel(ctx.viewer, id),
    retryJob: (_parent, { id }, ctx) => ctx.services.jobs.retry(ctx.viewer, id, ctx.requestId),
  },
  Subscription: {
    jobUpdated: { subscribe: (_parent, { id }, ctx) => ctx.services.feeds.watchJob(ctx.viewer, id) },
    myJobUpdates: { subscribe: (_parent, _args, ctx) => ctx.services.feeds.watchMine(ctx.viewer) },
  },
  Job: {
    __resolveReference: (ref, ctx) => ctx.services.jobs.resolveReference(ctx.viewer, ref.id),
    input: (job) => ({ id: job.inputMediaId }),
    output: (job) => (job.outputMediaId ? { id: job.outputMediaId } : null),
    owner: (job) => ({ id: job.ownerId }),
    error: (job) => (job.errorCode ? { code: job.errorCode, message: job.errorMessage ?? '' } : null),
  },
  User: {
    __resolveReference: (ref) => ({ id: ref.id }),
    jobs: (user, args, ctx) => ctx.services.jobs.list(ctx.viewer, user.id, args),
  },
  Usage: {
    __resolveReference: (ref, ctx) => ctx.services.jobs.usage(ctx.viewer, ref.userId),
  },
  Media: {
    __resolveReference: (ref) => ({ id: ref.id }),
    conversions: (media, args, ctx) => ctx.services.jobs.conversions(ctx.viewer, media.id, args),
  },
};
