import { randomUUID } from 'node:crypto';
import type { PoolConnection } from 'mysql2/promise';
import { ErrorCode, Topology, userError, withTransaction, type AccountMail, type Viewer } from '@vidmp3/shared';
import type { AccountTokenRepository } from '../adapters/account-token-repo.js';
import { EmailTakenError, withoutSecret, type UserRecord, type UserRepository } from '../adapters/user-repo.js';
import type { AccountService, AuthResult } from './accounts.js';
import {
  accountLink,
  hashAccountToken,
  isAccountTokenShaped,
  judgeToken,
  newAccountToken,
  TOKEN_TTL_MS,
  type TokenPurpose,
} from './account-token-policy.js';
import { normaliseEmail } from './emails.js';
import type { LoginThrottle } from './login-throttle.js';
import type { MailThrottle } from './mail-throttle.js';
import { checkPasswordRules, hashPassword, verifyPassword } from './passwords.js';
import type { SessionService } from './sessions.js';

/** Where account mails go out: the users outbox (written in the caller's transaction, published after it). */
export interface MailOutbox {
  add(db: PoolConnection, exchange: string, routingKey: string, payload: unknown): Promise<void>;
  kick(): void;
}

export interface AccountEmailSettings {
  /** The public origin of the page (the gateway): links in mails point there. */
  publicUrl: string;
}

/** One message for every refused link: which of unknown, used, expired or another kind it was is not said. */
const badLink = (field = 'token') =>
  userError(ErrorCode.BAD_USER_INPUT, 'This link is not valid or has expired; ask for a new one', { field });

/**
 * Email verification, password reset and change of address: each mails a single-use link (a token, stored as
 * its sha256 only; account-token-policy.ts) through the outbox, in the transaction that creates it, and each
 * link's use is one transaction that spends it. Tokens are never logged, nor returned anywhere but in the mail.
 */
export class AccountEmailService {
  constructor(
    private readonly users: UserRepository,
    private readonly tokens: AccountTokenRepository,
    /** The signed-in check of every other operation (AccountService.signedIn). */
    private readonly accounts: Pick<AccountService, 'signedIn'>,
    private readonly sessions: SessionService,
    private readonly loginThrottle: LoginThrottle,
    private readonly mailThrottle: MailThrottle,
    private readonly outbox: MailOutbox,
    private readonly settings: AccountEmailSettings,
    private readonly now: () => Date = () => new Date(),
    /** Expired tokens are deleted every this many tokens issued. */
    private readonly sweepEvery = 100,
  ) {}

  private issued = 0;

  /**
   * For signUp, in its transaction: the verification link to the new account's address. The caller kicks the
   * outbox (`mailed`) once it has committed.
   */
  async verificationOnSignUp(conn: PoolConnection, user: UserRecord): Promise<void> {
    await this.issue(conn, user.id, 'verify-email', user.email, null);
  }

  /** signUp has committed: publish its mail now. */
  mailed(): void {
    this.outbox.kick();
  }

  /** Sends the verification link again; false (nothing sent) when the address is verified already. */
  async resendVerificationEmail(viewer: Viewer | null): Promise<boolean> {
    const user = await this.accounts.signedIn(viewer);
    if (user.emailVerified) return false;
    await this.mailThrottle.reserveAccountMail(user.id);
    await this.inTransaction((conn) => this.issue(conn, user.id, 'verify-email', user.email, null));
    this.outbox.kick();
    return true;
  }

  /** Marks the address the link was sent to verified; the link and any older one stop working. */
  async verifyEmail(token: string): Promise<UserRecord> {
    return this.useToken(token, 'verify-email', async (found, conn, at) => {
      const user = await this.users.lockById(conn, found.userId);
      if (!user) throw badLink();
      await this.users.markEmailVerified(conn, user.id, at);
      await this.tokens.spendAll(conn, user.id, ['verify-email'], at);
      return { ...withoutSecret(user), emailVerified: true };
    });
  }

  /**
   * Mails a reset link if the address has an account. The answer is true either way, and the throttle counts
   * the request either way: nothing tells whether the address has an account.
   */
  async requestPasswordReset(emailInput: string, ip: string): Promise<true> {
    const email = normaliseEmail(emailInput);
    await this.mailThrottle.reservePasswordReset(ip, email);
    const user = await this.users.findByEmail(email);
    if (!user) return true;
    await this.inTransaction((conn) => this.issue(conn, user.id, 'reset-password', user.email, null));
    this.outbox.kick();
    return true;
  }

  /**
   * Sets a new password with a reset link, once: every session of the account ends (whoever took it over is
   * out), the owner is told by mail, and a new session starts for this client. The address is verified too:
   * the link reached it.
   */
  async resetPassword(token: string, newPassword: string, ip: string): Promise<AuthResult> {
    if (!isAccountTokenShaped(token)) throw badLink();
    // The rules need the account's address (a password may not contain it), and hashing is slow: both before
    // the token is locked. The token is judged again, locked, below.
    const peek = await this.tokens.find(hashAccountToken(token));
    if (!judgeToken(peek, 'reset-password', this.now()).ok || !peek) throw badLink();
    const owner = await this.users.findById(peek.userId);
    if (!owner) throw badLink();
    checkPasswordRules(newPassword, owner.email, 'newPassword');
    const newHash = await hashPassword(newPassword);
    const user = await this.useToken(token, 'reset-password', async (found, conn, at) => {
      const user = await this.users.lockById(conn, found.userId);
      if (!user) throw badLink();
      await this.users.resetPassword(conn, user.id, newHash, at);
      // Every reset link, and any change of address asked for with the old password, stops working.
      await this.tokens.spendAll(conn, user.id, ['reset-password', 'change-email'], at);
      await this.mail(conn, user.id, 'password-changed', user.email, null, null, at);
      return { ...withoutSecret(user), emailVerified: true };
    });
    this.outbox.kick();
    const tokens = await this.sessions.start(user.id, newHash, ip);
    // The password changed again between the reset and now: this client signs in with that one.
    if (!tokens) throw userError(ErrorCode.UNAUTHENTICATED, 'The password has changed again; log in');
    const { sessionId: _sessionId, ...session } = tokens;
    return { ...session, user };
  }

  /**
   * Mails a confirmation link to `newEmail`; the account moves there once it is used. The password is checked
   * as logIn checks it (a wrong one counts as a failed login: a stolen access token buys no guesses).
   */
  async requestEmailChange(viewer: Viewer | null, newEmailInput: string, password: string, ip: string) {
    const signedIn = await this.accounts.signedIn(viewer);
    const newEmail = normaliseEmailField(newEmailInput, 'newEmail');
    if (newEmail === signedIn.email) {
      throw userError(ErrorCode.BAD_USER_INPUT, 'This is already your email address', { field: 'newEmail' });
    }
    const attempt = await this.loginThrottle.reserveLogIn(ip, signedIn.email);
    const user = await this.users.findByEmail(signedIn.email);
    if (!user || !(await verifyPassword(user.passwordHash, password))) {
      throw userError(ErrorCode.BAD_USER_INPUT, 'The password is incorrect', { field: 'password' });
    }
    await attempt.succeeded();
    // Counted before the address is looked up: asking whether addresses have accounts spends the same budget.
    await this.mailThrottle.reserveAccountMail(user.id);
    if (await this.users.findByEmail(newEmail)) throw emailTaken();
    await this.inTransaction((conn) => this.issue(conn, user.id, 'change-email', newEmail, newEmail));
    this.outbox.kick();
    return true as const;
  }

  /**
   * Moves the account to the address the link was sent to (now verified), and tells the old address. Every
   * outstanding link of the account stops working: they were sent to, or about, the old address.
   */
  async confirmEmailChange(token: string): Promise<UserRecord> {
    const user = await this.useToken(token, 'change-email', async (found, conn, at) => {
      const user = await this.users.lockById(conn, found.userId);
      if (!user || !found.newEmail) throw badLink();
      try {
        await this.users.changeEmail(conn, user.id, found.newEmail, at);
      } catch (err) {
        if (err instanceof EmailTakenError) throw emailTaken();
        throw err;
      }
      await this.tokens.spendAll(conn, user.id, ['verify-email', 'reset-password', 'change-email'], at);
      await this.mail(conn, user.id, 'email-changed', user.email, null, null, at);
      return { ...withoutSecret(user), email: found.newEmail, emailVerified: true };
    });
    this.outbox.kick();
    return user;
  }

  /** Spends a token of `purpose` and does `apply` in the same transaction; BAD_USER_INPUT for any bad token. */
  private async useToken<T>(
    token: string,
    purpose: TokenPurpose,
    apply: (found: { userId: string; newEmail: string | null }, conn: PoolConnection, at: Date) => Promise<T>,
  ): Promise<T> {
    if (!isAccountTokenShaped(token)) throw badLink();
    return this.tokens.withPresentedToken(hashAccountToken(token), async (found, conn) => {
      const at = this.now();
      if (!found || !judgeToken(found, purpose, at).ok) throw badLink();
      return apply(found, conn, at);
    });
  }

  /** A new token and the mail that carries it, in the caller's transaction. */
  private async issue(
    conn: PoolConnection,
    userId: string,
    purpose: TokenPurpose,
    to: string,
    newEmail: string | null,
  ): Promise<void> {
    const at = this.now();
    const { token, hash } = newAccountToken();
    const expiresAt = new Date(at.getTime() + TOKEN_TTL_MS[purpose]);
    await this.tokens.insert(conn, { hash, purpose, userId, newEmail, createdAt: at, expiresAt });
    const kind = purpose === 'change-email' ? 'confirm-email-change' : purpose;
    await this.mail(conn, userId, kind, to, accountLink(this.settings.publicUrl, purpose, token), expiresAt, at);
    this.issued += 1;
    // Housekeeping: a failed sweep is retried by a later one and must not fail the request.
    if (this.issued % this.sweepEvery === 0) await this.tokens.sweep(at).catch(() => undefined);
  }

  private async mail(
    conn: PoolConnection,
    userId: string,
    kind: AccountMail['kind'],
    to: string,
    link: string | null,
    expiresAt: Date | null,
    at: Date,
  ): Promise<void> {
    const message: AccountMail = {
      type: 'account-mail',
      eventId: randomUUID(),
      userId,
      kind,
      to,
      link,
      expiresAt: expiresAt?.toISOString() ?? null,
      at: at.toISOString(),
    };
    await this.outbox.add(conn, Topology.notificationsExchange, Topology.notificationsQueue, message);
  }

  private async inTransaction(work: (conn: PoolConnection) => Promise<void>): Promise<void> {
    await withTransaction(this.tokens.pool, work);
  }
}

const emailTaken = () =>
  userError(ErrorCode.CONFLICT, 'An account with this email already exists', { field: 'newEmail' });

function normaliseEmailField(input: string, field: string): string {
  try {
    return normaliseEmail(input);
  } catch {
    throw userError(ErrorCode.BAD_USER_INPUT, 'Email address is not valid', { field });
  }
}
