import { DateTimeScalar, type ApiKeyScope, type WebhookEventType } from '@vidmp3/shared';
import type { Resolvers, WebhookEvent } from './generated/graphql.js';

// The API's enum ↔ the payloads' dotted names (JOB_SUCCEEDED ↔ job.succeeded).
const toEventType = (event: WebhookEvent) => event.toLowerCase().replace('_', '.') as WebhookEventType;
const toWebhookEvent = (type: WebhookEventType) => type.toUpperCase().replace('.', '_') as WebhookEvent;

export const resolvers: Resolvers = {
  DateTime: DateTimeScalar,
  Query: {
    me: (_parent, _args, ctx) => ctx.services.accounts.me(ctx.viewer),
    webhookDeliveries: (_parent, { webhookId, first, after }, ctx) =>
      ctx.services.webhooks.deliveries(ctx.viewer, webhookId, first, after),
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
    createApiKey: (_parent, { name, scopes }, ctx) =>
      ctx.services.apiKeys.create(
        ctx.viewer,
        name,
        scopes.map((scope) => scope.toLowerCase() as ApiKeyScope),
      ),
    revokeApiKey: (_parent, { id }, ctx) => ctx.services.apiKeys.revoke(ctx.viewer, id),
    createWebhook: (_parent, { url, events }, ctx) =>
      ctx.services.webhooks.create(ctx.viewer, url, events.map(toEventType)),
    deleteWebhook: (_parent, { id }, ctx) => ctx.services.webhooks.delete(ctx.viewer, id),
    sendTestWebhook: (_parent, { id }, ctx) => ctx.services.webhooks.sendTest(ctx.viewer, id),
    enableWebhook: (_parent, { id }, ctx) => ctx.services.webhooks.enable(ctx.viewer, id),
    deleteAccount: (_parent, { password }, ctx) => ctx.services.accounts.deleteAccount(ctx.viewer, password, ctx.ip),
    resendVerificationEmail: (_parent, _args, ctx) => ctx.services.accountEmails.resendVerificationEmail(ctx.viewer),
    verifyEmail: (_parent, { token }, ctx) => ctx.services.accountEmails.verifyEmail(token),
    requestPasswordReset: (_parent, { email }, ctx) => ctx.services.accountEmails.requestPasswordReset(email, ctx.ip),
    resetPassword: (_parent, { token, newPassword }, ctx) =>
      ctx.services.accountEmails.resetPassword(token, newPassword, ctx.ip),
    requestEmailChange: (_parent, { newEmail, password }, ctx) =>
      ctx.services.accountEmails.requestEmailChange(ctx.viewer, newEmail, password, ctx.ip),
    confirmEmailChange: (_parent, { token }, ctx) => ctx.services.accountEmails.confirmEmailChange(token),
  },
  User: {
    __resolveReference: (ref, ctx) => ctx.services.accounts.resolveReference(ctx.viewer, ref.id),
    // A reference only: media and jobs fill in the figures, each checking that the viewer is this user.
    usage: (user) => ({ userId: user.id }),
    notifications: (user, _args, ctx) => ctx.services.notifications.get(ctx.viewer, user.id),
    sessions: (user, _args, ctx) => ctx.services.accounts.listSessions(ctx.viewer, user.id),
    apiKeys: (user, _args, ctx) => ctx.services.apiKeys.list(ctx.viewer, user.id),
    webhooks: (user, _args, ctx) => ctx.services.webhooks.list(ctx.viewer, user.id),
  },
  ApiKey: {
    scopes: (key) => key.scopes.map((scope) => (scope === 'read' ? 'READ' : 'CONVERT')),
  },
  Webhook: {
    events: (webhook) => webhook.events.map(toWebhookEvent),
  },
};
