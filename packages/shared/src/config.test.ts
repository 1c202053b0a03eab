import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { ConfigError, env, loadConfig, parseConfig } from './config.js';

// A service-shaped schema built from the shared field types, as a service's config.ts would write it.
const Schema = z.object({
  NODE_ENV: env.nodeEnv(),
  LOG_LEVEL: env.logLevel(),
  PORT: env.port(4001),
  MYSQL_URL: env.url('mysql://root@127.0.0.1:3306/vidmp3_users'),
  PUBLIC_URL: env.url(),
  METRICS: env.bool(false),
  TRUST_CLIENT: env.optionalBool(),
  ORIGINS: env.list(['http://localhost:3000']),
});

/** Parses with the required setting present, so each test only says what it is about. */
const parse = (vars: Record<string, string | undefined> = {}) =>
  parseConfig(Schema, { PUBLIC_URL: 'http://localhost:4000', ...vars });

/** The problems a ConfigError lists, or a failure when the config was accepted. */
function problemsOf(run: () => unknown): string[] {
  try {
    run();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected the configuration to be rejected');
}

describe('parseConfig', () => {
  it('applies every default when only the required settings are given', () => {
    expect(parse()).toEqual({
      NODE_ENV: 'development',
      LOG_LEVEL: 'info',
      PORT: 4001,
      MYSQL_URL: 'mysql://root@127.0.0.1:3306/vidmp3_users',
      PUBLIC_URL: 'http://localhost:4000',
      METRICS: false,
      TRUST_CLIENT: undefined,
      ORIGINS: ['http://localhost:3000'],
    });
  });

  it('reads the values that are set, converting numbers, booleans and lists', () => {
    const config = parse({
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      PORT: '8080',
      MYSQL_URL: 'mysql://users:secret@db:3306/users',
      METRICS: 'yes',
      TRUST_CLIENT: 'false',
      ORIGINS: 'https://a.example,https://b.example',
    });

    expect(config).toMatchObject({
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      PORT: 8080,
      MYSQL_URL: 'mysql://users:secret@db:3306/users',
      METRICS: true,
      TRUST_CLIENT: false,
      ORIGINS: ['https://a.example', 'https://b.example'],
    });
  });

  it('names every problem at once, each with the variable it is about', () => {
    const problems = problemsOf(() =>
      parseConfig(Schema, { PORT: 'eighty', MYSQL_URL: 'not a url', METRICS: 'maybe', NODE_ENV: 'staging' }),
    );

    expect(problems).toHaveLength(5);
    expect(problems.map((p) => p.split(':')[0]).sort()).toEqual([
      'METRICS',
      'MYSQL_URL',
      'NODE_ENV',
      'PORT',
      'PUBLIC_URL', // required and missing
    ]);
  });

  it('throws a ConfigError whose message lists the problems one per line', () => {
    let error: unknown;
    try {
      parseConfig(Schema, { PORT: '-1' });
    } catch (err) {
      error = err;
    }

    expect(error).toBeInstanceOf(ConfigError);
    const { message, name } = error as ConfigError;
    expect(name).toBe('ConfigError');
    expect(message.split('\n')[0]).toBe('invalid configuration:');
    expect(message).toMatch(/^ {2}- PORT: /m);
    expect(message).toMatch(/^ {2}- PUBLIC_URL: /m);
  });

  it('names a problem about the whole config "(root)"', () => {
    const Paired = z
      .object({ A: z.string().optional(), B: z.string().optional() })
      .refine((c) => Boolean(c.A) === Boolean(c.B), { message: 'A and B go together' });

    expect(problemsOf(() => parseConfig(Paired, { A: 'x' }))).toEqual(['(root): A and B go together']);
  });

  describe('an empty variable means unset', () => {
    it('so the default applies', () => {
      expect(parse({ PORT: '', MYSQL_URL: '', METRICS: '', ORIGINS: '', LOG_LEVEL: '' })).toMatchObject({
        PORT: 4001,
        MYSQL_URL: 'mysql://root@127.0.0.1:3306/vidmp3_users',
        METRICS: false,
        ORIGINS: ['http://localhost:3000'],
        LOG_LEVEL: 'info',
      });
    });

    it('so a required setting left empty is reported as missing, not as malformed', () => {
      const [problem, ...rest] = problemsOf(() => parse({ PUBLIC_URL: '' }));

      expect(rest).toEqual([]);
      expect(problem).toMatch(/^PUBLIC_URL: /);
      expect(problem).toMatch(/undefined/i);
    });

    it('so an optional boolean left empty stays undefined', () => {
      expect(parse({ TRUST_CLIENT: '' }).TRUST_CLIENT).toBeUndefined();
    });
  });

  it('ignores variables the schema does not mention', () => {
    expect(parse({ HOME: '/root', PATH: '/usr/bin' })).not.toHaveProperty('HOME');
  });
});

describe('env.bool', () => {
  const Flag = z.object({ FLAG: env.bool(false) });
  const flag = (value: string) => parseConfig(Flag, { FLAG: value }).FLAG;

  it.each(['true', '1', 'yes'])('reads "%s" as true', (value) => {
    expect(flag(value)).toBe(true);
  });

  it.each(['false', '0', 'no'])('reads "%s" as false', (value) => {
    expect(flag(value)).toBe(false);
  });

  it('uses its fallback when unset', () => {
    expect(parseConfig(z.object({ FLAG: env.bool(true) }), {}).FLAG).toBe(true);
  });

  it.each(['on', 'maybe', '2', ' true'])('rejects "%s" rather than guessing', (value) => {
    expect(problemsOf(() => flag(value))).toEqual([expect.stringMatching(/^FLAG: /)]);
  });
});

describe('env.list', () => {
  const List = z.object({ HOSTS: env.list() });
  const hosts = (value: string | undefined) => parseConfig(List, { HOSTS: value }).HOSTS;

  it('splits on commas and trims each item', () => {
    expect(hosts(' a.example , b.example,c.example ')).toEqual(['a.example', 'b.example', 'c.example']);
  });

  it('drops empty items left by stray commas', () => {
    expect(hosts('a,,b,')).toEqual(['a', 'b']);
    expect(hosts(' , ')).toEqual([]);
  });

  it('is empty by default when no fallback is given', () => {
    expect(hosts(undefined)).toEqual([]);
  });
});

describe('env.port', () => {
  const Port = z.object({ PORT: env.port(4001) });
  const port = (value: string) => parseConfig(Port, { PORT: value }).PORT;

  it.each([
    ['0', 0],
    ['1', 1],
    ['65535', 65535],
  ])('accepts %s', (value, expected) => {
    expect(port(value)).toBe(expected);
  });

  it.each(['65536', '-1', '80.5', 'http', '1e9'])('rejects %s', (value) => {
    expect(problemsOf(() => port(value))).toEqual([expect.stringMatching(/^PORT: /)]);
  });
});

describe('env.url, env.nodeEnv and env.logLevel', () => {
  it('accept the documented values', () => {
    const config = parseConfig(z.object({ URL: env.url(), NODE_ENV: env.nodeEnv(), LOG_LEVEL: env.logLevel() }), {
      URL: 'amqp://guest:guest@127.0.0.1:5672',
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
    });

    expect(config).toEqual({ URL: 'amqp://guest:guest@127.0.0.1:5672', NODE_ENV: 'test', LOG_LEVEL: 'silent' });
  });

  it('reject anything else', () => {
    const problems = problemsOf(() =>
      parseConfig(z.object({ URL: env.url(), NODE_ENV: env.nodeEnv(), LOG_LEVEL: env.logLevel() }), {
        URL: '127.0.0.1 port 5672',
        NODE_ENV: 'prod',
        LOG_LEVEL: 'verbose',
      }),
    );

    expect(problems.map((p) => p.split(':')[0]).sort()).toEqual(['LOG_LEVEL', 'NODE_ENV', 'URL']);
  });
});

describe('loadConfig', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('returns the parsed config when it is valid', () => {
    const exit = vi.spyOn(process, 'exit');

    expect(loadConfig(Schema, { PUBLIC_URL: 'http://localhost:4000', PORT: '4100' }, 'users').PORT).toBe(4100);
    expect(exit).not.toHaveBeenCalled();
  });

  it('prints every problem under the service name and exits with status 1', () => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    // Stop where the process would have ended.
    const exit = vi.spyOn(process, 'exit').mockImplementation(() => {
      throw new Error('process.exit');
    });

    expect(() => loadConfig(Schema, { PORT: '99999', METRICS: 'maybe' }, 'users')).toThrow('process.exit');

    expect(exit).toHaveBeenCalledWith(1);
    const printed = stderr.mock.calls.map(([chunk]) => String(chunk)).join('');
    expect(printed).toMatch(/^users: invalid configuration:/);
    expect(printed).toContain('- PORT: ');
    expect(printed).toContain('- METRICS: ');
    expect(printed).toContain('- PUBLIC_URL: ');
  });

  it('lets errors that are not configuration problems through unchanged', () => {
    const exit = vi.spyOn(process, 'exit');
    const bug = new Error('a bug in a transform');
    const Buggy = z.object({
      A: z.string().transform(() => {
        throw bug;
      }),
    });

    expect(() => loadConfig(Buggy, { A: 'x' }, 'users')).toThrow(bug);
    expect(exit).not.toHaveBeenCalled();
  });
});
