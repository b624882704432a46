#!/usr/bin/env node
// The dkimgate command line: dispatches sub-commands and turns failures into one stderr line and an exit status.
// Touches: process argv, stdio and exit code; everything else happens in the commands.

import { readFileSync } from 'node:fs';
import { CliError, EXIT_RUNTIME, EXIT_USAGE, usageErrorOf, type CliIo, type CommandRunner } from './cli/cli-error.js';

const USAGE = `usage: dkimgate <command> [options]

commands:
  serve [--config FILE]           run the filter daemon
  verify [options] [FILE]         verify a message's DKIM signatures
  sign [options] [FILE]           sign a message
  keygen --domain D --selector S  create a signing key and print its DNS record
  keycheck [--config FILE]        check that published keys match the private keys
  doctor [--config FILE]          check every signing key: file, size, DNS record, match, use
  config check [--config FILE]    validate a configuration file

Run "dkimgate <command> --help" for a command's options. --debug prints stack traces.
`;

type Loader = () => Promise<CommandRunner>;

const COMMANDS: Record<string, Loader> = {
  verify: async () => (await import('./cli/verify-command.js')).runVerify,
  sign: async () => (await import('./cli/sign-command.js')).runSign,
  keygen: async () => (await import('./cli/keygen-command.js')).runKeygen,
  keycheck: async () => (await import('./cli/keycheck-command.js')).runKeycheck,
  doctor: async () => (await import('./cli/doctor-command.js')).runDoctor,
  config: async () => runConfig,
  serve: async () => (await import('./cli/serve-command.js')).runServe,
};

const runConfig: CommandRunner = async (argv, io) => {
  const [sub, ...rest] = argv;
  if (sub === 'check') return (await import('./cli/config-check-command.js')).runConfigCheck(rest, io);
  if (sub === '--help' || sub === '-h') {
    io.stdout.write('usage: dkimgate config check [--config FILE]\n');
    return 0;
  }
  throw new CliError(`unknown config sub-command "${sub ?? ''}": use "dkimgate config check"`, EXIT_USAGE);
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  const debug = argv.includes('--debug');
  const args = argv.filter((a) => a !== '--debug');
  const [command, ...rest] = args;
  try {
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      io.stdout.write(USAGE);
      return command === undefined ? EXIT_USAGE : 0;
    }
    if (command === '--version') {
      io.stdout.write(`dkimgate ${version()}\n`);
      return 0;
    }
    const load = COMMANDS[command];
    if (!load) throw new CliError(`unknown command "${command}" (run dkimgate --help)`, EXIT_USAGE);
    return await (await load())(rest, io);
  } catch (err) {
    if (debug) io.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    // node:util parseArgs errors of commands that do not turn them into a UsageError themselves
    const failure = err instanceof CliError ? err : usageErrorOf(err, command as string);
    if (failure !== null) {
      io.stderr.write(`dkimgate ${command}: ${failure.message}\n`);
      return failure.exitCode;
    }
    io.stderr.write(`dkimgate ${command}: internal error: ${(err as Error).message}${debug ? '' : ' (run with --debug for details)'}\n`);
    return EXIT_RUNTIME;
  }
}

// A reader that goes away early (`dkimgate verify msg | head`) is normal in a pipeline: stop without a
// message (the output is incomplete, so the status is still 1). Any other output failure is one line.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(EXIT_RUNTIME);
  process.stderr.write(`dkimgate: cannot write the output: ${err.code ?? err.message}\n`);
  process.exit(EXIT_RUNTIME);
});

const io: CliIo = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin };
main(process.argv.slice(2), io).then(
  (status) => {
    process.exitCode = status;
  },
  (err: unknown) => {
    process.stderr.write(`dkimgate: ${String(err)}\n`);
    process.exitCode = EXIT_RUNTIME;
  },
);
