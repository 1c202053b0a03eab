// The pure parts of `npm start` (scripts/start.ts): which processes to run with which environment, where the
// dependencies are, and how a service's JSON log line is shown to a human. No I/O here, so it is unit-tested.
import { delimiter, join } from 'node:path';

export const SERVICE_NAMES = ['users', 'media', 'jobs', 'worker', 'notifier', 'gateway'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

/** The label of the runner's own lines, shown in the same column as the service names. */
export const RUNNER_LABEL = 'vidmp3';

type Env = Record<string, string | undefined>;

/** An environment variable counts as unset when empty, as in the services' config modules. */
function read(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

// ---------------------------------------------------------------------------------------------------------
// Ports and the processes to start

export type Ports = Record<ServiceName, number>;

const PORT_VARIABLES: Record<ServiceName, { variable: string; fallback: number }> = {
  users: { variable: 'USERS_PORT', fallback: 4001 },
  media: { variable: 'MEDIA_PORT', fallback: 4002 },
  jobs: { variable: 'JOBS_PORT', fallback: 4003 },
  gateway: { variable: 'GATEWAY_PORT', fallback: 4000 },
  worker: { variable: 'WORKER_HEALTH_PORT', fallback: 4010 },
  notifier: { variable: 'NOTIFIER_HEALTH_PORT', fallback: 4011 },
};

/** Every service's port from USERS_PORT, MEDIA_PORT, JOBS_PORT and GATEWAY_PORT; throws naming every problem. */
export function resolvePorts(env: Env): Ports {
  const problems: string[] = [];
  const ports = {} as Ports;
  for (const name of SERVICE_NAMES) {
    const { variable, fallback } = PORT_VARIABLES[name];
    const raw = read(env, variable);
    const port = raw === undefined ? fallback : /^\d+$/.test(raw) ? Number(raw) : NaN;
    // Port 0 (any free port) is refused: the other services must be told the address in advance.
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      problems.push(`${variable} must be a port number between 1 and 65535 (got "${raw}")`);
    }
    ports[name] = port;
  }
  for (const [i, name] of SERVICE_NAMES.entries()) {
    const other = SERVICE_NAMES.slice(0, i).find((n) => ports[n] === ports[name] && Number.isInteger(ports[n]));
    if (other) problems.push(`${other} and ${name} cannot share port ${ports[name]}`);
  }
  if (problems.length > 0) throw new Error(problems.join('\n'));
  return ports;
}

export interface ServiceSpec {
  name: ServiceName;
  /** Entry point, relative to the repository root. */
  script: string;
  port: number;
  /** Added to the runner's own environment. */
  env: Record<string, string>;
}

const SCRIPTS: Record<ServiceName, string> = {
  users: 'subgraphs/users/dist/main.js',
  media: 'subgraphs/media/dist/main.js',
  jobs: 'subgraphs/jobs/dist/main.js',
  gateway: 'gateway/dist/main.js',
  worker: 'workers/converter/dist/main.js',
  notifier: 'workers/notifier/dist/main.js',
};

const local = (port: number, path: string) => `http://127.0.0.1:${port}${path}`;

export const readyzUrl = (port: number): string => local(port, '/readyz');
export const graphqlUrl = (port: number): string => local(port, '/graphql');

/** The services in start order, each told its port and where the others are. */
export function planServices(ports: Ports): ServiceSpec[] {
  // Every service verifies tokens against the keys users publishes.
  const common = { JWKS_URL: local(ports.users, '/.well-known/jwks.json') };
  return SERVICE_NAMES.map((name) => ({
    name,
    script: SCRIPTS[name],
    port: ports[name],
    env: {
      ...common,
      PORT: String(ports[name]),
      ...(name === 'gateway'
        ? {
            SUBGRAPH_USERS_URL: graphqlUrl(ports.users),
            SUBGRAPH_MEDIA_URL: graphqlUrl(ports.media),
            SUBGRAPH_JOBS_URL: graphqlUrl(ports.jobs),
          }
        : {}),
      // Download links point at the gateway's origin, which proxies /files to media.
      ...(name === 'media' ? { PUBLIC_URL: local(ports.gateway, '') } : {}),
      // Links in account mails point at the page on the gateway.
      ...(name === 'users' ? { PUBLIC_URL: local(ports.gateway, '') } : {}),
      ...(name === 'jobs' ? { MEDIA_INTERNAL_URL: local(ports.media, '') } : {}),
      // The converter serves only health routes, on HEALTH_PORT; it calls media and jobs directly.
      ...(name === 'worker'
        ? {
            HEALTH_PORT: String(ports.worker),
            MEDIA_INTERNAL_URL: local(ports.media, ''),
            JOBS_INTERNAL_URL: local(ports.jobs, ''),
          }
        : {}),
      // The notifier serves only health routes too; it asks users who wants mail, and links to the gateway's page.
      // Without SMTP_URL (in the runner's own environment) its mails go to the log.
      ...(name === 'notifier'
        ? {
            HEALTH_PORT: String(ports.notifier),
            USERS_INTERNAL_URL: local(ports.users, ''),
            PUBLIC_URL: local(ports.gateway, ''),
          }
        : {}),
    },
  }));
}

/** "exit code 1" or "signal SIGSEGV", for a child's exit event. */
export function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  if (code !== null) return `exit code ${code}`;
  return signal ? `signal ${signal}` : 'unknown status';
}

// ---------------------------------------------------------------------------------------------------------
// Dependencies checked before anything starts

export interface Endpoint {
  host: string;
  port: number;
}

/** Host and port of a service URL (credentials and path ignored); throws when there is no host. */
export function parseEndpoint(url: string, defaultPort: number): Endpoint {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error('not a valid URL');
  }
  // URL keeps the brackets around an IPv6 address; net.connect wants it bare.
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw new Error('the URL has no host');
  return { host, port: parsed.port === '' ? defaultPort : Number(parsed.port) };
}

export const formatEndpoint = ({ host, port }: Endpoint): string =>
  host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;

export interface Dependency {
  name: string;
  variable: string;
  fallbackUrl: string;
  defaultPort: number;
  /** How to start it on the project's machines (Debian, no systemd, no Docker). */
  startCommand: string;
}

export const DEPENDENCIES: readonly Dependency[] = [
  {
    name: 'MariaDB/MySQL',
    variable: 'MYSQL_URL',
    fallbackUrl: 'mysql://root@127.0.0.1:3306',
    defaultPort: 3306,
    startCommand: 'start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd',
  },
  {
    // Not used by the services yet; checked already so that adding the queue changes nothing here.
    name: 'RabbitMQ',
    variable: 'RABBITMQ_URL',
    fallbackUrl: 'amqp://guest:guest@127.0.0.1:5672',
    defaultPort: 5672,
    startCommand: 'rabbitmq-server -detached',
  },
];

/** Where a dependency is, from its environment variable or the one-machine default. */
export function dependencyEndpoint(dependency: Dependency, env: Env): Endpoint {
  const url = read(env, dependency.variable) ?? dependency.fallbackUrl;
  try {
    return parseEndpoint(url, dependency.defaultPort);
  } catch (err) {
    throw new Error(`${dependency.variable} is invalid: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** What to tell the operator when a dependency does not accept connections. */
export function unreachableMessage(dependency: Dependency, endpoint: Endpoint, reason: string): string {
  return [
    `${dependency.name} is not reachable at ${formatEndpoint(endpoint)} (${reason}).`,
    `  Start it with: ${dependency.startCommand}`,
    `  or point ${dependency.variable} at a running server.`,
  ].join('\n');
}

export const FFMPEG_MISSING_MESSAGE = [
  'ffmpeg is not on PATH: uploads cannot be probed and conversions will fail.',
  '  Install it with: apt-get install -y ffmpeg',
].join('\n');

/** The first PATH entry holding an executable `command`, or undefined. */
export function findOnPath(
  command: string,
  pathVariable: string | undefined,
  isExecutable: (path: string) => boolean,
): string | undefined {
  for (const dir of (pathVariable ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, command);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Log lines

/** Colours only for a terminal, and never when NO_COLOR is set to anything (https://no-color.org). */
export function useColor(env: Env, isTTY: boolean | undefined): boolean {
  return isTTY === true && read(env, 'NO_COLOR') === undefined;
}

const SGR = {
  bold: '1',
  dim: '2',
  red: '31',
  green: '32',
  yellow: '33',
  magenta: '35',
  cyan: '36',
  brightBlue: '94',
  boldRed: '1;31',
} as const;

function paint(color: boolean, code: string | undefined, text: string): string {
  return color && code ? `\x1b[${code}m${text}\x1b[0m` : text;
}

const LABEL_COLORS: Record<string, string> = {
  users: SGR.cyan,
  media: SGR.magenta,
  jobs: SGR.brightBlue,
  gateway: SGR.green,
  [RUNNER_LABEL]: SGR.bold,
};

const LABEL_WIDTH = Math.max(RUNNER_LABEL.length, ...SERVICE_NAMES.map((n) => n.length));

/** `users   │ `: the fixed-width column that says whose line follows. */
export function prefix(label: string, color: boolean): string {
  return `${paint(color, LABEL_COLORS[label] ?? SGR.bold, label.padEnd(LABEL_WIDTH))} │ `;
}

export interface FormatOptions {
  color: boolean;
  /** LOG_FORMAT=json: pass the line through untouched. */
  raw: boolean;
}

/** One line a child printed, as the lines to show, each with the child's prefix. */
export function formatOutput(label: string, line: string, options: FormatOptions): string[] {
  const head = prefix(label, options.color);
  return formatLogLine(line, options).map((l) => head + l);
}

const PINO_LEVELS: Record<number, string> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};

const LEVEL_COLORS: Record<string, string> = {
  trace: SGR.dim,
  debug: SGR.dim,
  warn: SGR.yellow,
  error: SGR.red,
  fatal: SGR.boldRed,
};

/** Fields already shown in the line's head or prefix, and pino's defaults nobody reads in development. */
const SHOWN_ELSEWHERE = new Set(['level', 'time', 'service', 'msg', 'pid', 'hostname']);

type LogRecord = Record<string, unknown>;

const isRecord = (value: unknown): value is LogRecord =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** A pino line, or undefined for anything else (plain text, a stray JSON value). */
function parseRecord(line: string): LogRecord | undefined {
  if (!line.trimStart().startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return isRecord(value) && ('level' in value || 'msg' in value) ? value : undefined;
  } catch {
    return undefined;
  }
}

function levelLabel(level: unknown): string {
  if (typeof level === 'number') return PINO_LEVELS[level] ?? String(level);
  return typeof level === 'string' ? level.toLowerCase() : '';
}

/** HH:MM:SS in local time, from pino's ISO time or epoch milliseconds; anything else as it came. */
export function formatTime(time: unknown): string {
  if (typeof time !== 'string' && typeof time !== 'number') return '';
  const date = new Date(time);
  if (Number.isNaN(date.getTime())) return String(time);
  return [date.getHours(), date.getMinutes(), date.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

/** key=value rendering: bare when unambiguous, JSON-quoted strings otherwise, objects as JSON. */
export function formatValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value === null) return 'null';
  // JSON has no rendering for functions and symbols; naming the type is enough for a log line.
  return JSON.stringify(value) ?? typeof value;
}

/** A serialized error shows its message only; its stack, when it matters, goes on the following lines. */
function formatErr(err: unknown): string {
  if (isRecord(err) && typeof err.message === 'string' && err.message !== '') return formatValue(err.message);
  return formatValue(err);
}

function stackLines(err: unknown): string[] {
  if (!isRecord(err) || typeof err.stack !== 'string') return [];
  return err.stack.split('\n').map((line) => `  ${line}`);
}

/**
 * One line a service printed, rendered for a human: `12:34:56 INFO  msg key=value …`, then the error's
 * stack for error and fatal lines. Lines that are not pino JSON come back unchanged.
 */
export function formatLogLine(line: string, { color, raw }: FormatOptions): string[] {
  if (raw) return [line];
  const record = parseRecord(line);
  if (!record) return [line];

  const level = levelLabel(record.level);
  const time = formatTime(record.time);
  const head = [
    time && paint(color, SGR.dim, time),
    level && paint(color, LEVEL_COLORS[level], level.toUpperCase().padEnd(5)),
    record.msg === undefined ? '' : formatMessage(record.msg),
  ].filter((part) => part !== '');

  const fields = Object.entries(record)
    .filter(([key, value]) => !SHOWN_ELSEWHERE.has(key) && value !== undefined)
    .map(([key, value]) => paint(color, SGR.dim, `${key}=`) + (key === 'err' ? formatErr(value) : formatValue(value)));

  const lines = [...head, ...fields].join(' ').split('\n');
  if (level === 'error' || level === 'fatal') lines.push(...stackLines(record.err));
  return lines;
}

function formatMessage(msg: unknown): string {
  return typeof msg === 'string' ? msg : formatValue(msg);
}

/** Shown once the gateway answers: where to send queries, and one to try. */
export function bannerLines(gatewayPort: number, color: boolean): string[] {
  const url = graphqlUrl(gatewayPort);
  const body = JSON.stringify({
    query: 'mutation { signUp(email: "you@example.com", password: "a long passphrase") { accessToken } }',
  });
  const rule = '─'.repeat(72);
  return [
    '',
    paint(color, SGR.green, rule),
    paint(color, SGR.bold, '  vidmp3 is ready'),
    '',
    `  GraphQL   ${paint(color, SGR.cyan, url)}`,
    // The body is single-quoted for the shell, so its JSON escapes reach curl as they are.
    `  Try it    curl -s ${url} -H 'content-type: application/json' -d '${body}'`,
    '  Stop      Ctrl-C',
    paint(color, SGR.green, rule),
    '',
  ];
}
