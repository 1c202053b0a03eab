// Starting the images as compose and the manifests start them: the image's own user and command, a read-only root
// filesystem with only the declared writable mounts, every capability dropped and none added, no new privileges,
// an init process, settings as variables and secrets passed through podman's environment (never on its command
// line). On the host network, each on a port of its own.
import { setTimeout as sleep } from 'node:timers/promises';
import { secretKind } from '../../k8s/test/policy.js';
import { podman } from './podman.js';
import { smokeEnv, smokeWritable, type ServiceSpec } from './services.js';

export interface Container {
  name: string;
  spec: ServiceSpec;
  /** http://127.0.0.1:<port> of its service (or health) port. */
  url: string;
  env: Record<string, string>;
}

export interface ContainerState {
  status: string;
  running: boolean;
  exitCode: number;
}

/** compose's `tmpfs: ['/tmp:size=64m']`. */
const TMPFS_SIZE = '64m';

/** The podman arguments and environment that start `image` of `spec` as `name` with `env` (smokeEnv(spec)'s names). */
export function runArguments(
  spec: ServiceSpec,
  name: string,
  env: Record<string, string>,
  labels: Record<string, string>,
  volume: (path: string) => string,
  image: string,
): { args: string[]; env: Record<string, string> } {
  const expected = smokeEnv(spec);
  const given = Object.keys(env).sort();
  if (given.join() !== expected.join()) {
    throw new Error(`${name}: sets ${given.join(', ')}, but services.ts says ${expected.join(', ')}`);
  }
  const args = [
    'run',
    '--detach',
    '--pull=never',
    `--name=${name}`,
    ...Object.entries(labels).map(([k, v]) => `--label=${k}=${v}`),
    '--network=host',
    // compose: init: true, read_only: true (and no tmpfs of podman's own: only what is declared below),
    // cap_drop: [ALL], security_opt: [no-new-privileges:true]. Kubernetes: readOnlyRootFilesystem,
    // capabilities.drop [ALL], allowPrivilegeEscalation false.
    '--init',
    '--read-only',
    '--read-only-tmpfs=false',
    '--cap-drop=ALL',
    '--security-opt=no-new-privileges',
  ];
  for (const w of smokeWritable(spec)) {
    args.push(w.kind === 'tmpfs' ? `--tmpfs=${w.path}:rw,size=${TMPFS_SIZE}` : `--volume=${volume(w.path)}:${w.path}`);
  }
  const secrets: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (secretKind(key) === 'value') {
      secrets[key] = value;
      args.push(`--env=${key}`);
    } else args.push(`--env=${key}=${value}`);
  }
  args.push(image);
  return { args, env: secrets };
}

export async function state(name: string): Promise<ContainerState> {
  const { stdout } = await podman(['inspect', '--format', '{{json .State}}', name]);
  const s = JSON.parse(stdout) as { Status: string; Running: boolean; ExitCode: number };
  return { status: s.Status, running: s.Running, exitCode: s.ExitCode };
}

export async function logsOf(name: string, tail = 80): Promise<string> {
  const { stdout, stderr } = await podman(['logs', '--tail', String(tail), name]).catch((err: Error) => ({
    stdout: err.message,
    stderr: '',
  }));
  return (stdout + stderr).trimEnd();
}

/** Polls `/readyz` until it answers 200; fails at once, with its logs, if the container stops. */
export async function waitReady(c: Container, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`${c.url}/readyz`, { signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
    if (res?.ok) return;
    const now = await state(c.name);
    if (!now.running) {
      throw new Error(
        `${c.name} stopped (${now.status}, exit ${now.exitCode}) before it was ready:\n${await logsOf(c.name)}`,
      );
    }
    if (Date.now() > deadline) {
      throw new Error(`${c.name}: /readyz did not answer 200 within ${timeoutMs / 1000} s:\n${await logsOf(c.name)}`);
    }
    await sleep(250); // the poll's interval
  }
}
