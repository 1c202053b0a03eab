import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { activeSession, configLocation, readConfig, writeConfig } from '../src/config.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vidmp3-cli-config-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const session = { token: 'secret-token', email: 'a@example.com', expiresAt: '2999-01-01T00:00:00.000Z' };

describe('where the config file lives', () => {
  it('is $VIDMP3_CONFIG when set, then $XDG_CONFIG_HOME, then ~/.config', () => {
    const home = () => '/home/ann';
    expect(configLocation({ VIDMP3_CONFIG: '/etc/x.json', XDG_CONFIG_HOME: '/xdg' }, home)).toEqual({
      path: '/etc/x.json',
      ownDirectory: false,
    });
    expect(configLocation({ XDG_CONFIG_HOME: '/xdg' }, home).path).toBe('/xdg/vidmp3/config.json');
    expect(configLocation({}, home).path).toBe('/home/ann/.config/vidmp3/config.json');
    // A relative XDG_CONFIG_HOME is invalid by the spec and ignored.
    expect(configLocation({ XDG_CONFIG_HOME: 'rel' }, home).path).toBe('/home/ann/.config/vidmp3/config.json');
  });
});

describe('the config file', () => {
  it('reads as empty when it does not exist yet', async () => {
    expect(await readConfig(join(dir, 'none.json'))).toEqual({ sessions: {} });
  });

  it('is written with mode 0600 in a new 0700 directory and read back', async () => {
    const path = join(dir, 'vidmp3', 'config.json');
    const config = { url: 'http://h/graphql', sessions: { 'http://h/graphql': session } };
    await writeConfig({ path, ownDirectory: true }, config);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'vidmp3'))).mode & 0o777).toBe(0o700);
    expect(await readConfig(path)).toEqual(config);
  });

  it('tightens a file that was readable by others when it is rewritten, and warns until then', async () => {
    const path = join(dir, 'config.json');
    await writeFile(path, JSON.stringify({ sessions: { u: session } }), { mode: 0o644 });
    await chmod(path, 0o644);
    const warnings: string[] = [];
    await readConfig(path, (line) => warnings.push(line));
    expect(warnings.join()).toContain('chmod 600');
    await writeConfig({ path, ownDirectory: false }, { sessions: {} });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('leaves a shared directory named by $VIDMP3_CONFIG as it is', async () => {
    const shared = join(dir, 'shared');
    await mkdir(shared, { mode: 0o755 });
    await chmod(shared, 0o755);
    await writeConfig({ path: join(shared, 'c.json'), ownDirectory: false }, { sessions: {} });
    expect((await stat(shared)).mode & 0o777).toBe(0o755);
  });

  it('replaces the file in one step and leaves no temporary files behind', async () => {
    const path = join(dir, 'config.json');
    await writeConfig({ path, ownDirectory: false }, { sessions: { a: session } });
    await writeConfig({ path, ownDirectory: false }, { sessions: { b: session } });
    expect(await readdir(dir)).toEqual(['config.json']);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ sessions: { b: session } });
  });

  it('names the file when it is damaged', async () => {
    const path = join(dir, 'config.json');
    await writeFile(path, '{ not json', { mode: 0o600 });
    await expect(readConfig(path)).rejects.toThrow(`${path} is not valid JSON`);
  });

  it('drops malformed sessions instead of failing', async () => {
    const path = join(dir, 'config.json');
    await writeFile(path, JSON.stringify({ sessions: { good: session, bad: { token: 5 } } }), { mode: 0o600 });
    expect((await readConfig(path)).sessions).toEqual({ good: session });
  });
});

describe('sessions', () => {
  it('are per server and expire', () => {
    const config = {
      sessions: {
        a: session,
        old: { ...session, expiresAt: '2000-01-01T00:00:00.000Z' },
      },
    };
    expect(activeSession(config, 'a')).toEqual(session);
    expect(activeSession(config, 'old')).toBeUndefined();
    expect(activeSession(config, 'other')).toBeUndefined();
  });
});
