// Where a webhook may point (docs/SECURITY.md, "Webhooks"): checked by users when a webhook is created, and by the
// notifier before every attempt (a name can resolve elsewhere tomorrow). A sender that reaches internal addresses
// on a user's behalf is a server-side request forgery: the check resolves the host and refuses the whole target
// if any of its addresses is not a public unicast one.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { lookup as dnsLookupAsync } from 'node:dns/promises';
import ipaddr from 'ipaddr.js';

export interface WebhookTargetOptions {
  /** Loopback addresses allowed (development and tests: a receiver on this machine); never in production. */
  allowLoopback: boolean;
  /** `http:` allowed besides `https:` (off in production unless configured). */
  allowHttp: boolean;
  /** The resolver; defaults to the system's (getaddrinfo, as the sender's connection would use). */
  resolve?: (host: string) => Promise<LookupAddress[]>;
}

/** Why a target was refused; `message` is fit to show the webhook's owner. */
export type WebhookTargetProblem =
  'malformed' | 'scheme' | 'http-not-allowed' | 'credentials' | 'unresolvable' | 'forbidden-address';

export class WebhookTargetError extends Error {
  constructor(
    readonly problem: WebhookTargetProblem,
    message: string,
  ) {
    super(message);
    this.name = 'WebhookTargetError';
  }
}

export const MAX_WEBHOOK_URL_LENGTH = 2000;

/** Cloud instance metadata services (AWS, GCP, Azure…: 169.254.169.254; AWS over IPv6: fd00:ec2::254). */
const METADATA_ADDRESSES = new Set(['169.254.169.254', 'fd00:ec2::254']);

/**
 * What kind of address this is, by the IANA special-purpose registries (ipaddr.js's ranges): `unicast` is a public
 * address, `loopback` loopback, anything else (private, link-local, CGNAT, multicast, unspecified, unique local,
 * documentation, reserved, metadata…) is never a webhook's. IPv4-mapped IPv6 addresses are judged as IPv4.
 */
export function classifyAddress(address: string): 'unicast' | 'loopback' | 'forbidden' {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    // `process` turns an IPv4-mapped IPv6 address (::ffff:127.0.0.1) into the IPv4 address it is.
    parsed = ipaddr.process(address.replace(/%.*$/, ''));
  } catch {
    return 'forbidden';
  }
  if (METADATA_ADDRESSES.has(parsed.toNormalizedString()) || METADATA_ADDRESSES.has(parsed.toString())) {
    return 'forbidden';
  }
  const range = parsed.range();
  if (range === 'loopback') return 'loopback';
  // 6to4, Teredo and NAT64 prefixes carry an IPv4 address inside that could be anything: refused with the rest.
  return range === 'unicast' ? 'unicast' : 'forbidden';
}

/** Whether a resolved address may be connected to under these options. */
export function isAllowedWebhookAddress(address: string, options: Pick<WebhookTargetOptions, 'allowLoopback'>) {
  const kind = classifyAddress(address);
  return kind === 'unicast' || (kind === 'loopback' && options.allowLoopback);
}

/**
 * The URL's own rules, without resolving: absolute http(s), no user or password, a host, at most
 * MAX_WEBHOOK_URL_LENGTH characters. Returns the parsed URL (WHATWG parsing: `http://0x7f.1/` is 127.0.0.1).
 */
export function parseWebhookUrl(input: string, options: Pick<WebhookTargetOptions, 'allowHttp'>): URL {
  if (input.length > MAX_WEBHOOK_URL_LENGTH) {
    throw new WebhookTargetError('malformed', `The URL is longer than ${MAX_WEBHOOK_URL_LENGTH} characters`);
  }
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new WebhookTargetError('malformed', 'The URL is not a valid absolute URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new WebhookTargetError('scheme', 'Only http and https URLs can receive webhooks');
  }
  if (url.protocol === 'http:' && !options.allowHttp) {
    throw new WebhookTargetError('http-not-allowed', 'The URL must use https');
  }
  if (url.username || url.password) {
    throw new WebhookTargetError('credentials', 'The URL must not contain a user name or password');
  }
  if (!url.hostname) throw new WebhookTargetError('malformed', 'The URL has no host');
  return url;
}

/** The URL's host as the resolver takes it (IPv6 literals without their brackets). */
const bareHost = (url: URL) => url.hostname.replace(/^\[(.*)\]$/, '$1');

const systemResolve = (host: string) => dnsLookupAsync(host, { all: true, verbatim: true });

/**
 * Checks a webhook URL and resolves its host: every address must be allowed (one private address among public
 * ones is enough to refuse — the sender could connect to any of them). Returns the URL and the addresses; a
 * sender connects to one of these, or uses `webhookLookup` so the check happens at connection time.
 */
export async function checkWebhookTarget(
  input: string,
  options: WebhookTargetOptions,
): Promise<{ url: URL; addresses: LookupAddress[] }> {
  const url = parseWebhookUrl(input, options);
  const host = bareHost(url);
  let addresses: LookupAddress[];
  if (ipaddr.isValid(host)) {
    addresses = [{ address: host, family: host.includes(':') ? 6 : 4 }];
  } else {
    try {
      addresses = await (options.resolve ?? systemResolve)(host);
    } catch {
      addresses = [];
    }
    if (addresses.length === 0) {
      throw new WebhookTargetError('unresolvable', `The host ${host} does not resolve`);
    }
  }
  const refused = addresses.find((a) => !isAllowedWebhookAddress(a.address, options));
  if (refused) {
    throw new WebhookTargetError(
      'forbidden-address',
      ipaddr.isValid(host)
        ? `The address ${host} is not a public one`
        : `The host ${host} resolves to an address that is not a public one`,
    );
  }
  return { url, addresses };
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for `http.request`/`net.connect` that refuses addresses a webhook may not reach, so that the address
 * checked is the address connected to (no DNS rebinding between a check and the connection).
 */
export function webhookLookup(options: Pick<WebhookTargetOptions, 'allowLoopback'>) {
  return (hostname: string, lookupOptions: { all?: boolean }, callback: LookupCallback): void => {
    dnsLookup(hostname, { all: true, verbatim: true }, (err, addresses) => {
      if (err) return callback(err, []);
      const refused = addresses.find((a) => !isAllowedWebhookAddress(a.address, options));
      if (refused || addresses.length === 0) {
        const error: NodeJS.ErrnoException = new WebhookTargetError(
          'forbidden-address',
          `The host ${hostname} resolves to an address that is not a public one`,
        );
        error.code = 'EWEBHOOKTARGET';
        return callback(error, []);
      }
      if (lookupOptions.all) return callback(null, addresses);
      const first = addresses[0]!;
      callback(null, first.address, first.family);
    });
  };
}
