import { chmod, mkdtemp, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseZoneFile } from '../../../src/dns/zone-file.js';
import { ensureDemoKey, type DemoKeyPaths } from '../../../src/keys/ensure-demo-key.js';
import { formatKeyRecord } from '../../../src/keys/generate-key.js';
import { KeyLoadError } from '../../../src/keys/load-private-key.js';
import { rsaKey } from '../../helpers/dkim-test-kit.js';

let root = '';

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'dkimgate-demo-key-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function pathsIn(name: string): DemoKeyPaths {
  return { domain: 'example.test', selector: 'demo', keyPath: join(root, name, 'example.test', 'demo.pem'), zonePath: join(root, name, 'example.test.zone') };
}

async function zoneRecord(path: string): Promise<string> {
  const parsed = parseZoneFile(await readFile(path, 'utf8'), { fileName: path });
  if (parsed.kind !== 'ok') throw new Error(parsed.message);
  expect(parsed.records.map((r) => r.name)).toEqual(['demo._domainkey.example.test']);
  return parsed.records[0]!.strings.join('');
}

describe('the demo key', () => {
  it('is created on first use as an RSA 2048 key of mode 0600, with its TXT record in the zone file', async () => {
    const paths = pathsIn('first');
    const setup = await ensureDemoKey(paths);
    expect(setup).toMatchObject({ created: true, zoneWritten: true, key: { keyType: 'rsa', keyBits: 2048 } });
    expect((await stat(paths.keyPath)).mode & 0o777).toBe(0o600);
    expect(await zoneRecord(paths.zonePath)).toBe(formatKeyRecord(setup.key.keyObject));
  });

  it('is kept, never regenerated, on later starts', async () => {
    const paths = pathsIn('again');
    await ensureDemoKey(paths);
    const before = await readFile(paths.keyPath);
    const setup = await ensureDemoKey(paths);
    expect(setup).toMatchObject({ created: false, zoneWritten: false });
    expect(await readFile(paths.keyPath)).toEqual(before);
  });

  it('uses a key someone put at its path, and rewrites the zone file to match it', async () => {
    const paths = pathsIn('replaced');
    await ensureDemoKey(paths);
    const other = rsaKey(2048);
    await writeFile(paths.keyPath, other.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const setup = await ensureDemoKey(paths);
    expect(setup).toMatchObject({ created: false, zoneWritten: true });
    expect(await zoneRecord(paths.zonePath)).toBe(formatKeyRecord(other.privateKey));
  });

  it('refuses, and leaves alone, a file at its path that is not a usable key', async () => {
    const paths = pathsIn('clobber');
    await mkdir(join(root, 'clobber', 'example.test'), { recursive: true });
    await writeFile(paths.keyPath, 'not a key, but someone may need it\n', { mode: 0o600 });
    await expect(ensureDemoKey(paths)).rejects.toBeInstanceOf(KeyLoadError);
    expect(await readFile(paths.keyPath, 'utf8')).toBe('not a key, but someone may need it\n');
  });

  it('refuses a key file others can write to, as the daemon does', async () => {
    const paths = pathsIn('loose');
    await ensureDemoKey(paths);
    await chmod(paths.keyPath, 0o666);
    await expect(ensureDemoKey(paths)).rejects.toThrow(/writable by others .*chmod 600/);
  });
});
