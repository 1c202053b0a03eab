import { randomBytes, randomUUID } from 'node:crypto';
import {
  addressKey,
  API_KEY_PREFIX,
  ApiKeyScope,
  ErrorCode,
  hashApiKey,
  isApiKeyShaped,
  userError,
  type Viewer,
} from '@vidmp3/shared';
import type { ApiKeyRecord, ApiKeyRepository } from '../adapters/api-key-repo.js';
import type { CounterStore, CounterWrites } from '../adapters/throttle-store.js';
import { takeFromWindow, type WindowRule } from './throttle-policy.js';
import type { IssuedToken, TokenIssuer } from './tokens.js';

/** What `createApiKey` returns: the key, this once, and its record. */
export interface NewApiKeyResult {
  key: string;
  apiKey: ApiKeyRecord;
}

export interface ApiKeyPolicy {
  /** Keys per user. */
  perUser: number;
  /** Failed exchanges per client address per window; then 429 until the window ends. */
  failuresPerAddress: WindowRule;
}

export const MAX_API_KEY_NAME_LENGTH = 100;
/** The last use is written at most this often per key: a busy script must not turn every request into a write. */
const LAST_USED_RESOLUTION_MS = 60_000;

/** The checks AccountService makes: a live session for managing keys, any live credential for reading them. */
interface Accounts {
  signedIn(viewer: Viewer | null): Promise<{ id: string }>;
}

/** An exchange the users service refuses; the route answers 401 or 429 with its message. */
export class ExchangeRefused extends Error {
  constructor(
    readonly status: 401 | 429,
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

const invalidKey = () => new ExchangeRefused(401, 'Invalid API key');
const noWrites = (): CounterWrites => new Map();

/** A new key: the prefix and 32 random bytes (256 bits) in base64url. */
export function newApiKey(): string {
  return API_KEY_PREFIX + randomBytes(32).toString('base64url');
}

/**
 * API keys (docs/SECURITY.md, "API keys"): created and revoked by a logged-in session, stored as sha256, and
 * exchanged (by the gateway) for short-lived access tokens that carry the key's id and scopes.
 */
export class ApiKeyService {
  constructor(
    private readonly repo: ApiKeyRepository,
    private readonly tokens: TokenIssuer,
    private readonly accounts: Accounts,
    private readonly throttle: CounterStore,
    private readonly policy: ApiKeyPolicy,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async create(
    viewer: Viewer | null,
    nameInput: string,
    scopesInput: readonly ApiKeyScope[],
  ): Promise<NewApiKeyResult> {
    const user = await this.accounts.signedIn(viewer); // a session only: API keys get FORBIDDEN there
    const name = checkName(nameInput);
    if (scopesInput.length === 0) {
      throw userError(ErrorCode.BAD_USER_INPUT, 'Give the key at least one scope', { field: 'scopes' });
    }
    // CONVERT includes READ: stored with both, so that the token's `scope` claim says what it may do.
    const scopes = Object.values(ApiKeyScope).filter(
      (s) => scopesInput.includes(s) || (s === ApiKeyScope.READ && scopesInput.includes(ApiKeyScope.CONVERT)),
    );
    const key = newApiKey();
    const record: ApiKeyRecord = {
      id: randomUUID(),
      userId: user.id,
      name,
      scopes,
      createdAt: this.now(),
      lastUsedAt: null,
    };
    if (!(await this.repo.insert({ ...record, hash: hashApiKey(key) }, this.policy.perUser))) {
      const limit = this.policy.perUser;
      throw userError(ErrorCode.QUOTA_EXCEEDED, `You have ${limit} API keys, the most allowed; revoke one first`, {
        quota: 'apiKeys',
        limit,
        used: limit,
      });
    }
    return { key, apiKey: record };
  }

  /** `User.apiKeys`: reached through a `User` that `me` or entity resolution returned, which checked the caller. */
  async list(viewer: Viewer | null, userId: string): Promise<ApiKeyRecord[]> {
    if (!viewer || viewer.userId !== userId) throw userError(ErrorCode.NOT_FOUND, 'User not found');
    return this.repo.listByUser(userId);
  }

  async revoke(viewer: Viewer | null, id: string): Promise<true> {
    const user = await this.accounts.signedIn(viewer);
    if (!(await this.repo.delete(user.id, id))) throw userError(ErrorCode.NOT_FOUND, 'API key not found');
    return true;
  }

  /**
   * Trades a key for an access token (the gateway's exchange route). Failures are counted per client address
   * and refused with 429 past the policy's budget: a key has 256 bits, so this is about the cost of junk, not
   * about guessing.
   */
  async exchange(key: string, ip: string): Promise<IssuedToken> {
    const counter = `api-key-failures:${addressKey(ip)}`;
    const blockedForMs = await this.throttle.update(
      [counter],
      () => this.now().getTime(),
      (counters, now) => {
        const current = counters.get(counter);
        const rule = this.policy.failuresPerAddress;
        const blocked = current && current.expiresAt > now && current.count >= rule.limit;
        return [blocked ? current.expiresAt - now : 0, noWrites()];
      },
    );
    if (blockedForMs > 0) {
      throw new ExchangeRefused(429, 'Too many invalid API keys from this address', Math.ceil(blockedForMs / 1000));
    }
    const found = isApiKeyShaped(key) ? await this.repo.findByHash(hashApiKey(key)) : null;
    if (!found) {
      await this.throttle.update(
        [counter],
        () => this.now().getTime(),
        (counters, now) => {
          const verdict = takeFromWindow(counters.get(counter), now, this.policy.failuresPerAddress);
          const writes = noWrites();
          if (verdict.allowed) writes.set(counter, verdict.next);
          return [undefined, writes];
        },
      );
      throw invalidKey();
    }
    const now = this.now();
    if (!found.lastUsedAt || now.getTime() - found.lastUsedAt.getTime() >= LAST_USED_RESOLUTION_MS) {
      await this.repo.touch(found.id, now, new Date(now.getTime() - LAST_USED_RESOLUTION_MS));
    }
    return this.tokens.issueForApiKey(found.userId, found.id, found.scopes, now);
  }
}

function checkName(input: string): string {
  const name = input.trim();
  if (name.length === 0 || name.length > MAX_API_KEY_NAME_LENGTH || /\p{Cc}/u.test(name)) {
    throw userError(
      ErrorCode.BAD_USER_INPUT,
      `A key's name has 1 to ${MAX_API_KEY_NAME_LENGTH} characters, without control characters`,
      { field: 'name' },
    );
  }
  return name;
}
