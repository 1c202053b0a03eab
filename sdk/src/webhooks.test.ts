import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { Vidmp3Error } from './errors.js';
import { verifyWebhook } from './webhooks.js';

const secret = `whsec_${randomBytes(32).toString('base64')}`;
const body = JSON.stringify({
  type: 'job.succeeded',
  timestamp: '2026-12-06T12:00:00.000Z',
  data: { jobId: 'j1', outputMediaId: 'm2' },
});

/** The headers of a delivery, signed by the reference implementation as the sender signs them. */
function signed(payload = body, at = new Date(), key = secret): Record<string, string> {
  return {
    'webhook-id': 'j1:1:SUCCEEDED',
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': new Webhook(key).sign('j1:1:SUCCEEDED', at, payload),
  };
}

function failure(run: () => unknown): Vidmp3Error {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(Vidmp3Error);
    return err as Vidmp3Error;
  }
  throw new Error('expected verifyWebhook to throw');
}

describe('verifyWebhook', () => {
  it('returns the payload of a delivery signed with the secret, from a string, bytes or fetch Headers', () => {
    const expected = JSON.parse(body) as unknown;
    expect(verifyWebhook(secret, signed(), body)).toEqual(expected);
    expect(verifyWebhook(secret, signed(), Buffer.from(body))).toEqual(expected);
    expect(verifyWebhook(secret, new Headers(signed()), new TextEncoder().encode(body))).toEqual(expected);
    // Node hands headers over lower-cased; other frameworks may not.
    const upper = Object.fromEntries(Object.entries(signed()).map(([k, v]) => [k.toUpperCase(), v]));
    expect(verifyWebhook(secret, upper, body)).toEqual(expected);
  });

  it('refuses a body changed after signing', () => {
    const err = failure(() => verifyWebhook(secret, signed(), body.replace('j1', 'j9')));
    expect(err.code).toBe('INVALID_WEBHOOK');
    expect(err.message).toBe('Webhook verification failed: No matching signature found');
  });

  it('refuses a delivery signed with another secret, or without the signature headers', () => {
    const other = `whsec_${randomBytes(32).toString('base64')}`;
    expect(failure(() => verifyWebhook(secret, signed(body, new Date(), other), body)).code).toBe('INVALID_WEBHOOK');
    expect(failure(() => verifyWebhook(secret, {}, body)).message).toBe(
      'Webhook verification failed: Missing required headers',
    );
  });

  it('refuses a replay of an old delivery', () => {
    const err = failure(() => verifyWebhook(secret, signed(body, new Date(Date.now() - 10 * 60_000)), body));
    expect(err.message).toBe('Webhook verification failed: Message timestamp too old');
  });

  it('refuses a signed body that is not a vidmp3 event', () => {
    expect(failure(() => verifyWebhook(secret, signed('[1,2]'), '[1,2]')).message).toBe(
      'Webhook verification failed: the payload is not a vidmp3 event',
    );
  });
});
