// config/systemd/dkimgate.service: checked by systemd's own tools (systemd-analyze verify and security, offline:
// no systemd runs here), and its ExecStart, ExecReload and KillSignal run directly against the built daemon.
// Touches: a temp dir, the daemon process it starts (ended by PID), loopback sockets.

import { execFile } from 'node:child_process';
import { constants, readFileSync } from 'node:fs';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../../src/config/defaults.js';
import { CLI_PATH, startDkimgate, startNodeFlags, waitFor } from '../../helpers/dkimgate-process.js';
import { startNextHopServer } from '../../helpers/next-hop-server.js';

const execFileAsync = promisify(execFile);
const UNIT_PATH = fileURLToPath(new URL('../../../config/systemd/dkimgate.service', import.meta.url));
const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';
const unitText = readFileSync(UNIT_PATH, 'utf8');

/** Every value of `key` in the unit, in order (comments skipped). */
function values(key: string): string[] {
  return unitText
    .split('\n')
    .filter((line) => line.startsWith(`${key}=`))
    .map((line) => line.slice(key.length + 1));
}
const value = (key: string): string | undefined => values(key).at(-1);

/** The unit's ExecStart with its program replaced by this checkout's CLI (the installed path does not exist here). */
function execStart(): { shipped: string; local: string[] } {
  const shipped = value('ExecStart')!;
  const [program, ...args] = shipped.split(/\s+/);
  expect(program).toBe('/usr/local/bin/dkimgate');
  return { shipped, local: [process.execPath, CLI_PATH, ...args] };
}

let work = '';
let unitCopy = '';

beforeAll(async () => {
  try {
    await access(SYSTEMD_ANALYZE, constants.X_OK);
  } catch {
    throw new Error(`${SYSTEMD_ANALYZE} is missing: install the Debian package "systemd" (it starts nothing in a container; .ci/run installs it)`);
  }
  work = await mkdtemp(join(tmpdir(), 'dkimgate-systemd-'));
  // verify insists that ExecStart's program exists: point it at this checkout.
  unitCopy = join(work, 'dkimgate.service');
  await writeFile(unitCopy, unitText.replace(`ExecStart=${execStart().shipped}`, `ExecStart=${execStart().local.join(' ')}`));
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('config/systemd/dkimgate.service', () => {
  it('passes systemd-analyze verify without a single warning', async () => {
    const { stdout, stderr } = await execFileAsync(SYSTEMD_ANALYZE, ['verify', unitCopy], { encoding: 'utf8', timeout: 30_000 });
    // verify exits 0 on unknown keys and unparsable values (it ignores them): every line it prints is a finding
    expect([stdout, stderr]).toEqual(['', '']);
  });

  it('is rated OK by systemd-analyze security (exposure 2.0 or less of 10)', async () => {
    const { stdout } = await execFileAsync(SYSTEMD_ANALYZE, ['security', '--offline=true', '--no-pager', unitCopy], { encoding: 'utf8', timeout: 30_000 });
    const overall = /Overall exposure level for dkimgate\.service: (\d+\.\d) (\w+)/.exec(stdout);
    expect(overall, stdout.slice(-500)).not.toBeNull();
    expect(Number(overall![1])).toBeLessThanOrEqual(2.0);
  });

  it('runs as a dedicated user without capabilities, new privileges, write access or a shared /tmp', () => {
    expect(value('User')).toBe('dkimgate');
    expect(value('NoNewPrivileges')).toBe('yes');
    expect(value('ProtectSystem')).toBe('strict');
    expect(value('PrivateTmp')).toBe('yes');
    expect(value('CapabilityBoundingSet')).toBe('');
    expect(value('AmbientCapabilities')).toBe('');
    // the keys: the config's directory, where sign.key's relative default (keys/%{d}/%{s}.pem) lands
    expect(value('WorkingDirectory')).toBe('/etc/dkimgate');
    expect(values('ReadOnlyPaths')).toContain(dirname(execStart().shipped.split('--config ')[1]!));
    // V8 needs writable executable memory; PrivateUsers would make root-owned keys look foreign
    expect(values('MemoryDenyWriteExecute')).toEqual([]);
    expect(values('PrivateUsers')).toEqual([]);
  });

  it("waits longer to stop than limits.drain_timeout's default, with a margin", () => {
    const timeout = /^(\d+)s$/.exec(value('TimeoutStopSec') ?? '');
    expect(Number(timeout?.[1])).toBeGreaterThanOrEqual(DEFAULTS.config.limits.drainTimeout + 10);
    expect(value('KillSignal')).toBe('SIGTERM');
  });

  it('starts with its ExecStart, reloads on its ExecReload, and drains and exits 0 on its KillSignal', async () => {
    const hop = await startNextHopServer();
    try {
      const config = join(work, 'dkimgate.yaml');
      await writeFile(config, `listen: [{ host: 127.0.0.1, port: 0 }]\nnext_hop: { host: 127.0.0.1, port: ${hop.port} }\n`);
      const args = execStart().local.map((arg) => (arg === '/etc/dkimgate/dkimgate.yaml' ? config : arg));
      // with the unit's Environment= (NODE_OPTIONS carries a V8 flag: node refuses to start if it may not go there)
      const env = { ...process.env, ...Object.fromEntries(values('Environment').map((v) => [v.slice(0, v.indexOf('=')), v.slice(v.indexOf('=') + 1)])) };
      expect(env.NODE_OPTIONS).toBe(startNodeFlags().join(' '));
      const gate = await startDkimgate({ command: args as [string, ...string[]], env });
      try {
        const [killer, ...reloadArgs] = value('ExecReload')!.split(/\s+/);
        await execFileAsync(killer!, reloadArgs.map((a) => (a === '$MAINPID' ? String(gate.pid) : a)));
        await waitFor('"configuration reloaded"', () => gate.lines.find((l) => l.msg === 'configuration reloaded'), 10_000);
        process.kill(gate.pid, value('KillSignal')!);
        const code = await Promise.race([gate.exited, new Promise((r) => setTimeout(() => r('still running'), 10_000))]);
        expect(code).toBe(0);
      } finally {
        await gate.stop();
      }
    } finally {
      await hop.close();
    }
  });
});
