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
