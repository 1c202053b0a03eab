import { describe, expect, it } from 'vitest';
import { createLogger, RETRY_DELAYS_MS, type ConversionRequest, type JobEvent } from '@vidmp3/shared';
import { ConfigSchema } from './config.js';
import { DEFERRALS_HEADER, handleConversion, type ConversionPorts, type StopReason } from './conversion.js';
import { PermanentError, TransientError } from './errors.js';
import { EndEstimate } from './look-ahead.js';

const request: ConversionRequest = {
  jobId: 'job-1',
  attempt: 1,
  ownerId: 'owner-1',
  inputMediaId: 'video-1',
  inputDurationSeconds: 12,
  options: { bitrateKbps: 192, sampleRateHz: null, channels: null, startSeconds: null, endSeconds: null },
  requestId: 'req-1',
};

/** Every port as a fake that records what it was asked, in one timeline. */
function fakes(
  options: {
    claim?: () => Promise<{ proceed: boolean; reason?: string }>;
    transcode?: (signal: AbortSignal) => Promise<void>;
    publish?: (event: JobEvent) => Promise<void>;
    onDemand?: boolean;
    deferrals?: number;
  } = {},
) {
  const calls: string[] = [];
  const events: JobEvent[] = [];
  const retries: { request: ConversionRequest; delayMs: number; headers?: Record<string, string> }[] = [];
  const controller = new AbortController();
  const ports: ConversionPorts = {
    jobs: {
      claim: async () => {
        calls.push('claim');
        return (options.claim ?? (async () => ({ proceed: true })))();
      },
    },
    media: {
      contentUrl: (id) => `http://media.invalid/${id}`,
      authHeaders: () => ({}),
      uploadOutput: async (jobId) => {
        calls.push('upload');
        return { id: `mp3-of-${jobId}` };
      },
    },
    transcode: async (req) => {
      calls.push('ffmpeg');
      req.onStart?.();
      await (options.transcode ?? (async () => undefined))(req.signal);
      calls.push('ffmpeg ended');
    },
    publish: async (_request, event) => {
      calls.push(`event ${event.type}`);
      await (options.publish ?? (async () => undefined))(event);
      events.push(event);
    },
    retryLater: async (retried, delayMs, headers) => {
      calls.push('retry queue');
      retries.push({ request: retried, delayMs, ...(headers ? { headers } : {}) });
    },
    scratch: {
      reserve: () => {
        calls.push('scratch reserved');
        return '/scratch/output.mp3';
      },
      release: async () => {
        calls.push('scratch released');
      },
    },
    settings: ConfigSchema.parse({ MAX_ATTEMPTS: '3' }),
    log: createLogger('test', 'silent'),
    signal: controller.signal,
    delivery: { redelivered: false, deferrals: options.deferrals ?? 0, receivedAt: Date.now(), deliveryTag: 1 },
    slot: async () => {
      calls.push('slot');
      return () => calls.push('slot released');
    },
    ...(options.onDemand ? { takeNext: () => calls.push('take next') } : {}),
    estimate: new EndEstimate(0),
  };
  return { ports, calls, events, retries, stop: (reason: StopReason) => controller.abort(reason) };
}

const types = (events: JobEvent[]) => events.map((e) => e.type);

/** A fake ffmpeg that runs until the conversion is stopped. */
const untilStopped = (signal: AbortSignal) =>
  new Promise<void>((_, reject) => signal.addEventListener('abort', () => reject(new Error('killed')), { once: true }));

describe('handleConversion', () => {
  it('claims, converts, stores the mp3, reports success and acknowledges; its scratch file goes', async () => {
    const { ports, calls, events } = fakes();
    expect(await handleConversion(request, ports)).toEqual({ outcome: 'succeeded', settle: 'ack' });
    // No `started`: the claim told jobs.
    expect(types(events)).toEqual(['succeeded']);
    expect(events[0]).toMatchObject({ jobId: 'job-1', attempt: 1, outputMediaId: 'mp3-of-job-1', requestId: 'req-1' });
    // The slot goes back as soon as ffmpeg has ended, before the upload; the outcome is reported after it.
    expect(calls.indexOf('slot released')).toBeLessThan(calls.indexOf('upload'));
    expect(calls.indexOf('upload')).toBeLessThan(calls.indexOf('event succeeded'));
    expect(calls.at(-1)).toBe('scratch released');
  });

  it('taken on demand, claims before waiting for a slot and takes the next request once the slot is given back', async () => {
    const { ports, calls } = fakes({ onDemand: true });
    await handleConversion(request, ports);
    expect(calls.indexOf('claim')).toBeLessThan(calls.indexOf('slot'));
    expect(calls.indexOf('take next')).toBe(calls.indexOf('slot released') + 1);
    expect(calls.indexOf('take next')).toBeLessThan(calls.indexOf('upload'));
  });

  it('with a fixed prefetch, claims only once it holds a slot (it stays QUEUED while it waits)', async () => {
    const { ports, calls } = fakes();
    await handleConversion(request, ports);
    expect(calls.indexOf('slot')).toBeLessThan(calls.indexOf('claim'));
  });

  it('drops a request whose attempt is not claimed (cancelled, stale, running elsewhere) without running ffmpeg', async () => {
    const { ports, calls, events } = fakes({ claim: async () => ({ proceed: false, reason: 'the job is cancelled' }) });
    expect(await handleConversion(request, ports)).toEqual({ outcome: 'not_claimed', settle: 'ack' });
    expect(events).toEqual([]);
    expect(calls).not.toContain('ffmpeg');
    expect(calls).toContain('scratch released');
  });

  it('asks again later, without spending the attempt, when jobs does not answer the claim', async () => {
    const { ports, events, retries } = fakes({
      claim: () => Promise.reject(new TransientError('jobs is unreachable')),
      deferrals: 1,
    });
    expect(await handleConversion(request, ports)).toEqual({ outcome: 'claim_deferred', settle: 'ack' });
    // Short waits, not the attempts' back-off: the request runs within seconds of jobs coming back.
    expect(retries).toEqual([{ request, delayMs: 2_000, headers: { [DEFERRALS_HEADER]: '2' } }]);
    expect(events).toEqual([]);
  });

  it('asks again every 5 s at most however long jobs stays away', async () => {
    const { ports, retries } = fakes({
      claim: () => Promise.reject(new TransientError('jobs is unreachable')),
      deferrals: 9,
    });
    await handleConversion(request, ports);
    expect(retries.map((r) => r.delayMs)).toEqual([5_000]);
  });

  it('sends a transient failure to the retry queue as the next attempt, and says so', async () => {
    const { ports, events, retries } = fakes({ transcode: () => Promise.reject(new TransientError('media hiccup')) });
    expect(await handleConversion(request, ports)).toEqual({ outcome: 'retried', settle: 'ack' });
    expect(retries).toEqual([{ request: { ...request, attempt: 2 }, delayMs: RETRY_DELAYS_MS[0] }]);
    expect(types(events)).toEqual(['retrying']);
    expect(events[0]).toMatchObject({ attempt: 1, nextAttempt: 2, error: { code: 'TEMPORARY_FAILURE' } });
  });

  it('gives up after the last attempt: the job fails and the request is dead-lettered', async () => {
    const { ports, events, retries } = fakes({ transcode: () => Promise.reject(new TransientError('media hiccup')) });
    const last = { ...request, attempt: 3 };
    expect(await handleConversion(last, ports)).toEqual({ outcome: 'gave_up', settle: 'dead-letter' });
    expect(retries).toEqual([]);
    expect(events.at(-1)).toMatchObject({ type: 'failed', attempt: 3, error: { code: 'GAVE_UP' } });
  });

  it('fails the job at once on a permanent error (bad media), and acknowledges', async () => {
    const { ports, events, retries } = fakes({
      transcode: () => Promise.reject(new PermanentError('UNSUPPORTED_MEDIA', 'The video has no audio.')),
    });
    expect(await handleConversion(request, ports)).toEqual({ outcome: 'failed', settle: 'ack' });
    expect(retries).toEqual([]);
    expect(events.at(-1)).toMatchObject({ type: 'failed', error: { code: 'UNSUPPORTED_MEDIA' } });
  });

  it('reports a cancel and acknowledges when the conversion is stopped for it', async () => {
    const { ports, calls, events, stop } = fakes({ transcode: untilStopped });
    const handled = handleConversion(request, ports);
    await turnsUntil(() => calls.includes('ffmpeg'));
    stop('cancel');
    expect(await handled).toEqual({ outcome: 'cancelled', settle: 'ack' });
    expect(types(events)).toEqual(['cancelled']);
    expect(calls).not.toContain('upload');
  });

  it('hands the request back to RabbitMQ, reporting nothing, when the worker shuts down', async () => {
    const { ports, calls, events, stop } = fakes({ transcode: untilStopped });
    const handled = handleConversion(request, ports);
    await turnsUntil(() => calls.includes('ffmpeg'));
    stop('shutdown');
    expect(await handled).toEqual({ outcome: 'handed_back', settle: 'requeue' });
    expect(types(events)).toEqual([]);
    expect(calls).toContain('scratch released');
  });

  it('fails (the delivery then goes back) when RabbitMQ does not take the outcome', async () => {
    const { ports, calls } = fakes({
      publish: () => Promise.reject(new Error('channel closed')),
    });
    await expect(handleConversion(request, ports)).rejects.toThrow('channel closed');
    expect(calls.at(-1)).toBe('scratch released');
  });
});

/** Waits until `condition` holds (checked after each turn of the event loop); the test's timeout bounds it. */
async function turnsUntil(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}
