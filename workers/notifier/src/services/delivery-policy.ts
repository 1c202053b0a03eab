// When to try a mail again, and when to stop: pure decisions, unit-tested with tables of cases. The sender
// (mail-sender.ts) does the locking, the SMTP conversation and the writes around them.

export interface RetryPolicy {
  /** The wait after the first failure; each further one doubles it. */
  baseMs: number;
  /** The longest wait between two tries. */
  maxMs: number;
  /** A mail still failing this long after it was queued is given up. */
  giveUpAfterMs: number;
  /** Up to this fraction of each wait is taken off at random, so mails held by one outage do not all retry at once. */
  jitter: number;
}

/** The wait before the next try, after `failures` failed ones (1 or more): exponential, capped, with jitter. */
export function retryDelayMs(failures: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const exponent = Math.max(0, Math.min(failures - 1, 40));
  const capped = Math.min(policy.baseMs * 2 ** exponent, policy.maxMs);
  return Math.round(capped * (1 - policy.jitter * random()));
}

/**
 * Whether an SMTP failure can pass. Only an answer from the server refusing this very mail for good — a 5xx to
 * the envelope (no such mailbox) or to the message — is permanent: sending it again would be refused again.
 * Everything else waits and is tried again: the server unreachable, slow, or saying "try later" (4xx), and
 * also a refused login or TLS (our configuration, which an operator fixes without losing mail).
 */
export function isPermanentFailure(err: unknown): boolean {
  const { code, responseCode } = (err ?? {}) as { code?: unknown; responseCode?: unknown };
  const refused = typeof responseCode === 'number' && responseCode >= 500 && responseCode < 600;
  return refused && (code === 'EENVELOPE' || code === 'EMESSAGE');
}

/**
 * Whether a failure says the server is away (unreachable, refusing connections, timing out), rather than anything
 * about this mail: the other mails due would fail the same way, so the sender waits for its next round instead
 * of trying each of them (one try per round during an outage, each mail keeping its own backoff).
 */
export function isServerAway(err: unknown): boolean {
  const { code, responseCode } = (err ?? {}) as { code?: unknown; responseCode?: unknown };
  // 421: "service not available, closing transmission channel".
  return responseCode === 421 || ['ECONNECTION', 'ESOCKET', 'ETIMEDOUT', 'EDNS'].includes(String(code));
}

export type FailureVerdict = { action: 'retry'; at: Date } | { action: 'give-up'; reason: 'rejected' | 'expired' };

/** After a failed send: when to try again, or why not to. `failures` counts this one. */
export function afterFailure(
  mail: { failures: number; createdAt: Date },
  err: unknown,
  now: Date,
  policy: RetryPolicy,
  random: () => number = Math.random,
): FailureVerdict {
  if (isPermanentFailure(err)) return { action: 'give-up', reason: 'rejected' };
  const at = new Date(now.getTime() + retryDelayMs(mail.failures, policy, random));
  if (at.getTime() - mail.createdAt.getTime() > policy.giveUpAfterMs) return { action: 'give-up', reason: 'expired' };
  return { action: 'retry', at };
}
