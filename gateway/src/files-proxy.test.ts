import { describe, expect, it } from 'vitest';
import { downloadTarget } from './files-proxy.js';

const media = 'http://127.0.0.1:4002';
const id = '0b7f0c9e-4a52-4c57-9f3e-2f1c6a8e9d10';
const signed = { expires: '1893456000', sig: 'AbC-_09xyzAbC-_09xyzAbC-_09xyzAbC-_09xyzAbC' };

describe('downloadTarget (the /files/ proxy’s upstream URL)', () => {
  it('is media’s /files/<id> with only the signature parameters', () => {
    const target = downloadTarget(id, { ...signed, extra: '../metrics' }, media);
    expect('url' in target && target.url.toString()).toBe(
      `${media}/files/${id}?expires=${signed.expires}&sig=${signed.sig}`,
    );
  });

  it.each(['..\\metrics', '..', '.', '../metrics', 'a/b', 'a\\b', '%2e%2e', 'id?x=1', 'id#x', '', 'x'.repeat(65)])(
    'answers 404 for the id %j, without a URL',
    (bad) => {
      expect(downloadTarget(bad, signed, media)).toEqual({ status: 404 });
    },
  );

  it.each([
    { expires: signed.expires },
    { sig: signed.sig },
    { ...signed, expires: '1e9' },
    { ...signed, sig: 'abc/../metrics' },
    { ...signed, sig: ['a', 'b'] },
    { ...signed, expires: { nested: '1' } },
  ])('answers 403 for signature parameters that are not ones: %j', (query) => {
    expect(downloadTarget(id, query, media)).toEqual({ status: 403 });
  });
});
