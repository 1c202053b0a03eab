// The SDK keeps a session alive against the whole system (real processes, MariaDB, RabbitMQ, ffmpeg): it
// refreshes before the access token expires and when the server says it has, over HTTP and over the
// WebSocket, hands every new session to `onSession`, and signs out when the server ends the session.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { PASSWORD, uniqueEmail } from '../../e2e/client.js';
import { generateVideo } from '../../e2e/fixtures.js';
import { startSystem, type System } from '../../e2e/harness.js';
import { createClient, type Client, type Job, type Session } from '../src/index.js';

// The shortest access-token life the users service takes: the WebSocket test outlives one token.
const ACCESS_TOKEN_TTL_SECONDS = 60;

let system: System;
let url: string;
let workDir: string;
const clients: Client[] = [];

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'vidmp3-sdk-sessions-'));
  system = await startSystem({ users: { ACCESS_TOKEN_TTL_SECONDS: String(ACCESS_TOKEN_TTL_SECONDS) } });
  url = `${system.gatewayUrl}/graphql`;
}, 120_000);
afterAll(async () => {
  for (const client of clients) client.close();
  await system?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});
beforeEach(() => onTestFailed(() => console.error(system.logs())));

/** A client and every session it announced. */
function client(session?: Session) {
  const sessions: (Session | null)[] = [];
  const c = createClient({ url, session, onSession: (s) => sessions.push(s) });
  clients.push(c);
  return { c, sessions };
}

const sid = (token: string) => (jwt.decode(token) as { sid: string }).sid;

describe('SDK sessions', () => {
  it('announces the session of a sign-up, and uses it', async () => {
    const { c, sessions } = client();
    const email = uniqueEmail('sdk-session');
    const payload = await c.signUp(email, PASSWORD);
    expect(sessions).toHaveLength(1);
    expect(sessions[0]).toEqual({
      accessToken: payload.accessToken,
      expiresAt: payload.expiresAt,
      refreshToken: payload.refreshToken,
      refreshTokenExpiresAt: payload.refreshTokenExpiresAt,
    });
    expect(c.session?.refreshToken).toBe(payload.refreshToken);
    expect((await c.me())?.email).toBe(email);
  });

  it('refreshes a kept session whose access token is about to expire before its first request', async () => {
    const { c: first } = client();
    await first.signUp(uniqueEmail('sdk-session'), PASSWORD);
    const kept = { ...first.session!, expiresAt: new Date(Date.now() + 5_000).toISOString() };

    const { c, sessions } = client(kept); // a later run of a program, with the session it kept
    expect(await c.me()).not.toBeNull();
    expect(sessions).toHaveLength(1); // the refresh, announced
    expect(sessions[0]!.refreshToken).not.toBe(kept.refreshToken);
    expect(sid(sessions[0]!.accessToken)).toBe(sid(kept.accessToken)); // the same session, renewed
    expect(c.token).toBe(sessions[0]!.accessToken);
  });

  it('refreshes and sends again a request the server refused as unauthenticated', async () => {
    const { c: first } = client();
    await first.signUp(uniqueEmail('sdk-session'), PASSWORD);
    // An access token the gateway refuses (signed by no one), with a good refresh token beside it.
    const kept = { ...first.session!, accessToken: `${first.session!.accessToken.slice(0, -4)}AAAA` };

    const { c, sessions } = client(kept);
    expect(await c.usage()).toMatchObject({ activeJobs: 0 });
    expect(sessions).toHaveLength(1);
    expect(c.token).not.toBe(kept.accessToken);
  });

  it('refreshes once for requests sent together (a refresh token works once)', async () => {
    const { c: first } = client();
    await first.signUp(uniqueEmail('sdk-session'), PASSWORD);
    const kept = { ...first.session!, expiresAt: new Date(Date.now() - 1_000).toISOString() };
    const { c, sessions } = client(kept);
    const answers = await Promise.all([c.me(), c.usage(), c.jobs(), c.me()]);
    expect(answers.every((a) => a !== null)).toBe(true);
    expect(sessions).toHaveLength(1);
  });

  it('signs out when the server has ended the session (a spent refresh token used again)', async () => {
    const { c: first } = client();
    await first.signUp(uniqueEmail('sdk-session'), PASSWORD);
    const stale = first.session!;
    await first.refreshSession(); // the kept refresh token is now spent
    const { c, sessions } = client({ ...stale, expiresAt: new Date(Date.now() - 1_000).toISOString() });

    await expect(c.usage()).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(sessions).toEqual([null]);
    expect(c.session).toBeUndefined();
    // Reuse ended the session for its legitimate holder too.
    await expect(first.usage()).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
  });

  it('logs out (this session only) and everywhere; changes the password and goes on with the new session', async () => {
    const email = uniqueEmail('sdk-session');
    const { c: a, sessions: aSessions } = client();
    await a.signUp(email, PASSWORD);
    const { c: b } = client();
    await b.logIn(email, PASSWORD);

    await a.logOut();
    expect(aSessions.at(-1)).toBeNull();
    expect(await a.me()).toBeNull(); // signed out: no token sent
    expect((await b.me())?.email).toBe(email);

    const changed = await b.changePassword(PASSWORD, `${PASSWORD}-new`);
    expect(b.token).toBe(changed.accessToken);
    expect((await b.me())?.email).toBe(email);
    const { c: c2 } = client();
    await expect(c2.logIn(email, PASSWORD)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    await c2.logIn(email, `${PASSWORD}-new`);

    await b.logOutEverywhere();
    expect(b.session).toBeUndefined();
    await expect(c2.usage()).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
  });

  it(
    'keeps a watch going when the gateway closes its WebSocket at the access token expiry',
    { timeout: 150_000 },
    async () => {
      const { c, sessions } = client();
      await c.signUp(uniqueEmail('sdk-session'), PASSWORD);
      const clip = join(workDir, 'clip.mp4');
      await generateVideo(clip, 2);
      const media = await c.uploadVideo(clip);
      const job = await c.convert(media.id); // QUEUED: no worker yet
      const firstToken = c.token!;

      const seen: Job[] = [];
      const watching = (async () => {
        for await (const update of c.watchJob(job.id)) seen.push(update);
      })();
      await expect.poll(() => seen.length, { timeout: 10_000 }).toBeGreaterThan(0);
      // The token the socket was opened with expires; the gateway closes the socket (4401); the client refreshes
      // and opens it again with the new token (a refresh announced, and a different access token in use).
      await expect
        .poll(() => sessions.length, { timeout: (ACCESS_TOKEN_TTL_SECONDS + 30) * 1000, interval: 500 })
        .toBeGreaterThan(1);
      expect(c.token).not.toBe(firstToken);
      await expect
        .poll(() => Date.now() > (jwt.decode(firstToken) as { exp: number }).exp * 1000 + 1_000, {
          timeout: (ACCESS_TOKEN_TTL_SECONDS + 30) * 1000,
          interval: 500,
        })
        .toBe(true);

      // Still watching: the conversion's states arrive once a worker takes it.
      await system.startWorker();
      await watching;
      expect(seen.at(-1)?.status).toBe('SUCCEEDED');
    },
  );
});
