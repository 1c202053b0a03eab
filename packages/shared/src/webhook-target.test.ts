import type { LookupAddress } from 'node:dns';
import { describe, expect, it } from 'vitest';
import {
  checkWebhookTarget,
  classifyAddress,
  webhookLookup,
  WebhookTargetError,
  type WebhookTargetOptions,
} from './webhook-target.js';

const production: WebhookTargetOptions = { allowLoopback: false, allowHttp: false };
const development: WebhookTargetOptions = { allowLoopback: true, allowHttp: true };

/** A resolver that answers from a table, as DNS would (no network in unit tests). */
const resolver =
  (table: Record<string, string[]>) =>
  async (host: string): Promise<LookupAddress[]> =>
    (table[host] ?? []).map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));

async function problemOf(url: string, options: WebhookTargetOptions) {
  try {
    await checkWebhookTarget(url, options);
    return 'accepted';
  } catch (err) {
    if (err instanceof WebhookTargetError) return err.problem;
    throw err;
  }
}

describe('classifyAddress', () => {
  it.each([
    ['93.184.215.14', 'unicast'],
    ['2606:2800:21f:cb07:6820:80da:af6b:8b2c', 'unicast'],
    ['127.0.0.1', 'loopback'],
    ['127.8.9.10', 'loopback'],
    ['::1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['10.1.2.3', 'forbidden'],
    ['172.16.0.1', 'forbidden'],
    ['172.31.255.255', 'forbidden'],
    ['192.168.1.1', 'forbidden'],
    ['::ffff:192.168.1.1', 'forbidden'],
    ['169.254.169.254', 'forbidden'],
    ['169.254.1.1', 'forbidden'],
    ['fe80::1', 'forbidden'],
    ['fe80::1%eth0', 'forbidden'],
    ['fd00:ec2::254', 'forbidden'],
    ['fc00::1', 'forbidden'],
    ['100.64.0.1', 'forbidden'],
    ['100.127.255.254', 'forbidden'],
    ['224.0.0.1', 'forbidden'],
    ['ff02::1', 'forbidden'],
    ['0.0.0.0', 'forbidden'],
    ['::', 'forbidden'],
    ['255.255.255.255', 'forbidden'],
    ['192.0.2.1', 'forbidden'],
    ['64:ff9b::7f00:1', 'forbidden'],
    ['2002:7f00:1::', 'forbidden'],
    ['not an address', 'forbidden'],
  ])('%s is %s', (address, kind) => {
    expect(classifyAddress(address)).toBe(kind);
  });
});

describe('checkWebhookTarget', () => {
  it('accepts an https URL whose host resolves to public addresses only, and returns them', async () => {
    const { url, addresses } = await checkWebhookTarget('https://hooks.example.com/in?x=1', {
      ...production,
      resolve: resolver({ 'hooks.example.com': ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'] }),
    });
    expect(url.href).toBe('https://hooks.example.com/in?x=1');
    expect(addresses.map((a) => a.address)).toEqual(['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c']);
  });

  it('refuses a host when any one of its addresses is private', async () => {
    const resolve = resolver({ 'mixed.example.com': ['93.184.215.14', '10.0.0.5'] });
    expect(await problemOf('https://mixed.example.com/', { ...production, resolve })).toBe('forbidden-address');
  });

  it('refuses a name that resolves to the cloud metadata service', async () => {
    const resolve = resolver({ 'metadata.example.com': ['169.254.169.254'] });
    expect(await problemOf('https://metadata.example.com/', { ...production, resolve })).toBe('forbidden-address');
  });

  it('refuses a host that does not resolve', async () => {
    expect(await problemOf('https://nowhere.example.com/', { ...production, resolve: resolver({}) })).toBe(
      'unresolvable',
    );
    const failing = async () => {
      throw Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' });
    };
    expect(await problemOf('https://nowhere.example.com/', { ...production, resolve: failing })).toBe('unresolvable');
  });

  it.each([
    ['ftp://93.184.215.14/', 'scheme'],
    ['file:///etc/passwd', 'scheme'],
    ['javascript:alert(1)', 'scheme'],
    ['not a url', 'malformed'],
    ['https://user:secret@93.184.215.14/', 'credentials'],
    ['https://user@93.184.215.14/', 'credentials'],
    ['http://93.184.215.14/', 'http-not-allowed'],
    [`https://93.184.215.14/${'a'.repeat(2000)}`, 'malformed'],
    ['https://127.0.0.1/', 'forbidden-address'],
    ['https://[::1]/', 'forbidden-address'],
    ['https://0x7f.1/', 'forbidden-address'],
    ['https://2130706433/', 'forbidden-address'],
    ['https://[::ffff:7f00:1]/', 'forbidden-address'],
    ['https://10.0.0.1/', 'forbidden-address'],
    ['https://[fd00:ec2::254]/', 'forbidden-address'],
    ['https://169.254.169.254/latest/meta-data/', 'forbidden-address'],
    ['https://0.0.0.0/', 'forbidden-address'],
  ])('in production refuses %s (%s)', async (url, problem) => {
    expect(await problemOf(url, production)).toBe(problem);
  });

  it('allows loopback and http only when told to, and never private addresses', async () => {
    expect(await problemOf('http://127.0.0.1:8080/hook', development)).toBe('accepted');
    expect(await problemOf('http://[::1]:8080/hook', development)).toBe('accepted');
    expect(await problemOf('http://localhost:8080/hook', development)).toBe('accepted');
    expect(await problemOf('http://localhost:8080/hook', { ...development, allowLoopback: false })).toBe(
      'forbidden-address',
    );
    expect(await problemOf('http://192.168.0.10/hook', development)).toBe('forbidden-address');
    expect(await problemOf('http://169.254.169.254/', development)).toBe('forbidden-address');
  });
});

describe('webhookLookup (the check at connection time)', () => {
  const lookup = (allowLoopback: boolean, all: boolean) =>
    new Promise<{ err: NodeJS.ErrnoException | null; address: string | LookupAddress[] }>((resolve) =>
      webhookLookup({ allowLoopback })('localhost', { all }, (err, address) => resolve({ err, address })),
    );

  it('refuses a name that resolves to loopback unless loopback is allowed', async () => {
    const refused = await lookup(false, false);
    expect(refused.err).toBeInstanceOf(WebhookTargetError);
    expect(refused.err?.code).toBe('EWEBHOOKTARGET');

    const one = await lookup(true, false);
    expect(one.err).toBeNull();
    expect(classifyAddress(one.address as string)).toBe('loopback');
    const all = await lookup(true, true);
    expect((all.address as LookupAddress[]).every((a) => classifyAddress(a.address) === 'loopback')).toBe(true);
  });
});
