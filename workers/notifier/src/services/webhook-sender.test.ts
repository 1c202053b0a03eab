import { describe, expect, it, vi } from 'vitest';
import { createLogger, WEBHOOK_RETRY_DELAYS_MS, type WebhookDelivery } from '@vidmp3/shared';
import type { AttemptRecord } from '../adapters/webhooks-client.js';
import type { AttemptResult } from '../adapters/webhook-http.js';
import { retryDelayAfter, WebhookSender, type Persist } from './webhook-sender.js';

const logger = createLogger('test', 'silent');
const now = new Date('2026-12-06T12:00:00.000Z');
const delays = [1_000, 5_000];
const target = { url: 'https://receiver.example/hook', secret: 'whsec_c2VjcmV0', enabled: true };

const delivery = (attempt: number): WebhookDelivery => ({
  deliveryId: 'd-1',
  webhookId: 'w-1',
  eventId: 'job-1:1:SUCCEEDED',
  eventType: 'job.succeeded',
  payload: { type: 'job.succeeded', timestamp: now.toISOString(), data: { id: 'job-1' } },
  attempt,
});

/** A sender whose POSTs answer `results` in turn, recording what it records and publishes. */
function senderWith(
  results: AttemptResult[],
  options: { target?: typeof target | null; webhookEnabled?: boolean; failFirstRecord?: boolean } = {},
) {
  const recorded: AttemptRecord[] = [];
  const published: { next: WebhookDelivery; delayMs: number }[] = [];
  let failures = 0;
  const post = vi.fn(async () => results.shift() ?? { ok: true, status: 200, error: null });
  const sender = new WebhookSender(
    {
      target: async () => (options.target === undefined ? target : options.target),
      recordAttempt: async (_id, record) => {
        if (options.failFirstRecord && failures++ === 0) throw new Error('users is away');
        recorded.push(record);
        return { webhookEnabled: options.webhookEnabled ?? true };
      },
    },
    post,
    async (next, delayMs) => {
      published.push({ next, delayMs });
    },
    { retryDelaysMs: delays, now: () => now },
    logger,
  );
  return { sender, recorded, published, post };
}

const direct: Persist = (step) => step();

describe('one attempt of a delivery', () => {
  it('records a success and queues nothing more', async () => {
    const { sender, recorded, published, post } = senderWith([{ ok: true, status: 200, error: null }]);
    expect(await sender.handle(delivery(1), direct)).toBe('succeeded');
    expect(post).toHaveBeenCalledWith(target, delivery(1));
    expect(recorded).toEqual([
      { attempt: 1, outcome: 'succeeded', responseStatus: 200, error: null, nextRetryAt: null },
    ]);
    expect(published).toEqual([]);
  });

  it('records a failure as retrying, with the next attempt queued after its delay', async () => {
    const { sender, recorded, published } = senderWith([
      { ok: false, status: 500, error: 'the receiver answered 500' },
    ]);
    expect(await sender.handle(delivery(2), direct)).toBe('retrying');
    expect(recorded).toEqual([
      {
        attempt: 2,
        outcome: 'retrying',
        responseStatus: 500,
        error: 'the receiver answered 500',
        nextRetryAt: '2026-12-06T12:00:05.000Z',
      },
    ]);
    expect(published).toEqual([{ next: delivery(3), delayMs: 5_000 }]);
  });

  it('records the last attempt’s failure as failed, with no further attempt', async () => {
    const { sender, recorded, published } = senderWith([{ ok: false, status: null, error: 'no answer within 10 ms' }]);
    expect(await sender.handle(delivery(3), direct)).toBe('failed');
    expect(recorded).toEqual([
      { attempt: 3, outcome: 'failed', responseStatus: null, error: 'no answer within 10 ms', nextRetryAt: null },
    ]);
    expect(published).toEqual([]);
  });

  it('takes 410 Gone as final', async () => {
    const { sender, recorded, published } = senderWith([
      { ok: false, status: 410, error: 'the receiver answered 410' },
    ]);
    expect(await sender.handle(delivery(1), direct)).toBe('failed');
    expect(recorded.map((r) => r.outcome)).toEqual(['failed']);
    expect(published).toEqual([]);
  });

  it.each([
    ['deleted', null],
    ['disabled', { ...target, enabled: false }],
  ])('sends nothing and records nothing for a webhook %s meanwhile', async (_why, current) => {
    const { sender, recorded, published, post } = senderWith([], { target: current });
    expect(await sender.handle(delivery(2), direct)).toBe('skipped');
    expect(post).not.toHaveBeenCalled();
    expect(recorded).toEqual([]);
    expect(published).toEqual([]);
  });

  it('queues no further attempt once users has disabled the webhook', async () => {
    const { sender, recorded, published } = senderWith([{ ok: false, status: 500, error: 'x' }], {
      webhookEnabled: false,
    });
    expect(await sender.handle(delivery(1), direct)).toBe('failed');
    expect(recorded.map((r) => r.outcome)).toEqual(['retrying']);
    expect(published).toEqual([]);
  });

  it('tries a failing record again through `persist`, without a second POST', async () => {
    const { sender, recorded, published, post } = senderWith([{ ok: false, status: 500, error: 'x' }], {
      failFirstRecord: true,
    });
    const retried: Persist = async (step) => {
      try {
        return await step();
      } catch {
        return step();
      }
    };
    expect(await sender.handle(delivery(1), retried)).toBe('retrying');
    expect(post).toHaveBeenCalledOnce();
    expect(recorded.map((r) => r.outcome)).toEqual(['retrying']);
    expect(published).toHaveLength(1);
  });
});

describe('the retry schedule', () => {
  it('waits each configured delay in turn, and ends after one attempt more than there are delays', () => {
    expect([1, 2, 3].map((attempt) => retryDelayAfter(attempt, delays))).toEqual([1_000, 5_000, null]);
  });

  it('spreads nine attempts over about a day by default, each wait longer or equal to the last', () => {
    const total = WEBHOOK_RETRY_DELAYS_MS.reduce((sum, d) => sum + d, 0);
    expect(WEBHOOK_RETRY_DELAYS_MS).toHaveLength(8);
    expect(total / 3_600_000).toBeGreaterThan(20);
    expect(total / 3_600_000).toBeLessThan(28);
    expect([...WEBHOOK_RETRY_DELAYS_MS].every((d, i, all) => i === 0 || d >= all[i - 1]!)).toBe(true);
    expect(retryDelayAfter(9, WEBHOOK_RETRY_DELAYS_MS)).toBeNull();
  });
});
