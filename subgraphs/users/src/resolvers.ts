import { DateTimeScalar } from '@vidmp3/shared';
import type { Resolvers } from './generated/graphql.js';

export const resolvers: Resolvers = {
  DateTime: DateTimeScalar,
  Query: {
    me: (_parent, _args, ctx) => ctx.services.accounts.me(ctx.viewer),
  },
  Mutation: {
    updateNotificationSettings: (_parent, { conversionEmails }, ctx) =>
      ctx.services.notifications.update(ctx.viewer, { conversionEmails }),
    endSession: (_parent, { id }, ctx) => ctx.services.accounts.endSession(ctx.viewer, id),
    signUp: (_parent, { email, password }, ctx) => ctx.services.accounts.signUp(email, password, ctx.ip),
    logIn: (_parent, { email, password }, ctx) => ctx.services.accounts.logIn(email, password, ctx.ip),
    refreshSession: (_parent, { refreshToken }, ctx) => ctx.services.accounts.refreshSession(refreshToken, ctx.ip),
    logOut: (_parent, _args, ctx) => ctx.services.accounts.logOut(ctx.viewer),
    logOutEverywhere: (_parent, _args, ctx) => ctx.services.accounts.logOutEverywhere(ctx.viewer),
    changePassword: (_parent, { currentPassword, newPassword }, ctx) =>
      ctx.services.accounts.changePassword(ctx.viewer, currentPassword, newPassword, ctx.ip),
  },
  User: {
    __resolveReference: (ref, ctx) => ctx.services.accounts.resolveReference(ctx.viewer, ref.id),
    // A reference only: media and jobs fill in the figures, each checking that the viewer is this user.
    usage: (user) => ({ userId: user.id }),
    notifications: (user, _args, ctx) => ctx.services.notifications.get(ctx.viewer, user.id),
    sessions: (user, _args, ctx) => ctx.services.accounts.listSessions(ctx.viewer, user.id),
  },
};
