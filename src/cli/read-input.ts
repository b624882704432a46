// Reads the message a command works on: a file, or stdin when no file (or "-") is given.
// Touches: the file system or stdin; refuses input over the size limit.

import { open } from 'node:fs/promises';
import { startsWithContinuation } from '../mail/header-fields.js';
import { CliError } from './cli-error.js';

/** A message larger than the daemon's default limit is refused here too. */
export const MAX_INPUT_BYTES = 52_428_800;
const LIMIT_NOTE = "the daemon's default max_message_size";

export async function readMessage(file: string | undefined, stdin: NodeJS.ReadableStream): Promise<Buffer> {
  if (file !== undefined && file !== '-') {
    try {
      const handle = await open(file, 'r');
      try {
        // Sized before it is read: a file of gigabytes is refused without being loaded.
        const { size } = await handle.stat();
        if (size > MAX_INPUT_BYTES) throw new CliError(`${file}: message of ${size} bytes is over the limit of ${MAX_INPUT_BYTES} (${LIMIT_NOTE})`);
        return await handle.readFile();
      } finally {
        await handle.close();
      }
    } catch (err) {
      if (err instanceof CliError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
      throw new CliError(`${file}: cannot read message: ${why}`);
    }
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stdin) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    total += buf.length;
    if (total > MAX_INPUT_BYTES) throw new CliError(`stdin: message is over the limit of ${MAX_INPUT_BYTES} bytes (${LIMIT_NOTE})`);
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

/** Refuses a message whose first line would become a continuation of the `field` we put above it. */
export function assertPrependable(raw: Buffer, file: string | undefined, field: string): void {
  if (!startsWithContinuation(raw)) return;
  const where = file === undefined || file === '-' ? 'stdin' : file;
  throw new CliError(`${where}: the first line starts with a space or tab (a continuation with no field before it), so it would become part of the ${field} put above it; remove or unfold that line`);
}

/** Parses --now: whole Unix seconds. */
export function parseNow(value: string | undefined): number {
  if (value === undefined) return Math.floor(Date.now() / 1000);
  if (!/^[0-9]{1,12}$/.test(value)) throw new CliError(`--now ${value}: expected Unix seconds, e.g. --now 1700000000`, 2);
  return Number(value);
}
