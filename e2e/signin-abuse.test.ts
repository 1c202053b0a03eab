// Issue #10: sign-in that one anonymous person cannot knock out, through the whole system.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import WebSocket from 'ws';
import { errorCode, graphql, PASSWORD, uniqueEmail, type GraphQLResponse } from './client.js';
import { startSystem, type System } from './harness.js';

const SIGN_UP = `mutation ($email: String!, $password: String!) {
  signUp(email: $email, password: $password) { accessToken user { id } }
}`;
const LOG_IN = `mutation ($email: String!, $password: String!) {
  logIn(email: $email, password: $password) { accessToken user { id } }
}`;
const ME = '{ me { id } }';
const SIGN_UPS_PER_HOUR = 3;

let system: System;

beforeAll(async () => {
  system = await startSystem({ users: { SIGNUP_MAX_PER_IP_PER_HOUR: String(SIGN_UPS_PER_HOUR) } });
});
afterAll(async () => {
  await system?.stop();
});
beforeEach(() => onTestFailed(() => console.error(system.logs())));

let network = 0;
/**
 * A client address of its own for each test, in a /64 of its own: the gateway believes X-Forwarded-For from
 * loopback (its TRUST_PROXY) and passes the client address on to the users service.
 */
const freshNetwork = () => {
  network += 1;
  const prefix = `2001:db8:${process.pid.toString(16)}:${network.toString(16)}`;
  return { prefix, address: (host = 1) => `${prefix}::${host.toString(16)}` };
};
const from = (address: string) => ({ 'x-forwarded-for': address });

const signUpFrom = (address: string, email = uniqueEmail()) =>
  graphql<{ signUp: { accessToken: string; user: { id: string } } }>(system.gatewayUrl, SIGN_UP, {
    variables: { email, password: PASSWORD },
    headers: from(address),
  });
const logInFrom = (address: string, email: string, password: string) =>
  graphql<{ logIn: { accessToken: string; user: { id: string } } }>(system.gatewayUrl, LOG_IN, {
    variables: { email, password },
    headers: from(address),
  });

/** A well-formed ES256 token under a random kid, with a signature nobody can check: what a flooder sends. */
function randomKidToken(): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return `${part({ alg: 'ES256', typ: 'JWT', kid: randomUUID() })}.${part({
    sub: randomUUID(),
    iss: 'vidmp3',
    aud: 'vidmp3-api',
    iat: now,
    exp: now + 600,
  })}.${'A'.repeat(86)}`;
}

/** How often the users service has served its JWKS (from its Prometheus metrics). */
async function jwksRequests(): Promise<number> {
  const text = await (await fetch(`${system.services.users!.url}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith('vidmp3_http_request_duration_seconds_count{'))
    .filter((line) => line.includes('route="/.well-known/jwks.json"'))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

/** Opens a graphql-ws connection with this token: acknowledged, or closed with a code and reason. */
function connectSocket(token: string): Promise<{ acknowledged: true } | { code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${system.gatewayUrl.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
    socket.on('error', reject);
    socket.on('open', () => {
      socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
    });
    socket.on('message', (data: Buffer) => {
      if ((JSON.parse(data.toString()) as { type: string }).type === 'connection_ack') {
        resolve({ acknowledged: true });
        socket.close(1000);
      }
    });
    socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
}

/** Runs `task` `count` times, `concurrency` at a time. */
async function inBatches<T>(count: number, concurrency: number, task: () => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  for (let done = 0; done < count; done += concurrency) {
    results.push(...(await Promise.all(Array.from({ length: Math.min(concurrency, count - done) }, task))));
  }
  return results;
}

describe('a flood of tokens with random key ids', () => {
  it('leaves valid tokens working over HTTP and WebSocket, and costs the users service a bounded number of JWKS fetches', async () => {
    const user = await signUpFrom(freshNetwork().address());
    const token = user.data!.signUp.accessToken;
    expect((await graphql<{ me: { id: string } }>(system.gatewayUrl, ME, { token })).data?.me?.id).toBe(
      user.data!.signUp.user.id,
    );
    const fetchesBefore = await jwksRequests();
    const started = Date.now();

    const flood = await inBatches(300, 25, () => graphql(system.gatewayUrl, ME, { token: randomKidToken() }));
    const sockets = await inBatches(20, 10, () => connectSocket(randomKidToken()));
    const elapsed = Date.now() - started;

    expect(flood.every((res) => res.status === 401 && /unknown signing key/.test(res.errors?.[0]?.message ?? ''))).toBe(
      true,
    );
    expect(sockets.every((s) => 'code' in s && s.code === 4401)).toBe(true);
    const me = await graphql<{ me: { id: string } }>(system.gatewayUrl, ME, { token });
    expect(me.data?.me?.id).toBe(user.data!.signUp.user.id);
    expect(await connectSocket(token)).toEqual({ acknowledged: true });
    // The gateway refetches for unknown kids at most once per 10 s (jwks-rsa's budget was 10 a minute).
    expect((await jwksRequests()) - fetchesBefore).toBeLessThanOrEqual(1 + Math.ceil(elapsed / 10_000));
  });
});

describe('password guessing', () => {
  it('checks at most 5 of 12 concurrent wrong guesses at one email and slows the rest down', async () => {
    const email = uniqueEmail('target');
    expect((await signUpFrom(freshNetwork().address(), email)).errors).toBeUndefined();
    const guesser = freshNetwork().address();

    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => logInFrom(guesser, email, `wrong password ${i}`)),
    );

    const codes = answers.map(errorCode);
    expect(codes.filter((code) => code === 'UNAUTHENTICATED')).toHaveLength(5);
    expect(codes.filter((code) => code === 'RATE_LIMITED')).toHaveLength(7);
    const limited = answers.find((res) => errorCode(res) === 'RATE_LIMITED') as GraphQLResponse<unknown>;
    // 30 s from the fifth guess (LOGIN_BACKOFF_BASE_SECONDS), minus however long the others took to arrive.
    expect(limited.errors?.[0]?.extensions?.retryAfterSeconds).toBeGreaterThan(20);
    expect(limited.errors?.[0]?.extensions?.retryAfterSeconds).toBeLessThanOrEqual(30);
  });

  it("lets the owner log in from their address while a stranger's guesses are being slowed down", async () => {
    const email = uniqueEmail('owner');
    const owner = freshNetwork();
    const signedUp = await signUpFrom(owner.address(), email);
    const stranger = freshNetwork();
    for (let i = 0; i < 5; i += 1) {
      // From anywhere in the stranger's /64: a new address per guess buys nothing.
      expect(errorCode(await logInFrom(stranger.address(100 + i), email, `guess ${i}`))).toBe('UNAUTHENTICATED');
    }
    expect(errorCode(await logInFrom(stranger.address(200), email, PASSWORD))).toBe('RATE_LIMITED');

    const logIn = await logInFrom(owner.address(2), email, PASSWORD);

    expect(logIn.errors).toBeUndefined();
    expect(logIn.data?.logIn.user.id).toBe(signedUp.data!.signUp.user.id);
  });
});

describe('sign-ups per address', () => {
  it(`creates ${SIGN_UPS_PER_HOUR} accounts an hour from one /64 and answers RATE_LIMITED with retryAfterSeconds after that`, async () => {
    const net = freshNetwork();
    for (let i = 1; i <= SIGN_UPS_PER_HOUR; i += 1) expect((await signUpFrom(net.address(i))).errors).toBeUndefined();
    const email = uniqueEmail('one-too-many');

    const refused = await signUpFrom(net.address(99), email);

    expect(errorCode(refused)).toBe('RATE_LIMITED');
    expect(refused.errors?.[0]?.extensions?.retryAfterSeconds).toBeGreaterThan(3_500);
    expect(refused.errors?.[0]?.extensions?.retryAfterSeconds).toBeLessThanOrEqual(3_600);
    expect(errorCode(await logInFrom(freshNetwork().address(), email, PASSWORD))).toBe('UNAUTHENTICATED'); // not created
    expect((await signUpFrom(freshNetwork().address(), email)).errors).toBeUndefined();
  });
});
