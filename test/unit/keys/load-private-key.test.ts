import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeForUser } from '../../helpers/node-for-user.js';
import { KeyLoadError, loadPrivateKey, type KeyLoadErrorCode } from '../../../src/keys/load-private-key.js';

let dir = '';
let counter = 0;
const rsa2048 = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const ed25519 = generateKeyPairSync('ed25519').privateKey;
const RSA_PKCS8 = rsa2048.export({ format: 'pem', type: 'pkcs8' }).toString();
const RSA_PKCS1 = rsa2048.export({ format: 'pem', type: 'pkcs1' }).toString();
const ED25519_PKCS8 = ed25519.export({ format: 'pem', type: 'pkcs8' }).toString();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dkimgate-keys-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function keyFile(content: string, mode = 0o600): Promise<string> {
  const path = join(dir, `key-${++counter}.pem`);
  await writeFile(path, content, { mode });
  await chmod(path, mode);
  return path;
}

async function failureOf(path: string): Promise<KeyLoadError> {
  const outcome = await loadPrivateKey(path).then(
    () => null,
    (error: unknown) => error,
  );
  if (!(outcome instanceof KeyLoadError)) throw new Error(`expected a KeyLoadError, got ${String(outcome)}`);
  return outcome;
}

describe('loadPrivateKey', () => {
  it('loads an RSA PKCS#8 key that signs and verifies', async () => {
    const loaded = await loadPrivateKey(await keyFile(RSA_PKCS8));
    expect(loaded.keyType).toBe('rsa');
    expect(loaded.keyBits).toBe(2048);
    expect(loaded.warnings).toEqual([]);
    const data = Buffer.from('payload');
    expect(verify('sha256', data, rsa2048, sign('sha256', data, loaded.keyObject))).toBe(true);
  });

  it('loads a traditional "BEGIN RSA PRIVATE KEY" file', async () => {
    const loaded = await loadPrivateKey(await keyFile(RSA_PKCS1));
    expect([loaded.keyType, loaded.keyBits]).toEqual(['rsa', 2048]);
  });

  it('loads an Ed25519 key as 256 bits', async () => {
    const loaded = await loadPrivateKey(await keyFile(ED25519_PKCS8));
    expect([loaded.keyType, loaded.keyBits, loaded.warnings]).toEqual(['ed25519', 256, []]);
    const data = Buffer.from('payload');
    expect(verify(null, data, ed25519, sign(null, data, loaded.keyObject))).toBe(true);
  });

  it.each([
    [0o620, 'its group', '0620'],
    [0o660, 'its group', '0660'],
    [0o602, 'others', '0602'],
    [0o666, 'others', '0666'],
  ])('refuses a key file with mode %o (writable by %s)', async (mode, who, modeText) => {
    const path = await keyFile(RSA_PKCS8, mode);
    const error = await failureOf(path);
    expect(error.code).toBe('insecure_permissions');
    expect(error.message).toBe(
      `private key ${path} is writable by ${who} (mode ${modeText}); anyone who can replace it can sign as you: run chmod 600 ${path}`,
    );
  });

  it('warns, but loads, a key readable by others', async () => {
    const path = await keyFile(RSA_PKCS8, 0o644);
    const loaded = await loadPrivateKey(path);
    expect(loaded.warnings).toEqual([`private key ${path} is readable by others (mode 0644); run chmod 600 ${path} (or 640 with a dedicated group)`]);
  });

  it.each([0o400, 0o440, 0o640])('loads a key with mode %o without warnings', async (mode) => {
    expect((await loadPrivateKey(await keyFile(ED25519_PKCS8, mode))).warnings).toEqual([]);
  });

  it.runIf(process.getuid?.() === 0)('refuses a key owned by another user who is not root: that user can replace it', async () => {
    const path = await keyFile(ED25519_PKCS8, 0o440);
    await chown(path, 1234, 0);
    const error = await failureOf(path);
    expect(error.code).toBe('insecure_owner');
    expect(error.message).toBe(
      `private key ${path} is owned by uid 1234, neither root nor the user dkimgate runs as (uid 0): that user can read it and replace it; run chown root ${path}`,
    );
  });

  it.runIf(process.getuid?.() === 0)('says that uid 65534 may be an owner a user namespace does not map', async () => {
    const path = await keyFile(ED25519_PKCS8, 0o440);
    await chown(path, 65534, 65534);
    expect((await failureOf(path)).message).toContain('(65534 is also how a user namespace shows an owner it does not map: chown it on the host)');
  });

  it.runIf(process.getuid?.() === 0)("accepts a root-owned key with the group of dkimgate's user (0640 root:dkimgate)", async () => {
    const path = await keyFile(ED25519_PKCS8, 0o640);
    await chown(path, 0, 65534);
    expect((await loadPrivateKey(path)).warnings).toEqual([]);
  });

  it('says who cannot read an unreadable key', async () => {
    const path = await keyFile(ED25519_PKCS8, 0o000);
    if (process.getuid?.() !== 0) {
      const error = await failureOf(path);
      expect(error.code).toBe('unreadable');
      expect(error.message).toContain(`private key ${path} is not readable by uid`);
      return;
    }
    // Root reads every file, so the loader runs as nobody (uid 65534), as a daemon's own user would.
    await chmod(dir, 0o755);
    const loader = new URL('../../../dist/keys/load-private-key.js', import.meta.url).href;
    const script = `import(${JSON.stringify(loader)}).then((m) => m.loadPrivateKey(${JSON.stringify(path)})).then(() => console.log('loaded'), (e) => console.log(e.code + ': ' + e.message))`;
    const run = spawnSync(nodeForUser(65534, 65534), ['-e', script], { uid: 65534, gid: 65534, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.stdout.trim()).toBe(`unreadable: private key ${path} is not readable by uid 65534; make it readable by the user dkimgate runs as (e.g. chown it to that user and chmod 600)`);
  });

  it('warns about an RSA key under 2048 bits', async () => {
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const loaded = await loadPrivateKey(await keyFile(small));
    expect(loaded.keyBits).toBe(1024);
    expect(loaded.warnings).toHaveLength(1);
    expect(loaded.warnings[0]).toContain('RFC 8301 recommends at least 2048');
  });

  it('names the missing file and how to create it', async () => {
    const path = join(dir, 'nope', 's1.pem');
    const error = await failureOf(path);
    expect(error.code).toBe('missing');
    expect(error.message).toBe(`private key ${path} does not exist; create it with "dkimgate keygen --domain D --selector S" or fix the sign.key path`);
  });

  it('refuses a named pipe without waiting for a writer', async () => {
    const path = join(dir, 'a-fifo.pem');
    const made = spawnSync('mkfifo', ['-m', '600', path]);
    expect(made.status).toBe(0);
    expect((await failureOf(path)).code).toBe('not_a_file');
  });

  it('refuses a directory', async () => {
    const path = join(dir, 'a-directory.pem');
    await mkdir(path);
    expect((await failureOf(path)).code).toBe('not_a_file');
  });

  const encryptedPkcs8 = generateKeyPairSync('rsa', {
    modulusLength: 1024,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' },
  }).privateKey;
  const encryptedPkcs1 = generateKeyPairSync('rsa', {
    modulusLength: 1024,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' },
  }).privateKey;
  const rsa512 = generateKeyPairSync('rsa', { modulusLength: 512 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  const publicOnly = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'pem', type: 'spki' }).toString();
  const corrupted = RSA_PKCS8.replace(/\n[A-Za-z0-9+/]{20}/, '\nAAAAAAAAAAAAAAAAAAAA');

  it.each<[string, string, KeyLoadErrorCode, string]>([
    ['text that is not PEM', 'hello, I am not a key\n', 'not_pem', 'is not a PEM file (no "-----BEGIN" line)'],
    ['a DER key', rsa2048.export({ format: 'der', type: 'pkcs8' }).toString('latin1'), 'not_pem', 'openssl pkey -inform DER'],
    ['an encrypted PKCS#8 key', encryptedPkcs8, 'encrypted', 'is protected by a passphrase; dkimgate needs it unencrypted'],
    ['an encrypted traditional key', encryptedPkcs1, 'encrypted', 'is protected by a passphrase'],
    ['a public key', publicOnly, 'not_private', 'holds a public key, not a private key'],
    ['a corrupted key', corrupted, 'unparsable', 'cannot be parsed'],
    ['an RSA 512-bit key', rsa512, 'too_small', 'is RSA 512 bits; keys under 1024 bits are refused (RFC 8301)'],
    ['an EC key', ec, 'wrong_type', 'is of type ec; DKIM signs with RSA or Ed25519 keys only'],
  ])('refuses %s and says how to fix it', async (_what, content, code, message) => {
    const path = await keyFile(content);
    const error = await failureOf(path);
    expect(error.code).toBe(code);
    expect(error.message).toContain(path);
    expect(error.message).toContain(message);
  });
});
