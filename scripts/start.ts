// `npm start`: the whole system on one machine. Checks MariaDB and RabbitMQ, starts users, media and jobs,
// then the gateway once users serves its keys, shows every service's logs in one stream, and stops them all
// on Ctrl-C (or as soon as one of them dies on its own).
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import {
  DEPENDENCIES,
  FFMPEG_MISSING_MESSAGE,
  RUNNER_LABEL,
  bannerLines,
  dependencyEndpoint,
  describeExit,
  findOnPath,
  formatEndpoint,
  formatOutput,
  planServices,
  prefix,
  readyzUrl,
  resolvePorts,
  unreachableMessage,
  useColor,
  type Endpoint,
  type ServiceSpec,
} from './lib/processes.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const color = useColor(process.env, process.stdout.isTTY);
const formatOptions = { color, raw: process.env.LOG_FORMAT === 'json' };

const DEPENDENCY_TIMEOUT_MS = 1_500;
const READY_TIMEOUT_MS = 30_000;
const READY_POLL_MS = 250;
// Above the 2 s a service's /readyz may spend on its own dependency checks.
const READY_REQUEST_TIMEOUT_MS = 3_000;
const STOP_GRACE_MS = 10_000;

/** The runner's own lines, in the same column layout as the services'. */
function say(message: string): void {
  const head = prefix(RUNNER_LABEL, color);
  process.stdout.write(
    message
      .split('\n')
      .map((line) => head + line + '\n')
      .join(''),
  );
}

/** A problem found before anything started: a plain message (no stack trace) and exit 1. */
function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

// ---------------------------------------------------------------------------------------------------------
// Preflight

/** Resolves with undefined when something accepts TCP connections at the endpoint, else with the reason. */
function probe({ host, port }: Endpoint, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const finish = (reason: string | undefined) => {
      socket.destroy();
      resolve(reason);
    };
    socket.setTimeout(timeoutMs, () => finish(`no answer within ${timeoutMs / 1000} s`));
    socket.once('connect', () => finish(undefined));
    socket.once('error', (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
  });
}

async function checkDependencies(): Promise<void> {
  let endpoints: Endpoint[];
  try {
    endpoints = DEPENDENCIES.map((dependency) => dependencyEndpoint(dependency, process.env));
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
  const reasons = await Promise.all(endpoints.map((endpoint) => probe(endpoint, DEPENDENCY_TIMEOUT_MS)));
  const problems = DEPENDENCIES.flatMap((dependency, i) => {
    const reason = reasons[i];
    return reason === undefined ? [] : [unreachableMessage(dependency, endpoints[i]!, reason)];
  });
  if (problems.length > 0) fail(problems.join('\n\n'));
  say(`dependencies reachable: ${DEPENDENCIES.map((d, i) => `${d.name} ${formatEndpoint(endpoints[i]!)}`).join(', ')}`);

  const isExecutable = (path: string) => {
    try {
      accessSync(path, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (!findOnPath('ffmpeg', process.env.PATH, isExecutable)) say(`warning: ${FFMPEG_MISSING_MESSAGE}`);
}

// ---------------------------------------------------------------------------------------------------------
// Children

interface Running {
  spec: ServiceSpec;
  child: ChildProcess;
  /** Settles once the process has exited and its output has been read to the end. */
  closed: Promise<void>;
}

const running: Running[] = [];
/** Set once stopping has begun, with the code the runner will exit with. */
let stopping: { exitCode: number; since: number } | undefined;
/** Aborted when stopping begins, to end any readiness polling. */
const lifetime = new AbortController();

const alive = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

function pipeLines(stream: Readable, spec: ServiceSpec): void {
  // readline reassembles lines split across chunks, and hands over a last line without a newline at the end.
  createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
    process.stdout.write(formatOutput(spec.name, line, formatOptions).join('\n') + '\n');
  });
}

function start(spec: ServiceSpec): void {
  const child = spawn(process.execPath, [spec.script], {
    cwd: root,
    env: { ...process.env, ...spec.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so a Ctrl-C in the terminal reaches only this runner: the services' shutdown
    // handlers treat a second signal as "exit now", and the SIGTERM we send would be that second signal.
    detached: true,
  });
  const closed = new Promise<void>((resolve) => {
    child.once('close', () => resolve());
    child.once('error', () => resolve());
  });
  running.push({ spec, child, closed });
  pipeLines(child.stdout, spec);
  pipeLines(child.stderr, spec);

  child.once('exit', (code, signal) => {
    if (!stopping) stop(1, `${spec.name} exited unexpectedly (${describeExit(code, signal)}); stopping the others`);
  });
  child.once('error', (err) => {
    if (!stopping) stop(1, `${spec.name} could not be started (${err.message}); stopping the others`);
  });
  say(`started ${spec.name} on port ${spec.port} (pid ${child.pid ?? '?'})`);
}

/** SIGKILL to a child's whole process group, so that whatever it spawned (ffmpeg) goes too. */
function kill(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // Group already gone; the child itself may still need it if it left the group.
    if (alive(child)) child.kill('SIGKILL');
  }
}

/** SIGTERM to every child, SIGKILL after the grace period, then exit once every one of them has closed. */
function stop(exitCode: number, reason: string): void {
  if (stopping) return;
  stopping = { exitCode, since: Date.now() };
  lifetime.abort();
  say(reason);
  for (const { child } of running) if (alive(child)) child.kill('SIGTERM');

  const force = setTimeout(() => {
    const stuck = running.filter(({ child }) => alive(child));
    say(`still running after ${STOP_GRACE_MS / 1000} s: killing ${stuck.map((r) => r.spec.name).join(', ')}`);
    for (const { child } of stuck) kill(child);
  }, STOP_GRACE_MS);

  void Promise.all(running.map((r) => r.closed)).then(() => {
    clearTimeout(force);
    say('all services stopped');
    process.exit(exitCode);
  });
}

/**
 * A Ctrl-C reaches this process twice: directly (the terminal signals the whole foreground group) and once more
 * relayed by the wrappers it runs under (npm, tsx), late when the machine is loaded. A repeat this soon after the
 * first is that echo, not a second Ctrl-C.
 */
const SIGNAL_ECHO_MS = 1_000;

function onSignal(signal: NodeJS.Signals): void {
  if (stopping && Date.now() - stopping.since < SIGNAL_ECHO_MS) return;
  if (stopping) {
    // Second Ctrl-C (or a signal while already stopping): no more waiting.
    say(`${signal} again: killing every service now`);
    for (const { child } of running) kill(child);
    process.exit(stopping.exitCode === 0 ? 1 : stopping.exitCode);
  }
  stop(0, `${signal} received: stopping every service (Ctrl-C again to kill them at once)`);
}

process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
// The terminal closing: stop the services too, rather than leave them running in their own process groups.
process.on('SIGHUP', onSignal);
// A closed terminal or pipe (`npm start | head`) makes writes fail: stop everything instead of crashing.
process.stdout.on('error', () => stop(0, 'output closed: stopping every service'));
// Last resort if the runner itself crashes: detached children would otherwise outlive it.
process.on('exit', () => {
  for (const { child } of running) if (alive(child)) kill(child);
});

/** Polls a /readyz URL until it answers 200; false when the time is up or the runner is stopping. */
async function waitUntilReady(url: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!lifetime.signal.aborted && Date.now() < deadline) {
    try {
      const signal = AbortSignal.any([lifetime.signal, AbortSignal.timeout(READY_REQUEST_TIMEOUT_MS)]);
      const res = await fetch(url, { signal });
      await res.body?.cancel();
      if (res.status === 200) return true;
    } catch {
      // Not listening yet, or too slow: try again.
    }
    try {
      await sleep(READY_POLL_MS, undefined, { signal: lifetime.signal });
    } catch {
      return false; // aborted: stopping
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  let services: ServiceSpec[];
  try {
    services = planServices(resolvePorts(process.env));
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
  const missing = services.filter((s) => !existsSync(join(root, s.script))).map((s) => s.script);
  if (missing.length > 0) fail(`${missing.join(', ')} not found: run npm run build`);

  await checkDependencies();

  const byName = new Map(services.map((s) => [s.name, s]));
  const users = byName.get('users')!;
  const gateway = byName.get('gateway')!;

  for (const spec of services) if (spec !== gateway) start(spec);

  // The gateway (and the other subgraphs) fetch the JWKS from users, so users must be serving first.
  if (!(await waitUntilReady(readyzUrl(users.port), READY_TIMEOUT_MS))) {
    stop(1, `users was not ready within ${READY_TIMEOUT_MS / 1000} s (see its lines above); stopping the others`);
    return;
  }
  start(gateway);

  let ready = await waitUntilReady(readyzUrl(gateway.port), READY_TIMEOUT_MS);
  if (!ready && !stopping) {
    say(`gateway is not ready after ${READY_TIMEOUT_MS / 1000} s (see the lines above); still waiting`);
    ready = await waitUntilReady(readyzUrl(gateway.port), Number.POSITIVE_INFINITY);
  }
  if (ready) process.stdout.write(bannerLines(gateway.port, color).join('\n') + '\n');
}

await main();
