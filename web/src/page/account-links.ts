// The links in account mails, and "Forgot password?". A mail links to the page with a single-use token in its
// query (`?verify-email=`, `?reset-password=`, `?confirm-email=`): on load the token is read, taken out of the
// address bar at once (history.replaceState: it stays out of the history, bookmarks and later Referer headers),
// and a small card does what the link is for. Kept apart from main.ts, which owns the session and settings.
import type { Client } from '@vidmp3/sdk';
import { describeError } from './messages.js';

export type AccountLinkAction = 'verify-email' | 'reset-password' | 'confirm-email';

const ACTIONS: readonly AccountLinkAction[] = ['verify-email', 'reset-password', 'confirm-email'];

/** The account link in a page URL, if any (the first of the parameters, when several are there). */
export function readAccountLink(url: URL): { action: AccountLinkAction; token: string } | undefined {
  for (const action of ACTIONS) {
    const token = url.searchParams.get(action);
    if (token) return { action, token };
  }
  return undefined;
}

/** The same URL without any account link parameter (the rest of the query and the hash kept). */
export function withoutAccountLink(url: URL): string {
  const clean = new URL(url.href);
  for (const action of ACTIONS) clean.searchParams.delete(action);
  return `${clean.pathname}${clean.search}${clean.hash}`;
}

export interface AccountLinksOptions {
  client: Pick<Client, 'verifyEmail' | 'confirmEmailChange' | 'requestPasswordReset'>;
  /**
   * Sets the new password and signs this browser in (the page's session keeper: through the gateway's /auth
   * routes, so the new refresh token goes to the HttpOnly cookie, never to this script).
   */
  resetPassword: (token: string, newPassword: string) => Promise<unknown>;
  /** Where the card goes (first in it). */
  container: HTMLElement;
  /** The sign-in form's email field and its "Forgot password?" button, if the page has them. */
  forgot?: { button: HTMLButtonElement; email: HTMLInputElement; result: HTMLElement };
}

/** Handles the account link of this page's URL, if any, and wires "Forgot password?". */
export function startAccountLinks(options: AccountLinksOptions): void {
  if (options.forgot) wireForgotPassword(options);
  const link = readAccountLink(new URL(location.href));
  if (!link) return;
  history.replaceState(history.state, '', withoutAccountLink(new URL(location.href)));
  const card = new Card(options.container);
  switch (link.action) {
    case 'verify-email':
      // Nothing to choose: verifying is what the link is for.
      void card.run('Verifying your email address…', async () => {
        const user = await options.client.verifyEmail(link.token);
        return `Your email address ${user.email} is verified.`;
      });
      return;
    case 'confirm-email':
      card.confirm('Confirm your new email address', 'Use this address', async () => {
        const user = await options.client.confirmEmailChange(link.token);
        return `Your account now uses ${user.email}: log in with it from now on.`;
      });
      return;
    case 'reset-password':
      card.resetPassword(async (newPassword) => {
        await options.resetPassword(link.token, newPassword);
        return 'Your password is changed and you are logged in. Every other device was logged out.';
      });
      return;
  }
}

function wireForgotPassword({ client, forgot }: AccountLinksOptions): void {
  if (!forgot) return;
  forgot.button.addEventListener('click', () => {
    forgot.result.textContent = '';
    const email = forgot.email.value.trim();
    if (!email || !forgot.email.checkValidity()) {
      forgot.result.textContent = 'Enter your email address, then choose "Forgot password?" again.';
      forgot.email.focus();
      return;
    }
    forgot.button.disabled = true;
    client.requestPasswordReset(email).then(
      () => {
        // The same answer whether or not the address has an account (the API never says).
        forgot.result.textContent = `If an account uses ${email}, a link to choose a new password is on its way. It works for 30 minutes.`;
      },
      (error: unknown) => (forgot.result.textContent = describeError(error, 'auth')),
    );
    setTimeout(() => (forgot.button.disabled = false), 3_000);
  });
}

/** The small card at the top of the page: a title, a form or a button, then the result. */
class Card {
  private readonly section = document.createElement('section');
  private readonly heading = document.createElement('h2');
  private readonly body = document.createElement('div');
  private readonly result = document.createElement('p');

  constructor(container: HTMLElement) {
    this.section.className = 'card';
    this.section.id = 'account-link';
    this.heading.id = 'account-link-title';
    this.section.setAttribute('aria-labelledby', this.heading.id);
    this.result.id = 'account-link-result';
    this.result.setAttribute('role', 'status');
    this.section.append(this.heading, this.body, this.result);
    container.prepend(this.section);
  }

  /** Runs `work` at once, saying what it does and then how it went. */
  async run(title: string, work: () => Promise<string>): Promise<boolean> {
    this.heading.textContent = title;
    this.result.classList.remove('error');
    try {
      this.result.textContent = await work();
      this.body.replaceChildren();
      return true;
    } catch (error) {
      this.result.textContent = describeError(error, 'auth');
      this.result.classList.add('error');
      return false;
    }
  }

  confirm(title: string, label: string, work: () => Promise<string>): void {
    this.heading.textContent = title;
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = label;
    button.addEventListener('click', () => {
      button.disabled = true;
      void this.run(title, work);
    });
    this.body.replaceChildren(button);
  }

  resetPassword(work: (newPassword: string) => Promise<string>): void {
    const title = 'Choose a new password';
    this.heading.textContent = title;
    const form = document.createElement('form');
    form.noValidate = true;
    const label = document.createElement('label');
    // Not the settings form's `new-password`: both are in the page at once.
    label.htmlFor = 'reset-new-password';
    label.textContent = 'Your new password';
    const input = document.createElement('input');
    Object.assign(input, {
      id: 'reset-new-password',
      name: 'new-password',
      type: 'password',
      minLength: 10,
      required: true,
    });
    input.autocomplete = 'new-password';
    const help = document.createElement('p');
    help.className = 'help';
    help.textContent = 'At least 10 characters. Every device logged in to your account will be logged out.';
    const actions = document.createElement('div');
    actions.className = 'actions';
    const submit = document.createElement('button');
    submit.type = 'submit';
    submit.textContent = 'Set new password';
    actions.append(submit);
    form.append(label, input, help, actions);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      if (input.value.length < 10) {
        this.result.textContent = 'Choose a password of at least 10 characters.';
        this.result.classList.add('error');
        input.focus();
        return;
      }
      submit.disabled = true;
      void this.run(title, () => work(input.value)).then((done) => {
        submit.disabled = false;
        if (!done) input.focus();
      });
    });
    this.body.replaceChildren(form);
    input.focus();
  }
}
