import { spawnSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliError, UsageError, type CliIo } from '../../../src/cli/cli-error.js';
import { runKeygen } from '../../../src/cli/keygen-command.js';
import { parseZoneFile } from '../../../src/dns/zone-file.js';
import { loadPrivateKey } from '../../../src/keys/load-private-key.js';

const DKIMPY = '/usr/bin/python3';
const CLI = new URL('../../../dist/cli.js', import.meta.url).pathname;

let dir = '';
let runCounter = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dkimgate-keygen-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function captureIo(): { io: CliIo; stdout: () => string; stderr: () => string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.on('data', (chunk: Buffer) => out.push(chunk));
  stderr.on('data', (chunk: Buffer) => err.push(chunk));
  return {
    io: { stdout, stderr, stdin: new PassThrough() },
    stdout: () => Buffer.concat(out).toString('utf8'),
    stderr: () => Buffer.concat(err).toString('utf8'),
  };
}

async function keygen(args: string[]) {
  const capture = captureIo();
  const status = await runKeygen(args, capture.io);
  return { status, stdout: capture.stdout(), stderr: capture.stderr() };
}

function freshKeysDir(): string {
  return join(dir, `keys-${++runCounter}`);
}

/** The record value of the zone text keygen printed, read back by the zone-file parser. */
function recordOf(zoneText: string): { name: string; strings: string[] } {
  const parsed = parseZoneFile(zoneText);
  if (parsed.kind !== 'ok') throw new Error(`keygen printed an unparsable zone record: ${parsed.message}`);
  const [record] = parsed.records;
  if (record === undefined || parsed.records.length !== 1) throw new Error('expected exactly one TXT record');
  return record;
}

describe('dkimgate keygen', () => {
  it('writes DIR/D/S.pem with mode 0600 in a 0700 directory and prints the TXT record', async () => {
    const keysDir = freshKeysDir();
    const result = await keygen(['--domain', 'Example.COM', '--selector', 's2026', '--keys-dir', keysDir]);
    const path = join(keysDir, 'example.com', 's2026.pem');
    expect(result.status).toBe(0);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(keysDir, 'example.com'))).mode & 0o777).toBe(0o700);
    expect(result.stderr).toBe(
      `dkimgate keygen: wrote ${path} (RSA 2048 bits, mode 0600); publish the TXT record above at s2026._domainkey.example.com\n`,
    );
    const loaded = await loadPrivateKey(path);
    expect([loaded.keyType, loaded.keyBits, loaded.warnings]).toEqual(['rsa', 2048, []]);
    const record = recordOf(result.stdout);
    expect(record.name).toBe('s2026._domainkey.example.com');
    const spki = createPublicKey(loaded.keyObject).export({ format: 'der', type: 'spki' }).toString('base64');
    expect(record.strings.join('')).toBe(`v=DKIM1; k=rsa; p=${spki}`);
  });

  it('splits an RSA record into 255-byte strings across lines', async () => {
    const result = await keygen(['--domain', 'example.com', '--selector', 'big', '--bits', '4096', '--keys-dir', freshKeysDir()]);
    const record = recordOf(result.stdout);
    // "v=DKIM1; k=rsa; p=" (18) + base64 of a 550-byte SPKI (736) = 754 bytes.
    expect(record.strings.map((s) => s.length)).toEqual([255, 255, 244]);
    expect(result.stdout).toMatch(/^big\._domainkey\.example\.com\. IN TXT \( "v=DKIM1; k=rsa; p=[^"]+"\n\t"[^"]+"\n\t"[^"]+" \)\n$/);
  });

  it('prints an Ed25519 record on one line with a 44-character p=', async () => {
    const keysDir = freshKeysDir();
    const result = await keygen(['--domain', 'example.net', '--selector', 'ed2026', '--type', 'ed25519', '--keys-dir', keysDir]);
    expect(result.stdout).toMatch(/^ed2026\._domainkey\.example\.net\. IN TXT "v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}="\n$/);
    const p = /p=([^"]+)"/.exec(result.stdout)?.[1] ?? '';
    expect(p).toHaveLength(44);
    const loaded = await loadPrivateKey(join(keysDir, 'example.net', 'ed2026.pem'));
    const raw = Buffer.from(createPublicKey(loaded.keyObject).export({ format: 'jwk' }).x ?? '', 'base64url');
    expect(Buffer.from(p, 'base64')).toEqual(raw);
    expect(result.stderr).toContain('(Ed25519, mode 0600)');
  });

  it('refuses to overwrite an existing key and leaves it untouched', async () => {
    const keysDir = freshKeysDir();
    await keygen(['--domain', 'example.com', '--selector', 's1', '--type', 'ed25519', '--keys-dir', keysDir]);
    const path = join(keysDir, 'example.com', 's1.pem');
    const before = await readFile(path, 'utf8');
    const failure = await keygen(['--domain', 'example.com', '--selector', 's1', '--type', 'ed25519', '--keys-dir', keysDir]).then(
      () => null,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(CliError);
    expect((failure as CliError).exitCode).toBe(1);
    expect((failure as CliError).message).toBe(
      `${path} already exists; refusing to overwrite a key that may be published in DNS: choose a new selector, or pass --force to replace it`,
    );
    expect(await readFile(path, 'utf8')).toBe(before);
  });

  it('replaces an existing key with --force, keeping mode 0600', async () => {
    const keysDir = freshKeysDir();
    await keygen(['--domain', 'example.com', '--selector', 's1', '--type', 'ed25519', '--keys-dir', keysDir]);
    const path = join(keysDir, 'example.com', 's1.pem');
    const before = await readFile(path, 'utf8');
    await writeFile(join(keysDir, 'example.com', 'other.txt'), 'x');
    const result = await keygen(['--domain', 'example.com', '--selector', 's1', '--type', 'ed25519', '--keys-dir', keysDir, '--force']);
    expect(result.status).toBe(0);
    expect(await readFile(path, 'utf8')).not.toBe(before);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it.each([
    [['--selector', 's1'], '--domain is required, e.g. --domain example.com'],
    [['--domain', 'example.com'], '--selector is required, e.g. --selector s2026'],
    [['--domain', 'exa mple.com', '--selector', 's1'], '--domain: "exa mple.com" is not a domain name'],
    [['--domain', 'example.com', '--selector', '../etc'], '--selector: "../etc" is not a selector'],
    [['--domain', 'example.com', '--selector', 's1', '--type', 'dsa'], '--type must be rsa or ed25519, not "dsa"'],
    [['--domain', 'example.com', '--selector', 's1', '--bits', '512'], '--bits must be a whole number from 1024 to 4096, not "512"'],
    [['--domain', 'example.com', '--selector', 's1', '--bits', '2k'], '--bits must be a whole number from 1024 to 4096, not "2k"'],
    [['--domain', 'example.com', '--selector', 's1', '--type', 'ed25519', '--bits', '2048'], '--bits applies to RSA keys only'],
    [['--domain', 'example.com', '--selector', 's1', '--colour', 'blue'], 'unknown option --colour (run dkimgate keygen --help)'],
    [['--domain', 'example.com', '--selector', 's1', 'extra'], 'unexpected argument extra (run dkimgate keygen --help)'],
    [['--domain'], 'option --domain needs a value (run dkimgate keygen --help)'],
  ])('refuses %j with a usage error (exit 2)', async (args, message) => {
    const failure = await keygen(['--keys-dir', freshKeysDir(), ...args]).then(
      () => null,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(UsageError);
    expect((failure as UsageError).exitCode).toBe(2);
    expect((failure as UsageError).message).toContain(message);
  });

  it('prints its usage for --help and exits 0', async () => {
    const result = await keygen(['--help']);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^Usage: dkimgate keygen --domain D --selector S/);
  });

  it.runIf(existsSync(DKIMPY))('makes keys and records that dkimpy signs and verifies with', async () => {
    for (const type of ['rsa', 'ed25519'] as const) {
      const keysDir = freshKeysDir();
      const result = await keygen(['--domain', 'example.com', '--selector', 'interop', '--type', type, '--keys-dir', keysDir]);
      const record = recordOf(result.stdout).strings.join('');
      const pemPath = join(keysDir, 'example.com', 'interop.pem');
      const script = `
import sys, base64, dkim
pem = open(sys.argv[1], 'rb').read()
record = sys.argv[2].encode()
if sys.argv[3] == 'ed25519':
    der = base64.b64decode(b''.join(l for l in pem.splitlines() if not l.startswith(b'-----')))
    key, algorithm = base64.b64encode(der[-32:]), b'ed25519-sha256'
else:
    key, algorithm = pem, b'rsa-sha256'
msg = b'From: a@example.com\\r\\nTo: b@example.net\\r\\nSubject: hi\\r\\n\\r\\nbody\\r\\n'
sig = dkim.sign(msg, b'interop', b'example.com', key, signature_algorithm=algorithm, include_headers=[b'from', b'to', b'subject'])
dns = lambda name, timeout=5: record if name == b'interop._domainkey.example.com.' else None
print('pass' if dkim.verify(sig + msg, dnsfunc=dns) else 'fail')
`;
      const run = spawnSync(DKIMPY, ['-c', script, pemPath, record, type], { encoding: 'utf8', timeout: 20_000 });
      expect(run.stderr).toBe('');
      expect(run.stdout.trim()).toBe('pass');
    }
  });

  it.runIf(existsSync(CLI))('runs as "dkimgate keygen" from the built CLI', async () => {
    const keysDir = freshKeysDir();
    const run = spawnSync(process.execPath, [CLI, 'keygen', '--domain', 'example.org', '--selector', 's9', '--type', 'ed25519', '--keys-dir', keysDir], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^s9\._domainkey\.example\.org\. IN TXT "v=DKIM1; k=ed25519; p=/);
    const again = spawnSync(process.execPath, [CLI, 'keygen', '--domain', 'example.org', '--selector', 's9', '--keys-dir', keysDir], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(again.status).toBe(1);
    expect(again.stderr).toContain('already exists');
    expect(again.stderr.trim().split('\n')).toHaveLength(1);
  });
});
