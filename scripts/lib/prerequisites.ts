// The Debian packages `npm start` (`run`) and `npm test` (`test`) need beyond Node, MariaDB and RabbitMQ, and which
// of them are missing (scripts/prerequisites.ts installs them or says how).
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export type Purpose = 'run' | 'test';

interface Need {
  /** What is looked for: a command on PATH, or an absolute path. */
  check: string;
  /** The Debian packages that bring it. */
  packages: string[];
  purposes: Purpose[];
}

const NEEDS: Need[] = [
  // Uploads are probed with ffprobe, conversions run ffmpeg (both in Debian's ffmpeg package).
  { check: 'ffmpeg', packages: ['ffmpeg'], purposes: ['run', 'test'] },
  { check: 'ffprobe', packages: ['ffmpeg'], purposes: ['run', 'test'] },
  // The browser tests drive Debian's Chromium (playwright-core), with fonts for the screenshots.
  { check: '/usr/bin/chromium', packages: ['chromium', 'fonts-liberation'], purposes: ['test'] },
  // The manifest tests render the kustomize overlays; Debian ships kubectl as kubernetes-client.
  { check: 'kubectl', packages: ['kubernetes-client'], purposes: ['test'] },
  // k8s/create-secrets.sh, checked by the manifest tests.
  { check: 'openssl', packages: ['openssl'], purposes: ['test'] },
];

const executable = (path: string) => {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

export function found(check: string, pathVariable: string | undefined, isExecutable = executable): boolean {
  if (check.startsWith('/')) return isExecutable(check);
  return (pathVariable ?? '')
    .split(delimiter)
    .filter(Boolean)
    .some((dir) => isExecutable(join(dir, check)));
}

/** The packages to install for `purpose`, in a stable order without repeats. */
export function missingPackages(
  purpose: Purpose,
  pathVariable: string | undefined,
  isExecutable = executable,
): string[] {
  const missing = NEEDS.filter((n) => n.purposes.includes(purpose) && !found(n.check, pathVariable, isExecutable));
  return [...new Set(missing.flatMap((n) => n.packages))];
}

export const installCommand = (packages: string[]): string =>
  `apt-get update && apt-get install -y --no-install-recommends ${packages.join(' ')}`;

/**
 * `npm test` also needs RabbitMQ's own `rabbitmqctl`, on PATH: the tests create a virtual host of their own with
 * it. It comes with the broker (Debian's rabbitmq-server) and must reach it, so it is not installed here: where it
 * is missing, the message says what to do. Null when it is there or not needed.
 */
export function missingBrokerTool(
  purpose: Purpose,
  pathVariable: string | undefined,
  isExecutable = executable,
): string | null {
  if (purpose !== 'test' || found('rabbitmqctl', pathVariable, isExecutable)) return null;
  return (
    'npm test needs rabbitmqctl on PATH (the tests create RabbitMQ virtual hosts with it): run the tests on the ' +
    "broker's machine, where Debian's rabbitmq-server brings it (/usr/sbin), or put a rabbitmqctl that reaches " +
    'the broker on PATH.'
  );
}
