import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/load-config.js';

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
