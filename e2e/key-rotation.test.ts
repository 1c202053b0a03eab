// Rotating the JWT signing key as docs/SECURITY.md ("Rotating keys") tells an operator to: users signs with a new
// key and keeps the old public key in JWT_PREVIOUS_PUBLIC_KEYS, so tokens the old key signed still work everywhere;
// once it is dropped, they work nowhere. Every service is a real process (e2e/harness.ts).
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { createClient } from 'graphql-ws';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import WebSocket from 'ws';
import { errorCode, graphql, PASSWORD, signUpUser, type SignedUp } from './client.js';
import { startSystem, type System } from './harness.js';

const newKeyPair = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
const privatePem = (key: KeyObject) => key.export({ format: 'pem', type: 'pkcs8' }).toString();
const publicPem = (key: KeyObject) => key.export({ format: 'pem', type: 'spki' }).toString();
const kidOf = (token: string) => jwt.decode(token, { complete: true })?.header.kid ?? '';

const oldKey = newKeyPair();
const newKey = newKeyPair();

let system: System;
let alice: SignedUp;
/** Alice's token from before the rotation, signed with the key that is then retired. */
let oldToken: string;

beforeAll(async () => {
  system = await startSystem({ users: { JWT_PRIVATE_KEY: privatePem(oldKey.privateKey) } });
  alice = await signUpUser(system.gatewayUrl);
  oldToken = alice.token;
});
afterAll(async () => {
  await system?.stop();
});

const url = (service: string) => system.services[service]!.url;

async function jwksKids(): Promise<string[]> {
  const res = await fetch(`${url('users')}/.well-known/jwks.json`);
  return ((await res.json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
}

/** Restarts users with its settings changed as an operator would change them (undefined: unset). */
async function restartUsers(settings: Record<string, string | undefined>): Promise<void> {
  const env = system.services.users!.env;
  for (const [name, value] of Object.entries(settings)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  await system.restart('users');
}

/** Who the gateway says the token's bearer is, through users, media and jobs (or the error code). */
async function viaGateway(token: string): Promise<string | undefined> {
  const res = await graphql<{ me: { id: string } }>(
    system.gatewayUrl,
    '{ me { id jobs(first: 1) { edges { node { id } } } media(first: 1) { edges { node { id } } } } }',
    { token },
  );
  return res.data?.me?.id ?? errorCode(res);
}

/** Whether a service, asked directly, accepts the token: `ok`, or its error code. */
async function directly(service: 'gateway' | 'users' | 'media' | 'jobs', token: string): Promise<string | undefined> {
  const res = await graphql(service === 'gateway' ? system.gatewayUrl : url(service), '{ __typename }', { token });
  return res.status === 200 && !res.errors ? 'ok' : errorCode(res);
}

/**
 * A subscription through the gateway (jobs resolves it): NOT_FOUND, for a job nobody has, means the token was
 * accepted; `closed 4401` that the gateway refused it.
 */
async function subscribeViaGateway(token: string): Promise<string> {
  const client = createClient({
    url: `${system.gatewayUrl.replace('http', 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: 0,
  });
  const iterator = client.iterate({
    query: 'subscription ($id: ID!) { jobUpdated(id: $id) { id } }',
    variables: { id: randomUUID() },
  });
  try {
    const first = await iterator.next();
    const event = first.value as { errors?: { extensions?: { code?: string } }[] } | undefined;
    return event?.errors?.[0]?.extensions?.code ?? 'event';
  } catch (err) {
    // A refused connection ends in the socket's CloseEvent; errors of the operation come as an array.
    if (typeof (err as { code?: unknown }).code === 'number') return `closed ${(err as { code: number }).code}`;
    if (Array.isArray(err)) return String((err as { extensions?: { code?: string } }[])[0]?.extensions?.code);
    throw err;
  } finally {
    await iterator.return?.();
    await client.dispose();
  }
}

/** A token for Alice from a key nobody publishes: a kid every verifier looks up in a fresh key set. */
function strangerToken(): string {
  const stranger = newKeyPair();
  return jwt.sign({}, stranger.privateKey, {
    algorithm: 'ES256',
    keyid: `stranger-${randomUUID()}`,
    issuer: 'vidmp3',
    audience: 'vidmp3-api',
    subject: alice.id,
    expiresIn: 300,
  });
}

/** Retries `check` until it passes, for at most 30 s (verifiers refetch for an unknown kid every 10 s at most). */
async function eventually(check: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

describe('signing-key rotation', () => {
  beforeEach(() => onTestFailed(() => console.error(system.logs())));

  it('keeps tokens of the retired key valid everywhere while it is listed in JWT_PREVIOUS_PUBLIC_KEYS', async () => {
    const oldKid = kidOf(oldToken);
    expect(await jwksKids()).toEqual([oldKid]);

    await restartUsers({
      JWT_PRIVATE_KEY: privatePem(newKey.privateKey),
      JWT_PREVIOUS_PUBLIC_KEYS: publicPem(oldKey.publicKey),
    });
    const logIn = await graphql<{ logIn: { accessToken: string } }>(
      system.gatewayUrl,
      'mutation ($email: String!, $password: String!) { logIn(email: $email, password: $password) { accessToken } }',
      { variables: { email: alice.email, password: PASSWORD } },
    );
    const newToken = logIn.data!.logIn.accessToken;
    const newKid = kidOf(newToken);
    expect(newKid).not.toBe(oldKid);
    expect(await jwksKids()).toEqual([newKid, oldKid]);

    // New tokens: every verifier meets the new kid and fetches the key set that lists both keys.
    expect(await viaGateway(newToken)).toBe(alice.id);
    for (const service of ['users', 'media', 'jobs'] as const) expect(await directly(service, newToken)).toBe('ok');
    // Old tokens still work, over HTTP and on a subscription.
    expect(await viaGateway(oldToken)).toBe(alice.id);
    for (const service of ['gateway', 'users', 'media', 'jobs'] as const) {
      expect(await directly(service, oldToken)).toBe('ok');
    }
    expect(await subscribeViaGateway(oldToken)).toBe('NOT_FOUND');
  });

  it('refuses them everywhere once the retired key is dropped', async () => {
    await restartUsers({ JWT_PREVIOUS_PUBLIC_KEYS: undefined });
    const [newKid] = await jwksKids();
    expect(await jwksKids()).toEqual([newKid]);
    expect(newKid).not.toBe(kidOf(oldToken));

    // users verifies with its own keys: at once.
    expect(await directly('users', oldToken)).toBe('UNAUTHENTICATED');
    // The others hold the key set they fetched; a kid they do not know makes them fetch it again (at most every
    // 10 s), and the fresh set no longer lists the retired key.
    await eventually(async () => {
      await Promise.all([
        graphql(system.gatewayUrl, '{ me { id } }', { token: strangerToken() }),
        directly('media', strangerToken()),
        directly('jobs', strangerToken()),
      ]);
      // Refused by the gateway itself (a query no subgraph sees), and by each subgraph.
      expect(await directly('gateway', oldToken)).toBe('UNAUTHENTICATED');
      expect(await viaGateway(oldToken)).toBe('UNAUTHENTICATED');
      expect(await directly('media', oldToken)).toBe('UNAUTHENTICATED');
      expect(await directly('jobs', oldToken)).toBe('UNAUTHENTICATED');
    });
    expect(await subscribeViaGateway(oldToken)).toBe('closed 4401');

    // The control: the current key's tokens are still accepted everywhere.
    const current = await graphql<{ logIn: { accessToken: string } }>(
      system.gatewayUrl,
      'mutation ($email: String!, $password: String!) { logIn(email: $email, password: $password) { accessToken } }',
      { variables: { email: alice.email, password: PASSWORD } },
    );
    const token = current.data!.logIn.accessToken;
    expect(await viaGateway(token)).toBe(alice.id);
    for (const service of ['users', 'media', 'jobs'] as const) expect(await directly(service, token)).toBe('ok');
    expect(await subscribeViaGateway(token)).toBe('NOT_FOUND');
  });
});
