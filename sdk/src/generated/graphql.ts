/** Internal type. DO NOT USE DIRECTLY. */
type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
/** Internal type. DO NOT USE DIRECTLY. */
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
import type { DocumentTypeDecoration } from '@graphql-typed-document-node/core';
/**
 * What an API key may do. Every key reads (queries and subscriptions); no key manages the account (password,
 * sessions, keys, settings): that takes a logged-in session, and a key gets FORBIDDEN.
 */
export type ApiKeyScope =
  /** Also uploading, converting, cancelling, retrying and deleting (`uploadVideo`, `convertMedia`, `cancelJob`, `retryJob`, `deleteMedia`). */
  | 'CONVERT'
  /** Queries and subscriptions: your media, jobs, usage and account details. */
  | 'READ';

/**
 * How to encode the mp3. Bitrate (kbps): 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192 (default), 224, 256 or 320.
 * Sample rate (Hz): 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100 or 48000 (default: the input's).
 * Channels: 1 or 2 (default: the input's). `startSeconds`/`endSeconds` trim, within the video's duration.
 */
export type ConversionOptions = {
  bitrateKbps?: number | null | undefined;
  channels?: number | null | undefined;
  endSeconds?: number | null | undefined;
  sampleRateHz?: number | null | undefined;
  startSeconds?: number | null | undefined;
};

export type JobStatus =
  /** Cancelled by its owner. */
  | 'CANCELLED'
  /** It could not be converted; `error` says why. */
  | 'FAILED'
  /** Waiting for a converter. */
  | 'QUEUED'
  /** A converter is working on it; `progress` moves from 0 to 1. */
  | 'RUNNING'
  /** Done: `output` is the mp3. */
  | 'SUCCEEDED';

export type MediaKind =
  /** An mp3 produced by a conversion. */
  | 'AUDIO'
  /** An uploaded video. */
  | 'VIDEO';

export type WebhookDeliveryStatus =
  /** Every attempt failed (or the webhook was deleted or disabled before it could be sent). */
  | 'FAILED'
  /** Being sent, or waiting for its next attempt (`nextRetryAt`). */
  | 'PENDING'
  /** The receiver answered with a 2xx status. */
  | 'SUCCEEDED';

/** What a webhook can be told about; its payload's `type` is the lower-case dotted name (`job.succeeded`). */
export type WebhookEvent =
  /** A conversion was cancelled: `job.cancelled`. */
  | 'JOB_CANCELLED'
  /** A conversion failed: `job.failed`. */
  | 'JOB_FAILED'
  /** A conversion was queued (created, or retried after failing): `job.queued`. */
  | 'JOB_QUEUED'
  /** A conversion started on a worker: `job.running`. */
  | 'JOB_RUNNING'
  /** A conversion finished and its mp3 is ready: `job.succeeded`. */
  | 'JOB_SUCCEEDED'
  /** A media of yours was deleted: `media.deleted`. */
  | 'MEDIA_DELETED';

export type NotificationSettingsFieldsFragment = { conversionEmails: boolean };

export type AccountSessionFieldsFragment = { id: string, createdAt: string, lastUsedAt: string, lastUsedIp: string, current: boolean };

export type NotificationSettingsQueryVariables = Exact<{ [key: string]: never; }>;


export type NotificationSettingsQuery = { me: { id: string, notifications: { conversionEmails: boolean } } | null };

export type UpdateNotificationSettingsMutationVariables = Exact<{
  conversionEmails: boolean;
}>;


export type UpdateNotificationSettingsMutation = { updateNotificationSettings: { conversionEmails: boolean } };

export type SessionsQueryVariables = Exact<{ [key: string]: never; }>;


export type SessionsQuery = { me: { id: string, sessions: Array<{ id: string, createdAt: string, lastUsedAt: string, lastUsedIp: string, current: boolean }> } | null };

export type EndSessionMutationVariables = Exact<{
  id: string | number;
}>;


export type EndSessionMutation = { endSession: boolean };

export type ApiKeyFieldsFragment = { id: string, name: string, scopes: Array<ApiKeyScope>, createdAt: string, lastUsedAt: string | null };

export type ApiKeysQueryVariables = Exact<{ [key: string]: never; }>;


export type ApiKeysQuery = { me: { id: string, apiKeys: Array<{ id: string, name: string, scopes: Array<ApiKeyScope>, createdAt: string, lastUsedAt: string | null }> } | null };

export type CreateApiKeyMutationVariables = Exact<{
  name: string;
  scopes: Array<ApiKeyScope> | ApiKeyScope;
}>;


export type CreateApiKeyMutation = { createApiKey: { key: string, apiKey: { id: string, name: string, scopes: Array<ApiKeyScope>, createdAt: string, lastUsedAt: string | null } } };

export type RevokeApiKeyMutationVariables = Exact<{
  id: string | number;
}>;


export type RevokeApiKeyMutation = { revokeApiKey: boolean };

export type UserFieldsFragment = { id: string, email: string, emailVerified: boolean, createdAt: string };

export type SessionFieldsFragment = { accessToken: string, expiresAt: string, refreshToken: string, refreshTokenExpiresAt: string, user: { id: string, email: string, emailVerified: boolean, createdAt: string } };

export type SignUpMutationVariables = Exact<{
  email: string;
  password: string;
}>;


export type SignUpMutation = { signUp: { accessToken: string, expiresAt: string, refreshToken: string, refreshTokenExpiresAt: string, user: { id: string, email: string, emailVerified: boolean, createdAt: string } } };

export type LogInMutationVariables = Exact<{
  email: string;
  password: string;
}>;


export type LogInMutation = { logIn: { accessToken: string, expiresAt: string, refreshToken: string, refreshTokenExpiresAt: string, user: { id: string, email: string, emailVerified: boolean, createdAt: string } } };

export type RefreshSessionMutationVariables = Exact<{
  refreshToken: string;
}>;


export type RefreshSessionMutation = { refreshSession: { accessToken: string, expiresAt: string, refreshToken: string, refreshTokenExpiresAt: string, user: { id: string, email: string, emailVerified: boolean, createdAt: string } } };

export type ChangePasswordMutationVariables = Exact<{
  currentPassword: string;
  newPassword: string;
}>;


export type ChangePasswordMutation = { changePassword: { accessToken: string, expiresAt: string, refreshToken: string, refreshTokenExpiresAt: string, user: { id: string, email: string, emailVerified: boolean, createdAt: string } } };

export type LogOutMutationVariables = Exact<{ [key: string]: never; }>;


export type LogOutMutation = { logOut: boolean };

export type LogOutEverywhereMutationVariables = Exact<{ [key: string]: never; }>;


export type LogOutEverywhereMutation = { logOutEverywhere: boolean };

export type DeleteAccountMutationVariables = Exact<{
  password: string;
}>;


export type DeleteAccountMutation = { deleteAccount: boolean };

export type MeQueryVariables = Exact<{ [key: string]: never; }>;


export type MeQuery = { me: { id: string, email: string, emailVerified: boolean, createdAt: string } | null };

export type ResendVerificationEmailMutationVariables = Exact<{ [key: string]: never; }>;


export type ResendVerificationEmailMutation = { resendVerificationEmail: boolean };

export type VerifyEmailMutationVariables = Exact<{
  token: string;
}>;


export type VerifyEmailMutation = { verifyEmail: { id: string, email: string, emailVerified: boolean, createdAt: string } };

export type RequestPasswordResetMutationVariables = Exact<{
  email: string;
}>;


export type RequestPasswordResetMutation = { requestPasswordReset: boolean };

export type ResetPasswordMutationVariables = Exact<{
  token: string;
  newPassword: string;
}>;


export type ResetPasswordMutation = { resetPassword: { accessToken: string, expiresAt: string, refreshToken: string, refreshTokenExpiresAt: string, user: { id: string, email: string, emailVerified: boolean, createdAt: string } } };

export type RequestEmailChangeMutationVariables = Exact<{
  newEmail: string;
  password: string;
}>;


export type RequestEmailChangeMutation = { requestEmailChange: boolean };

export type ConfirmEmailChangeMutationVariables = Exact<{
  token: string;
}>;


export type ConfirmEmailChangeMutation = { confirmEmailChange: { id: string, email: string, emailVerified: boolean, createdAt: string } };

export type JobFieldsFragment = { id: string, status: JobStatus, progress: number, attempts: number, createdAt: string, startedAt: string | null, finishedAt: string | null, error: { code: string, message: string } | null, input: { id: string, filename: string }, output: { id: string, kind: MediaKind, filename: string, contentType: string, byteSize: number, sha256: string, durationSeconds: number | null, createdAt: string, downloadUrl: string } | null };

export type ConvertMediaMutationVariables = Exact<{
  mediaId: string | number;
  options?: ConversionOptions | null | undefined;
}>;


export type ConvertMediaMutation = { convertMedia: { id: string, status: JobStatus, progress: number, attempts: number, createdAt: string, startedAt: string | null, finishedAt: string | null, error: { code: string, message: string } | null, input: { id: string, filename: string }, output: { id: string, kind: MediaKind, filename: string, contentType: string, byteSize: number, sha256: string, durationSeconds: number | null, createdAt: string, downloadUrl: string } | null } };

export type JobQueryVariables = Exact<{
  id: string | number;
}>;


export type JobQuery = { job: { id: string, status: JobStatus, progress: number, attempts: number, createdAt: string, startedAt: string | null, finishedAt: string | null, error: { code: string, message: string } | null, input: { id: string, filename: string }, output: { id: string, kind: MediaKind, filename: string, contentType: string, byteSize: number, sha256: string, durationSeconds: number | null, createdAt: string, downloadUrl: string } | null } | null };

export type JobsQueryVariables = Exact<{
  status?: JobStatus | null | undefined;
  first?: number | null | undefined;
  after?: string | null | undefined;
}>;


export type JobsQuery = { me: { jobs: { edges: Array<{ node: { id: string, status: JobStatus, progress: number, attempts: number, createdAt: string, startedAt: string | null, finishedAt: string | null, error: { code: string, message: string } | null, input: { id: string, filename: string }, output: { id: string, kind: MediaKind, filename: string, contentType: string, byteSize: number, sha256: string, durationSeconds: number | null, createdAt: string, downloadUrl: string } | null } }>, pageInfo: { hasNextPage: boolean, endCursor: string | null } } } | null };

export type CancelJobMutationVariables = Exact<{
  id: string | number;
}>;


export type CancelJobMutation = { cancelJob: { id: string, status: JobStatus, progress: number, attempts: number, createdAt: string, startedAt: string | null, finishedAt: string | null, error: { code: string, message: string } | null, input: { id: string, filename: string }, output: { id: string, kind: MediaKind, filename: string, contentType: string, byteSize: number, sha256: string, durationSeconds: number | null, createdAt: string, downloadUrl: string } | null } };

export type RetryJobMutationVariables = Exact<{
  id: string | number;
}>;


export type RetryJobMutation = { retryJob: { id: string, status: JobStatus, progress: number, attempts: number, createdAt: string, startedAt: string | null, finishedAt: string | null, error: { code: string, message: string } | null, input: { id: string, filename: string }, output: { id: string, kind: MediaKind, filename: string, contentType: string, byteSize: number, sha256: string, durationSeconds: number | null, createdAt: string, downloadUrl: string } | null } };

export type JobUpdatedSubscriptionVariables = Exact<{
  id: string | number;
}>;


export type JobUpdatedSubscription = { jobUpdated: { id: string, status: JobStatus, progress: number, attempts: number, createdAt: string, startedAt: string | null, finishedAt: string | null, error: { code: string, message: string } | null, input: { id: string, filename: string }, output: { id: string, kind: MediaKind, filename: string, contentType: string, byteSize: number, sha256: string, durationSeconds: number | null, createdAt: string, downloadUrl: string } | null } };

export type MediaFieldsFragment = { id: string, kind: MediaKind, filename: string, contentType: string, byteSize: number, sha256: string, durationSeconds: number | null, createdAt: string, downloadUrl: string };

export type UploadVideoMutationVariables = Exact<{
  file: unknown;
}>;


export type UploadVideoMutation = { uploadVideo: { id: string, kind: MediaKind, filename: string, contentType: string, byteSize: number, sha256: string, durationSeconds: number | null, createdAt: string, downloadUrl: string } };

export type MediaQueryVariables = Exact<{
  id: string | number;
}>;


export type MediaQuery = { media: { id: string, kind: MediaKind, filename: string, contentType: string, byteSize: number, sha256: string, durationSeconds: number | null, createdAt: string, downloadUrl: string } | null };

export type UsageFieldsFragment = { storageBytes: number, storageLimitBytes: number, uploadsInProgress: number, concurrentUploadsLimit: number, activeJobs: number, activeJobsLimit: number, conversionsLastHour: number, conversionsPerHourLimit: number };

export type UsageQueryVariables = Exact<{ [key: string]: never; }>;


export type UsageQuery = { me: { id: string, usage: { storageBytes: number, storageLimitBytes: number, uploadsInProgress: number, concurrentUploadsLimit: number, activeJobs: number, activeJobsLimit: number, conversionsLastHour: number, conversionsPerHourLimit: number } } | null };

export type WebhookFieldsFragment = { id: string, url: string, events: Array<WebhookEvent>, enabled: boolean, disabledReason: string | null, createdAt: string };

export type WebhookDeliveryFieldsFragment = { id: string, eventId: string, eventType: string, status: WebhookDeliveryStatus, attempts: number, responseStatus: number | null, lastError: string | null, nextRetryAt: string | null, createdAt: string, updatedAt: string };

export type WebhooksQueryVariables = Exact<{ [key: string]: never; }>;


export type WebhooksQuery = { me: { id: string, webhooks: Array<{ id: string, url: string, events: Array<WebhookEvent>, enabled: boolean, disabledReason: string | null, createdAt: string }> } | null };

export type CreateWebhookMutationVariables = Exact<{
  url: string;
  events: Array<WebhookEvent> | WebhookEvent;
}>;


export type CreateWebhookMutation = { createWebhook: { secret: string, webhook: { id: string, url: string, events: Array<WebhookEvent>, enabled: boolean, disabledReason: string | null, createdAt: string } } };

export type DeleteWebhookMutationVariables = Exact<{
  id: string | number;
}>;


export type DeleteWebhookMutation = { deleteWebhook: boolean };

export type EnableWebhookMutationVariables = Exact<{
  id: string | number;
}>;


export type EnableWebhookMutation = { enableWebhook: { id: string, url: string, events: Array<WebhookEvent>, enabled: boolean, disabledReason: string | null, createdAt: string } };

export type SendTestWebhookMutationVariables = Exact<{
  id: string | number;
}>;


export type SendTestWebhookMutation = { sendTestWebhook: { id: string, eventId: string, eventType: string, status: WebhookDeliveryStatus, attempts: number, responseStatus: number | null, lastError: string | null, nextRetryAt: string | null, createdAt: string, updatedAt: string } };

export type WebhookDeliveriesQueryVariables = Exact<{
  webhookId: string | number;
  first?: number | null | undefined;
  after?: string | null | undefined;
}>;


export type WebhookDeliveriesQuery = { webhookDeliveries: { edges: Array<{ node: { id: string, eventId: string, eventType: string, status: WebhookDeliveryStatus, attempts: number, responseStatus: number | null, lastError: string | null, nextRetryAt: string | null, createdAt: string, updatedAt: string } }>, pageInfo: { hasNextPage: boolean, endCursor: string | null } } };

export class TypedDocumentString<TResult, TVariables>
  extends String
  implements DocumentTypeDecoration<TResult, TVariables>
{
  __apiType?: NonNullable<DocumentTypeDecoration<TResult, TVariables>['__apiType']>;
  private value: string;
  public __meta__?: Record<string, any> | undefined;

  constructor(value: string, __meta__?: Record<string, any> | undefined) {
    super(value);
    this.value = value;
    this.__meta__ = __meta__;
  }

  override toString(): string & DocumentTypeDecoration<TResult, TVariables> {
    return this.value;
  }
}
export const NotificationSettingsFieldsFragmentDoc = new TypedDocumentString(`
    fragment NotificationSettingsFields on NotificationSettings {
  conversionEmails
}
    `, {"fragmentName":"NotificationSettingsFields"}) as unknown as TypedDocumentString<NotificationSettingsFieldsFragment, unknown>;
export const AccountSessionFieldsFragmentDoc = new TypedDocumentString(`
    fragment AccountSessionFields on Session {
  id
  createdAt
  lastUsedAt
  lastUsedIp
  current
}
    `, {"fragmentName":"AccountSessionFields"}) as unknown as TypedDocumentString<AccountSessionFieldsFragment, unknown>;
export const ApiKeyFieldsFragmentDoc = new TypedDocumentString(`
    fragment ApiKeyFields on ApiKey {
  id
  name
  scopes
  createdAt
  lastUsedAt
}
    `, {"fragmentName":"ApiKeyFields"}) as unknown as TypedDocumentString<ApiKeyFieldsFragment, unknown>;
export const UserFieldsFragmentDoc = new TypedDocumentString(`
    fragment UserFields on User {
  id
  email
  emailVerified
  createdAt
}
    `, {"fragmentName":"UserFields"}) as unknown as TypedDocumentString<UserFieldsFragment, unknown>;
export const SessionFieldsFragmentDoc = new TypedDocumentString(`
    fragment SessionFields on AuthPayload {
  accessToken
  expiresAt
  refreshToken
  refreshTokenExpiresAt
  user {
    ...UserFields
  }
}
    fragment UserFields on User {
  id
  email
  emailVerified
  createdAt
}`, {"fragmentName":"SessionFields"}) as unknown as TypedDocumentString<SessionFieldsFragment, unknown>;
export const MediaFieldsFragmentDoc = new TypedDocumentString(`
    fragment MediaFields on Media {
  id
  kind
  filename
  contentType
  byteSize
  sha256
  durationSeconds
  createdAt
  downloadUrl
}
    `, {"fragmentName":"MediaFields"}) as unknown as TypedDocumentString<MediaFieldsFragment, unknown>;
export const JobFieldsFragmentDoc = new TypedDocumentString(`
    fragment JobFields on Job {
  id
  status
  progress
  attempts
  createdAt
  startedAt
  finishedAt
  error {
    code
    message
  }
  input {
    id
    filename
  }
  output {
    ...MediaFields
  }
}
    fragment MediaFields on Media {
  id
  kind
  filename
  contentType
  byteSize
  sha256
  durationSeconds
  createdAt
  downloadUrl
}`, {"fragmentName":"JobFields"}) as unknown as TypedDocumentString<JobFieldsFragment, unknown>;
export const UsageFieldsFragmentDoc = new TypedDocumentString(`
    fragment UsageFields on Usage {
  storageBytes
  storageLimitBytes
  uploadsInProgress
  concurrentUploadsLimit
  activeJobs
  activeJobsLimit
  conversionsLastHour
  conversionsPerHourLimit
}
    `, {"fragmentName":"UsageFields"}) as unknown as TypedDocumentString<UsageFieldsFragment, unknown>;
export const WebhookFieldsFragmentDoc = new TypedDocumentString(`
    fragment WebhookFields on Webhook {
  id
  url
  events
  enabled
  disabledReason
  createdAt
}
    `, {"fragmentName":"WebhookFields"}) as unknown as TypedDocumentString<WebhookFieldsFragment, unknown>;
export const WebhookDeliveryFieldsFragmentDoc = new TypedDocumentString(`
    fragment WebhookDeliveryFields on WebhookDelivery {
  id
  eventId
  eventType
  status
  attempts
  responseStatus
  lastError
  nextRetryAt
  createdAt
  updatedAt
}
    `, {"fragmentName":"WebhookDeliveryFields"}) as unknown as TypedDocumentString<WebhookDeliveryFieldsFragment, unknown>;
export const NotificationSettingsDocument = new TypedDocumentString(`
    query NotificationSettings {
  me {
    id
    notifications {
      ...NotificationSettingsFields
    }
  }
}
    fragment NotificationSettingsFields on NotificationSettings {
  conversionEmails
}`) as unknown as TypedDocumentString<NotificationSettingsQuery, NotificationSettingsQueryVariables>;
export const UpdateNotificationSettingsDocument = new TypedDocumentString(`
    mutation UpdateNotificationSettings($conversionEmails: Boolean!) {
  updateNotificationSettings(conversionEmails: $conversionEmails) {
    ...NotificationSettingsFields
  }
}
    fragment NotificationSettingsFields on NotificationSettings {
  conversionEmails
}`) as unknown as TypedDocumentString<UpdateNotificationSettingsMutation, UpdateNotificationSettingsMutationVariables>;
export const SessionsDocument = new TypedDocumentString(`
    query Sessions {
  me {
    id
    sessions {
      ...AccountSessionFields
    }
  }
}
    fragment AccountSessionFields on Session {
  id
  createdAt
  lastUsedAt
  lastUsedIp
  current
}`) as unknown as TypedDocumentString<SessionsQuery, SessionsQueryVariables>;
export const EndSessionDocument = new TypedDocumentString(`
    mutation EndSession($id: ID!) {
  endSession(id: $id)
}
    `) as unknown as TypedDocumentString<EndSessionMutation, EndSessionMutationVariables>;
export const ApiKeysDocument = new TypedDocumentString(`
    query ApiKeys {
  me {
    id
    apiKeys {
      ...ApiKeyFields
    }
  }
}
    fragment ApiKeyFields on ApiKey {
  id
  name
  scopes
  createdAt
  lastUsedAt
}`) as unknown as TypedDocumentString<ApiKeysQuery, ApiKeysQueryVariables>;
export const CreateApiKeyDocument = new TypedDocumentString(`
    mutation CreateApiKey($name: String!, $scopes: [ApiKeyScope!]!) {
  createApiKey(name: $name, scopes: $scopes) {
    key
    apiKey {
      ...ApiKeyFields
    }
  }
}
    fragment ApiKeyFields on ApiKey {
  id
  name
  scopes
  createdAt
  lastUsedAt
}`) as unknown as TypedDocumentString<CreateApiKeyMutation, CreateApiKeyMutationVariables>;
export const RevokeApiKeyDocument = new TypedDocumentString(`
    mutation RevokeApiKey($id: ID!) {
  revokeApiKey(id: $id)
}
    `) as unknown as TypedDocumentString<RevokeApiKeyMutation, RevokeApiKeyMutationVariables>;
export const SignUpDocument = new TypedDocumentString(`
    mutation SignUp($email: String!, $password: String!) {
  signUp(email: $email, password: $password) {
    ...SessionFields
  }
}
    fragment UserFields on User {
  id
  email
  emailVerified
  createdAt
}
fragment SessionFields on AuthPayload {
  accessToken
  expiresAt
  refreshToken
  refreshTokenExpiresAt
  user {
    ...UserFields
  }
}`) as unknown as TypedDocumentString<SignUpMutation, SignUpMutationVariables>;
export const LogInDocument = new TypedDocumentString(`
    mutation LogIn($email: String!, $password: String!) {
  logIn(email: $email, password: $password) {
    ...SessionFields
  }
}
    fragment UserFields on User {
  id
  email
  emailVerified
  createdAt
}
fragment SessionFields on AuthPayload {
  accessToken
  expiresAt
  refreshToken
  refreshTokenExpiresAt
  user {
    ...UserFields
  }
}`) as unknown as TypedDocumentString<LogInMutation, LogInMutationVariables>;
export const RefreshSessionDocument = new TypedDocumentString(`
    mutation RefreshSession($refreshToken: String!) {
  refreshSession(refreshToken: $refreshToken) {
    ...SessionFields
  }
}
    fragment UserFields on User {
  id
  email
  emailVerified
  createdAt
}
fragment SessionFields on AuthPayload {
  accessToken
  expiresAt
  refreshToken
  refreshTokenExpiresAt
  user {
    ...UserFields
  }
}`) as unknown as TypedDocumentString<RefreshSessionMutation, RefreshSessionMutationVariables>;
export const ChangePasswordDocument = new TypedDocumentString(`
    mutation ChangePassword($currentPassword: String!, $newPassword: String!) {
  changePassword(currentPassword: $currentPassword, newPassword: $newPassword) {
    ...SessionFields
  }
}
    fragment UserFields on User {
  id
  email
  emailVerified
  createdAt
}
fragment SessionFields on AuthPayload {
  accessToken
  expiresAt
  refreshToken
  refreshTokenExpiresAt
  user {
    ...UserFields
  }
}`) as unknown as TypedDocumentString<ChangePasswordMutation, ChangePasswordMutationVariables>;
export const LogOutDocument = new TypedDocumentString(`
    mutation LogOut {
  logOut
}
    `) as unknown as TypedDocumentString<LogOutMutation, LogOutMutationVariables>;
export const LogOutEverywhereDocument = new TypedDocumentString(`
    mutation LogOutEverywhere {
  logOutEverywhere
}
    `) as unknown as TypedDocumentString<LogOutEverywhereMutation, LogOutEverywhereMutationVariables>;
export const DeleteAccountDocument = new TypedDocumentString(`
    mutation DeleteAccount($password: String!) {
  deleteAccount(password: $password)
}
    `) as unknown as TypedDocumentString<DeleteAccountMutation, DeleteAccountMutationVariables>;
export const MeDocument = new TypedDocumentString(`
    query Me {
  me {
    ...UserFields
  }
}
    fragment UserFields on User {
  id
  email
  emailVerified
  createdAt
}`) as unknown as TypedDocumentString<MeQuery, MeQueryVariables>;
export const ResendVerificationEmailDocument = new TypedDocumentString(`
    mutation ResendVerificationEmail {
  resendVerificationEmail
}
    `) as unknown as TypedDocumentString<ResendVerificationEmailMutation, ResendVerificationEmailMutationVariables>;
export const VerifyEmailDocument = new TypedDocumentString(`
    mutation VerifyEmail($token: String!) {
  verifyEmail(token: $token) {
    ...UserFields
  }
}
    fragment UserFields on User {
  id
  email
  emailVerified
  createdAt
}`) as unknown as TypedDocumentString<VerifyEmailMutation, VerifyEmailMutationVariables>;
export const RequestPasswordResetDocument = new TypedDocumentString(`
    mutation RequestPasswordReset($email: String!) {
  requestPasswordReset(email: $email)
}
    `) as unknown as TypedDocumentString<RequestPasswordResetMutation, RequestPasswordResetMutationVariables>;
export const ResetPasswordDocument = new TypedDocumentString(`
    mutation ResetPassword($token: String!, $newPassword: String!) {
  resetPassword(token: $token, newPassword: $newPassword) {
    ...SessionFields
  }
}
    fragment UserFields on User {
  id
  email
  emailVerified
  createdAt
}
fragment SessionFields on AuthPayload {
  accessToken
  expiresAt
  refreshToken
  refreshTokenExpiresAt
  user {
    ...UserFields
  }
}`) as unknown as TypedDocumentString<ResetPasswordMutation, ResetPasswordMutationVariables>;
export const RequestEmailChangeDocument = new TypedDocumentString(`
    mutation RequestEmailChange($newEmail: String!, $password: String!) {
  requestEmailChange(newEmail: $newEmail, password: $password)
}
    `) as unknown as TypedDocumentString<RequestEmailChangeMutation, RequestEmailChangeMutationVariables>;
export const ConfirmEmailChangeDocument = new TypedDocumentString(`
    mutation ConfirmEmailChange($token: String!) {
  confirmEmailChange(token: $token) {
    ...UserFields
  }
}
    fragment UserFields on User {
  id
  email
  emailVerified
  createdAt
}`) as unknown as TypedDocumentString<ConfirmEmailChangeMutation, ConfirmEmailChangeMutationVariables>;
export const ConvertMediaDocument = new TypedDocumentString(`
    mutation ConvertMedia($mediaId: ID!, $options: ConversionOptions) {
  convertMedia(mediaId: $mediaId, options: $options) {
    ...JobFields
  }
}
    fragment JobFields on Job {
  id
  status
  progress
  attempts
  createdAt
  startedAt
  finishedAt
  error {
    code
    message
  }
  input {
    id
    filename
  }
  output {
    ...MediaFields
  }
}
fragment MediaFields on Media {
  id
  kind
  filename
  contentType
  byteSize
  sha256
  durationSeconds
  createdAt
  downloadUrl
}`) as unknown as TypedDocumentString<ConvertMediaMutation, ConvertMediaMutationVariables>;
export const JobDocument = new TypedDocumentString(`
    query Job($id: ID!) {
  job(id: $id) {
    ...JobFields
  }
}
    fragment JobFields on Job {
  id
  status
  progress
  attempts
  createdAt
  startedAt
  finishedAt
  error {
    code
    message
  }
  input {
    id
    filename
  }
  output {
    ...MediaFields
  }
}
fragment MediaFields on Media {
  id
  kind
  filename
  contentType
  byteSize
  sha256
  durationSeconds
  createdAt
  downloadUrl
}`) as unknown as TypedDocumentString<JobQuery, JobQueryVariables>;
export const JobsDocument = new TypedDocumentString(`
    query Jobs($status: JobStatus, $first: Int, $after: String) {
  me {
    jobs(status: $status, first: $first, after: $after) {
      edges {
        node {
          ...JobFields
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
}
    fragment JobFields on Job {
  id
  status
  progress
  attempts
  createdAt
  startedAt
  finishedAt
  error {
    code
    message
  }
  input {
    id
    filename
  }
  output {
    ...MediaFields
  }
}
fragment MediaFields on Media {
  id
  kind
  filename
  contentType
  byteSize
  sha256
  durationSeconds
  createdAt
  downloadUrl
}`) as unknown as TypedDocumentString<JobsQuery, JobsQueryVariables>;
export const CancelJobDocument = new TypedDocumentString(`
    mutation CancelJob($id: ID!) {
  cancelJob(id: $id) {
    ...JobFields
  }
}
    fragment JobFields on Job {
  id
  status
  progress
  attempts
  createdAt
  startedAt
  finishedAt
  error {
    code
    message
  }
  input {
    id
    filename
  }
  output {
    ...MediaFields
  }
}
fragment MediaFields on Media {
  id
  kind
  filename
  contentType
  byteSize
  sha256
  durationSeconds
  createdAt
  downloadUrl
}`) as unknown as TypedDocumentString<CancelJobMutation, CancelJobMutationVariables>;
export const RetryJobDocument = new TypedDocumentString(`
    mutation RetryJob($id: ID!) {
  retryJob(id: $id) {
    ...JobFields
  }
}
    fragment JobFields on Job {
  id
  status
  progress
  attempts
  createdAt
  startedAt
  finishedAt
  error {
    code
    message
  }
  input {
    id
    filename
  }
  output {
    ...MediaFields
  }
}
fragment MediaFields on Media {
  id
  kind
  filename
  contentType
  byteSize
  sha256
  durationSeconds
  createdAt
  downloadUrl
}`) as unknown as TypedDocumentString<RetryJobMutation, RetryJobMutationVariables>;
export const JobUpdatedDocument = new TypedDocumentString(`
    subscription JobUpdated($id: ID!) {
  jobUpdated(id: $id) {
    ...JobFields
  }
}
    fragment JobFields on Job {
  id
  status
  progress
  attempts
  createdAt
  startedAt
  finishedAt
  error {
    code
    message
  }
  input {
    id
    filename
  }
  output {
    ...MediaFields
  }
}
fragment MediaFields on Media {
  id
  kind
  filename
  contentType
  byteSize
  sha256
  durationSeconds
  createdAt
  downloadUrl
}`) as unknown as TypedDocumentString<JobUpdatedSubscription, JobUpdatedSubscriptionVariables>;
export const UploadVideoDocument = new TypedDocumentString(`
    mutation UploadVideo($file: Upload!) {
  uploadVideo(file: $file) {
    ...MediaFields
  }
}
    fragment MediaFields on Media {
  id
  kind
  filename
  contentType
  byteSize
  sha256
  durationSeconds
  createdAt
  downloadUrl
}`) as unknown as TypedDocumentString<UploadVideoMutation, UploadVideoMutationVariables>;
export const MediaDocument = new TypedDocumentString(`
    query Media($id: ID!) {
  media(id: $id) {
    ...MediaFields
  }
}
    fragment MediaFields on Media {
  id
  kind
  filename
  contentType
  byteSize
  sha256
  durationSeconds
  createdAt
  downloadUrl
}`) as unknown as TypedDocumentString<MediaQuery, MediaQueryVariables>;
export const UsageDocument = new TypedDocumentString(`
    query Usage {
  me {
    id
    usage {
      ...UsageFields
    }
  }
}
    fragment UsageFields on Usage {
  storageBytes
  storageLimitBytes
  uploadsInProgress
  concurrentUploadsLimit
  activeJobs
  activeJobsLimit
  conversionsLastHour
  conversionsPerHourLimit
}`) as unknown as TypedDocumentString<UsageQuery, UsageQueryVariables>;
export const WebhooksDocument = new TypedDocumentString(`
    query Webhooks {
  me {
    id
    webhooks {
      ...WebhookFields
    }
  }
}
    fragment WebhookFields on Webhook {
  id
  url
  events
  enabled
  disabledReason
  createdAt
}`) as unknown as TypedDocumentString<WebhooksQuery, WebhooksQueryVariables>;
export const CreateWebhookDocument = new TypedDocumentString(`
    mutation CreateWebhook($url: String!, $events: [WebhookEvent!]!) {
  createWebhook(url: $url, events: $events) {
    webhook {
      ...WebhookFields
    }
    secret
  }
}
    fragment WebhookFields on Webhook {
  id
  url
  events
  enabled
  disabledReason
  createdAt
}`) as unknown as TypedDocumentString<CreateWebhookMutation, CreateWebhookMutationVariables>;
export const DeleteWebhookDocument = new TypedDocumentString(`
    mutation DeleteWebhook($id: ID!) {
  deleteWebhook(id: $id)
}
    `) as unknown as TypedDocumentString<DeleteWebhookMutation, DeleteWebhookMutationVariables>;
export const EnableWebhookDocument = new TypedDocumentString(`
    mutation EnableWebhook($id: ID!) {
  enableWebhook(id: $id) {
    ...WebhookFields
  }
}
    fragment WebhookFields on Webhook {
  id
  url
  events
  enabled
  disabledReason
  createdAt
}`) as unknown as TypedDocumentString<EnableWebhookMutation, EnableWebhookMutationVariables>;
export const SendTestWebhookDocument = new TypedDocumentString(`
    mutation SendTestWebhook($id: ID!) {
  sendTestWebhook(id: $id) {
    ...WebhookDeliveryFields
  }
}
    fragment WebhookDeliveryFields on WebhookDelivery {
  id
  eventId
  eventType
  status
  attempts
  responseStatus
  lastError
  nextRetryAt
  createdAt
  updatedAt
}`) as unknown as TypedDocumentString<SendTestWebhookMutation, SendTestWebhookMutationVariables>;
export const WebhookDeliveriesDocument = new TypedDocumentString(`
    query WebhookDeliveries($webhookId: ID!, $first: Int, $after: String) {
  webhookDeliveries(webhookId: $webhookId, first: $first, after: $after) {
    edges {
      node {
        ...WebhookDeliveryFields
      }
    }
    pageInfo {
      hasNextPage
      endCursor
    }
  }
}
    fragment WebhookDeliveryFields on WebhookDelivery {
  id
  eventId
  eventType
  status
  attempts
  responseStatus
  lastError
  nextRetryAt
  createdAt
  updatedAt
}`) as unknown as TypedDocumentString<WebhookDeliveriesQuery, WebhookDeliveriesQueryVariables>;