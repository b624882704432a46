// Running an interop peer (dkimpy, Mail::DKIM, our CLI) as a child process and reading its JSON-line output.
// Touches: one child process per call.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const pExecFile = promisify(execFile);

/** The command's stdout; a failure names `what`, the exit status and the command's stderr (peers say what to install). */
export async function run(cmd: string, args: string[], what: string, timeoutMs = 60_000): Promise<Buffer> {
  try {
    const { stdout } = await pExecFile(cmd, args, { encoding: 'buffer', maxBuffer: 64 << 20, timeout: timeoutMs });
    return stdout;
  } catch (err) {
    const e = err as { code?: unknown; stderr?: Buffer; message: string };
    const stderr = e.stderr ? e.stderr.toString('utf8').trim() : '';
    throw new Error(`${what} failed (exit ${String(e.code)}): ${stderr || e.message}\n  command: ${cmd} ${args.join(' ')}`);
  }
}

/** One object per non-empty line. */
export const jsonLines = (out: Buffer): Array<Record<string, unknown>> =>
  out
    .toString('utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
