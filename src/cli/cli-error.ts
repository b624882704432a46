// Errors that end a command with a given exit status and a one-line message.
// Touches nothing; the dispatcher in src/cli.ts prints them.

/** Exit statuses of the contract (interface.md §1). */
export const EXIT_OK = 0;
export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;

/** A failure the user can fix: `message` says what, where and how to fix it. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_RUNTIME,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Bad command-line usage or configuration: exit status 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT_USAGE);
    this.name = 'UsageError';
  }
}

/**
 * A node:util parseArgs error as the one-line usage error every command gives, e.g. "unknown option --bogus
 * (run dkimgate verify --help)"; null for any other error. `command` as typed: "verify", "config check".
 */
export function usageErrorOf(error: unknown, command: string): UsageError | null {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS')) return null;
  return new UsageError(`${describeParseArgsError(code, (error as Error).message)} (run dkimgate ${command} --help)`);
}

/** Node's wording is long and advises "--" quoting; ours names the option and the fault. */
function describeParseArgsError(code: string, message: string): string {
  const first = message.split('\n')[0] ?? message;
  const quoted = /'([^']*)'/.exec(first)?.[1];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${quoted ?? first}`;
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return `unexpected argument ${quoted ?? ''}`.trim();
  const option = /^Option '(-[^ ']*)/.exec(first)?.[1];
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && option !== undefined) {
    if (/argument missing|ambiguous/.test(first)) return `option ${option} needs a value`;
    if (/does not take an argument/.test(first)) return `option ${option} takes no value`;
  }
  return first.charAt(0).toLowerCase() + first.slice(1);
}

/** Streams a command writes to; injected so tests can capture output. */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
}

/** Every sub-command module exports one of these. It returns the exit status or throws CliError. */
export type CommandRunner = (argv: string[], io: CliIo) => Promise<number>;
