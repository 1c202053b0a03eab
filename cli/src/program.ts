// The command tree: names, flags and help. Behaviour lives in commands/.
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { cancel, jobs, parseStatus, type JobsFlags } from './commands/jobs.js';
import { login, logout, signup, whoami, type PasswordFlags } from './commands/account.js';
import { usage } from './commands/usage.js';
import { createKey, listKeys, parseScopes, revokeKey, type CreateKeyFlags } from './commands/keys.js';
import { convert, type ConvertFlags } from './commands/convert.js';
import { download, type DownloadFlags } from './commands/download.js';
import {
  createWebhook,
  deleteWebhook,
  enableWebhook,
  EVENT_NAMES,
  listWebhooks,
  parseEvents,
  testWebhook,
  webhookDeliveries,
  type CreateWebhookFlags,
} from './commands/webhooks.js';
import { DEFAULT_URL } from './config.js';
import { Context, type GlobalOptions, type Io } from './context.js';
import { describeError, EXIT_CODES_HELP, ExitCode, formatFailure } from './errors.js';
import { parseBitrate, parseChannels, parseSampleRate, parseTime } from './options.js';

const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string })
  .version;

function parseLimit(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('Expected a positive whole number.');
  return n;
}

const passwordOption = () =>
  new Option('--password-stdin', 'read the password from stdin (else $VIDMP3_PASSWORD, else a hidden prompt)');

/** Runs the CLI with `argv` (without node and the script) and resolves with the exit code. */
export async function run(argv: string[], io: Io): Promise<ExitCode> {
  let exitCode: ExitCode = ExitCode.OK;
  let ctx: Context | undefined;
  let commandName = '';

  // Every action runs through here: one place turns errors into a line on stderr and an exit code.
  const action =
    <A extends unknown[]>(body: (ctx: Context, ...args: A) => Promise<ExitCode | void>) =>
    async (...args: [...A, Command]) => {
      const command = args[args.length - 1] as Command;
      commandName = command.name();
      ctx = new Context(command.optsWithGlobals<GlobalOptions>(), io);
      exitCode = (await body(ctx, ...(args.slice(0, -1) as A))) ?? ExitCode.OK;
    };

  const program = new Command('vidmp3')
    .description('Convert videos to mp3 with a vidmp3 server, from the command line.')
    .version(version, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .addOption(
      new Option(
        '--url <url>',
        `GraphQL endpoint (default: $VIDMP3_URL, the last server logged in to, or ${DEFAULT_URL})`,
      ),
    )
    .addOption(
      new Option(
        '--api-key <key>',
        'use this API key instead of the saved session (prefer $VIDMP3_API_KEY: arguments show in process lists)',
      ),
    )
    .option('--json', 'print one JSON document on stdout, for scripts (no progress display)')
    .option('--debug', 'print stack traces of errors')
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      outputError: (text, write) => write(text.replace(/^error: /, 'vidmp3: ')),
    })
    .showHelpAfterError('(add --help for usage)')
    .showSuggestionAfterError()
    .exitOverride();

  program
    .command('signup')
    .description('create an account and log in')
    .argument('<email>', 'your email address')
    .addOption(passwordOption())
    .action(action((ctx, email: string, flags: PasswordFlags) => signup(ctx, email, flags)));

  program
    .command('login')
    .description('log in; the session token is kept in your config file (mode 0600), never printed')
    .argument('<email>', 'your email address')
    .addOption(passwordOption())
    .action(action((ctx, email: string, flags: PasswordFlags) => login(ctx, email, flags)));

  program
    .command('logout')
    .description('forget the session for the server')
    .action(action((ctx) => logout(ctx)));

  program
    .command('whoami')
    .description('show who you are logged in as')
    .action(action((ctx) => whoami(ctx)));

  program
    .command('usage')
    .description('show what you use of the server and your limits (storage, uploads, conversions)')
    .action(action((ctx) => usage(ctx)));

  const keys = program
    .command('keys')
    .description('manage API keys for scripts (creating and revoking them needs `vidmp3 login`, not a key)');
  keys
    .command('create')
    .description('create an API key and print it, once (the server keeps only its hash)')
    .argument('<name>', 'a label to tell your keys apart')
    .option('--scope <scopes>', 'read (queries) or read,convert (also upload, convert, cancel, delete)', parseScopes, [
      'READ',
    ])
    .addHelpText(
      'after',
      `
Examples:
  vidmp3 keys create nightly-backup --scope read
  export VIDMP3_API_KEY=$(vidmp3 keys create ci --scope read,convert)`,
    )
    .action(action((ctx, name: string, flags: CreateKeyFlags) => createKey(ctx, name, flags)));
  keys
    .command('list')
    .description('list your API keys: id, name, scopes, created, last used')
    .action(action((ctx) => listKeys(ctx)));
  keys
    .command('revoke')
    .description('revoke an API key: refused at once by the server, everywhere within 5 minutes')
    .argument('<id>', 'the key id (from `vidmp3 keys list`)')
    .action(action((ctx, id: string) => revokeKey(ctx, id)));

  program
    .command('convert')
    .description('convert video files to mp3: upload, convert on the server, download the mp3')
    .argument('<file...>', 'video files (mp4, mov, mkv, webm, …)')
    .option('-o, --output <path>', 'output file (one input) or directory; default: beside each input, as <name>.mp3')
    .option('-f, --force', 'overwrite existing output files')
    .option('--bitrate <kbps>', 'mp3 bitrate in kbit/s, e.g. 128 or 192k', parseBitrate)
    .option('--sample-rate <hz>', 'sample rate in Hz, e.g. 44100 or 48k', parseSampleRate)
    .option('--channels <n>', 'channels: 1, 2, mono or stereo', parseChannels)
    .option('--start <time>', 'start at this time: seconds (90) or [hh:]mm:ss (1:30)', parseTime)
    .option('--end <time>', 'stop at this time: seconds (95.5) or [hh:]mm:ss (1:35.5)', parseTime)
    .option('--no-wait', 'upload and queue only, print the job id and exit (later: vidmp3 download <jobId>)')
    .addHelpText(
      'after',
      `
Progress goes to stderr: a bar on a terminal, one line per step otherwise, none with --json.
Ctrl-C cancels the running conversion on the server.

Examples:
  vidmp3 convert talk.mp4                      # writes talk.mp3 beside it
  vidmp3 convert a.mp4 b.mkv -o music/ --bitrate 128k --channels mono
  vidmp3 convert clip.mov -o intro.mp3 --start 0:05 --end 0:35
  vidmp3 --json convert talk.mp4 | jq -r '.files[0].output'`,
    )
    .action(action((ctx, files: string[], flags: ConvertFlags) => convert(ctx, files, flags)));

  program
    .command('jobs')
    .description('list your conversion jobs, newest first')
    .option(
      '--status <status>',
      'only jobs with this status: queued, running, succeeded, failed, cancelled',
      parseStatus,
    )
    .option('-n, --limit <n>', 'show at most this many jobs', parseLimit, 20)
    .action(action((ctx, flags: JobsFlags) => jobs(ctx, flags)));

  program
    .command('cancel')
    .description('cancel a queued or running job')
    .argument('<jobId>', 'the job to cancel')
    .action(action((ctx, id: string) => cancel(ctx, id)));

  program
    .command('download')
    .description("download a job's mp3 (waiting for it to finish) or any of your media by its id")
    .argument('<id>', 'a job id or a media id')
    .option('-o, --output <path>', 'output file or directory (default: the current directory, under its own name)')
    .option('-f, --force', 'overwrite an existing file')
    .action(action((ctx, id: string, flags: DownloadFlags) => download(ctx, id, flags)));

  const webhooks = program
    .command('webhooks')
    .description('manage webhooks: URLs your server receives signed events at (conversions, deletions)');
  webhooks
    .command('create')
    .description('create a webhook and print its signing secret (shown only this once)')
    .argument('<url>', 'where events are POSTed (https)')
    .requiredOption('--events <list>', `comma-separated: ${EVENT_NAMES.join(', ')}`, parseEvents)
    .addHelpText(
      'after',
      `
Example:
  vidmp3 webhooks create https://example.com/hooks/vidmp3 --events job.succeeded,job.failed`,
    )
    .action(action((ctx, url: string, flags: CreateWebhookFlags) => createWebhook(ctx, url, flags)));
  webhooks
    .command('list')
    .description('list your webhooks')
    .action(action((ctx) => listWebhooks(ctx)));
  webhooks
    .command('delete')
    .description('delete a webhook (no event is sent to it after)')
    .argument('<id>', 'the webhook')
    .action(action((ctx, id: string) => deleteWebhook(ctx, id)));
  webhooks
    .command('deliveries')
    .description("show a webhook's deliveries, newest first: status, attempts, response, next retry")
    .argument('<id>', 'the webhook')
    .option('-n, --limit <n>', 'show at most this many (up to 100)', parseLimit, 20)
    .action(action((ctx, id: string, flags: { limit: number }) => webhookDeliveries(ctx, id, flags)));
  webhooks
    .command('test')
    .description('send a webhook.test event to a webhook now')
    .argument('<id>', 'the webhook')
    .action(action((ctx, id: string) => testWebhook(ctx, id)));
  webhooks
    .command('enable')
    .description('turn a webhook disabled after repeated failures back on')
    .argument('<id>', 'the webhook')
    .action(action((ctx, id: string) => enableWebhook(ctx, id)));

  for (const command of [program, ...program.commands, ...keys.commands, ...webhooks.commands]) {
    command.addHelpText('after', EXIT_CODES_HELP);
  }

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (err) {
    // commander's own exits: help and version are successes, everything else is a usage error.
    if (err instanceof CommanderError) return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    const failure = describeError(err);
    // A token the server no longer accepts (expired, keys rotated): say how to get a new one.
    if (failure.code === 'UNAUTHENTICATED' && ctx?.apiKey()) {
      failure.message += '; check the API key (--api-key or VIDMP3_API_KEY): it may have been revoked';
    } else if (failure.code === 'UNAUTHENTICATED' && !['login', 'signup'].includes(commandName)) {
      if (!failure.message.includes('vidmp3 login')) failure.message += '; log in again with `vidmp3 login <email>`';
    }
    io.stderr.write(`${formatFailure(failure)}\n`);
    const debug = ctx?.debug ?? argv.includes('--debug');
    if (debug && err instanceof Error && err.stack) io.stderr.write(`${err.stack}\n`);
    if (ctx?.json) {
      ctx.print({ error: { code: failure.code ?? null, message: failure.message, ...failure.quota } }, []);
    }
    return failure.exitCode;
  } finally {
    await ctx?.flush().catch((err: unknown) => io.stderr.write(`vidmp3: could not save the session: ${String(err)}\n`));
    ctx?.close();
  }
}
