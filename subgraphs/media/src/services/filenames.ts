import { basename, extname } from 'node:path';

const MAX_BYTES = 200;

/**
 * A client's filename made safe to store, show and put in Content-Disposition: no directories, no control or
 * bidi-override characters, NFC-normalised, at most 200 UTF-8 bytes (keeping the extension), never empty.
 */
export function cleanFilename(raw: string | undefined, fallback: string): string {
  let name = basename((raw ?? '').replaceAll('\\', '/'))
    .normalize('NFC')
    // C0/C1 controls, and the bidirectional overrides that can disguise an extension (RLO "gpj.exe").
    // eslint-disable-next-line no-control-regex -- matching control characters is the point
    .replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, '')
    .trim();
  if (name === '' || name === '.' || name === '..') name = fallback;
  if (Buffer.byteLength(name) <= MAX_BYTES) return name;
  const ext = extname(name).slice(0, 16);
  let stem = name.slice(0, name.length - ext.length);
  while (Buffer.byteLength(stem + ext) > MAX_BYTES) stem = [...stem].slice(0, -1).join('');
  return stem + ext;
}

/** The output name for an mp3 made from `source`: same stem, .mp3. */
export function mp3NameFor(source: string): string {
  const ext = extname(source);
  return cleanFilename(`${ext ? source.slice(0, -ext.length) : source}.mp3`, 'audio.mp3');
}
