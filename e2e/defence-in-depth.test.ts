// Defence in depth, through the whole system (e2e/harness.ts): each subgraph checks a token itself, whoever sends
// it, and the client address that the users service throttles by is the one the gateway determined, never one a
// client wrote into its own X-Forwarded-For.
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { errorCode, graphql, PASSWORD, uniqueEmail } from './client.js';
import { startService, startSystem, stopService, type ServiceProcess, type System } from './harness.js';

const SIGN_UPS_PER_HOUR = 2;
const SIGN_UP = `mutation ($email: String!, $password: String!) {
  signUp(email: $email, password: $password) { accessToken user { id } }
}`;

let system: System;
/** A second gateway whose only trusted proxy is elsewhere (192.0.2.1): its clients here are who they connect as. */
let edgeGateway: ServiceProcess;

beforeAll(async () => {
  // The system's gateway trusts loopback (the default), as if an ingress proxy on this host fronted it.
  system = await startSystem({ users: { SIGNUP_MAX_PER_IP_PER_HOUR: String(SIGN_UPS_PER_HOUR) } });
  const gateway = system.services.gateway!;
  edgeGateway = await startService('edge-gateway', gateway.entry, {
    ...gateway.env,
    PORT: '0',
    TRUST_PROXY: '192.0.2.1',
  });
});
afterAll(async () => {
  if (edgeGateway) await stopService(edgeGateway);
  await system?.stop();
});
beforeEach(() => onTestFailed(() => console.error(`${system.logs()}\n${edgeGateway?.logs.join('\n') ?? ''}`)));

let hosts = 0;
/** A documentation address (TEST-NET-3) of its own for each sign-up budget. */
const freshAddress = () => `203.0.113.${++hosts}`;

const signUpVia = (gatewayUrl: string, forwardedFor?: string) =>
  graphql<{ signUp: { accessToken: string; user: { id: string } } }>(gatewayUrl, SIGN_UP, {
    variables: { email: uniqueEmail(), password: PASSWORD },
    ...(forwardedFor ? { headers: { 'x-forwarded-for': forwardedFor } } : {}),
  });
/** The outcome of a sign-up: `ok` or the error code. */
const outcome = async (answer: ReturnType<typeof signUpVia>) => {
  const res = await answer;
  return res.data?.signUp ? 'ok' : errorCode(res);
};

describe('tokens sent straight to a subgraph', () => {
  let userId: string;
  let validToken: string;
  let ownKey: KeyObject;
  let kid: string;

  beforeAll(async () => {
    const res = await signUpVia(system.gatewayUrl, freshAddress());
    userId = res.data!.signUp.user.id;
    validToken = res.data!.signUp.accessToken;
    ownKey = createPrivateKey(await readFile(join(system.keysDir, 'jwt-es256.pem'), 'utf8'));
    kid = jwt.decode(validToken, { complete: true })!.header.kid!;
  });

  const sign = (key: KeyObject, keyid: string, expiresIn: number) =>
    jwt.sign({}, key, {
      algorithm: 'ES256',
      keyid,
      issuer: 'vidmp3',
      audience: 'vidmp3-api',
      subject: userId,
      expiresIn,
    });
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

  /** Asks a subgraph directly, as something that got past the gateway (or around it) could. */
  async function ask(service: 'users' | 'media' | 'jobs', token?: string) {
    const res = await graphql(system.services[service]!.url, '{ __typename }', token ? { token } : {});
    return res.status === 200 && !res.errors ? 'ok' : `${res.status} ${errorCode(res)}`;
  }

  it.each(['users', 'media', 'jobs'] as const)('%s refuses forged, expired and foreign-key tokens', async (service) => {
    const foreign = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const [header, payload, signature] = validToken.split('.') as [string, string, string];
    const claims = jwt.decode(validToken) as Record<string, unknown>;
    const tokens = {
      // Someone else's id in a real token's claims, the signature left as it was.
      forged: `${header}.${b64({ ...claims, sub: '00000000-0000-4000-8000-000000000000' })}.${signature}`,
      unsigned: `${b64({ alg: 'none', typ: 'JWT', kid })}.${payload}.`,
      // Signed with the real key, as users signs, but past its expiry (beyond any clock tolerance).
      expired: sign(ownKey, kid, -120),
      // Signed with another key, under the real key's id and under a kid of its own.
      foreignUnderOurKid: sign(foreign, kid, 300),
      foreignKey: sign(foreign, 'foreign-key', 300),
    };

    // The controls: the token users issued, and no token at all, are let in.
    expect(await ask(service, validToken)).toBe('ok');
    expect(await ask(service)).toBe('ok');
    const answers: Record<string, string> = {};
    for (const [name, token] of Object.entries(tokens)) answers[name] = await ask(service, token);
    expect(answers).toEqual({
      forged: '401 UNAUTHENTICATED',
      unsigned: '401 UNAUTHENTICATED',
      expired: '401 UNAUTHENTICATED',
      foreignUnderOurKid: '401 UNAUTHENTICATED',
      foreignKey: '401 UNAUTHENTICATED',
    });
  });
});

describe('the client address users throttles by', () => {
  it('is the address the gateway determined, passed on in x-forwarded-for', async () => {
    // Through the gateway behind its (trusted) proxy: each client address gets a sign-up budget of its own.
    const [first, second] = [freshAddress(), freshAddress()];
    for (let i = 0; i < SIGN_UPS_PER_HOUR; i += 1)
      expect(await outcome(signUpVia(system.gatewayUrl, first))).toBe('ok');
    expect(await outcome(signUpVia(system.gatewayUrl, first))).toBe('RATE_LIMITED');
    expect(await outcome(signUpVia(system.gatewayUrl, second))).toBe('ok');
  });

  it('cannot be chosen by a client through its own X-Forwarded-For', async () => {
    // Behind the proxy, the proxy appends the address it saw: what the client wrote comes first, and is not
    // believed (the gateway trusts only the proxy's hop).
    const client = freshAddress();
    const spoofed = () => `${freshAddress()}, ${client}`;
    for (let i = 0; i < SIGN_UPS_PER_HOUR; i += 1)
      expect(await outcome(signUpVia(system.gatewayUrl, spoofed()))).toBe('ok');
    expect(await outcome(signUpVia(system.gatewayUrl, spoofed()))).toBe('RATE_LIMITED');

    // With no proxy in front, the gateway ignores the header altogether: every sign-up here comes from this
    // process's address, whatever address each claims to come from.
    for (let i = 0; i < SIGN_UPS_PER_HOUR; i += 1) {
      expect(await outcome(signUpVia(edgeGateway.url, freshAddress()))).toBe('ok');
    }
    expect(await outcome(signUpVia(edgeGateway.url, freshAddress()))).toBe('RATE_LIMITED');
  });
});
