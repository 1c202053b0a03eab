import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

let echo: Server;
let proxy: TcpProxy;

beforeEach(async () => {
  echo = createServer((socket) => socket.pipe(socket));
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  const address = echo.address() as { port: number };
  proxy = await startTcpProxy({ host: '127.0.0.1', port: address.port });
});
afterEach(async () => {
  await proxy.close();
  await new Promise((resolve) => echo.close(resolve));
});

function connect(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port: proxy.port }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** What comes back for `text` within `ms`, or null if nothing does. */
function roundTrip(socket: Socket, text: string, ms = 300): Promise<string | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), ms);
    socket.once('data', (chunk) => {
      clearTimeout(timer);
      resolve(chunk.toString());
    });
    socket.write(text);
  });
}

/** How a socket ends: 'closed' (reset or closed by the peer) or 'open' after `ms`. */
function fate(socket: Socket, ms = 300): Promise<'closed' | 'open'> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve('closed');
    const timer = setTimeout(() => resolve('open'), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
    socket.on('error', () => undefined);
  });
}

describe('tcp proxy', () => {
  it('forwards both ways and counts connections', async () => {
    const a = await connect();
    const b = await connect();
    expect(await roundTrip(a, 'hello')).toBe('hello');
    expect(await roundTrip(b, 'world')).toBe('world');
    expect(proxy.accepted).toBe(2);
    expect(proxy.open).toBe(2);
    a.destroy();
    await expect.poll(() => proxy.open).toBe(1);
    b.destroy();
  });

  it('refuse: resets open connections and closes new ones at once; restore forwards again', async () => {
    const before = await connect();
    const closed = fate(before);
    proxy.cut('refuse');
    expect(proxy.isCut).toBe(true);
    expect(await closed).toBe('closed');
    const during = createConnection({ host: '127.0.0.1', port: proxy.port });
    expect(await fate(during)).toBe('closed');
    expect(proxy.open).toBe(0);

    proxy.restore();
    const after = await connect();
    expect(await roundTrip(after, 'back')).toBe('back');
    after.destroy();
  });

  it('hang: open and new connections stay open and silent; restore closes them and forwards new ones', async () => {
    const before = await connect();
    proxy.cut('hang');
    expect(await roundTrip(before, 'lost')).toBeNull();
    const during = await connect();
    expect(await roundTrip(during, 'unanswered')).toBeNull();
    expect(await fate(during)).toBe('open');
    expect(proxy.open).toBe(2);

    const held = Promise.all([fate(before, 1000), fate(during, 1000)]);
    proxy.restore();
    expect(await held).toEqual(['closed', 'closed']);
    const after = await connect();
    expect(await roundTrip(after, 'back')).toBe('back');
    after.destroy();
  });

  it('delay: bytes arrive that much later, in order', async () => {
    const socket = await connect();
    proxy.delay(200);
    const sentAt = Date.now();
    const got: string[] = [];
    const all = new Promise<void>((resolve) =>
      socket.on('data', (chunk) => {
        got.push(chunk.toString());
        if (got.join('') === 'abc') resolve();
      }),
    );
    for (const text of ['a', 'b', 'c']) socket.write(text);
    await all;
    // Both ways: at least twice the delay (a bound that only holds if the delay applies at all).
    expect(Date.now() - sentAt).toBeGreaterThanOrEqual(400);
    expect(got.join('')).toBe('abc');
    proxy.delay(0);
    expect(await roundTrip(socket, 'now')).toBe('now');
    socket.destroy();
  });

  it("leads a server's view of a connection (the proxy's port) back to the client's port", async () => {
    const seen = new Promise<number>((resolve) => echo.once('connection', (s: Socket) => resolve(s.remotePort!)));
    const socket = await connect();
    const proxyPort = await seen;
    await expect.poll(() => proxy.clientPortOf(proxyPort)).toBe(socket.localPort);
    expect(proxy.clientPortOf(1)).toBeUndefined();
    socket.destroy();
  });
});

describe('tcp proxy over several targets', () => {
  it('goes round robin, and past a target that refuses', async () => {
    const named = (name: string) => createServer((socket) => socket.end(name));
    const a = named('a');
    const b = named('b');
    await Promise.all([a, b].map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))));
    const port = (s: Server) => (s.address() as { port: number }).port;
    const lb = await startTcpProxy([a, b].map((s) => ({ host: '127.0.0.1', port: port(s) })));
    const answer = () =>
      new Promise<string>((resolve, reject) => {
        const socket = createConnection({ host: '127.0.0.1', port: lb.port });
        let text = '';
        socket.on('data', (chunk) => (text += chunk.toString()));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
    try {
      expect([await answer(), await answer(), await answer()]).toEqual(['a', 'b', 'a']);
      await new Promise((resolve) => b.close(resolve)); // a replica gone: everything goes to the other
      expect([await answer(), await answer(), await answer()]).toEqual(['a', 'a', 'a']);
    } finally {
      await lb.close();
      await new Promise((resolve) => a.close(resolve));
    }
  });
});
