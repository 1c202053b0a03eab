import { randomUUID } from 'node:crypto';
import { ErrorCode, userError, type Viewer } from '@vidmp3/shared';
import { EmailTakenError, type UserRecord, type UserRepository } from '../adapters/user-repo.js';
import { normaliseEmail } from './emails.js';
import type { LoginThrottle } from './login-throttle.js';
import { checkPasswordRules, hashPassword, verifyPassword } from './passwords.js';
import type { TokenIssuer } from './tokens.js';

export interface AuthResult {
  accessToken: string;
  expiresAt: Date;
  user: UserRecord;
}

const wrongCredentials = () => userError(ErrorCode.UNAUTHENTICATED, 'Email or password is incorrect');

export class AccountService {
  private constructor(
    private readonly users: UserRepository,
    private readonly tokens: TokenIssuer,
    private readonly throttle: LoginThrottle,
    /** Verified against when the email is unknown, so both failures take the same time. */
    private readonly decoyHash: string,
  ) {}

  static async create(users: UserRepository, tokens: TokenIssuer, throttle: LoginThrottle): Promise<AccountService> {
    return new AccountService(users, tokens, throttle, await hashPassword(randomUUID()));
  }

  async signUp(emailInput: string, password: string, ip: string): Promise<AuthResult> {
    const email = normaliseEmail(emailInput);
    checkPasswordRules(password, email);
    // Counted after the cheap checks (a typo costs no budget) and before the hash and the insert (which do
    // cost, and tell whether an email has an account).
    await this.throttle.reserveSignUp(ip);
    const user = { id: randomUUID(), email, createdAt: new Date(), passwordHash: await hashPassword(password) };
    try {
      await this.users.insert(user);
    } catch (err) {
      if (err instanceof EmailTakenError) {
        throw userError(ErrorCode.CONFLICT, 'An account with this email already exists', { field: 'email' });
      }
      throw err;
    }
    return this.authenticated({ id: user.id, email: user.email, createdAt: user.createdAt });
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
    return this.authenticated({ id: user.id, email: user.email, createdAt: user.createdAt });
  }

  /** The caller's own account; null when anonymous (or the account no longer exists). */
  async me(viewer: Viewer | null): Promise<UserRecord | null> {
    if (!viewer) return null;
    return this.users.findById(viewer.userId);
  }

  /**
   * Entity resolution for `User` references from other subgraphs (`Job.owner`, `Media.owner`). A user is only
   * ever visible to themselves, so a reference to anyone else resolves to null.
   */
  async resolveReference(viewer: Viewer | null, id: string): Promise<UserRecord | null> {
    if (!viewer || viewer.userId !== id) return null;
    return this.users.findById(id);
  }

  private authenticated(user: UserRecord): AuthResult {
    return { ...this.tokens.issue(user.id), user };
  }
}
