import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Reads a small secret file (development keys), creating it with `create()` on first use. The content is
 * written whole to a temporary file of its own and hard-linked into place — atomic, and failing if the file
 * appeared meanwhile — so processes or calls racing on a first start all end up reading the same content,
 * never a half-written one. Created 0600 in a 0700 directory.
 */
export async function readOrCreateSecret(file: string, create: () => string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw err;
  }
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, create(), { mode: 0o600 });
  try {
    await link(tmp, file);
  } catch (err) {
    if ((err as { code?: string }).code !== 'EEXIST') throw err;
  } finally {
    await rm(tmp, { force: true });
  }
  return readFile(file, 'utf8');
}
