import { describe, expect, it } from 'vitest';
import type { ConversionFinished, WebhookDisabled } from '@vidmp3/shared';
import { conversionMail, failureReason, jobPageUrl, webhookDisabledMail } from './render.js';

const settings = { publicUrl: 'https://vidmp3.example' };

function finished(fields: Partial<ConversionFinished> = {}): ConversionFinished {
  return {
    type: 'conversion-finished',
    eventId: 'job-1:1:SUCCEEDED',
    jobId: '2f1c9a7e-0000-4000-8000-000000000001',
    attempt: 1,
    ownerId: 'user-1',
    status: 'SUCCEEDED',
    outputMediaId: 'mp3-media-id',
    errorCode: null,
    finishedAt: '2026-12-06T10:45:00.000Z',
    ...fields,
  };
}

describe('the link to a job’s page', () => {
  it('points at the page on the public origin, naming the job', () => {
    expect(jobPageUrl('https://vidmp3.example', 'job-1')).toBe('https://vidmp3.example/?job=job-1');
  });

  it('keeps a path prefix the site is served under, with or without its trailing slash', () => {
    expect(jobPageUrl('https://example.com/vidmp3', 'j')).toBe('https://example.com/vidmp3/?job=j');
    expect(jobPageUrl('https://example.com/vidmp3/', 'j')).toBe('https://example.com/vidmp3/?job=j');
  });

  it('encodes whatever the id holds', () => {
    expect(jobPageUrl('http://127.0.0.1:4000', 'a&b c')).toBe('http://127.0.0.1:4000/?job=a%26b+c');
  });
});

describe('"your mp3 is ready"', () => {
  const mail = conversionMail(finished(), settings);

  it('says so in the subject, and when, in both parts', () => {
    expect(mail.subject).toBe('Your mp3 is ready');
    expect(mail.text).toContain('6 December 2026, 10:45 UTC');
    expect(mail.html).toContain('6 December 2026, 10:45 UTC');
  });

  it('links to the job’s page in the text and as the HTML link, and to nothing else', () => {
    const link = 'https://vidmp3.example/?job=2f1c9a7e-0000-4000-8000-000000000001';
    expect(mail.text.match(/https?:\/\/\S+/g)).toEqual([link]);
    expect([...mail.html.matchAll(/href="([^"]+)"/g)].map((m) => m[1])).toEqual([link]);
  });

  it('never names the file or a download address', () => {
    for (const part of [mail.text, mail.html]) {
      expect(part).not.toContain('mp3-media-id');
      expect(part).not.toMatch(/\/files\/|download\?|sig=/);
    }
  });

  it('tells why it was sent and how to stop it', () => {
    expect(mail.text).toMatch(/turned on conversion emails.*turn them off/);
  });
});

describe('"your conversion failed"', () => {
  it('gives the reason in plain words, in the text and the HTML part', () => {
    const mail = conversionMail(
      finished({ status: 'FAILED', outputMediaId: null, errorCode: 'UNSUPPORTED_MEDIA', eventId: 'j:1:FAILED' }),
      settings,
    );
    expect(mail.subject).toBe('Your conversion failed');
    expect(mail.text).toContain('the video could not be read');
    expect(mail.html).toContain('the video could not be read');
    expect(mail.text).not.toContain('UNSUPPORTED_MEDIA');
  });

  it.each([
    ['UNSUPPORTED_MEDIA', /could not be read/],
    ['INPUT_GONE', /deleted before/],
    ['QUOTA_EXCEEDED', /storage/],
    ['INVALID_OPTIONS', /settings/],
    ['TIMEOUT', /longer than we allow/],
    ['GAVE_UP', /on our side, several times/],
    ['DELIVERY_LIMIT', /on our side, several times/],
    ['SOMETHING_NEW', /on our side/],
    [null, /on our side/],
  ])('explains %s', (code, words) => {
    expect(failureReason(code)).toMatch(words);
  });
});

describe('the HTML part', () => {
  it('escapes what it shows', () => {
    const mail = conversionMail(finished({ jobId: '"><script>x</script>' }), settings);
    expect(mail.html).not.toContain('<script>');
    expect(mail.html).toContain('href="https://vidmp3.example/?job=%22%3E%3Cscript%3Ex%3C%2Fscript%3E"');
  });
});

describe('"your webhook was turned off"', () => {
  const event: WebhookDisabled = {
    type: 'webhook-disabled',
    eventId: 'webhook-disabled:wh-1:1',
    userId: 'user-1',
    webhookId: 'wh-1',
    url: 'https://hooks.example/in?a=1&b=<script>',
    reason: '5 deliveries in a row failed',
    at: '2026-12-06T10:45:00.000Z',
  };
  const mail = webhookDisabledMail(event, settings);

  it('names the webhook, why and how to turn it back on, in both parts', () => {
    expect(mail.subject).toBe('A vidmp3 webhook of yours was turned off');
    for (const part of [mail.text, mail.html]) {
      expect(part).toContain('5 deliveries in a row failed');
      expect(part).toContain('enableWebhook');
    }
    expect(mail.text).toContain('https://hooks.example/in?a=1&b=<script>');
    expect(mail.text).toContain('https://vidmp3.example');
  });

  it('escapes the URL in the HTML part (it is the owner’s input)', () => {
    expect(mail.html).not.toContain('<script>');
    expect(mail.html).toContain('https://hooks.example/in?a=1&amp;b=&lt;script&gt;');
  });
});
