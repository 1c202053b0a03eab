// What a mail says, as pure functions of the event: unit-tested, no I/O. Every mail has a plain-text part and an
// HTML part saying the same, and links to the job's page on the public site — never to the file or a download
// URL (a mail is forwarded, archived and scanned; the page asks its reader to sign in).
import { JobErrorCode, type AccountMail, type ConversionFinished, type WebhookDisabled } from '@vidmp3/shared';

export interface MailContent {
  subject: string;
  text: string;
  html: string;
}

export interface RenderSettings {
  /** The public origin (and path, if any) the page is served at. */
  publicUrl: string;
}

/**
 * The page that shows one job: the conversion page with the job named in its query. The page itself needs no
 * secret from the mail: it shows the job to its owner once signed in.
 */
export function jobPageUrl(publicUrl: string, jobId: string): string {
  const base = publicUrl.endsWith('/') ? publicUrl : `${publicUrl}/`;
  const url = new URL('./', base);
  url.searchParams.set('job', jobId);
  return url.toString();
}

/** Why a job failed, in words for its owner, with what they can do about it: from its error code. */
export function failureReason(code: string | null): string {
  switch (code ?? '') {
    case JobErrorCode.UNSUPPORTED_MEDIA:
      return 'the video could not be read. It may be damaged, or in a format we cannot convert.';
    case JobErrorCode.INPUT_GONE:
      return 'the video was deleted before it could be converted.';
    case JobErrorCode.QUOTA_EXCEEDED:
      return 'the mp3 would not fit in your storage. Delete some of your files to make room, then try again.';
    case JobErrorCode.INVALID_OPTIONS:
      return 'the conversion settings you chose could not be applied to this video. Try other settings.';
    case JobErrorCode.TIMEOUT:
      return 'the conversion took longer than we allow. A shorter video, or a part of it, may work.';
    case JobErrorCode.GAVE_UP:
    case JobErrorCode.DELIVERY_LIMIT:
      return 'something went wrong on our side, several times in a row. Please try again later.';
    default:
      return 'something went wrong on our side. Please try again later.';
  }
}

const FOOTER =
  'You get this email because you turned on conversion emails. You can turn them off in your account settings.';

/** "6 December 2026, 10:45 UTC" */
function when(iso: string): string {
  const at = new Date(iso);
  const date = at.toLocaleDateString('en-GB', { day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC' });
  const time = at.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit', hour12: false, timeZone: 'UTC' });
  return `${date}, ${time} UTC`;
}

const escapeHtml = (value: string): string =>
  value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function html(title: string, paragraphs: string[], link: { href: string; label: string }, footer = FOOTER): string {
  const body = paragraphs.map((p) => `<p>${escapeHtml(p)}</p>`).join('\n');
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body style="font-family: sans-serif; line-height: 1.5; max-width: 36em">
<h1 style="font-size: 1.3em">${escapeHtml(title)}</h1>
${body}
<p><a href="${escapeHtml(link.href)}">${escapeHtml(link.label)}</a></p>
<p style="color: #666; font-size: 0.9em">${escapeHtml(footer)}</p>
</body>
</html>
`;
}

/** The mail for a finished conversion: "Your mp3 is ready" or "Your conversion failed". */
export function conversionMail(event: ConversionFinished, settings: RenderSettings): MailContent {
  const link = jobPageUrl(settings.publicUrl, event.jobId);
  const finished = when(event.finishedAt);
  switch (event.status) {
    case 'SUCCEEDED': {
      const subject = 'Your mp3 is ready';
      const lines = [
        `Your conversion finished on ${finished}: the mp3 is ready.`,
        'Listen to it or download it from its page (sign in if you are asked to):',
      ];
      return {
        subject,
        text: `Hello,\n\n${lines.join('\n\n')}\n${link}\n\n${FOOTER}\n`,
        html: html(subject, lines, { href: link, label: 'Open your conversion' }),
      };
    }
    case 'FAILED': {
      const subject = 'Your conversion failed';
      const lines = [
        `Your conversion could not be completed (${finished}): ${failureReason(event.errorCode)}`,
        'You can see it, and try it again, on its page:',
      ];
      return {
        subject,
        text: `Hello,\n\n${lines.join('\n\n')}\n${link}\n\n${FOOTER}\n`,
        html: html(subject, lines, { href: link, label: 'Open your conversion' }),
      };
    }
  }
}

const ACCOUNT_FOOTER =
  'You get this email because of your vidmp3 account: it is about your account, so it is sent whatever your email settings.';

/** The page itself (no token): where the informing mails send their reader. */
function pageUrl(publicUrl: string): string {
  return new URL('./', publicUrl.endsWith('/') ? publicUrl : `${publicUrl}/`).toString();
}

/**
 * The mail the account itself needs: a link to act on (verify, reset, confirm a new address) whose token is the
 * only secret in it, or a notice of a change (password, address) that links to the page alone. Everything from
 * the event is escaped in the HTML part; the link is the only action.
 */
export function accountMail(event: AccountMail, settings: RenderSettings): MailContent {
  const until = event.expiresAt ? when(event.expiresAt) : '';
  const page = pageUrl(settings.publicUrl);
  const action = (subject: string, lines: string[], label: string): MailContent => {
    const link = event.link ?? page;
    return {
      subject,
      text: `Hello,\n\n${lines.join('\n\n')}\n${link}\n\n${ACCOUNT_FOOTER}\n`,
      html: html(subject, lines, { href: link, label }, ACCOUNT_FOOTER),
    };
  };
  switch (event.kind) {
    case 'verify-email':
      return action(
        'Confirm your email address',
        [
          'Someone, hopefully you, created a vidmp3 account with this email address. If you did not, ignore this email: nothing happens without the link.',
          `To confirm that this address is yours, open this link (it works once, until ${until}):`,
        ],
        'Confirm your email address',
      );
    case 'reset-password':
      return action(
        'Reset your vidmp3 password',
        [
          'Someone, hopefully you, asked to reset the password of the vidmp3 account with this email address. If it was not you, ignore this email: your password stays as it is.',
          `To choose a new password, open this link (it works once, until ${until}). Every device signed in to your account will be signed out.`,
        ],
        'Choose a new password',
      );
    case 'confirm-email-change':
      return action(
        'Confirm your new email address',
        [
          'Someone, hopefully you, asked to move a vidmp3 account to this email address. If it was not you, ignore this email: nothing changes without the link.',
          `To confirm the change, open this link (it works once, until ${until}):`,
        ],
        'Confirm your new email address',
      );
    case 'email-changed':
      return action(
        'Your vidmp3 email address was changed',
        [
          `The email address of your vidmp3 account was changed on ${when(event.at)}: this address no longer signs in to it, and account emails go to the new one.`,
          'If you did not do this, someone else may have your password: contact the people who run this service.',
          'The service:',
        ],
        'Open vidmp3',
      );
    case 'password-changed':
      return action(
        'Your vidmp3 password was changed',
        [
          `The password of your vidmp3 account was reset on ${when(event.at)}, and every device signed in to it was signed out.`,
          'If you did not do this, reset your password again from the sign-in page ("Forgot password?"):',
        ],
        'Open vidmp3',
      );
  }
}

/**
 * To the owner of a webhook that users disabled after repeated failed deliveries: which one (its URL, escaped
 * like everything else), why, and where to turn it back on. Sent whatever the opt-in settings: an integration
 * stopped working.
 */
export function webhookDisabledMail(event: WebhookDisabled, settings: RenderSettings): MailContent {
  const link = pageUrl(settings.publicUrl);
  const subject = 'A vidmp3 webhook of yours was turned off';
  const lines = [
    `Your webhook ${event.url} was turned off on ${when(event.at)}: ${event.reason}`,
    'No events are sent to it until you turn it back on (`enableWebhook`, or `vidmp3 webhooks enable <id>`), once your receiver answers again. Its deliveries, with each response, are listed by `webhookDeliveries`.',
    'The service:',
  ];
  return {
    subject,
    text: `Hello,\n\n${lines.join('\n\n')}\n${link}\n\n${ACCOUNT_FOOTER}\n`,
    html: html(subject, lines, { href: link, label: 'Open vidmp3' }, ACCOUNT_FOOTER),
  };
}
