#!/usr/bin/env node
import { run } from './program.js';

// `vidmp3 jobs | head -1`: a reader that goes away early is not an error worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

const code = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
});
process.exitCode = code;
// Nothing should keep the process alive now; if something does (a socket the SDK left open), do not hang a script.
setTimeout(() => process.exit(code), 2000).unref();
