import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { secretKind } from '../k8s/test/policy.js';
import { checkCompose, environmentOf, parseCompose, type ComposeFile } from './lib/compose-file.js';
import { checkDockerfile, checkDockerignore, parseStages, type DockerfileExpectations } from './lib/dockerfile.js';
import { configEnv } from './lib/service-env.js';

const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');
const dockerfile = read('Dockerfile');
const rootPackage = JSON.parse(read('package.json')) as { workspaces: string[] };

const expectations: DockerfileExpectations = {
  targets: {
    gateway: { ffmpeg: false, main: 'gateway/dist/main.js' },
    users: { ffmpeg: false, main: 'subgraphs/users/dist/main.js' },
    // ffprobe checks every upload; Debian ships it in the ffmpeg package.
    media: { ffmpeg: true, main: 'subgraphs/media/dist/main.js' },
    jobs: { ffmpeg: false, main: 'subgraphs/jobs/dist/main.js' },
    converter: { ffmpeg: true, main: 'workers/converter/dist/main.js' },
    notifier: { ffmpeg: false, main: 'workers/notifier/dist/main.js' },
  },
  workspaces: rootPackage.workspaces,
};

describe('the Dockerfile', () => {
  it('builds every deployable from a pinned base, with npm ci, production dependencies only, as non-root, with a healthcheck', () => {
    expect(checkDockerfile(dockerfile, expectations)).toEqual([]);
  });

  it('puts ffmpeg only into the media and converter images', () => {
    expect(
      checkDockerfile(dockerfile.replace('FROM runtime AS gateway', 'FROM runtime-ffmpeg AS gateway'), expectations),
    ).toEqual(['target gateway: carries ffmpeg']);
  });

  it('fails when a final stage loses its USER, its HEALTHCHECK or --omit=dev', () => {
    const stages = parseStages(dockerfile);
    expect(stages.find((s) => s.name === 'users')?.instructions.some((i) => i.keyword === 'USER')).toBe(true);

    const jobsStart = dockerfile.indexOf('FROM runtime AS jobs');
    const jobsEnd = dockerfile.indexOf('FROM ', jobsStart + 1);
    const jobsStage = dockerfile.slice(jobsStart, jobsEnd);
    const withoutUser = dockerfile.replace(jobsStage, jobsStage.replace('USER node\n', ''));
    expect(checkDockerfile(withoutUser, expectations)).toEqual(['target jobs: runs as root (no non-root USER)']);

    const withoutHealthcheck = dockerfile.replace(jobsStage, jobsStage.replace(/HEALTHCHECK[^\n]*\\\n[^\n]*\n/, ''));
    expect(checkDockerfile(withoutHealthcheck, expectations)).toEqual(['target jobs: no HEALTHCHECK']);

    const devDeps = dockerfile.replace(
      'npm ci --omit=dev --ignore-scripts --workspace=@vidmp3/media',
      'npm ci --workspace=@vidmp3/media',
    );
    expect(checkDockerfile(devDeps, expectations)).toEqual([
      'target media: node_modules from deps-media are not production-only',
    ]);
  });

  it('fails on an unpinned base image and on a workspace missing before npm ci', () => {
    const latest = dockerfile.replace(/^FROM node:\S+ AS node-base$/m, 'FROM node:latest AS node-base');
    expect(checkDockerfile(latest, expectations)).toEqual([
      'stage node-base: base image node:latest is not pinned to a version tag (x.y.z) or digest',
    ]);
    const newWorkspace = { ...expectations, workspaces: [...expectations.workspaces, 'tools/new'] };
    expect(checkDockerfile(dockerfile, newWorkspace)).toEqual([
      'Dockerfile: npm ci runs without tools/new/package.json',
    ]);
  });
});

describe('.dockerignore', () => {
  it('keeps dependencies, builds, data, history, secrets and test output out of the build context', () => {
    expect(checkDockerignore(read('.dockerignore'))).toEqual([]);
    expect(checkDockerignore(read('.dockerignore').replace(/^\*\*\/node_modules$/m, ''))).toEqual([
      '.dockerignore: does not exclude node_modules',
    ]);
  });
});

/** `${VAR}`, `${VAR:-default}`, `${VAR:?message}`...; `$${...}` is escaped, not interpolated. */
const INTERPOLATION = /(?<!\$)\$\{[A-Za-z_][A-Za-z0-9_]*(?:(:?[-?+])([^}]*))?\}/g;
/** Stands for an interpolation in a value, so that what is left is what the file itself writes. */
const FROM_ENV = '\u0000';

/**
 * The secret variables (SECRET_ENV, k8s/test/policy.ts) whose secret docker-compose.yml writes down rather than
 * takes from .env or the environment: a value must be one `${VAR}` interpolation, or for a connection URL its
 * password must be, and no interpolation may fall back to a default written here (an empty one is no secret).
 */
function literalSecrets(compose: ComposeFile): string[] {
  const out: string[] = [];
  for (const [service, { environment }] of Object.entries(compose.services)) {
    const entries: [string, string | number | null][] = Array.isArray(environment)
      ? environment.map((e) =>
          e.includes('=') ? [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)] : [e, null],
        )
      : Object.entries(environment ?? {});
    for (const [name, raw] of entries) {
      // No value: compose passes the variable through from its own environment.
      if (secretKind(name) !== 'value' || raw === null) continue;
      const value = String(raw);
      const fallback = [...value.matchAll(INTERPOLATION)].find(([, op, text]) => text && /^:?[-+]$/.test(op!));
      if (fallback) {
        out.push(`${service}: ${name} falls back to a secret written here (${fallback[0]}); give it no default`);
        continue;
      }
      const masked = value.replace(INTERPOLATION, FROM_ENV);
      const userinfo = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)@/i.exec(masked)?.[1];
      const credential = userinfo === undefined ? masked : userinfo.slice(userinfo.indexOf(':') + 1);
      if (credential !== FROM_ENV) {
        const what = userinfo === undefined ? name : `the password of ${name}`;
        out.push(`${service}: writes ${what} into docker-compose.yml; take it from .env as \${VAR}`);
      }
    }
  }
  return out;
}

describe('docker-compose.yml', () => {
  const compose = read('docker-compose.yml');
  const context = {
    serviceEnv: configEnv,
    dockerfileStages: new Set(parseStages(dockerfile).map((s) => s.name)),
    envExample: read('.env.example'),
  };

  it('references only services, variables and Dockerfile targets that exist, with pinned images and healthchecks', () => {
    expect(checkCompose(compose, context)).toEqual([]);
  });

  it("keeps the gateway's /metrics off its published port and believes no client's X-Forwarded-For", () => {
    const gateway = environmentOf(parseCompose(compose).services.gateway!);
    expect(gateway.get('METRICS_PORT')).toBe('9464');
    expect(gateway.get('TRUST_PROXY')).toBe('loopback');

    const spoofable = compose.replace(/^(\s+TRUST_PROXY:) loopback$/m, '$1 loopback, uniquelocal');
    expect(checkCompose(spoofable, context)).toEqual([
      'gateway: publishes its port yet believes X-Forwarded-For from loopback, uniquelocal (TRUST_PROXY: loopback)',
    ]);
    const publicMetrics = compose.replace(/^\s+METRICS_PORT: '9464'\n/m, '');
    expect(checkCompose(publicMetrics, context)).toEqual([
      'gateway: serves /metrics on its published port (set METRICS_PORT to another port)',
    ]);
    const publishedMetrics = compose.replace(
      "      - '${GATEWAY_PORT:-4000}:4000'\n",
      "      - '${GATEWAY_PORT:-4000}:4000'\n      - '9464:9464'\n",
    );
    expect(checkCompose(publishedMetrics, context)).toEqual(['gateway: publishes its METRICS_PORT 9464']);
  });

  it('takes every secret from .env by ${VAR} interpolation, never written into the file', () => {
    expect(literalSecrets(parseCompose(compose))).toEqual([]);
  });

  it('fails on a secret written into the file: a literal, a password in a URL, a default', () => {
    const parsed = parseCompose(compose);
    const env = (service: string) => parsed.services[service]!.environment as Record<string, string>;
    env('rabbitmq').RABBITMQ_DEFAULT_PASS = 'guest';
    env('users').MYSQL_URL = 'mysql://vidmp3_users:hunter2@mariadb:3306/vidmp3_users';
    env('media').DOWNLOAD_SIGNING_KEY = '${DOWNLOAD_SIGNING_KEY:-0123456789abcdef0123456789abcdef}';
    env('jobs').INTERNAL_API_TOKEN = '0123456789abcdef';
    expect(literalSecrets(parsed)).toEqual([
      'rabbitmq: writes RABBITMQ_DEFAULT_PASS into docker-compose.yml; take it from .env as ${VAR}',
      'users: writes the password of MYSQL_URL into docker-compose.yml; take it from .env as ${VAR}',
      'media: DOWNLOAD_SIGNING_KEY falls back to a secret written here (${DOWNLOAD_SIGNING_KEY:-0123456789abcdef0123456789abcdef}); give it no default',
      'jobs: writes INTERNAL_API_TOKEN into docker-compose.yml; take it from .env as ${VAR}',
    ]);
  });

  it('keeps media on GridFS', () => {
    expect(checkCompose(compose.replace(/^\s+MONGODB_URL: .*$/m, ''), context)).toContain(
      'media: blobs are not on GridFS (no MONGODB_URL)',
    );
  });

  it('fails on a variable no config reads, a missing dependency, an undocumented ${VAR} and a missing healthcheck', () => {
    const broken = compose
      .replace(
        '      SUBGRAPH_JOBS_URL: http://jobs:4003/graphql\n',
        '      SUBGRAPH_JOBS_URL: http://jobs:4003/graphql\n      JOBS_URL: x\n',
      )
      .replace('      mongodb: { condition: service_healthy }\n', '      mongo: { condition: service_healthy }\n')
      .replace(
        "LOG_LEVEL: ${LOG_LEVEL:-info}\n      HOST: 0.0.0.0\n      PORT: '4003'",
        "LOG_LEVEL: ${JOBS_LOG_LEVEL}\n      HOST: 0.0.0.0\n      PORT: '4003'",
      )
      .replace(`test: ['CMD', 'mongosh', '--quiet', '--eval', "db.adminCommand('ping').ok"]`, 'disable: true');
    expect(checkCompose(broken, context)).toEqual([
      'mongodb: no healthcheck',
      'media: depends on mongo, which is not a service',
      'gateway: sets JOBS_URL, which its src/config.ts does not read',
      '${JOBS_LOG_LEVEL} has no default and is not in .env.example',
    ]);
  });
});
