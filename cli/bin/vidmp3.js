#!/usr/bin/env node
// npm links a package's bin only when the file exists at install time, and dist/ is built after `npm ci`:
// this committed launcher is what gets linked, so `npx vidmp3` works in the repository once it is built.
import process from 'node:process';
import { URL } from 'node:url';

const main = new URL('../dist/main.js', import.meta.url);
try {
  await import(main.href);
} catch (err) {
  if (err?.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes(main.pathname)) {
    process.stderr.write('vidmp3: the CLI is not built yet: run `npm run build` in the repository\n');
    process.exit(1);
  }
  throw err;
}
