import { describe, expect, it } from 'vitest';
import type { AccountMail } from '@vidmp3/shared';
import { accountMail } from './render.js';

const settings = { publicUrl: 'https://vidmp3.example' };
const TOKEN = 'AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcde';

function event(fields: Partial<AccountMail> = {}): AccountMail {
  return {
    type: 'account-mail',
    eventId: 'mail-1',
    userId: 'user-1',
    kind: 'verify-email',
    to: 'alice@example.com',
    link: `https://vidmp3.example/?verify-email=${TOKEN}`,
    expiresAt: '2026-12-07T10:45:00.000Z',
    at: '2026-12-06T10:45:00.000Z',
    ...fields,
  };
}

const hrefs = (html: string) => [...html.matchAll(/href="([^"]+)"/g)].map((m) => m[1]);
const links = (text: string) => text.match(/https?:\/\/[^\s"<>]+/g) ?? [];

describe('account mails', () => {
  it.each([
    ['verify-email', 'verify-email', 'Confirm your email address'],
    ['reset-password', 'reset-password', 'Reset your vidmp3 password'],
    ['confirm-email-change', 'confirm-email', 'Confirm your new email address'],
  ] as const)('%s: one link, the page with its token, in both parts, with its expiry', (kind, parameter, subject) => {
    const link = `https://vidmp3.example/?${parameter}=${TOKEN}`;
    const mail = accountMail(event({ kind, link }), settings);
    expect(mail.subject).toBe(subject);
    expect(links(mail.text)).toEqual([link]);
    expect(hrefs(mail.html)).toEqual([link]);
    expect(mail.text).toContain('works once, until 7 December 2026, 10:45 UTC');
    expect(mail.html).toContain('works once, until 7 December 2026, 10:45 UTC');
    // Whoever did not ask is told that ignoring it is safe.
    expect(mail.text).toMatch(/If (you did not|it was not you), ignore this email/);
  });

  it.each([
    ['email-changed', 'Your vidmp3 email address was changed'],
    ['password-changed', 'Your vidmp3 password was changed'],
  ] as const)('%s: a notice, linking only to the page', (kind, subject) => {
    const mail = accountMail(event({ kind, link: null, expiresAt: null }), settings);
    expect(mail.subject).toBe(subject);
    expect(links(mail.text)).toEqual(['https://vidmp3.example/']);
    expect(hrefs(mail.html)).toEqual(['https://vidmp3.example/']);
    expect(mail.text).toContain('6 December 2026, 10:45 UTC');
  });

  it('escapes everything it puts in the HTML, the link too', () => {
    const link = 'https://vidmp3.example/?verify-email="><script>alert(1)</script>&x=\'';
    const mail = accountMail(event({ link }), settings);
    expect(mail.html).not.toContain('<script>');
    expect(mail.html).not.toContain('"><script');
    expect(hrefs(mail.html)).toEqual([
      'https://vidmp3.example/?verify-email=&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&amp;x=&#39;',
    ]);
  });

  it('says they come whatever the email settings, unlike conversion emails', () => {
    const mail = accountMail(event(), settings);
    expect(mail.text).toContain('sent whatever your email settings');
    expect(mail.text).not.toContain('turned on conversion emails');
  });
});
