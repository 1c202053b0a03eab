// Conversion emails' opt-in (issue #15): stored by users, read by the notifier over the internal API.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, InternalApi, parseConfig, type RunningServer } from '@vidmp3/shared';
import { startUsers } from '../src/app.js';
import { ConfigSchema } from '../src/config.js';

const SERVER = 'mysql://root@127.0.0.1:3306';
const DATABASE = `vidmp3_users_test_${randomBytes(6).toString('hex')}`;
const TOKEN = 'a-service-token-for-this-test';

let users: RunningServer;
let keysDir: string;

beforeAll(async () => {
  keysDir = await mkdtemp(join(tmpdir(), 'vidmp3-users-keys-'));
  const config = parseConfig(ConfigSchema, {
    NODE_ENV: 'test',
    PORT: '0',
    MYSQL_URL: `${SERVER}/${DATABASE}`,
    KEYS_DIR: keysDir,
    INTERNAL_API_TOKEN: TOKEN,
  });
  users = await startUsers(config, createLogger('test', 'silent'));
});

afterAll(async () => {
  await users?.close();
  const conn = await mysql.createConnection(SERVER);
  await conn.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
  await conn.end();
  await rm(keysDir, { recursive: true, force: true });
});

async function graphql<T>(
  query: string,
  token?: string,
): Promise<{ data?: T; errors?: { extensions?: { code?: string } }[] }> {
  const res = await fetch(`${users.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query }),
  });
  return (await res.json()) as { data?: T };
}

async function signUp(): Promise<{ id: string; email: string; token: string }> {
  const email = `n-${randomBytes(4).toString('hex')}@example.com`;
  const res = await graphql<{ signUp: { accessToken: string; user: { id: string } } }>(
    `mutation { signUp(email: "${email}", password: "correct horse battery staple") { accessToken user { id } } }`,
  );
  return { id: res.data!.signUp.user.id, email, token: res.data!.signUp.accessToken };
}

const contact = (userId: string, token = TOKEN) =>
  fetch(`${users.url}${InternalApi.userContact.path(userId)}`, { headers: { authorization: `Bearer ${token}` } });

describe('conversion emails setting', () => {
  it('is off for a new account, and the internal API says so with the address', async () => {
    const user = await signUp();
    const me = await graphql<{ me: { notifications: { conversionEmails: boolean } } }>(
      '{ me { notifications { conversionEmails } } }',
      user.token,
    );
    expect(me.data!.me.notifications).toEqual({ conversionEmails: false });
    const res = await contact(user.id);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ email: user.email, conversionEmails: false });
  });

  it('is turned on and off by its owner, and the notifier sees each change', async () => {
    const user = await signUp();
    for (const on of [true, false, true]) {
      const res = await graphql<{ updateNotificationSettings: { conversionEmails: boolean } }>(
        `mutation { updateNotificationSettings(conversionEmails: ${on}) { conversionEmails } }`,
        user.token,
      );
      expect(res.data!.updateNotificationSettings).toEqual({ conversionEmails: on });
      expect(await (await contact(user.id)).json()).toEqual({ email: user.email, conversionEmails: on });
    }
  });

  it('cannot be changed with the token of a session that has ended', async () => {
    const user = await signUp();
    expect((await graphql<{ logOut: boolean }>('mutation { logOut }', user.token)).data).toEqual({ logOut: true });
    const res = await graphql(
      'mutation { updateNotificationSettings(conversionEmails: true) { conversionEmails } }',
      user.token,
    );
    expect(res.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(await (await contact(user.id)).json()).toEqual({ email: user.email, conversionEmails: false });
  });

  it('cannot be changed without signing in', async () => {
    const res = await graphql('mutation { updateNotificationSettings(conversionEmails: true) { conversionEmails } }');
    expect(res.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });
});

describe('the internal contact route', () => {
  it('answers 404 for a user who does not exist', async () => {
    const res = await contact('00000000-0000-4000-8000-000000000000');
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: 'NOT_FOUND' });
  });

  it('refuses a caller without the service token, or with another one', async () => {
    const user = await signUp();
    expect((await fetch(`${users.url}${InternalApi.userContact.path(user.id)}`)).status).toBe(401);
    expect((await contact(user.id, 'not-the-service-token')).status).toBe(401);
    // A user's own access token is not a service token either.
    expect((await contact(user.id, user.token)).status).toBe(401);
  });
});
