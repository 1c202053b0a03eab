import { describe, expect, it } from 'vitest';
import {
  DEPENDENCIES,
  bannerLines,
  dependencyEndpoint,
  describeExit,
  findOnPath,
  formatLogLine,
  formatOutput,
  formatTime,
  parseEndpoint,
  planServices,
  prefix,
  resolvePorts,
  unreachableMessage,
  useColor,
} from './lib/processes.js';

const plain = { color: false, raw: false };
const [mysql, rabbitmq] = DEPENDENCIES;
// A timestamp whose local wall-clock time is 03:04:05 whatever the machine's time zone.
const time = new Date(2024, 0, 2, 3, 4, 5, 678).toISOString();
const line = (record: Record<string, unknown>) => JSON.stringify({ level: 'info', time, service: 'users', ...record });

describe('log line formatting', () => {
  it('shows time as HH:MM:SS, the level, the message, then the other fields as key=value', () => {
    expect(formatLogLine(line({ msg: 'listening', port: 4001, url: 'http://127.0.0.1:4001/graphql' }), plain)).toEqual([
      '03:04:05 INFO  listening port=4001 url=http://127.0.0.1:4001/graphql',
    ]);
  });

  it('quotes strings with spaces and JSON-encodes objects', () => {
    const [out] = formatLogLine(line({ msg: 'request', requestId: 'a b', req: { method: 'GET' }, ok: true }), plain);
    expect(out).toBe('03:04:05 INFO  request requestId="a b" req={"method":"GET"} ok=true');
  });

  it('shows an error object as its message, and its stack below for error and fatal lines', () => {
    const err = { type: 'Error', message: 'boom here', stack: 'Error: boom here\n    at main (main.js:1:1)' };
    expect(formatLogLine(line({ level: 'error', msg: 'failed', err }), plain)).toEqual([
      '03:04:05 ERROR failed err="boom here"',
      '  Error: boom here',
      '      at main (main.js:1:1)',
    ]);
    expect(formatLogLine(line({ level: 'warn', msg: 'retrying', err }), plain)).toEqual([
      '03:04:05 WARN  retrying err="boom here"',
    ]);
  });

  it('understands pino numeric levels and epoch-millisecond times', () => {
    const [out] = formatLogLine(JSON.stringify({ level: 60, time: new Date(time).getTime(), msg: 'down' }), plain);
    expect(out).toBe('03:04:05 FATAL down');
  });

  it('prints lines that are not pino JSON unchanged', () => {
    for (const raw of ['users: invalid configuration:', '[1,2]', '{"not":"a log line"}', '{broken', '']) {
      expect(formatLogLine(raw, plain)).toEqual([raw]);
    }
  });

  it('passes JSON lines through untouched when LOG_FORMAT=json', () => {
    const json = line({ msg: 'listening' });
    expect(formatLogLine(json, { color: false, raw: true })).toEqual([json]);
  });

  it('colours warn, error and fatal levels only when colour is on', () => {
    const warn = line({ level: 'warn', msg: 'slow' });
    expect(formatLogLine(warn, { color: true, raw: false }).join('')).toContain('\x1b[33mWARN');
    expect(formatLogLine(warn, plain).join('')).not.toContain('\x1b[');
    expect(formatLogLine(line({ level: 'error', msg: 'x' }), { color: true, raw: false })[0]).toContain(
      '\x1b[31mERROR',
    );
  });

  it('prefixes every line, stack lines included, with a fixed-width service column', () => {
    expect(prefix('users', false)).toBe('users    │ ');
    expect(prefix('gateway', false)).toBe('gateway  │ ');
    expect(prefix('notifier', false)).toBe('notifier │ ');
    const err = { message: 'x', stack: 'Error: x\n    at y' };
    const out = formatOutput('media', line({ level: 'fatal', msg: 'failed to start', err }), plain);
    expect(out).toHaveLength(3);
    for (const l of out) expect(l.startsWith('media    │ ')).toBe(true);
    // Coloured, the name is wrapped in escape codes and still padded to the same width.
    const coloured = prefix('jobs', true);
    expect(coloured.startsWith('\x1b[')).toBe(true);
    expect(coloured.endsWith('jobs    \x1b[0m │ ')).toBe(true);
  });

  it('renders an unparseable time as it came', () => {
    expect(formatTime('yesterday')).toBe('yesterday');
    expect(formatTime(undefined)).toBe('');
  });
});

describe('colour', () => {
  it('is on for a terminal unless NO_COLOR is set', () => {
    expect(useColor({}, true)).toBe(true);
    expect(useColor({}, false)).toBe(false);
    expect(useColor({}, undefined)).toBe(false);
    expect(useColor({ NO_COLOR: '1' }, true)).toBe(false);
  });
});

describe('ports and the processes to start', () => {
  it('defaults to 4001, 4002, 4003, the gateway on 4000 and the converter health port on 4010', () => {
    expect(resolvePorts({})).toEqual({
      users: 4001,
      media: 4002,
      jobs: 4003,
      gateway: 4000,
      worker: 4010,
      notifier: 4011,
    });
  });

  it('takes overrides from the environment, an empty value counting as unset', () => {
    expect(resolvePorts({ USERS_PORT: '5001', GATEWAY_PORT: '5000', MEDIA_PORT: '' })).toEqual({
      users: 5001,
      media: 4002,
      jobs: 4003,
      gateway: 5000,
      worker: 4010,
      notifier: 4011,
    });
  });

  it('names every invalid or shared port at once', () => {
    expect(() => resolvePorts({ USERS_PORT: 'abc', JOBS_PORT: '70000', GATEWAY_PORT: '4002' })).toThrow(
      /USERS_PORT must be a port[\s\S]*JOBS_PORT must be a port[\s\S]*media and gateway cannot share port 4002/,
    );
  });

  it('tells every service where the JWKS is, the gateway where each subgraph is, the converter where media and jobs are', () => {
    const services = planServices({
      users: 5001,
      media: 5002,
      jobs: 5003,
      gateway: 5000,
      worker: 5010,
      notifier: 5011,
    });
    expect(services.map((s) => [s.name, s.script, s.env.PORT])).toEqual([
      ['users', 'subgraphs/users/dist/main.js', '5001'],
      ['media', 'subgraphs/media/dist/main.js', '5002'],
      ['jobs', 'subgraphs/jobs/dist/main.js', '5003'],
      ['worker', 'workers/converter/dist/main.js', '5010'],
      ['notifier', 'workers/notifier/dist/main.js', '5011'],
      ['gateway', 'gateway/dist/main.js', '5000'],
    ]);
    for (const s of services) expect(s.env.JWKS_URL).toBe('http://127.0.0.1:5001/.well-known/jwks.json');
    expect(services[3]!.env).toMatchObject({
      HEALTH_PORT: '5010',
      MEDIA_INTERNAL_URL: 'http://127.0.0.1:5002',
      JOBS_INTERNAL_URL: 'http://127.0.0.1:5003',
    });
    expect(services[2]!.env.MEDIA_INTERNAL_URL).toBe('http://127.0.0.1:5002');
    expect(services[4]!.env).toMatchObject({
      HEALTH_PORT: '5011',
      USERS_INTERNAL_URL: 'http://127.0.0.1:5001',
      PUBLIC_URL: 'http://127.0.0.1:5000',
    });
    expect(services[5]!.env).toMatchObject({
      SUBGRAPH_USERS_URL: 'http://127.0.0.1:5001/graphql',
      SUBGRAPH_MEDIA_URL: 'http://127.0.0.1:5002/graphql',
      SUBGRAPH_JOBS_URL: 'http://127.0.0.1:5003/graphql',
    });
    expect(services[0]!.env.SUBGRAPH_USERS_URL).toBeUndefined();
    // Account mails link to the page on the gateway.
    expect(services[0]!.env.PUBLIC_URL).toBe('http://127.0.0.1:5000');
  });

  it('describes how a child ended', () => {
    expect(describeExit(1, null)).toBe('exit code 1');
    expect(describeExit(null, 'SIGSEGV')).toBe('signal SIGSEGV');
  });
});

describe('dependency checks', () => {
  it('finds host and port in the URLs, with the protocol default when the port is left out', () => {
    expect(parseEndpoint('mysql://root:secret@db.local:3307/vidmp3_users', 3306)).toEqual({
      host: 'db.local',
      port: 3307,
    });
    expect(parseEndpoint('amqp://guest:guest@127.0.0.1', 5672)).toEqual({ host: '127.0.0.1', port: 5672 });
    expect(parseEndpoint('mysql://[::1]:3306', 3306)).toEqual({ host: '::1', port: 3306 });
    expect(() => parseEndpoint('not a url', 3306)).toThrow(/not a valid URL/);
  });

  it('uses MYSQL_URL and RABBITMQ_URL, or the one-machine defaults', () => {
    expect(dependencyEndpoint(mysql!, {})).toEqual({ host: '127.0.0.1', port: 3306 });
    expect(dependencyEndpoint(rabbitmq!, {})).toEqual({ host: '127.0.0.1', port: 5672 });
    expect(dependencyEndpoint(rabbitmq!, { RABBITMQ_URL: 'amqp://mq:5673' })).toEqual({ host: 'mq', port: 5673 });
    expect(() => dependencyEndpoint(mysql!, { MYSQL_URL: 'nope' })).toThrow(/MYSQL_URL is invalid/);
  });

  it('says which dependency is down, where, and how to start it', () => {
    const message = unreachableMessage(mysql!, { host: '127.0.0.1', port: 3306 }, 'ECONNREFUSED');
    expect(message).toContain('MariaDB/MySQL is not reachable at 127.0.0.1:3306 (ECONNREFUSED)');
    expect(message).toContain('start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd');
    expect(unreachableMessage(rabbitmq!, { host: '::1', port: 5672 }, 'ETIMEDOUT')).toMatch(
      /RabbitMQ is not reachable at \[::1\]:5672[\s\S]*rabbitmq-server -detached/,
    );
  });

  it('looks for an executable through every PATH entry', () => {
    const present = new Set(['/usr/bin/ffmpeg']);
    expect(findOnPath('ffmpeg', '/usr/local/bin::/usr/bin', (p) => present.has(p))).toBe('/usr/bin/ffmpeg');
    expect(findOnPath('ffmpeg', '/bin', (p) => present.has(p))).toBeUndefined();
    expect(findOnPath('ffmpeg', undefined, () => true)).toBeUndefined();
  });
});

describe('the ready banner', () => {
  it('gives the GraphQL URL and a signUp request to paste into a shell', () => {
    const text = bannerLines(4000, false).join('\n');
    expect(text).toContain('http://127.0.0.1:4000/graphql');
    expect(text).toContain(
      `curl -s http://127.0.0.1:4000/graphql -H 'content-type: application/json' -d '{"query":"mutation { signUp(email: \\"you@example.com\\", password: \\"a long passphrase\\") { accessToken } }"}'`,
    );
  });
});
