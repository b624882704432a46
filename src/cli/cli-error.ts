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

/** Streams a command writes to; injected so tests can capture output. */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
}

/** Every sub-command module exports one of these. It returns the exit status or throws CliError. */
export type CommandRunner = (argv: string[], io: CliIo) => Promise<number>;
