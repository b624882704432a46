// verify with several --dns-server resolvers: a silent first one is no reason for temperror while a later one
// answers, and no query is left running after the verdict (the command exits when it has printed it).
// Touches: dnsmasq and two silent UDP sockets on loopback, dist/cli.js as a child process, a temporary directory.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASIC_MESSAGE, NOW, rsaKey, sign } from '../../helpers/dkim-test-kit.js';
import { startSilentDnsServer, useDnsServers, type SilentDnsServer } from '../../helpers/dns-server.js';
import { CLI, runCli } from '../../helpers/run-cli.js';

const key = rsaKey(2048);
const servers = useDnsServers({ 's1._domainkey.example.com': key.record });
let silent2: SilentDnsServer;
let dir: string;
let signed: Buffer;

beforeAll(async () => {
  silent2 = await startSilentDnsServer();
  dir = mkdtempSync(join(tmpdir(), 'dkimgate-verify-dns-'));
  signed = await sign(BASIC_MESSAGE, key);
  writeFileSync(join(dir, 'timeout-1s.yaml'), 'dns: { timeout: 1000 }\n');
});
afterAll(async () => {
  await silent2?.stop();
  rmSync(dir, { recursive: true, force: true });
});

type Signature = { result: string; reason: string | null };

describe('dkimgate verify with several --dns-server', () => {
  it('passes within dns.timeout when the first resolver is silent and the second answers', async () => {
    const started = performance.now();
    // --config /dev/null: the default dns.timeout of 5 s
    const r = await runCli(
      ['verify', '--json', '--config', '/dev/null', '--now', String(NOW), '--dns-server', servers.silent.server, '--dns-server', servers.dns.server],
      { input: signed },
    );
    const elapsed = performance.now() - started;
    expect(r.stderr).toBe('');
    expect((JSON.parse(r.stdout) as { signatures: Signature[] }).signatures).toEqual([expect.objectContaining({ result: 'pass', reason: null })]);
    expect(servers.silent.received()).toBeGreaterThan(0);
    expect(elapsed).toBeLessThan(5000);
  });

  it('exits as soon as it has printed temperror when every resolver is silent', async () => {
    const run = await runTimed(['verify', '--json', '--config', join(dir, 'timeout-1s.yaml'), '--now', String(NOW), '--dns-server', servers.silent.server, '--dns-server', silent2.server], signed);
    expect((JSON.parse(run.stdout) as { signatures: Signature[] }).signatures).toEqual([expect.objectContaining({ result: 'temperror' })]);
    expect(silent2.received()).toBeGreaterThan(0); // the second had its turn within the 1 s
    // A query left running would hold the process until c-ares gave up on it (another dns.timeout).
    expect(run.exitAfterOutputMs).toBeLessThan(500);
  });
});

/** Runs the CLI and measures how long the process lived after its last output. */
function runTimed(args: string[], input: Buffer): Promise<{ stdout: string; exitAfterOutputMs: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
    let stdout = '';
    let lastOutput = performance.now();
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      lastOutput = performance.now();
    });
    child.once('error', reject);
    child.once('close', () => resolve({ stdout, exitAfterOutputMs: performance.now() - lastOutput }));
    child.stdin.end(input);
  });
}
