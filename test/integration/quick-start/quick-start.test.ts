// The README's quick start as a newcomer runs it, in an empty working directory (never the repository's
// var/): `dkimgate serve` with no config file (what `npm start` runs), `npm run send-demo`, then
// `dkimgate verify --json var/outbox/<file>` and `dkimgate doctor` with no other flags.
// Touches: the built-in ports 127.0.0.1:10026 and :10027 (waits while another run holds them), a temp dir,
// the serve process (ended by PID).

import { execFile } from 'node:child_process';
import { readFile, stat, writeFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { freePort, startNextHopServer } from '../../helpers/next-hop-server.js';
import { runCli } from '../../helpers/run-cli.js';
import { startNodeFlags } from '../../helpers/dkimgate-process.js';
import { spawnServe, stopAllServeProcesses, type ServeProcess } from '../../helpers/serve-process.js';

const SEND_DEMO = fileURLToPath(new URL('../../../scripts/send-demo.mjs', import.meta.url));
/** Another run of this test (a parallel suite on the same machine) may hold the built-in ports for a few seconds. */
const PORTS_DEADLINE_MS = 120_000;

const START_NODE_FLAGS = startNodeFlags();

const dirs: string[] = [];

/** A fresh, empty working directory, as a fresh clone has no var/. */
async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dkimgate-quick-start-'));
  dirs.push(dir);
  return dir;
}

afterEach(async () => {
  await stopAllServeProcesses();
});

afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/**
 * `dkimgate serve` on the built-in configuration, with its demo next hop. While another process holds
 * 127.0.0.1:10027 (serve exits 1) or 127.0.0.1:10026 (serve warns and relays there), it stops and tries
 * again, up to PORTS_DEADLINE_MS; then it fails and names what is in the way.
 */
async function serveBuiltIn(dir: string): Promise<ServeProcess & { attempts: ServeProcess[] }> {
  const deadline = Date.now() + PORTS_DEADLINE_MS;
  const attempts: ServeProcess[] = [];
  for (let attempt = 1; ; attempt++) {
    const served = spawnServe([], { cwd: dir, nodeArgs: START_NODE_FLAGS });
    attempts.push(served);
    const outcome = await served
      .waitForLine((l) => l.msg === 'listening' || (typeof l.msg === 'string' && l.msg.includes('already in use')), 30_000)
      .then((line) => (line.msg === 'listening' ? 'ok' : 'next hop port taken'))
      .catch(() => 'exited');
    if (outcome === 'ok') return Object.assign(served, { attempts });
    served.child.kill('SIGTERM');
    await served.exited;
    if (Date.now() > deadline) {
      throw new Error(`the built-in ports stayed busy for ${PORTS_DEADLINE_MS / 1000} s (${outcome}; is an "npm start" running?): ${served.stderr()} ${JSON.stringify(served.lines)}`);
    }
    await new Promise((r) => setTimeout(r, Math.min(250 * attempt, 2000)));
  }
}

function sendDemo(dir: string): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SEND_DEMO], { cwd: dir }, (err, stdout, stderr) => {
      resolve({ status: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('the quick start on the built-in configuration', () => {
  it('signs the demo message, stores it in var/outbox/, and verify and doctor pass with no flags', async () => {
    const dir = await freshDir();
    const served = await serveBuiltIn(dir);
    // The first attempt creates the key (later ones, after a busy port, use it).
    const created = served.attempts[0]!.lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('created the demo key for example.test'));
    expect(created).toMatchObject({ level: 'info', key: 'var/demo/example.test/demo.pem', zone: 'var/demo/example.test.zone' });
    expect((await stat(join(dir, 'var/demo/example.test/demo.pem'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(dir, 'var/demo/example.test.zone'), 'utf8')).toMatch(/^demo\._domainkey\.example\.test\. IN TXT \( "v=DKIM1; k=rsa; p=/m);
    expect(served.lines.find((l) => l.msg === 'listening')?.listener).toBe('smtp://127.0.0.1:10027');
    expect(served.lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('demo next hop listening'))?.nextHop).toBe('smtp://127.0.0.1:10026');

    const sent = await sendDemo(dir);
    expect(sent.stderr).toBe('');
    expect(sent.status).toBe(0);
    expect(sent.stdout).toMatch(/^sent demo@example\.test -> someone@example\.net: 250 /m);
    const stored = /^stored by the demo next hop as (var\/outbox\/\S+\.eml)$/m.exec(sent.stdout)?.[1];
    expect(stored).toBeDefined();
    expect(sent.stdout).toContain(`npx dkimgate verify --json ${stored}`);

    const verified = await runCli(['verify', '--json', stored!], { cwd: dir });
    expect(verified.stderr).toBe('');
    expect(verified.status).toBe(0);
    const report = JSON.parse(verified.stdout) as { signatures: Array<{ result: string; domain: string; selector: string; keyBits: number }> };
    expect(report.signatures).toEqual([expect.objectContaining({ result: 'pass', domain: 'example.test', selector: 'demo', keyBits: 2048 })]);

    // The daemon's log line links its queue id to the stored file.
    const message = await served.waitForLine((l) => l.msg === 'message');
    expect(message).toMatchObject({ decision: 'sign', decisionReason: 'signing as example.test (relay host 127.0.0.1)', relay: 'delivered' });
    expect(`var/outbox/${String(message.nextHopQueueId)}.eml`).toBe(stored);

    const doctor = await runCli(['doctor'], { cwd: dir });
    expect(doctor.status).toBe(0);
    expect(doctor.stdout).toMatch(/^info config: built-in configuration/);
    expect(doctor.stdout.trim().split('\n').slice(1)).toEqual([
      expect.stringMatching(/^ok +demo\._domainkey\.example\.test key file: var\/demo\/example\.test\/demo\.pem \(mode 0600\)$/),
      expect.stringMatching(/^ok +demo\._domainkey\.example\.test key size: RSA 2048 bits/),
      expect.stringMatching(/^ok +demo\._domainkey\.example\.test DNS record: published/),
      expect.stringMatching(/^ok +demo\._domainkey\.example\.test matches: /),
      expect.stringMatching(/^ok +demo\._domainkey\.example\.test in use: signs mail From example\.test sent by relay hosts 127\.0\.0\.1\/32/),
    ]);

    served.child.kill('SIGTERM');
    expect(await served.exited).toBe(0);
  });

  it('keeps the demo key on the next start and refuses to switch to a config file on SIGHUP', async () => {
    const dir = await freshDir();
    const first = await serveBuiltIn(dir);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    const before = await readFile(join(dir, 'var/demo/example.test/demo.pem'));
    const served = await serveBuiltIn(dir);
    expect(served.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('created the demo key'))).toBe(false);
    expect(served.lines.some((l) => l.msg === 'using the demo key for example.test')).toBe(true);
    expect(await readFile(join(dir, 'var/demo/example.test/demo.pem'))).toEqual(before);

    await mkdir(join(dir, 'config'), { recursive: true });
    await writeFile(join(dir, 'config/dkimgate.yaml'), 'next_hop: { host: 127.0.0.1, port: 10026 }\n');
    try {
      served.child.kill('SIGHUP');
      const refused = await served.waitForLine((l) => l.msg === 'reload refused: keeping the running configuration');
      expect(String((refused.problems as string[])[0])).toMatch(/from built-in configuration .* to config\/dkimgate\.yaml: restart dkimgate to switch/);
    } finally {
      await rm(join(dir, 'config'), { recursive: true, force: true });
    }
    served.child.kill('SIGTERM');
    expect(await served.exited).toBe(0);
  });

  it('relays for real, with no demo outbox, when DKIMGATE_NEXT_HOP names a next hop', async () => {
    const dir = await freshDir();
    const hop = await startNextHopServer();
    try {
      const listen = await freePort();
      const served = spawnServe([], { cwd: dir, env: { DKIMGATE_LISTEN: `127.0.0.1:${listen}`, DKIMGATE_NEXT_HOP: `127.0.0.1:${hop.port}` } });
      await served.waitForLine((l) => l.msg === 'listening', 30_000);
      expect(served.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('demo next hop'))).toBe(false);
      // Not even a try at the next hop's own port ("already in use"): no warning at all.
      expect(served.lines.filter((l) => Number(l.level) >= 40)).toEqual([]);

      const sent = await new Promise<{ status: number; stdout: string }>((resolve) => {
        execFile(process.execPath, [SEND_DEMO, '--port', String(listen)], { cwd: dir }, (err, stdout) => resolve({ status: err ? 1 : 0, stdout }));
      });
      expect(sent.stdout).toMatch(/^sent demo@example\.test -> someone@example\.net: 250 /m);
      expect(hop.messages).toHaveLength(1);
      expect(hop.messages[0]!.data.toString('latin1')).toMatch(/^DKIM-Signature: [^]*?d=example\.test; s=demo;/);
      await expect(stat(join(dir, 'var/outbox'))).rejects.toMatchObject({ code: 'ENOENT' });
      served.child.kill('SIGTERM');
      expect(await served.exited).toBe(0);
    } finally {
      await hop.close();
    }
  });
});
