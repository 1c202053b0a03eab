import http from 'node:http';
import https from 'node:https';
import type { LookupAddress } from 'node:dns';
import { Webhook } from 'standardwebhooks';
import { checkWebhookTarget, type WebhookTargetOptions } from '@vidmp3/shared';

/** The address a webhook's host was checked to have; the connection goes there and nowhere else. */
export interface CheckedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves and checks a webhook URL's host (refusing private, loopback, link-local, metadata addresses); throws. */
export type CheckTarget = (url: string) => Promise<CheckedAddress>;

/**
 * The check of shared's webhook-target.ts (the one users applies when a webhook is created), made again before every
 * attempt: the address to connect to is the first one it resolved, all of which it found allowed.
 */
export function addressChecker(options: Omit<WebhookTargetOptions, 'resolve'>): CheckTarget {
  return async (url) => {
    const { addresses } = await checkWebhookTarget(url, options);
    const first = addresses[0]!;
    return { address: first.address, family: first.family === 6 ? 6 : 4 };
  };
}

export interface HttpLimits {
  /** Establishing TCP (and TLS). */
  connectTimeoutMs: number;
  /** The whole attempt, to the end of the response read. */
  timeoutMs: number;
  /** Bytes of the response body read at most; the rest is not read (the connection is closed). */
  maxResponseBytes: number;
}

/** What one POST came to: the receiver's status (null when none came), and what went wrong, if anything. */
export interface AttemptResult {
  ok: boolean;
  status: number | null;
  error: string | null;
}

export const USER_AGENT = 'vidmp3-webhooks/1.0';

/** The Standard Webhooks headers of a message: `webhook-signature` is `v1,<base64 HMAC-SHA256 of id.timestamp.body>`. */
export function signedHeaders(secret: string, id: string, at: Date, body: string): Record<string, string> {
  return {
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    // The package takes the secret as `whsec_<base64>` (or bare base64) and signs with its decoded bytes.
    'webhook-signature': new Webhook(secret).sign(id, at, body),
  };
}

/**
 * POSTs `body` to `url`, connecting to `checked` — the address the check resolved, never a second resolution, so
 * a name that changes its answer in between (DNS rebinding) still reaches only the checked address. Host header
 * and TLS name (SNI, certificate check) stay the URL's host. No redirects (3xx is a failure), short timeouts, and
 * at most `maxResponseBytes` of the response read. Never throws: every failure is an unsuccessful result.
 */
export function postWebhook(
  url: string,
  checked: CheckedAddress,
  headers: Record<string, string>,
  body: string,
  limits: HttpLimits,
): Promise<AttemptResult> {
  return new Promise((resolve) => {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      resolve({ ok: false, status: null, error: 'malformed URL' });
      return;
    }
    const lookup = (
      _host: string,
      options: { all?: boolean },
      callback: (err: Error | null, address: string | LookupAddress[], family?: number) => void,
    ) => {
      if (options.all) callback(null, [{ address: checked.address, family: checked.family }]);
      else callback(null, checked.address, checked.family);
    };
    const client = target.protocol === 'https:' ? https : http;
    let done = false;
    /** Decided by the response's status line; what follows is only read (or not) to close politely. */
    let answered: AttemptResult | null = null;
    const finish = (result: AttemptResult) => {
      if (done) return;
      done = true;
      clearTimeout(whole);
      clearTimeout(connecting);
      req.destroy();
      resolve(result);
    };
    const req = client.request(target, {
      method: 'POST',
      headers: {
        ...headers,
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
        'user-agent': USER_AGENT,
      },
      lookup,
      // No pooled connection: each attempt connects (and checks) afresh.
      agent: false,
    });
    const whole = setTimeout(
      () => finish(answered ?? { ok: false, status: null, error: `no answer within ${limits.timeoutMs} ms` }),
      limits.timeoutMs,
    );
    const connecting = setTimeout(
      () => finish({ ok: false, status: null, error: `could not connect within ${limits.connectTimeoutMs} ms` }),
      limits.connectTimeoutMs,
    );
    req.on('socket', (socket) => {
      socket.once(target.protocol === 'https:' ? 'secureConnect' : 'connect', () => clearTimeout(connecting));
    });
    req.on('error', (err) => finish(answered ?? { ok: false, status: null, error: describe(err) }));
    req.on('response', (res) => {
      const code = res.statusCode ?? 0;
      const ok = code >= 200 && code < 300;
      const error = ok
        ? null
        : code >= 300 && code < 400
          ? `redirect (${code}) refused: webhooks are not redirected`
          : `the receiver answered ${code}`;
      const result: AttemptResult = { ok, status: code, error };
      answered = result;
      // The body is read only to let the receiver finish, up to the cap; its content is not kept.
      let read = 0;
      res.on('data', (chunk: Buffer) => {
        read += chunk.length;
        if (read >= limits.maxResponseBytes) finish(result);
      });
      res.on('end', () => finish(result));
      res.on('error', () => finish(result));
    });
    req.end(body);
  });
}

function describe(err: unknown): string {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  const text = typeof message === 'string' ? message : String(err);
  return (typeof code === 'string' && !text.includes(code) ? `${code}: ${text}` : text).slice(0, 500);
}

/**
 * One attempt's POST, as the sender makes it: the target checked at send time (a name can point elsewhere by now),
 * then the signed body sent to the checked address. A refused or unresolvable target is an unsuccessful attempt
 * (nothing is sent), retried like any other: a name that resolves nowhere now may resolve later.
 */
export function webhookPoster(checkTarget: CheckTarget, limits: HttpLimits, now: () => Date = () => new Date()) {
  return async (
    target: { url: string; secret: string },
    message: { eventId: string; payload: unknown },
  ): Promise<AttemptResult> => {
    let checked: CheckedAddress;
    try {
      checked = await checkTarget(target.url);
    } catch (err) {
      return { ok: false, status: null, error: describe(err) };
    }
    const body = JSON.stringify(message.payload);
    let headers: Record<string, string>;
    try {
      headers = signedHeaders(target.secret, message.eventId, now(), body);
    } catch {
      // Not base64 after its `whsec_`: users stored something it should not have; nothing can be signed.
      return { ok: false, status: null, error: 'the webhook’s signing secret is unusable' };
    }
    return postWebhook(target.url, checked, headers, body, limits);
  };
}
