// The gateway's public /files/ proxy reaches media's download route and nothing else, whatever the path says.
import { request } from 'node:http';
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { signUpUser, uploadFile, type UploadedMedia } from './client.js';
import { sample } from './fixtures.js';
import { startSystem, type System } from './harness.js';

let system: System;
let media: UploadedMedia;

beforeAll(async () => {
  system = await startSystem();
  const alice = await signUpUser(system.gatewayUrl);
  const res = await uploadFile(system.gatewayUrl, await sample('faststart.mp4'), { token: alice.token });
  if (!res.data) throw new Error(JSON.stringify(res.errors));
  media = res.data.uploadVideo;
});
afterAll(async () => {
  await system?.stop();
});
beforeEach(() => onTestFailed(() => console.error(system.logs())));

/** A GET with the path sent byte for byte as written: fetch and URL would normalise `..` and `\` away. */
function rawGet(path: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(system.gatewayUrl);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the /files/ download proxy', () => {
  it('still serves a real download from a signed link', async () => {
    const res = await fetch(media.downloadUrl);
    expect(res.status).toBe(200);
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(media.sha256);
    expect(bytes.length).toBe((await readFile(await sample('faststart.mp4'))).length);
  });

  const escapes = [
    '..\\metrics',
    '..\\healthz',
    '..%5cmetrics',
    '%2e%2e%5cmetrics',
    '%2e%2e%2fmetrics',
    '..%2fmetrics',
    '..%2F..%2Fmetrics',
    'x%2f..%2f..%2fmetrics',
    '.%2e/metrics',
    '%2e%2e/%2e%2e/metrics',
    '/metrics',
    '\\metrics',
    '%5c%5cmetrics',
    '..\\internal\\media\\ID',
    '..%5cinternal%5cmedia%5cID%5ccontent',
  ];

  it.each(escapes)('never reaches another media route through /files/%s', async (escape) => {
    const signed = new URL(media.downloadUrl);
    for (const query of [signed.search, '', '?expires=1&sig=..%5c..%5cmetrics']) {
      const res = await rawGet(`/files/${escape.replaceAll('ID', media.id)}${query}`);
      expect([400, 403, 404]).toContain(res.status);
      expect(res.body).not.toMatch(/# HELP|# TYPE|"status":"ok"|ownerId/);
    }
  });

  it('refuses signature parameters that are not a signature, without asking media', async () => {
    const signed = new URL(media.downloadUrl);
    const expires = signed.searchParams.get('expires')!;
    const sig = signed.searchParams.get('sig')!;
    for (const query of [
      `?expires=${expires}&sig=${sig}%2f..%2fmetrics`,
      `?expires=${expires}%5c..&sig=${sig}`,
      `?expires=${expires}`,
      `?sig=${sig}`,
    ]) {
      const res = await rawGet(`/files/${media.id}${query}`);
      expect(res.status).toBe(403);
      expect(res.body).not.toMatch(/# HELP/);
    }
  });
});
