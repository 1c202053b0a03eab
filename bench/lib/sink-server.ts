// The baseline servers for bench/upload.ts: `drain` only reads the request body; `hash-write` does the
// essential work of an upload, sha256 plus writing to disk, the straightforward way. Prints its URL.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';

const [mode = 'drain', dir = '.'] = process.argv.slice(2);

const server = createServer((req, res) => {
  const done = (digest = '') => res.end(`${digest}\n`);
  if (mode === 'drain') {
    req.resume();
    req.on('end', () => done());
    return;
  }
  const hash = createHash('sha256');
  const file = join(dir, `sink-${Date.now()}.bin`);
  req.on('data', (chunk: Buffer) => hash.update(chunk));
  pipeline(req, createWriteStream(file)).then(
    async () => {
      done(hash.digest('hex'));
      await rm(file, { force: true });
    },
    () => res.destroy(),
  );
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`http://127.0.0.1:${(server.address() as AddressInfo).port}/\n`);
});
