// Test helper: `dkimgate serve` as a real process (node dist/cli.js), its JSON log lines parsed as they come,
// its listener ports read from the "listening" lines, and its memory read from /proc.
// Touches: the processes it spawns, ended by their PID only (kill(), or stopAllServeProcesses in afterEach).

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { CLI } from './run-cli.js';

export type LogLine = Record<string, unknown> & { msg?: string };

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

/** Spawns `node NODEARGS dist/cli.js serve ARGS` in `cwd`, with `env` added to this process's environment. */
export function spawnServe(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; nodeArgs?: string[]; uid?: number; gid?: number; node?: string } = {}): ServeProcess {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first (npm test does)`);
  const child = spawn(opts.node ?? process.execPath, [...(opts.nodeArgs ?? []), CLI, 'serve', ...args], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    // Another user (tests running as root): file permissions then apply to the daemon.
    ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
    ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
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
  for (const child of running.splice(0)) await killProcess(child);
}

async function killProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
  }
}

export type StartedServe = ServeProcess & {
  pid: number;
  /** The first listener's port. */
  port: number;
  /** The metrics server's port (waits for its log line; fails when the config has no metrics). */
  metricsPort(): Promise<number>;
  /** VmRSS and VmHWM (peak) of the process, in bytes. */
  memory(): Promise<{ rss: number; peak: number }>;
  /** SIGKILL unless it already exited. */
  kill(): Promise<void>;
};

/** `dkimgate serve --config FILE`, once it listens. */
export async function startServeProcess(configPath: string, nodeArgs: string[] = [], as: { uid?: number; gid?: number; node?: string } = {}): Promise<StartedServe> {
  const served = spawnServe(['--config', configPath], { nodeArgs, ...as });
  const kill = () => killProcess(served.child);
  let port: number;
  try {
    port = await listeningPort(served);
  } catch (err) {
    await kill();
    throw err;
  }
  return Object.assign(served, {
    pid: served.child.pid!,
    port,
    async metricsPort() {
      const metrics = await served.waitForLine((l) => l.msg === 'metrics listening', 5000);
      return Number(/:(\d+)\/metrics$/.exec(String(metrics.metrics))?.[1]);
    },
    async memory() {
      const status = await readFile(`/proc/${served.child.pid}/status`, 'utf8');
      const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
      return { rss: kb('VmRSS'), peak: kb('VmHWM') };
    },
    kill,
  });
}
