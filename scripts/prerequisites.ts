// The first step of `npm start` (`run`) and `npm test` (`test`): the Debian packages they need beyond Node, MariaDB
// and RabbitMQ (scripts/lib/prerequisites.ts). When one is missing and this runs as root on Debian, it is installed
// from Debian's packages (one line says so); otherwise this stops at once with the exact command to run. podman and
// its friends are the container build's own step (scripts/containers/podman.ts), which does the same.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { installCommand, missingBrokerTool, missingPackages } from './lib/prerequisites.js';

const purpose = process.argv[2];
if (purpose !== 'run' && purpose !== 'test') throw new Error('usage: tsx scripts/prerequisites.ts run|test');
// Checked first: nothing is installed for a run that could not pass anyway.
const brokerTool = missingBrokerTool(purpose, process.env.PATH);
if (brokerTool) {
  process.stderr.write(`${brokerTool}\n`);
  process.exit(1);
}
const missing = missingPackages(purpose, process.env.PATH);
if (missing.length > 0) {
  if (process.getuid?.() !== 0 || !existsSync('/etc/debian_version')) {
    process.stderr.write(
      `npm ${purpose === 'run' ? 'start' : 'test'} needs ${missing.join(', ')} (Debian packages). ` +
        `Install them as root, then run it again:\n  ${installCommand(missing)}\n`,
    );
    process.exit(1);
  }
  process.stdout.write(`installing from Debian: ${missing.join(' ')}\n`);
  execFileSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'ignore', 'inherit'] });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}
