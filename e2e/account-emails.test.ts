// Email verification, password reset and change of address (issue #15), end to end: through the gateway, with
// users' outbox, RabbitMQ, the notifier and a real SMTP server, reading what arrives as a mail client reads it.
// Each link is followed as the page does: the token taken from its query parameter, the mutation called with it.
import mysql from 'mysql2/promise';
import type { ParsedMail } from 'mailparser';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { createClient, Vidmp3Error } from '../sdk/src/index.js';
import { errorCode, graphql, PASSWORD, uniqueEmail } from './client.js';
import { addresses, hrefs, links, MailServer } from './lib/mail-server.js';
import {
  freePort,
  MYSQL_SERVER,
  startService,
  startSystem,
  stopService,
  type ServiceProcess,
  type System,
} from './harness.js';

const FROM_ADDRESS = 'no-reply@vidmp3.test';
const NEW_PASSWORD = 'a brand new passphrase';

let system: System;
let notifier: ServiceProcess;
let smtp: MailServer;
let notifierDb: string;

beforeAll(async () => {
  system = await startSystem({});
  smtp = new MailServer(await freePort());
  await smtp.listen();
  notifierDb = system.databases.jobs.replace('_jobs_', '_notifier_');
  notifier = await startService('notifier', 'workers/notifier/dist/main.js', {
    RABBITMQ_URL: system.rabbitmqUrl,
    MYSQL_URL: `${MYSQL_SERVER}/${notifierDb}`,
    USERS_INTERNAL_URL: system.services.users!.url,
    PUBLIC_URL: system.gatewayUrl,
    SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
    MAIL_FROM: `vidmp3 <${FROM_ADDRESS}>`,
    SEND_POLL_INTERVAL_MS: '100',
    HEALTH_PORT: '0',
  });
}, 120_000);
afterAll(async () => {
  if (notifier) await stopService(notifier);
  await smtp?.close();
  await system?.stop();
  if (notifierDb) {
    const conn = await mysql.createConnection(MYSQL_SERVER);
    await conn.query(`DROP DATABASE IF EXISTS \`${notifierDb}\``);
    await conn.end();
  }
});
beforeEach(() =>
  onTestFailed(() => console.error(`${system.logs()}\n${notifier.logs.map((l) => `[notifier] ${l}`).join('\n')}`)),
);

const USER = 'id email emailVerified';
const SESSION = `accessToken refreshToken user { ${USER} }`;

interface User {
  id: string;
  email: string;
  emailVerified: boolean;
}
interface Session {
  accessToken: string;
  refreshToken: string;
  user: User;
}

const call = <T>(query: string, variables: Record<string, unknown> = {}, token?: string) =>
  graphql<T>(system.gatewayUrl, query, { variables, ...(token ? { token } : {}) });

async function signUp(email = uniqueEmail('mail')): Promise<Session> {
  const res = await call<{ signUp: Session }>(
    `mutation ($email: String!, $password: String!) { signUp(email: $email, password: $password) { ${SESSION} } }`,
    { email, password: PASSWORD },
  );
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data!.signUp;
}

/** Waits for the `n`th mail to `to` with this subject, and returns it. */
async function mailTo(to: string, subject: string, n = 1): Promise<ParsedMail> {
  const matching = () => smtp.to(to).filter((m) => m.subject === subject);
  await expect.poll(() => matching().length, { timeout: 30_000 }).toBeGreaterThanOrEqual(n);
  return matching()[n - 1]!;
}

/**
 * The one link of a mail, the same in its text and HTML parts, on the page, carrying its token in `parameter`;
 * the token, as the page reads it from its URL.
 */
async function tokenOf(mail: ParsedMail, parameter: string): Promise<string> {
  const [link, ...others] = links(mail.text!);
  expect(others).toEqual([]);
  expect(hrefs(mail.html as string)).toEqual([link]);
  const url = new URL(link!);
  expect(`${url.origin}${url.pathname}`).toBe(`${system.gatewayUrl}/`);
  expect([...url.searchParams.keys()]).toEqual([parameter]);
  // The link opens the page (which then calls the mutation, as below).
  const page = await fetch(url);
  expect(page.status).toBe(200);
  expect(page.headers.get('content-type')).toMatch(/^text\/html/);
  return url.searchParams.get(parameter)!;
}

/** Neither users, the gateway nor the notifier ever wrote the token to its log. */
function expectNotLogged(token: string): void {
  expect(system.logs()).not.toContain(token);
  expect(notifier.logs.join('\n')).not.toContain(token);
}

describe('email verification', () => {
  it('mails a link on sign-up that verifies the address, once', async () => {
    const session = await signUp();
    const email = session.user.email;
    expect(session.user.emailVerified).toBe(false);

    const mail = await mailTo(email, 'Confirm your email address');
    expect(addresses(mail.to)).toEqual([email]);
    expect(addresses(mail.from)).toEqual([FROM_ADDRESS]);
    expect(mail.messageId).toMatch(/^<[0-9a-f]{32}@vidmp3\.test>$/);
    expect(mail.headers.get('auto-submitted')).toBe('auto-generated');
    expect(mail.text).toContain('works once, until');
    const token = await tokenOf(mail, 'verify-email');

    const verified = await call<{ verifyEmail: User }>(
      `mutation ($t: String!) { verifyEmail(token: $t) { ${USER} } }`,
      {
        t: token,
      },
    );
    expect(verified.errors, JSON.stringify(verified.errors)).toBeUndefined();
    expect(verified.data!.verifyEmail).toEqual({ ...session.user, emailVerified: true });
    const me = await call<{ me: User }>(`{ me { ${USER} } }`, {}, session.accessToken);
    expect(me.data!.me.emailVerified).toBe(true);

    const again = await call(`mutation ($t: String!) { verifyEmail(token: $t) { id } }`, { t: token });
    expect(errorCode(again)).toBe('BAD_USER_INPUT');
    expect((await call('mutation { resendVerificationEmail }', {}, session.accessToken)).data).toEqual({
      resendVerificationEmail: false,
    });
    expectNotLogged(token);
  }, 60_000);
});

describe('password reset', () => {
  it('answers alike for known and unknown addresses, mails only the known one, and works once', async () => {
    const session = await signUp();
    const email = session.user.email;
    const unknown = uniqueEmail('nobody');
    const request = (address: string) =>
      call<{ requestPasswordReset: boolean }>('mutation ($e: String!) { requestPasswordReset(email: $e) }', {
        e: address,
      });

    const [forUnknown, forKnown] = [await request(unknown), await request(email)];
    expect(forUnknown.data).toEqual({ requestPasswordReset: true });
    expect(forKnown.data).toEqual({ requestPasswordReset: true });
    expect(forUnknown.errors).toBeUndefined();

    const mail = await mailTo(email, 'Reset your vidmp3 password');
    // The unknown address's request came first: had it produced a mail, it would be here by now.
    expect(smtp.to(unknown)).toHaveLength(0);
    const token = await tokenOf(mail, 'reset-password');

    const reset = await call<{ resetPassword: Session }>(
      `mutation ($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) { ${SESSION} } }`,
      { t: token, p: NEW_PASSWORD },
    );
    expect(reset.errors, JSON.stringify(reset.errors)).toBeUndefined();
    expect(reset.data!.resetPassword.user).toMatchObject({ id: session.user.id, emailVerified: true });

    // Every earlier session is over: its refresh token no longer works, nor its access token at users.
    const refreshed = await call('mutation ($r: String!) { refreshSession(refreshToken: $r) { accessToken } }', {
      r: session.refreshToken,
    });
    expect(errorCode(refreshed)).toBe('UNAUTHENTICATED');
    expect(errorCode(await call('{ me { id } }', {}, session.accessToken))).toBe('UNAUTHENTICATED');
    const me = await call<{ me: User }>(`{ me { ${USER} } }`, {}, reset.data!.resetPassword.accessToken);
    expect(me.data!.me.id).toBe(session.user.id);

    const second = await call(
      'mutation ($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) { accessToken } }',
      { t: token, p: 'yet another passphrase' },
    );
    expect(errorCode(second)).toBe('BAD_USER_INPUT');
    const logIn = (password: string) =>
      call('mutation ($e: String!, $p: String!) { logIn(email: $e, password: $p) { accessToken } }', {
        e: email,
        p: password,
      });
    expect(errorCode(await logIn(PASSWORD))).toBe('UNAUTHENTICATED');
    expect((await logIn(NEW_PASSWORD)).errors).toBeUndefined();

    const notice = await mailTo(email, 'Your vidmp3 password was changed');
    expect(links(notice.text!)).toEqual([`${system.gatewayUrl}/`]);
    expectNotLogged(token);
  }, 60_000);
});

describe('change of address', () => {
  it('mails a confirmation to the new address, moves the account once it is used, and tells the old one', async () => {
    const session = await signUp();
    const oldEmail = session.user.email;
    const newEmail = uniqueEmail('moved');

    const wrong = await call(
      'mutation ($e: String!, $p: String!) { requestEmailChange(newEmail: $e, password: $p) }',
      { e: newEmail, p: 'not my password' },
      session.accessToken,
    );
    expect(wrong.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'password' });
    const requested = await call(
      'mutation ($e: String!, $p: String!) { requestEmailChange(newEmail: $e, password: $p) }',
      { e: newEmail, p: PASSWORD },
      session.accessToken,
    );
    expect(requested.data).toEqual({ requestEmailChange: true });

    const mail = await mailTo(newEmail, 'Confirm your new email address');
    const token = await tokenOf(mail, 'confirm-email');
    const confirmed = await call<{ confirmEmailChange: User }>(
      `mutation ($t: String!) { confirmEmailChange(token: $t) { ${USER} } }`,
      { t: token },
    );
    expect(confirmed.errors, JSON.stringify(confirmed.errors)).toBeUndefined();
    expect(confirmed.data!.confirmEmailChange).toEqual({ id: session.user.id, email: newEmail, emailVerified: true });

    const notice = await mailTo(oldEmail, 'Your vidmp3 email address was changed');
    expect(notice.text).not.toContain(newEmail);
    const logIn = (email: string) =>
      call<{ logIn: Session }>(
        `mutation ($e: String!, $p: String!) { logIn(email: $e, password: $p) { ${SESSION} } }`,
        { e: email, p: PASSWORD },
      );
    expect((await logIn(newEmail)).data!.logIn.user.id).toBe(session.user.id);
    expect(errorCode(await logIn(oldEmail))).toBe('UNAUTHENTICATED');
    expect(errorCode(await call('mutation ($t: String!) { confirmEmailChange(token: $t) { id } }', { t: token }))).toBe(
      'BAD_USER_INPUT',
    );
    expectNotLogged(token);

    // The notifier keeps no usable link once the mails have gone.
    const conn = await mysql.createConnection(`${MYSQL_SERVER}/${notifierDb}`);
    try {
      await expect
        .poll(async () => {
          const [rows] = await conn.query<mysql.RowDataPacket[]>(
            "SELECT COUNT(*) AS n FROM notifications WHERE kind LIKE 'account-%' AND status = 'sent' AND text_body IS NOT NULL",
          );
          return Number(rows[0]!.n);
        })
        .toBe(0);
    } finally {
      await conn.end();
    }
  }, 60_000);
});

describe('the SDK', () => {
  it('verifies, resets and moves an account with the tokens from the links', async () => {
    const url = `${system.gatewayUrl}/graphql`;
    const owner = createClient({ url });
    const elsewhere = createClient({ url });
    try {
      const { user } = await owner.signUp(uniqueEmail('sdk'), PASSWORD);
      expect(user.emailVerified).toBe(false);
      const verify = await tokenOf(await mailTo(user.email, 'Confirm your email address'), 'verify-email');
      expect((await elsewhere.verifyEmail(verify)).emailVerified).toBe(true);

      const newEmail = uniqueEmail('sdk-moved');
      await owner.requestEmailChange(newEmail, PASSWORD);
      const confirm = await tokenOf(await mailTo(newEmail, 'Confirm your new email address'), 'confirm-email');
      expect((await elsewhere.confirmEmailChange(confirm)).email).toBe(newEmail);

      await elsewhere.requestPasswordReset(newEmail);
      const reset = await tokenOf(await mailTo(newEmail, 'Reset your vidmp3 password'), 'reset-password');
      await elsewhere.resetPassword(reset, NEW_PASSWORD);
      // The client that reset is signed in; the owner's session ended with the reset.
      expect((await elsewhere.me())?.email).toBe(newEmail);
      const ended = await owner.me().catch((err: unknown) => err);
      expect(ended).toBeInstanceOf(Vidmp3Error);
      expect((ended as Vidmp3Error).code).toBe('UNAUTHENTICATED');
    } finally {
      owner.close();
      elsewhere.close();
    }
  }, 60_000);
});
