import { GraphQLUpload } from 'graphql-upload-minimal';
import { DateTimeScalar } from '@vidmp3/shared';
import type { Resolvers } from './generated/graphql.js';

export const resolvers: Resolvers = {
  DateTime: DateTimeScalar,
  Upload: GraphQLUpload,
  Query: {
    media: (_parent, { id }, ctx) => ctx.services.media.get(ctx.viewer, id),
  },
  Mutation: {
    uploadVideo: (_parent, { file }, ctx) => ctx.services.media.uploadVideo(ctx.viewer, file),
    deleteMedia: (_parent, { id }, ctx) => ctx.services.media.delete(ctx.viewer, id),
  },
  Media: {
    __resolveReference: (ref, ctx) => ctx.services.media.resolveReference(ctx.viewer, ref.id),
    owner: (media) => ({ id: media.ownerId }),
    downloadUrl: (media, _args, ctx) => ctx.services.media.downloadUrl(media),
  },
  Usage: {
    __resolveReference: (ref, ctx) => ctx.services.media.usage(ctx.viewer, ref.userId),
  },
  User: {
    __resolveReference: (ref) => ({ id: ref.id }),
    media: (user, args, ctx) => ctx.services.media.list(ctx.viewer, user.id, args),
  },
};
