import { describe, expect, it } from 'vitest';
import { installCommand, missingBrokerTool, missingPackages } from './lib/prerequisites.js';

/** A machine whose executables are exactly these paths. */
const machine =
  (...paths: string[]) =>
  (path: string) =>
    paths.includes(path);

describe('the Debian packages npm start and npm test need', () => {
  it('asks nothing of a machine that has everything', () => {
    const all = machine(
      '/usr/bin/ffmpeg',
      '/usr/bin/ffprobe',
      '/usr/bin/chromium',
      '/usr/bin/kubectl',
      '/usr/bin/openssl',
    );
    expect(missingPackages('test', '/usr/local/bin:/usr/bin', all)).toEqual([]);
  });

  it('names each missing package once, and only what the command needs', () => {
    const fresh = machine('/usr/bin/openssl');
    expect(missingPackages('test', '/usr/bin', fresh)).toEqual([
      'ffmpeg',
      'chromium',
      'fonts-liberation',
      'kubernetes-client',
    ]);
    expect(missingPackages('run', '/usr/bin', fresh)).toEqual(['ffmpeg']);
    expect(installCommand(['ffmpeg'])).toBe('apt-get update && apt-get install -y --no-install-recommends ffmpeg');
  });
});

describe("RabbitMQ's rabbitmqctl, which the tests create virtual hosts with", () => {
  it('is asked of npm test only, and found on PATH (Debian puts it in /usr/sbin)', () => {
    const broker = machine('/usr/sbin/rabbitmqctl');
    expect(missingBrokerTool('test', '/usr/bin:/usr/sbin', broker)).toBeNull();
    expect(missingBrokerTool('run', '/usr/bin', machine())).toBeNull();
    expect(missingBrokerTool('test', '/usr/bin', broker)).toMatch(/npm test needs rabbitmqctl on PATH/);
  });
});
