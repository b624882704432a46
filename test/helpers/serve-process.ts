// Test helper: `dkimgate serve` as a real process (node dist/cli.js), its JSON log lines parsed as they come.
// Touches: the process it spawns, ended by its PID only (stopAllServeProcesses in afterEach).

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { CLI } from './run-cli.js';

export type LogLine = Record<string, unknown>;

export interface ServeProcess {
  child: ChildProcess;
  /** Every JSON line written to stdout so far. */
  lines: LogLine[];
  stderr(): string;
  /** Resolves to the exit code (null when ended by a signal). */
  exited: Promise<number | null>;
  /** The first log line that `match` accepts, waiting for it (rejects when the process exits first or after timeoutMs). */
  waitForLine(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
}

const running: ChildProcess[] = [];

/** Spawns `node dist/cli.js serve ARGS` in `cwd`, with `env` added to this process's environment. */
export function spawnServe(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): ServeProcess {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first (npm test does)`);
  const child = spawn(process.execPath, [CLI, 'serve', ...args], { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.push(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let exitedYet = false;
  void exited.then(() => (exitedYet = true));
  const lines: LogLine[] = [];
  let partial = '';
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  child.stdout!.on('data', (chunk: Buffer) => {
    const parts = (partial + chunk.toString('utf8')).split('\n');
    partial = parts.pop() ?? '';
    for (const p of parts) if (p.trim()) lines.push(JSON.parse(p) as LogLine);
  });
  return {
    child,
    lines,
    stderr: () => stderr,
    exited,
    async waitForLine(match, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = lines.find(match);
        if (found) return found;
        if (exitedYet) throw new Error(`serve exited before the awaited log line: ${stderr.trim()} ${JSON.stringify(lines)}`);
        if (Date.now() > deadline) throw new Error(`serve did not log the awaited line within ${timeoutMs} ms: ${stderr.trim()} ${JSON.stringify(lines)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

/** The port of the listener the process logged as listening. */
export async function listeningPort(served: ServeProcess): Promise<number> {
  const line = await served.waitForLine((l) => l.msg === 'listening');
  const port = Number(/:(\d+)$/.exec(String(line.listener))?.[1]);
  if (!(port > 0)) throw new Error(`no port in ${JSON.stringify(line)}`);
  return port;
}

/** Kills (SIGKILL) every serve process still running; for afterEach. */
export async function stopAllServeProcesses(): Promise<void> {
  for (const child of running.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    }
  }
}
