// Abuse benchmark: one account floods the system while a second user goes about her business. The claim
// under test (issue #10): the flood is refused by the limits — it does not lock anyone out, exhaust a
// service's memory, or starve the other user's conversion.
//
//   npm run bench:abuse                      (BENCH_ABUSE_SECONDS=40 by default)
//
// Mallory, from her own address, for the whole run and all at once: forged tokens with random key ids
// (the JWKS cache attack), worst-case nested queries, uploads in a loop (hers and anonymous ones),
// conversions in a loop, hundreds of subscription sockets, sign-ups in a loop, and wrong passwords for
// Alice's email. Alice, from another address, meanwhile signs in, uploads, converts, watches her job and
// downloads the mp3, again and again. Addresses are told apart by X-Forwarded-For, which the gateway trusts
// from loopback (its default TRUST_PROXY), so every request still goes to 127.0.0.1.
//
// Reports: Alice's rounds (each step's time, all must succeed), what Mallory got back (by error code), and
// each process's peak RSS (VmHWM).
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { graphql, PASSWORD, uniqueEmail, uploadFile, type GraphQLResponse } from '../e2e/client.js';
import { generateVideo } from '../e2e/fixtures.js';
import { startSystem } from '../e2e/harness.js';

const SECONDS = Number(process.env.BENCH_ABUSE_SECONDS ?? 40);
const SOCKETS = Number(process.env.BENCH_ABUSE_SOCKETS ?? 300);
const MALLORY_IP = '203.0.113.66';
const ALICE_IP = '198.51.100.7';

const work = await mkdtemp(join(tmpdir(), 'vidmp3-bench-abuse-'));
const clip = join(work, 'clip.mp4');
await generateVideo(clip, 4);
// A 4-second clip converts fast; the flood's uploads are the same file.

// The instance's defaults, except the harness's raised sign-up limit (its tests sign everyone up from one address).
const system = await startSystem({ users: { SIGNUP_MAX_PER_IP_PER_HOUR: '10' } }, { workers: 2 });
const deadline = Date.now() + SECONDS * 1000;
const tally = new Map<string, Map<string, number>>();
const count = (attack: string, outcome: string) => {
  const row = tally.get(attack) ?? new Map<string, number>();
  row.set(outcome, (row.get(outcome) ?? 0) + 1);
  tally.set(attack, row);
};
const outcome = (res: GraphQLResponse<unknown>) =>
  res.errors?.[0]?.extensions?.code ?? (res.status === 200 ? 'ok' : `HTTP ${res.status}`);
const from = (ip: string, token?: string) => ({ headers: { 'x-forwarded-for': ip }, ...(token ? { token } : {}) });

async function signUp(email: string, ip: string) {
  const res = await graphql<{ signUp: { accessToken: string } }>(
    system.gatewayUrl,
    'mutation ($e: String!, $p: String!) { signUp(email: $e, password: $p) { accessToken } }',
    { variables: { e: email, p: PASSWORD }, ...from(ip) },
  );
  if (!res.data) throw new Error(`signUp failed: ${JSON.stringify(res.errors)}`);
  return res.data.signUp.accessToken;
}

/** Runs `fn` in `width` loops until the deadline; a thrown error counts as an outcome, never stops the run. */
async function flood(attack: string, width: number, fn: () => Promise<string>): Promise<void> {
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (Date.now() < deadline) {
        try {
          count(attack, await fn());
        } catch (err) {
          count(attack, `thrown: ${(err as Error).message.slice(0, 60)}`);
        }
      }
    }),
  );
}

const forgedToken = () => {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const header = part({ alg: 'ES256', typ: 'JWT', kid: randomBytes(8).toString('hex') });
  const claims = part({ sub: 'x', iss: 'vidmp3', aud: 'vidmp3-api', exp: Math.floor(Date.now() / 1000) + 600 });
  return `${header}.${claims}.${randomBytes(64).toString('base64url')}`;
};

const nested = (depth: number) => {
  let selection = '{ id }';
  for (let i = 0; i < depth; i++) selection = `{ input { conversions ${selection} } }`;
  return selection;
};

const aliceEmail = uniqueEmail('alice');
const aliceToken0 = await signUp(aliceEmail, ALICE_IP);
void aliceToken0;
const malloryToken = await signUp(uniqueEmail('mallory'), MALLORY_IP);
const first = await uploadFile(system.gatewayUrl, clip, from(MALLORY_IP, malloryToken));
const malloryMedia = first.data?.uploadVideo.id ?? 'none';

const sockets: ReturnType<typeof createClient>[] = [];
const attacks = Promise.all([
  flood('forged tokens (random kid)', 6, async () =>
    outcome(await graphql(system.gatewayUrl, '{ me { id } }', from(MALLORY_IP, forgedToken()))),
  ),
  flood('nested queries', 2, async () =>
    outcome(
      await graphql(system.gatewayUrl, `{ job(id: "1") ${nested(4)} media(id: "1") { conversions { id } } }`, {
        ...from(MALLORY_IP, malloryToken),
      }),
    ),
  ),
  flood('uploads', 3, async () => outcome(await uploadFile(system.gatewayUrl, clip, from(MALLORY_IP, malloryToken)))),
  flood('anonymous uploads', 2, async () => outcome(await uploadFile(system.gatewayUrl, clip, from(MALLORY_IP)))),
  flood('conversions', 2, async () =>
    outcome(
      await graphql(system.gatewayUrl, 'mutation ($m: ID!) { convertMedia(mediaId: $m) { id } }', {
        variables: { m: malloryMedia },
        ...from(MALLORY_IP, malloryToken),
      }),
    ),
  ),
  flood('sign-ups', 1, async () =>
    outcome(
      await graphql(
        system.gatewayUrl,
        'mutation ($e: String!, $p: String!) { signUp(email: $e, password: $p) { accessToken } }',
        { variables: { e: uniqueEmail('sock'), p: PASSWORD }, ...from(MALLORY_IP) },
      ),
    ),
  ),
  flood("wrong passwords for Alice's email", 2, async () =>
    outcome(
      await graphql(
        system.gatewayUrl,
        'mutation ($e: String!, $p: String!) { logIn(email: $e, password: $p) { accessToken } }',
        { variables: { e: aliceEmail, p: 'not her password' }, ...from(MALLORY_IP) },
      ),
    ),
  ),
  (async () => {
    // Subscription sockets, opened one after another; each watches all of Mallory's jobs.
    for (let i = 0; i < SOCKETS && Date.now() < deadline; i++) {
      const client = createClient({
        url: `${system.gatewayUrl.replace('http', 'ws')}/graphql`,
        webSocketImpl: class extends WebSocket {
          constructor(url: string, protocols?: string | string[]) {
            super(url, protocols, { headers: { 'x-forwarded-for': MALLORY_IP } });
          }
        },
        connectionParams: { authorization: `Bearer ${malloryToken}` },
        retryAttempts: 0,
        lazy: false,
        onNonLazyError: () => count('subscription sockets', 'socket refused'),
      });
      sockets.push(client);
      client.subscribe(
        { query: 'subscription { myJobUpdates { id status progress input { filename } } }' },
        {
          next: () => undefined,
          error: (err: unknown) => {
            const code =
              (Array.isArray(err) ? (err[0] as { extensions?: { code?: string } })?.extensions?.code : undefined) ??
              ((err as { code?: number }).code !== undefined ? `closed ${(err as { code: number }).code}` : 'error');
            count('subscription sockets', code);
          },
          complete: () => undefined,
        },
      );
      count('subscription sockets', 'opened');
      await new Promise((r) => setTimeout(r, 20));
    }
  })(),
]);

// Alice, again and again while the flood lasts.
interface Round {
  logIn: number;
  upload: number;
  convert: number;
  /** Of `convert`: the time the job waited in the queue (startedAt − createdAt). */
  queued?: number;
  download: number;
  ok: boolean;
  why?: string;
}
const rounds: Round[] = [];
const timed = async <T>(fn: () => Promise<T>): Promise<[T, number]> => {
  const started = performance.now();
  const result = await fn();
  return [result, (performance.now() - started) / 1000];
};
await new Promise((r) => setTimeout(r, 3_000)); // let the flood ramp up first
while (Date.now() < deadline - 5_000) {
  const round: Round = { logIn: 0, upload: 0, convert: 0, download: 0, ok: false };
  rounds.push(round);
  try {
    const [login, t1] = await timed(() =>
      graphql<{ logIn: { accessToken: string } }>(
        system.gatewayUrl,
        'mutation ($e: String!, $p: String!) { logIn(email: $e, password: $p) { accessToken } }',
        { variables: { e: aliceEmail, p: PASSWORD }, ...from(ALICE_IP) },
      ),
    );
    round.logIn = t1;
    const token = login.data?.logIn.accessToken;
    if (!token) throw new Error(`logIn: ${outcome(login)}`);
    const [up, t2] = await timed(() => uploadFile(system.gatewayUrl, clip, from(ALICE_IP, token)));
    round.upload = t2;
    if (!up.data) throw new Error(`upload: ${outcome(up)}`);
    const [job, t3] = await timed(async () => {
      const res = await graphql<{ convertMedia: { id: string } }>(
        system.gatewayUrl,
        'mutation ($m: ID!) { convertMedia(mediaId: $m) { id } }',
        { variables: { m: up.data!.uploadVideo.id }, ...from(ALICE_IP, token) },
      );
      if (!res.data) throw new Error(`convertMedia: ${outcome(res)}`);
      for (;;) {
        const state = await graphql<{
          job: { status: string; createdAt: string; startedAt: string; output: { downloadUrl: string } | null };
        }>(
          system.gatewayUrl,
          'query ($id: ID!) { job(id: $id) { status createdAt startedAt output { downloadUrl } } }',
          { variables: { id: res.data.convertMedia.id }, ...from(ALICE_IP, token) },
        );
        const status = state.data?.job.status;
        if (status === 'SUCCEEDED') {
          const { output, createdAt, startedAt } = state.data!.job;
          if (!output) throw new Error(`SUCCEEDED without output: ${JSON.stringify(state.errors)}`);
          round.queued = (Date.parse(startedAt) - Date.parse(createdAt)) / 1000;
          return output.downloadUrl;
        }
        if (status !== 'QUEUED' && status !== 'RUNNING') throw new Error(`job ended ${status ?? outcome(state)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    });
    round.convert = t3;
    const [bytes, t4] = await timed(async () => (await (await fetch(job)).arrayBuffer()).byteLength);
    round.download = t4;
    if (bytes === 0) throw new Error('empty mp3');
    round.ok = true;
  } catch (err) {
    round.why = (err as Error).message;
  }
}
await attacks;

const peakRssMb = async (pid: number) =>
  Math.round(Number(/VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024);
const rss: string[] = [];
for (const [name, service] of Object.entries(system.services))
  rss.push(`${name} ${await peakRssMb(service.child.pid!)} MB`);
for (const socket of sockets) void socket.dispose();
await system.stop();
await rm(work, { recursive: true, force: true });

const fmt = (n: number) => `${n.toFixed(2)} s`;
console.log(
  `\nAlice during a ${SECONDS} s flood: ${rounds.filter((r) => r.ok).length} of ${rounds.length} rounds succeeded`,
);
console.log(
  '| round | logIn | upload | convert → SUCCEEDED (of it queued) | download | result |\n| --- | --- | --- | --- | --- | --- |',
);
rounds.forEach((r, i) =>
  console.log(
    `| ${i + 1} | ${fmt(r.logIn)} | ${fmt(r.upload)} | ${fmt(r.convert)} (${r.queued === undefined ? '–' : fmt(r.queued)}) | ${fmt(r.download)} | ${r.ok ? 'ok' : r.why} |`,
  ),
);
console.log('\n| Mallory’s attack | what she got back |\n| --- | --- |');
for (const [attack, outcomes] of tally) {
  console.log(`| ${attack} | ${[...outcomes].map(([o, n]) => `${o} ×${n}`).join(', ')} |`);
}
console.log(`\nPeak RSS: ${rss.join(', ')}`);
if (rounds.length === 0 || rounds.some((r) => !r.ok)) process.exitCode = 1;
