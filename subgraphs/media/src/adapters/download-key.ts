import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Development only: the download-link HMAC key, generated on first start and kept in a file so links stay
 * valid across restarts. Written whole to a temporary file and hard-linked into place (atomic, fails if
 * present), so concurrent starts agree on one key.
 */
export async function loadOrCreateDevKey(file: string): Promise<Buffer> {
  try {
    return Buffer.from((await readFile(file, 'utf8')).trim(), 'base64url');
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw err;
  }
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  // Unique per call: concurrent callers in one process must not share (and delete) one temp file.
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, randomBytes(32).toString('base64url'), { mode: 0o600 });
  try {
    await link(tmp, file);
  } catch (err) {
    if ((err as { code?: string }).code !== 'EEXIST') throw err;
  } finally {
    await rm(tmp, { force: true });
  }
  return Buffer.from((await readFile(file, 'utf8')).trim(), 'base64url');
}
