import { describe, expect, it, vi } from 'vitest';
import type { Logger } from '@vidmp3/shared';
import { logTransport, messageIdFor } from './mail-transport.js';

const mail = {
  eventId: 'job-1:1:SUCCEEDED',
  to: 'a@example.com',
  subject: 'Your mp3 is ready',
  text: 'hi',
  html: '<p>hi</p>',
};

describe('without SMTP_URL (development)', () => {
  it('writes the mail to the log, marked as not sent, with its text', async () => {
    const warn = vi.fn();
    await logTransport('vidmp3 <no-reply@example.com>', { warn } as unknown as Logger).send(mail);
    expect(warn).toHaveBeenCalledOnce();
    const [fields, message] = warn.mock.calls[0] as [{ mail: Record<string, string> }, string];
    expect(message).toMatch(/^MAIL NOT SENT \(SMTP_URL is not set\)/);
    expect(fields.mail).toMatchObject({ to: 'a@example.com', subject: 'Your mp3 is ready', text: 'hi' });
  });
});

describe('the Message-ID', () => {
  it('is the same for every try of one event’s mail, and differs between events', () => {
    const from = 'vidmp3 <no-reply@example.com>';
    expect(messageIdFor('e1', from)).toBe(messageIdFor('e1', from));
    expect(messageIdFor('e1', from)).not.toBe(messageIdFor('e2', from));
    expect(messageIdFor('e1', from)).toMatch(/^<[0-9a-f]{32}@example\.com>$/);
  });

  it('falls back to a local domain when the From has no address', () => {
    expect(messageIdFor('e1', 'vidmp3')).toMatch(/@vidmp3\.localhost>$/);
  });
});
