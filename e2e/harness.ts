// Starts the whole system as separate processes on loopback, each on a free port of its own choosing (PORT=0;
// the URL is read from its "ready" log line), against a fresh MariaDB database per service.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';

import { inheritedEnv, MYSQL_SERVER, RABBITMQ_SERVER } from './env.js';
import { startTcpProxy, type TcpProxy } from './lib/tcp-proxy.js';

const root = fileURLToPath(new URL('..', import.meta.url));

export { MYSQL_SERVER };

export interface ServiceProcess {
  name: string;
  url: string;
  child: ChildProcess;
  logs: string[];
  /** How it was started, so it can be started again the same way. */
  entry: string;
  env: Record<string, string>;
}

export interface System {
  gatewayUrl: string;
  services: Record<string, ServiceProcess>;
  keysDir: string;
  /** The media service's blob store (local disk) and the database names, for checking what was kept. */
  blobDir: string;
  databases: { users: string; media: string; jobs: string };
  /** The system's RabbitMQ virtual host and a URL for it. */
  vhost: string;
  rabbitmqUrl: string;
  /** Stops a service (SIGTERM) and starts it again on the same port, as an orchestrator's restart does. */
  restart(name: string): Promise<ServiceProcess>;
  /** Starts one more converter worker (the system starts `workers` of them). */
  startWorker(env?: Record<string, string>): Promise<ServiceProcess>;
  /**
   * With `{ jobsReplicas: n > 1 }`: the replicas (`jobs`, `jobs2`, …) sit behind one address the gateway and the
   * workers use, as behind a Kubernetes Service (a replica that is down is skipped).
   */
  jobsReplicas: ServiceProcess[];
  /**
   * With `{ proxies: true }`: the proxies every service reaches MariaDB and RabbitMQ through (the test's own
   * connections, `MYSQL_SERVER` and `rabbitmqUrl`, go direct). Cutting one is an outage of that server for the
   * system alone; the shared servers are never stopped.
   */
  proxies?: { mysql: TcpProxy; rabbitmq: TcpProxy };
  /** Everything the services printed, for a failing test's report. */
  logs(): string;
  stop(): Promise<void>;
}

/** Node options for every service, e.g. E2E_SERVICE_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' to profile. */
const serviceNodeArgs = process.env.E2E_SERVICE_NODE_ARGS?.split(' ').filter(Boolean) ?? [];

/** Runs one service's built entry point and resolves once it logs its URL. */
export function startService(
  name: string,
  entry: string,
  env: Record<string, string>,
  readyTimeoutMs = 30_000,
): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [...serviceNodeArgs, join(root, entry)], {
    cwd: root,
    env: { ...inheritedEnv, NODE_ENV: 'test', LOG_LEVEL: 'info', HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not become ready:\n${logs.join('\n')}`));
    }, readyTimeoutMs);
    const onLine = (line: string) => {
      logs.push(line);
      const url = /"url":"(http:\/\/[^"]+?)(?:\/graphql)?"/.exec(line)?.[1];
      if (url && line.includes('ready')) {
        clearTimeout(timer);
        resolve({ name, url, child, logs, entry, env });
      }
    };
    createInterface({ input: child.stdout }).on('line', onLine);
    createInterface({ input: child.stderr }).on('line', onLine);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before it was ready:\n${logs.join('\n')}`));
    });
  });
}

/** Stops a service the way an orchestrator does (SIGTERM), and waits for it to go. */
export async function stopService(service: ServiceProcess): Promise<void> {
  if (service.child.exitCode !== null || service.child.signalCode !== null) return;
  const exited = new Promise((resolve) => service.child.once('exit', resolve));
  service.child.kill('SIGTERM');
  const timer = setTimeout(() => service.child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** A port free right now (taken, then released): for a URL known before its server starts, or one nobody answers. */
/**
 * A port that is free now and stays free until a service binds it seconds later (or binds it again after a
 * restart). Taken below the kernel's ephemeral range (32768–60999 here), where the outgoing connections of
 * every running service (MariaDB, RabbitMQ, HTTP) get their local ports and could take it in between.
 */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const server = createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (bound) {
      await new Promise((resolve) => server.close(resolve));
      return port;
    }
  }
  throw new Error('no free port found between 20000 and 32000');
}

export type ServiceName = 'users' | 'media' | 'jobs' | 'gateway' | 'worker';

const rabbitmqctl = promisify(execFile);

/**
 * A RabbitMQ virtual host of its own for each system, so that parallel test systems never consume each
 * other's messages (queue names are fixed by the topology).
 */
async function createVhost(name: string): Promise<void> {
  await rabbitmqctl('rabbitmqctl', ['-q', 'add_vhost', name]);
  await rabbitmqctl('rabbitmqctl', ['-q', 'set_permissions', '-p', name, 'guest', '.*', '.*', '.*']);
}

async function deleteVhost(name: string): Promise<void> {
  await rabbitmqctl('rabbitmqctl', ['-q', 'delete_vhost', name]).catch(() => undefined);
}

export async function startSystem(
  env: Partial<Record<ServiceName, Record<string, string>>> = {},
  options: { workers?: number; proxies?: boolean; jobsReplicas?: number } = {},
): Promise<System> {
  const run = randomBytes(4).toString('hex');
  const databases = {
    users: `vidmp3_e2e_users_${run}`,
    media: `vidmp3_e2e_media_${run}`,
    jobs: `vidmp3_e2e_jobs_${run}`,
  };
  const vhost = `vidmp3_e2e_${run}`;
  const rabbitmqUrl = `${RABBITMQ_SERVER}/${vhost}`;
  await createVhost(vhost);
  const keysDir = await mkdtemp(join(tmpdir(), 'vidmp3-keys-'));
  const dataDir = await mkdtemp(join(tmpdir(), 'vidmp3-data-'));
  const blobDir = join(dataDir, 'blobs');
  // Media writes download URLs on the gateway's origin, so that origin is fixed before either starts.
  const gatewayPort = await freePort();
  const started: ServiceProcess[] = [];
  const proxies = options.proxies
    ? { mysql: await proxyTo(MYSQL_SERVER), rabbitmq: await proxyTo(RABBITMQ_SERVER) }
    : undefined;
  let jobsBalancer: TcpProxy | undefined;
  // What the services are given: the servers themselves, or the proxies in front of them.
  const servicesMysql = proxies ? through(MYSQL_SERVER, proxies.mysql) : MYSQL_SERVER;
  const servicesRabbitmq = proxies ? `${through(RABBITMQ_SERVER, proxies.rabbitmq)}/${vhost}` : rabbitmqUrl;
  const stop = async () => {
    // Restored first, so that the services can shut down cleanly (close their connections, settle messages).
    proxies?.mysql.restore();
    proxies?.rabbitmq.restore();
    await Promise.allSettled(started.map(stopService));
    await Promise.allSettled([proxies?.mysql.close(), proxies?.rabbitmq.close(), jobsBalancer?.close()]);
    const conn = await mysql.createConnection(MYSQL_SERVER);
    for (const db of Object.values(databases)) await conn.query(`DROP DATABASE IF EXISTS \`${db}\``);
    await conn.end();
    await rm(keysDir, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
    await deleteVhost(vhost);
  };
  // Tracked as each one comes up, so a failure part-way still stops the ones already running.
  const track = (service: Promise<ServiceProcess>) =>
    service.then((s) => {
      started.push(s);
      return s;
    });
  try {
    const users = await track(
      startService('users', 'subgraphs/users/dist/main.js', {
        MYSQL_URL: `${servicesMysql}/${databases.users}`,
        RABBITMQ_URL: servicesRabbitmq,
        KEYS_DIR: keysDir,
        // Links in account mails point at the page on the gateway.
        PUBLIC_URL: `http://127.0.0.1:${gatewayPort}`,
        // Every test signs its users up from 127.0.0.1; tests of the sign-up limit set their own.
        SIGNUP_MAX_PER_IP_PER_HOUR: '100000',
        ...env.users,
      }),
    );
    const jwks = { JWKS_URL: `${users.url}/.well-known/jwks.json` };
    const media = await track(
      startService('media', 'subgraphs/media/dist/main.js', {
        ...jwks,
        MYSQL_URL: `${servicesMysql}/${databases.media}`,
        RABBITMQ_URL: servicesRabbitmq,
        BLOB_DIR: blobDir,
        DOWNLOAD_KEY_FILE: join(keysDir, 'media-download.key'),
        PUBLIC_URL: `http://127.0.0.1:${gatewayPort}`,
        ...env.media,
      }),
    );
    const jobsEnv = {
      ...jwks,
      MYSQL_URL: `${servicesMysql}/${databases.jobs}`,
      RABBITMQ_URL: servicesRabbitmq,
      MEDIA_INTERNAL_URL: media.url,
      ...env.jobs,
    };
    // One after the other: the first runs the migrations the others then find done.
    const jobsReplicas = [await track(startService('jobs', 'subgraphs/jobs/dist/main.js', jobsEnv))];
    for (let n = 2; n <= (options.jobsReplicas ?? 1); n++) {
      jobsReplicas.push(await track(startService(`jobs${n}`, 'subgraphs/jobs/dist/main.js', jobsEnv)));
    }
    if (jobsReplicas.length > 1) {
      jobsBalancer = await startTcpProxy(
        jobsReplicas.map((r) => ({ host: '127.0.0.1', port: Number(new URL(r.url).port) })),
      );
    }
    const jobs = { url: jobsBalancer ? `http://127.0.0.1:${jobsBalancer.port}` : jobsReplicas[0]!.url };
    let workerCount = 0;
    const startWorker = (extra: Record<string, string> = {}) =>
      track(
        startService(`worker${++workerCount}`, 'workers/converter/dist/main.js', {
          RABBITMQ_URL: servicesRabbitmq,
          MEDIA_INTERNAL_URL: media.url,
          JOBS_INTERNAL_URL: jobs.url,
          HEALTH_PORT: '0',
          WORKER_ID: `e2e-worker-${workerCount}`,
          ...env.worker,
          ...extra,
        }),
      );
    await Promise.all(Array.from({ length: options.workers ?? 0 }, () => startWorker()));
    const gateway = await track(
      startService('gateway', 'gateway/dist/main.js', {
        ...jwks,
        SUBGRAPH_USERS_URL: `${users.url}/graphql`,
        SUBGRAPH_MEDIA_URL: `${media.url}/graphql`,
        SUBGRAPH_JOBS_URL: `${jobs.url}/graphql`,
        PORT: String(gatewayPort),
        ...env.gateway,
      }),
    );
    const services = Object.fromEntries(started.map((s) => [s.name, s]));
    return {
      gatewayUrl: gateway.url,
      services,
      keysDir,
      blobDir,
      databases,
      vhost,
      rabbitmqUrl,
      ...(proxies ? { proxies } : {}),
      startWorker,
      get jobsReplicas() {
        return jobsReplicas.map((r) => services[r.name]!);
      },
      async restart(name) {
        const old = services[name];
        if (!old) throw new Error(`no service ${name}`);
        await stopService(old);
        const again = await startService(name, old.entry, { ...old.env, PORT: new URL(old.url).port });
        started.splice(started.indexOf(old), 1, again);
        services[name] = again;
        return again;
      },
      logs: () => started.map((s) => s.logs.map((l) => `[${s.name}] ${l}`).join('\n')).join('\n'),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

const defaultPorts: Record<string, number> = { 'mysql:': 3306, 'amqp:': 5672 };

/** A proxy on loopback to the server a URL names. */
function proxyTo(serverUrl: string): Promise<TcpProxy> {
  const url = new URL(serverUrl);
  return startTcpProxy({ host: url.hostname, port: Number(url.port) || defaultPorts[url.protocol]! });
}

/** The same server URL (credentials kept), through the proxy. */
function through(serverUrl: string, proxy: TcpProxy): string {
  const url = new URL(serverUrl);
  url.hostname = '127.0.0.1';
  url.port = String(proxy.port);
  return url.toString().replace(/\/$/, '');
}
