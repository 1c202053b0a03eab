import { randomUUID } from 'node:crypto';
import type { PoolConnection } from 'mysql2/promise';
import {
  ErrorCode,
  requireCapability,
  Topology,
  userError,
  type AccountDeleted,
  type OutboxPublisher,
  type Viewer,
} from '@vidmp3/shared';
import {
  EmailTakenError,
  withoutSecret,
  type UserRecord,
  type UserRepository,
  type UserWithSecret,
} from '../adapters/user-repo.js';
import { normaliseEmail } from './emails.js';
import type { LoginThrottle } from './login-throttle.js';
import { checkPasswordRules, hashPassword, verifyPassword } from './passwords.js';
import type { ActiveSession } from '../adapters/session-repo.js';
import type { SessionService, SessionTokens } from './sessions.js';

/** What signing in, refreshing or changing the password returns (`AuthPayload`). */
export interface AuthResult extends Omit<SessionTokens, 'sessionId'> {
  user: UserRecord;
}

const wrongCredentials = () => userError(ErrorCode.UNAUTHENTICATED, 'Email or password is incorrect');
const sessionEnded = () => userError(ErrorCode.UNAUTHENTICATED, 'This session has ended; log in again');
const notSignedIn = () => userError(ErrorCode.UNAUTHENTICATED, 'Log in first');
const keyRevoked = () => userError(ErrorCode.UNAUTHENTICATED, 'This API key has been revoked');

/** The verification mail of a new account (account-emails.ts): written with the account, sent after the commit. */
export interface SignUpMail {
  verificationOnSignUp(conn: PoolConnection, user: UserRecord): Promise<void>;
  mailed(): void;
}

/** A viewer whose session the users service has checked, with their account. */
interface SignedIn {
  user: UserWithSecret;
  sessionId: string;
}

export class AccountService {
  private constructor(
    private readonly users: UserRepository,
    private readonly sessions: SessionService,
    private readonly throttle: LoginThrottle,
    /** Verified against when the email is unknown, so both failures take the same time. */
    private readonly decoyHash: string,
    /** Where account events go (`AccountDeleted`); without it (some tests) accounts cannot be deleted. */
    private readonly outbox: Pick<OutboxPublisher, 'add' | 'kick'> | undefined,
    private readonly signUpMail?: SignUpMail,
  ) {}

  static async create(
    users: UserRepository,
    sessions: SessionService,
    throttle: LoginThrottle,
    outbox?: Pick<OutboxPublisher, 'add' | 'kick'>,
    signUpMail?: SignUpMail,
  ): Promise<AccountService> {
    return new AccountService(users, sessions, throttle, await hashPassword(randomUUID()), outbox, signUpMail);
  }

  async signUp(emailInput: string, password: string, ip: string): Promise<AuthResult> {
    const email = normaliseEmail(emailInput);
    checkPasswordRules(password, email);
    // Counted after the cheap checks (a typo costs no budget) and before the hash and the insert (which do
    // cost, and tell whether an email has an account).
    await this.throttle.reserveSignUp(ip);
    const user: UserWithSecret = {
      id: randomUUID(),
      email,
      createdAt: new Date(),
      emailVerified: false,
      passwordHash: await hashPassword(password),
    };
    const mail = this.signUpMail;
    try {
      await this.users.insert(user, mail && ((conn) => mail.verificationOnSignUp(conn, withoutSecret(user))));
    } catch (err) {
      if (err instanceof EmailTakenError) {
        throw userError(ErrorCode.CONFLICT, 'An account with this email already exists', { field: 'email' });
      }
      throw err;
    }
    mail?.mailed();
    return this.startSession(user, ip);
  }

  async logIn(emailInput: string, password: string, ip: string): Promise<AuthResult> {
    const email = normaliseEmail(emailInput);
    // Reserved before the password is checked: concurrent guesses wait their turn (a failure is already
    // counted, so there is nothing to record when it fails).
    const attempt = await this.throttle.reserveLogIn(ip, email);
    const user = await this.users.findByEmail(email);
    const ok = await verifyPassword(user?.passwordHash ?? this.decoyHash, password);
    if (!user || !ok) throw wrongCredentials();
    await attempt.succeeded();
    return this.startSession(user, ip);
  }

  /** Trades a refresh token for new tokens (the refresh token is the proof: no access token needed). */
  async refreshSession(refreshToken: string, ip: string): Promise<AuthResult> {
    const { userId, tokens } = await this.sessions.refresh(refreshToken, ip);
    // The session's rows go with the account (foreign key), so a refreshed session has its user.
    const user = await this.users.findById(userId);
    if (!user) throw sessionEnded();
    return { ...withoutSessionId(tokens), user };
  }

  /** Ends the session of the access token; its refresh token and its access tokens stop working here at once. */
  async logOut(viewer: Viewer | null): Promise<true> {
    const { user, sessionId } = await this.requireSession(viewer);
    await this.sessions.end(user.id, sessionId, 'logout');
    return true;
  }

  /** Ends every session of the signed-in user, this one included. */
  async logOutEverywhere(viewer: Viewer | null): Promise<true> {
    const { user } = await this.requireSession(viewer);
    await this.sessions.endAll(user.id, 'logout_everywhere');
    return true;
  }

  /**
   * The user's sessions still going (`User.sessions`), the caller's own marked `current`. Only ever the caller's:
   * `User` resolves for no one else.
   */
  async listSessions(viewer: Viewer | null, userId: string): Promise<(ActiveSession & { current: boolean })[]> {
    const { user, sessionId } = await this.requireSession(viewer);
    if (user.id !== userId) return [];
    const sessions = await this.sessions.listActive(user.id);
    return sessions.map((s) => ({ ...s, current: s.id === sessionId }));
  }

  /** Ends one session of the caller's (any, this one included); NOT_FOUND for one that is not theirs or not going. */
  async endSession(viewer: Viewer | null, id: string): Promise<true> {
    const { user } = await this.requireSession(viewer);
    if (!(await this.sessions.end(user.id, id, 'ended_by_user'))) {
      throw userError(ErrorCode.NOT_FOUND, 'No such session of yours is going', { field: 'id' });
    }
    return true;
  }

  /**
   * Changes the password after checking the current one (through the logIn throttle: a stolen access token
   * buys no extra guesses), ends every session of the user — this one too, so that none of its tokens outlives
   * the change — and starts a new one for this client.
   */
  async changePassword(
    viewer: Viewer | null,
    currentPassword: string,
    newPassword: string,
    ip: string,
  ): Promise<AuthResult> {
    const { user } = await this.requireSession(viewer);
    checkPasswordRules(newPassword, user.email, 'newPassword');
    if (newPassword === currentPassword) {
      throw userError(ErrorCode.BAD_USER_INPUT, 'The new password must differ from the current one', {
        field: 'newPassword',
      });
    }
    const attempt = await this.throttle.reserveLogIn(ip, user.email);
    if (!(await verifyPassword(user.passwordHash, currentPassword))) throw wrongCurrentPassword();
    await attempt.succeeded();
    const newHash = await hashPassword(newPassword);
    // Compare-and-set on the hash just checked: of two changes racing from the same password, one wins.
    if (!(await this.users.changePassword(user.id, user.passwordHash, newHash, new Date()))) {
      throw wrongCurrentPassword();
    }
    return this.startSession({ ...user, passwordHash: newHash }, ip);
  }

  /**
   * Deletes the signed-in user's account after checking their password (through the logIn throttle, as
   * `changePassword` does). One transaction removes the user's row — sessions, refresh tokens, settings and every
   * other table of this service go with it by foreign key — and writes `AccountDeleted` to the outbox, which
   * carries it to media, jobs and the notifier (each removes what it holds of the user). From the commit on,
   * every token of the user is refused here; elsewhere writes are refused once each service has had the event.
   */
  async deleteAccount(viewer: Viewer | null, password: string, ip: string): Promise<true> {
    const { user } = await this.requireSession(viewer);
    const outbox = this.outbox;
    if (!outbox) throw new Error('deleting an account needs the outbox');
    const attempt = await this.throttle.reserveLogIn(ip, user.email);
    if (!(await verifyPassword(user.passwordHash, password))) {
      throw userError(ErrorCode.BAD_USER_INPUT, 'The password is incorrect', { field: 'password' });
    }
    await attempt.succeeded();
    const event: AccountDeleted = {
      type: 'account-deleted',
      eventId: randomUUID(),
      userId: user.id,
      at: new Date().toISOString(),
    };
    // Deleted by its hash just checked: a password changed meanwhile makes this one prove nothing.
    const deleted = await this.users.delete(user, user.passwordHash, (conn) =>
      outbox.add(conn, Topology.accountsExchange, '', event),
    );
    if (!deleted) throw sessionEnded();
    outbox.kick();
    return true;
  }

  /**
   * The caller's own account; null when anonymous. A token of a session that has ended (or of an account that
   * is gone) is refused, although its signature and expiry are still good.
   */
  async me(viewer: Viewer | null): Promise<UserRecord | null> {
    if (!viewer) return null;
    return withoutSecret(await this.requireCaller(viewer));
  }

  /** The signed-in user, their session checked as `me` checks it: for the other services of this subgraph. */
  async signedIn(viewer: Viewer | null): Promise<UserRecord> {
    return withoutSecret((await this.requireSession(viewer)).user);
  }

  /**
   * Entity resolution for `User` references from other subgraphs (`Job.owner`, `Media.owner`). A user is only
   * ever visible to themselves, so a reference to anyone else resolves to null.
   */
  async resolveReference(viewer: Viewer | null, id: string): Promise<UserRecord | null> {
    if (!viewer || viewer.userId !== id) return null;
    return withoutSecret(await this.requireCaller(viewer));
  }

  /**
   * The check of reading: a live session, or an API key that has not been revoked (a key's token is refused
   * here at once after `revokeApiKey`, although its signature and expiry are still good).
   */
  private async requireCaller(viewer: Viewer): Promise<UserWithSecret> {
    if (viewer.apiKeyId === undefined) return (await this.requireSession(viewer)).user;
    requireCapability(viewer, 'read');
    const user = await this.users.findByApiKey(viewer.userId, viewer.apiKeyId);
    if (!user) throw keyRevoked();
    return user;
  }

  /**
   * The access check of every operation on behalf of a signed-in user: the token verified (by the server),
   * and its session (`sid`) still going — which only this service knows. A token without a session id was
   * issued before sessions existed, and cannot be ended: it is refused here. An API key's token is FORBIDDEN:
   * whatever needs a session manages the account, which no key may (`requireCaller` is the check of reading).
   */
  private async requireSession(viewer: Viewer | null): Promise<SignedIn> {
    if (!viewer) throw notSignedIn();
    requireCapability(viewer, 'account');
    const sessionId = viewer.sessionId;
    if (!sessionId) throw sessionEnded();
    const user = await this.users.findBySession(viewer.userId, sessionId);
    if (!user) throw sessionEnded();
    return { user, sessionId };
  }

  private async startSession(user: UserWithSecret, ip: string): Promise<AuthResult> {
    const tokens = await this.sessions.start(user.id, user.passwordHash, ip);
    // The password changed between its check and now: what was checked no longer proves anything.
    if (!tokens) throw wrongCredentials();
    return { ...withoutSessionId(tokens), user: withoutSecret(user) };
  }
}

const wrongCurrentPassword = () =>
  userError(ErrorCode.BAD_USER_INPUT, 'The current password is incorrect', { field: 'currentPassword' });

const withoutSessionId = ({ sessionId: _sessionId, ...tokens }: SessionTokens) => tokens;
