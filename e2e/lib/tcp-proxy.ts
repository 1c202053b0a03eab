// A TCP proxy a test controls, put between the services and a shared server (MariaDB, RabbitMQ) that must
// never be stopped: cutting the proxy is the outage, restoring it the recovery. Given several targets it is
// also the load balancer in front of a service's replicas (as a Kubernetes Service is): connections go round
// robin, and one a replica refuses (killed, restarting) goes to the next.
import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * How a cut looks to the services:
 * - `refuse`: every open connection is reset and new ones are closed at once (a server down, a port closed);
 * - `hang`: open connections go silent (nothing is forwarded either way, nothing is closed) and new ones are
 *   accepted and never answered (a network partition, a server frozen): only the clients' timeouts help.
 */
export type CutMode = 'refuse' | 'hang';

export interface Target {
  host: string;
  port: number;
}

export interface TcpProxy {
  /** The loopback port the proxy listens on. */
  port: number;
  /** Connections accepted since the start (forwarded or not). */
  readonly accepted: number;
  /** Connections open right now (client side). */
  readonly open: number;
  /** True between `cut()` and `restore()`. */
  readonly isCut: boolean;
  cut(mode?: CutMode): void;
  /** Forwards new connections again; connections held by a `hang` cut are closed (their peers saw nothing). */
  restore(): void;
  /** Every byte is forwarded `ms` later than it arrived, both ways (a slow link); 0 for none. */
  delay(ms: number): void;
  /**
   * The client port of the connection forwarded from this local port of the proxy: what the server sees as
   * the peer (say, a MariaDB thread's host) leads back to the client process that opened it.
   */
  clientPortOf(upstreamLocalPort: number): number | undefined;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket | null;
}

/** Listens on 127.0.0.1 (port 0: any free port) and forwards every connection to `target` (or one of them). */
export async function startTcpProxy(target: Target | Target[], port = 0): Promise<TcpProxy> {
  const targets = Array.isArray(target) ? target : [target];
  const pairs = new Set<Pair>();
  let mode: CutMode | null = null;
  let accepted = 0;
  let next = 0;
  let delayMs = 0;

  const drop = (pair: Pair) => {
    pair.client.destroy();
    pair.upstream?.destroy();
    pairs.delete(pair);
  };
  // Order is kept: every chunk waits the same time, and timers of one duration fire in the order set.
  const forward = (to: Socket, chunk: Buffer) => {
    if (delayMs === 0) to.write(chunk);
    else setTimeout(() => to.destroyed || to.write(chunk), delayMs);
  };

  /** Connects to the targets in turn from the next one, until one accepts; null if none does. */
  const connectUpstream = (tries = targets.length): Promise<Socket | null> =>
    new Promise((resolve) => {
      const to = targets[next++ % targets.length]!;
      const socket = createConnection(to);
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        resolve(socket);
      });
      socket.once('error', () => {
        socket.destroy();
        resolve(tries > 1 ? connectUpstream(tries - 1) : null);
      });
    });

  const server: Server = createServer((client) => {
    accepted++;
    if (mode === 'refuse') {
      client.on('error', () => undefined);
      client.resetAndDestroy();
      return;
    }
    const pair: Pair = { client, upstream: null };
    pairs.add(pair);
    client.on('error', () => drop(pair));
    client.on('close', () => drop(pair));
    if (mode === 'hang') {
      client.pause(); // held open, never read, never answered
      return;
    }
    // Bytes the client sends before a target accepts wait here (a refused target has been sent nothing).
    client.pause();
    void connectUpstream().then((upstream) => {
      if (!upstream) return drop(pair);
      if (!pairs.has(pair)) return upstream.destroy();
      pair.upstream = upstream;
      upstream.on('error', () => drop(pair));
      upstream.on('close', () => drop(pair));
      // Forwarding only while not cut: a `hang` cut stops the flow without closing anything.
      client.on('data', (chunk: Buffer) => {
        if (mode === null) forward(upstream, chunk);
      });
      upstream.on('data', (chunk: Buffer) => {
        if (mode === null) forward(client, chunk);
      });
      client.resume();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no TCP address');

  return {
    port: address.port,
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    get isCut() {
      return mode !== null;
    },
    cut(how: CutMode = 'refuse') {
      mode = how;
      if (how === 'refuse') {
        for (const pair of [...pairs]) {
          pair.client.resetAndDestroy();
          pair.upstream?.destroy();
          pairs.delete(pair);
        }
      }
    },
    restore() {
      // A connection that lost bytes in a hang is of no use to either side (its protocol state is broken).
      if (mode === 'hang') for (const pair of [...pairs]) drop(pair);
      mode = null;
    },
    delay(ms: number) {
      delayMs = ms;
    },
    clientPortOf(upstreamLocalPort: number) {
      for (const pair of pairs) if (pair.upstream?.localPort === upstreamLocalPort) return pair.client.remotePort;
      return undefined;
    },
    async close() {
      for (const pair of [...pairs]) drop(pair);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
