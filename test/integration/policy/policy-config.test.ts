// `dkimgate config check` on policy settings that cannot do what they say.
// Touches: a temp dir with a config file; runs the built CLI.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../helpers/run-cli.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dkimgate-policy-config-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function check(text: string) {
  const path = join(dir, 'dkimgate.yaml');
  await writeFile(path, text);
  return { path, run: await runCli(['config', 'check', '--config', path]) };
}

describe('policy.require with verification off', () => {
  it('is refused, naming the key and line: unverified mail would be relayed despite the rule', async () => {
    const { path, run } = await check('verify: { enabled: false }\npolicy:\n  require:\n    - { domain: bank.test }\n');
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(`${path}:3: policy.require: has no effect while verify.enabled is false`);
  });

  it('is fine with verification on, and verification off is fine without rules', async () => {
    expect((await check('policy:\n  require:\n    - { domain: bank.test }\n')).run.status).toBe(0);
    expect((await check('verify: { enabled: false }\npolicy: { on_temperror: tempfail }\n')).run.status).toBe(0);
  });
});

describe('authserv_id', () => {
  it('is refused over 255 characters (a host name), by config check and by verify --authserv-id', async () => {
    const long = `${'a'.repeat(63)}.`.repeat(5);
    const { path, run } = await check(`authserv_id: ${long}\n`);
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(`${path}:1: authserv_id: is 320 characters long: an authserv-id is a host name, at most 255 characters`);
    const cli = await runCli(['verify', '--config', '/dev/null', '--authserv-id', long], { input: 'From: a@b.test\r\n\r\nbody\r\n' });
    expect(cli.status).toBe(2);
    expect(cli.stdout).toBe('');
    expect(cli.stderr).toContain('--authserv-id: 320 characters; at most 255');
  });

  it('is fine at 253 characters, and our field then parses with it', async () => {
    const name = `${'a'.repeat(62)}.`.repeat(4).concat('b');
    expect(name).toHaveLength(253);
    expect((await check(`authserv_id: ${name}\n`)).run.status).toBe(0);
    const cli = await runCli(['verify', '--config', '/dev/null', '--authserv-id', name], { input: 'From: a@b.test\r\n\r\nbody\r\n' });
    expect(cli.stdout.startsWith(`Authentication-Results: ${name};\r\n\tdkim=none\r\n`)).toBe(true);
  });
});
