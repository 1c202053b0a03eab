// STAND-IN until packages/shared/src/webhook-target.ts (branch webhooks-api) is merged: main.ts then wires
// shared's `checkWebhookTarget` instead, and this file goes. Same rules: resolve, refuse the whole target if any
// address is not a public unicast one (loopback only when allowed).
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import type { CheckTarget } from './webhook-http.js';

const forbidden = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['169.254.0.0', 16], // link-local, with the cloud metadata service (169.254.169.254)
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 3], // multicast, reserved, broadcast
] as const) {
  forbidden.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128],
  ['64:ff9b::', 96],
  ['100::', 64],
  ['2001::', 23],
  ['2001:db8::', 32],
  ['2002::', 16],
  ['fc00::', 7], // unique local (with AWS's metadata fd00:ec2::254)
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  forbidden.addSubnet(net, prefix, 'ipv6');
}
const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

function kindOf(address: string): 'unicast' | 'loopback' | 'forbidden' {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  const ip = mapped ?? address;
  const family = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
  if (loopback.check(ip, family)) return 'loopback';
  return forbidden.check(ip, family) ? 'forbidden' : 'unicast';
}

export class WebhookTargetRefused extends Error {
  override readonly name = 'WebhookTargetRefused';
}

/** Checks a webhook URL at send time; resolves to the address to connect to. */
export function targetChecker(options: { allowLoopback: boolean }): CheckTarget {
  return async (input) => {
    const url = new URL(input);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new WebhookTargetRefused('not an http(s) URL');
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const addresses = isIP(host)
      ? [{ address: host, family: isIP(host) }]
      : await lookup(host, { all: true, verbatim: true }).catch(() => []);
    if (addresses.length === 0) throw new Error(`the host ${host} does not resolve`);
    for (const { address } of addresses) {
      const kind = kindOf(address);
      if (kind === 'forbidden' || (kind === 'loopback' && !options.allowLoopback)) {
        throw new WebhookTargetRefused(`refused: ${host} resolves to ${address}, not a public address`);
      }
    }
    const first = addresses[0]!;
    return { address: first.address, family: first.family === 6 ? 6 : 4 };
  };
}
