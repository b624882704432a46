import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, locateProblem } from '../../../src/config/load-config.js';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dkimgate-load-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadConfig', () => {
  it('reads and validates a file', async () => {
    const path = join(dir, 'good.yaml');
    await writeFile(path, 'authserv_id: mx.example.net\nnext_hop: { port: 2526 }\n');
    const config = await loadConfig(path);
    expect(config.authservId).toBe('mx.example.net');
    expect(config.nextHop.port).toBe(2526);
  });

  it('throws a ConfigError that lists every problem with file and line', async () => {
    const path = join(dir, 'bad.yaml');
    await writeFile(path, 'authserv_id: mx.example.net\nverify:\n  enabled: maybe\nsign:\n  colour: blue\n');
    const error = await loadConfig(path).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    const configError = error as ConfigError;
    expect(configError.problems).toEqual([
      { file: path, line: 3, keyPath: 'verify.enabled', message: 'must be true or false' },
      { file: path, line: 5, keyPath: 'sign.colour', message: 'unknown key' },
    ]);
    expect(configError.message).toBe(`${path}:3: verify.enabled: must be true or false\n${path}:5: sign.colour: unknown key`);
  });

  it('throws a ConfigError naming a missing file', async () => {
    const path = join(dir, 'missing.yaml');
    await expect(loadConfig(path)).rejects.toThrow(`${path}: no such file; check the path`);
  });
});

describe('locateProblem', () => {
  const lines: Record<string, number> = { 'sign.domains.example.com.selector': 7, 'dns.zone_files': 9, 'listen[0].tls.cert': 3, users_file: 4 };
  const lineOf = (keyPath: string) => lines[keyPath] ?? 1;

  it('puts the file and the line of the key a start or reload problem begins with in front of it', () => {
    expect(
      [
        'sign.domains.example.com.selector (domain example.com, selector ed): a ed25519 key cannot sign rsa-sha256',
        'dns.zone_files: /z.zone:2: relative name "foo" needs an origin',
        'listen[0].tls.cert: TLS certificate /c.pem is not a PEM certificate',
        'users_file: /u:1: user "bob" has no bcrypt hash',
        'limits.spool_dir: cannot create spool files in /x: no such directory',
      ].map((problem) => locateProblem(problem, 'd.yaml', lineOf)),
    ).toEqual([
      'd.yaml:7: sign.domains.example.com.selector (domain example.com, selector ed): a ed25519 key cannot sign rsa-sha256',
      'd.yaml:9: dns.zone_files: /z.zone:2: relative name "foo" needs an origin',
      'd.yaml:3: listen[0].tls.cert: TLS certificate /c.pem is not a PEM certificate',
      'd.yaml:4: users_file: /u:1: user "bob" has no bcrypt hash',
      'd.yaml:1: limits.spool_dir: cannot create spool files in /x: no such directory',
    ]);
  });

  it('leaves a problem that names no key as it is', () => {
    expect(locateProblem('demo next hop: cannot store mail in var/demo/outbox/ (EACCES)', 'd.yaml', lineOf)).toBe('demo next hop: cannot store mail in var/demo/outbox/ (EACCES)');
  });
});
