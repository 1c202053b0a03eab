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
});
