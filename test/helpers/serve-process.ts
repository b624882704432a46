// Test helper: `dkimgate serve` as a real process (node dist/cli.js) with its JSON log lines parsed, its listener
// ports read from the "listening" lines, and its memory read from /proc. Touches: the process it spawns (ended by
// PID in stop()), its config file.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { waitFor, type LogLine } from './daemon-harness.js';

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export type ServeProcess = {
  child: ChildProcess;
  pid: number;
  lines: LogLine[];
  /** The first listener's port. */
  port: number;
  /** The metrics server's port (waits for its log line; fails when the config has no metrics). */
  metricsPort(): Promise<number>;
  exited: Promise<number | null>;
  /** VmRSS and VmHWM (peak) of the process, in bytes. */
  memory(): Promise<{ rss: number; peak: number }>;
  /** SIGKILL unless it already exited. */
  kill(): Promise<void>;
};

export async function startServeProcess(configPath: string, nodeArgs: string[] = []): Promise<ServeProcess> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first`);
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'serve', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines: LogLine[] = [];
  let partial = '';
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  child.stdout!.on('data', (chunk: Buffer) => {
    const parts = (partial + chunk.toString('utf8')).split('\n');
    partial = parts.pop() ?? '';
    for (const p of parts) if (p.trim()) lines.push(JSON.parse(p) as LogLine);
  });
  const kill = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  let listening: LogLine;
  try {
    listening = await waitFor(() => lines.find((l) => l.msg === 'listening'), 10_000);
  } catch {
    await kill();
    throw new Error(`serve did not log "listening": ${stderr} ${JSON.stringify(lines)}`);
  }
  const port = Number(/:(\d+)$/.exec(String(listening.listener))?.[1]);
  return {
    child,
    pid: child.pid!,
    lines,
    port,
    async metricsPort() {
      const metrics = await waitFor(() => lines.find((l) => l.msg === 'metrics listening'), 5000);
      return Number(/:(\d+)\/metrics$/.exec(String(metrics.metrics))?.[1]);
    },
    exited,
    async memory() {
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
      const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
      return { rss: kb('VmRSS'), peak: kb('VmHWM') };
    },
    kill,
  };
}
