// Test helper: runs the built daemon as a real process (node dist/cli.js serve, or a wrapper such as the
// docker entrypoint), collects its JSON log lines, and knows where it listens. Touches: the process it
// spawns (ended by its PID, also when the test process exits first).

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const CLI_PATH = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

/**
 * The Node flags of `npm start` ("node FLAGS dist/cli.js serve" in package.json): every start path (Docker
 * entrypoint, systemd unit) must pass the same, and tests that start the daemon as users do run with them.
 */
export function startNodeFlags(): string[] {
  const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { scripts: { start: string } };
  const m = /^node((?: --[^ ]+)*) dist\/cli\.js serve$/.exec(pkg.scripts.start);
  if (!m) throw new Error(`package.json scripts.start is not "node [flags] dist/cli.js serve": ${pkg.scripts.start}`);
  return m[1]!.split(' ').filter(Boolean);
}

export type LogLine = Record<string, unknown> & { msg?: string };

export interface RunningDkimgate {
  child: ChildProcess;
  pid: number;
  /** Every JSON log line so far. */
  lines: LogLine[];
  /** What it wrote to stderr so far. */
  stderr(): string;
  /** The listeners from its "listening" lines, in configuration order. */
  listeners: Array<{ protocol: string; host: string; port: number }>;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** SIGTERM, wait for the exit (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
}

export interface DkimgateProcessOptions {
  /** The program and its arguments; default: node dist/cli.js serve --config `config`. */
  command?: [string, ...string[]];
  config?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** How many "listening" lines to wait for; default 1. */
  listeners?: number;
  startTimeoutMs?: number;
}

/** Starts dkimgate and waits until it listens; throws with its output if it exits or does not listen in time. */
export async function startDkimgate(options: DkimgateProcessOptions): Promise<RunningDkimgate> {
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: run "npm run build" first (npm test does)`);
  const [program, ...args] = options.command ?? [process.execPath, CLI_PATH, 'serve', ...(options.config ? ['--config', options.config] : [])];
  const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env, cwd: options.cwd });
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      process.removeListener('exit', killOnExit);
      resolve(code);
    });
    child.once('error', () => resolve(null));
  });
  const lines: LogLine[] = [];
  let partial = '';
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    if (stderr.length < 20_000) stderr += chunk.toString('utf8');
  });
  child.stdout!.on('data', (chunk: Buffer) => {
    const parts = (partial + chunk.toString('utf8')).split('\n');
    partial = parts.pop() ?? '';
    for (const part of parts) {
      if (part.trim() === '') continue;
      try {
        lines.push(JSON.parse(part) as LogLine);
      } catch {
        lines.push({ msg: 'not JSON', text: part });
      }
    }
  });
  const stop = async (graceMs = 10_000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };

  const wanted = options.listeners ?? 1;
  const deadline = Date.now() + (options.startTimeoutMs ?? 15_000);
  let gone = false;
  void exited.then(() => (gone = true));
  while (lines.filter((l) => l.msg === 'listening').length < wanted) {
    if (gone || Date.now() > deadline) {
      await stop(1000);
      throw new Error(`dkimgate did not start (${gone ? `exit ${child.exitCode}` : 'timeout'}): ${stderr.trim()} ${JSON.stringify(lines)}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const listeners = lines
    .filter((l) => l.msg === 'listening')
    .map((l) => {
      const m = /^(\w+):\/\/(.*):(\d+)$/.exec(String(l.listener));
      if (!m) throw new Error(`unexpected listening line ${JSON.stringify(l)}`);
      return { protocol: m[1]!, host: m[2]!, port: Number(m[3]) };
    });
  return { child, pid: child.pid!, lines, stderr: () => stderr, listeners, exited, stop };
}

/** Polls `probe` every 50 ms until it returns something truthy; throws `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => T | undefined | null | false | Promise<T | undefined | null | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
