// verify reads the configuration serve reads (config/dkimgate.yaml in the working directory, or --config):
// its authserv_id, verify section and dns section; flags override it.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../helpers/run-cli.js';

const NOW = '1700000000';
const MESSAGE = 'From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: Hello\r\n\r\nHi Bob.\r\n';
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dkimgate-verify-config-'));
  const key = await runCli(['keygen', '--domain', 'example.com', '--selector', 's1024', '--bits', '1024', '--keys-dir', 'keys'], { cwd: dir });
  expect(key.status).toBe(0);
  writeFileSync(join(dir, 'published.zone'), key.stdout);
  mkdirSync(join(dir, 'config'));
  writeFileSync(
    join(dir, 'config', 'dkimgate.yaml'),
    ['authserv_id: gate.example.net', 'verify: { min_key_bits: 2048 }', 'dns:', '  servers: ["127.0.0.1:1"]', '  zone_files: [published.zone]', ''].join('\n'),
  );
  writeFileSync(join(dir, 'other.yaml'), 'authserv_id: other.example.net\ndns: { servers: ["127.0.0.1:1"], timeout: 500 }\n');
  const signed = await runCli(['sign', '--domain', 'example.com', '--selector', 's1024', '--key', 'keys/example.com/s1024.pem', '--now', NOW], { cwd: dir, input: MESSAGE });
  expect(signed.status).toBe(0);
  writeFileSync(join(dir, 'signed.eml'), signed.stdoutBytes);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function verify(args: string[]) {
  const r = await runCli(['verify', '--json', '--now', NOW, ...args, 'signed.eml'], { cwd: dir });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout) as { authservId: string; signatures: Array<{ result: string; reasonCode: string | null }> };
}

describe('dkimgate verify and the configuration', () => {
  it('finds the key through the dns.zone_files of config/dkimgate.yaml and applies its verify section and authserv_id', async () => {
    const report = await verify([]);
    expect(report.authservId).toBe('gate.example.net');
    // The key is found (1024 bits) and judged by verify.min_key_bits: 2048.
    expect(report.signatures).toEqual([expect.objectContaining({ result: 'policy', reasonCode: 'key_too_small' })]);
  });

  it('lets flags override the configuration', async () => {
    const report = await verify(['--min-key-bits', '1024', '--authserv-id', 'flag.example.net']);
    expect(report.authservId).toBe('flag.example.net');
    expect(report.signatures).toEqual([expect.objectContaining({ result: 'pass' })]);
  });

  it('reads the file given with --config instead', async () => {
    const report = await verify(['--config', 'other.yaml']);
    expect(report.authservId).toBe('other.example.net');
    expect(report.signatures).toEqual([expect.objectContaining({ result: 'temperror' })]);
    const withZone = await verify(['--config', 'other.yaml', '--dns-zone', 'published.zone']);
    expect(withZone.signatures).toEqual([expect.objectContaining({ result: 'pass' })]);
  });

  it('exits 2 naming the file when the configuration is broken', async () => {
    writeFileSync(join(dir, 'broken.yaml'), 'no_such_key: 1\n');
    const r = await runCli(['verify', '--config', 'broken.yaml', 'signed.eml'], { cwd: dir });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^dkimgate verify: broken\.yaml:1: no_such_key: /);
  });
});
