// Passwords never come from a flag (it would land in shell history and `ps`): from stdin with
// --password-stdin, from VIDMP3_PASSWORD for scripts, or typed at the terminal with echo off.
import { openSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { ReadStream, WriteStream } from 'node:tty';
import { CliError, ExitCode, usageError } from './errors.js';

export interface PasswordSource {
  passwordStdin?: boolean;
  env: Record<string, string | undefined>;
  stdin: NodeJS.ReadableStream;
}

/** Reads stdin to the end and drops one trailing newline, as `docker login --password-stdin` does. */
export async function readAllStdin(stdin: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  stdin.setEncoding('utf8');
  for await (const chunk of stdin) text += chunk as string;
  return text.replace(/\r?\n$/, '');
}

export async function readPassword(source: PasswordSource, { confirm = false } = {}): Promise<string> {
  let password: string;
  if (source.passwordStdin) {
    password = await readAllStdin(source.stdin);
  } else if (source.env.VIDMP3_PASSWORD !== undefined) {
    password = source.env.VIDMP3_PASSWORD;
  } else {
    password = await promptHidden('Password: ');
    if (confirm && (await promptHidden('Repeat password: ')) !== password) {
      throw usageError('the passwords do not match');
    }
  }
  if (password === '') throw usageError('the password is empty');
  return password;
}

/** Opens the controlling terminal itself, so that a prompt works even when stdin is a pipe. */
function openTerminal(
  noTerminal = 'no password given: use --password-stdin or VIDMP3_PASSWORD, or run in a terminal',
): number {
  try {
    return openSync('/dev/tty', 'r+');
  } catch {
    throw usageError(noTerminal);
  }
}

/** Asks a question on the terminal (echo on) and resolves with the line typed; `noTerminal` says what to do without one. */
export async function promptLine(prompt: string, noTerminal: string): Promise<string> {
  const fd = openTerminal(noTerminal);
  const input = new ReadStream(fd);
  const output = new WriteStream(fd);
  const lines = createInterface({ input, output, terminal: true });
  try {
    return await new Promise<string>((resolve, reject) => {
      lines.once('SIGINT', () => reject(new CliError('interrupted', ExitCode.INTERRUPTED)));
      lines.once('close', () => reject(usageError('not confirmed: nothing was deleted')));
      lines.question(prompt, resolve);
    });
  } finally {
    lines.removeAllListeners('close');
    lines.close();
    input.destroy();
  }
}

/** Asks on the terminal with echo off. Ctrl-C interrupts, Ctrl-D on an empty line aborts. */
export async function promptHidden(prompt: string): Promise<string> {
  const fd = openTerminal();
  const input = new ReadStream(fd);
  writeSync(fd, prompt);
  input.setRawMode(true);
  input.setEncoding('utf8');
  try {
    return await new Promise<string>((resolve, reject) => {
      let typed = '';
      input.on('error', reject);
      input.on('data', (chunk: string) => {
        for (const char of chunk) {
          if (char === '\r' || char === '\n') return resolve(typed);
          if (char === '\u0003') return reject(new CliError('interrupted', ExitCode.INTERRUPTED));
          if (char === '\u0004' && typed === '') return reject(usageError('no password given'));
          if (char === '\u007f' || char === '\b') typed = typed.slice(0, -1);
          else if (char === '\u0015')
            typed = ''; // Ctrl-U clears the line, as in a shell
          else if (char >= ' ') typed += char;
        }
      });
    });
  } finally {
    input.setRawMode(false);
    writeSync(fd, '\n');
    input.destroy(); // closes fd
  }
}
