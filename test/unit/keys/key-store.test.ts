import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SigningSelector } from '../../../src/config/config.js';
import { signMessage } from '../../../src/dkim/sign.js';
import { verifyMessage } from '../../../src/dkim/verify.js';
import { loadKeyStore, type KeyStore } from '../../../src/keys/key-store.js';
import { BASIC_MESSAGE, NOW, tableLookup } from '../../helpers/dkim-test-kit.js';

let dir = '';
let rsaPath = '';
let edPath = '';
let rsaRecord = '';
let edRecord = '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dkimgate-key-store-'));
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ed = generateKeyPairSync('ed25519');
  rsaPath = await keyFile('rsa.pem', rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString());
  edPath = await keyFile('ed.pem', ed.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString());
  rsaRecord = `v=DKIM1; k=rsa; p=${rsa.publicKey.export({ format: 'der', type: 'spki' }).toString('base64')}`;
  edRecord = `v=DKIM1; k=ed25519; p=${ed.publicKey.export({ format: 'der', type: 'spki' }).subarray(12).toString('base64')}`;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function keyFile(name: string, pem: string, mode = 0o600): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, pem, { mode });
  await chmod(path, mode);
  return path;
}

function selector(over: Partial<SigningSelector>): SigningSelector {
  return {
    fromDomain: 'example.com',
    signingDomain: 'example.com',
    selector: 's1',
    keyPath: rsaPath,
    algorithm: 'rsa-sha256',
    headerCanon: 'relaxed',
    bodyCanon: 'relaxed',
    headerList: 'From:From:To:Subject:Date',
    agentId: null,
    lifetimeHours: 0,
    bodyLengthLimit: false,
    copyHeaders: false,
    signCondition: 'can_relay',
    origin: 'sign.domains.example.com.selector',
    ...over,
  };
}

async function storeOf(selectors: SigningSelector[]): Promise<{ store: KeyStore; warnings: string[] }> {
  const loaded = await loadKeyStore(selectors);
  if (loaded.kind !== 'ok') throw new Error(loaded.problems.join('\n'));
  return loaded;
}

describe('loadKeyStore', () => {
  it('groups the selectors by From domain, in configuration order, with the key facts', async () => {
    const { store, warnings } = await storeOf([
      selector({ selector: 'rsa', origin: 'sign.domains.example.com.selectors[0]' }),
      selector({ fromDomain: 'mail.example.org', signingDomain: 'example.org', selector: 's9', origin: 'sign.domains.mail.example.org.selector' }),
      selector({ selector: 'ed', keyPath: edPath, algorithm: 'ed25519-sha256', origin: 'sign.domains.example.com.selectors[1]' }),
    ]);
    expect(warnings).toEqual([]);
    expect(store.size).toBe(3);
    expect([...store.byFromDomain.keys()]).toEqual(['example.com', 'mail.example.org']);
    expect(store.signersFor('example.com').map((e) => [e.selector, e.keyType, e.keyBits])).toEqual([
      ['rsa', 'rsa', 2048],
      ['ed', 'ed25519', 256],
    ]);
    expect(store.signersFor('mail.example.org')[0]).toMatchObject({ fromDomain: 'mail.example.org', signingDomain: 'example.org', signCondition: 'can_relay' });
  });

  it('builds signers whose signatures verify, RSA and Ed25519 side by side', async () => {
    const { store } = await storeOf([selector({ selector: 'rsa' }), selector({ selector: 'ed', keyPath: edPath, algorithm: 'ed25519-sha256' })]);
    const out = await signMessage(BASIC_MESSAGE, store.signersFor('example.com').map((e) => e.signer), NOW);
    if (out.kind !== 'signed') throw new Error(out.reason);
    const signed = Buffer.concat([Buffer.from(out.fields.join(''), 'latin1'), BASIC_MESSAGE]);
    const report = await verifyMessage(signed, {
      nowSec: NOW,
      lookupTxt: tableLookup({ 'rsa._domainkey.example.com': rsaRecord, 'ed._domainkey.example.com': edRecord }),
    });
    expect(report.signatures.map((s) => [s.selector, s.result])).toEqual([
      ['rsa', 'pass'],
      ['ed', 'pass'],
    ]);
  });

  it('looks a From domain up in any case and answers [] for an unknown one', async () => {
    const { store } = await storeOf([selector({})]);
    expect(store.signersFor('EXAMPLE.com')).toHaveLength(1);
    expect(store.signersFor('example.org')).toEqual([]);
  });

  it('is immutable', async () => {
    const { store } = await storeOf([selector({})]);
    expect(Object.isFrozen(store)).toBe(true);
    expect(Object.isFrozen(store.signersFor('example.com'))).toBe(true);
    expect(Object.isFrozen(store.signersFor('example.com')[0])).toBe(true);
    expect(() => (store.signersFor('example.com') as unknown as unknown[]).push(1)).toThrow(TypeError);
  });

  it('loads an empty store when no domain is configured', async () => {
    const { store } = await storeOf([]);
    expect(store.size).toBe(0);
    expect(store.signersFor('example.com')).toEqual([]);
  });

  it('loads a key shared by several selectors once, warning once', async () => {
    const shared = await keyFile('shared-readable.pem', generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), 0o644);
    const { store, warnings } = await storeOf([
      selector({ fromDomain: 'a.example.com', signingDomain: 'example.com', keyPath: shared, algorithm: 'ed25519-sha256' }),
      selector({ fromDomain: 'b.example.com', signingDomain: 'example.com', keyPath: shared, algorithm: 'ed25519-sha256' }),
    ]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(shared);
    expect(store.signersFor('a.example.com')[0]?.signer.config.privateKey).toBe(store.signersFor('b.example.com')[0]?.signer.config.privateKey);
  });

  it('fails naming the domain, selector, origin and path of a missing key', async () => {
    const missing = join(dir, 'nope', 's1.pem');
    const loaded = await loadKeyStore([selector({ fromDomain: 'example.net', signingDomain: 'example.net', selector: 'k1', keyPath: missing, origin: 'sign.domains.example.net.selector' })]);
    expect(loaded.kind).toBe('error');
    if (loaded.kind !== 'error') return;
    expect(loaded.problems).toHaveLength(1);
    expect(loaded.problems[0]).toMatch(/^sign\.domains\.example\.net\.selector \(domain example\.net, selector k1\): private key .*nope\/s1\.pem does not exist/);
  });

  it('fails when the digest does not fit the key type, saying which digest would', async () => {
    const loaded = await loadKeyStore([selector({ keyPath: edPath, algorithm: 'rsa-sha256' })]);
    expect(loaded.kind === 'error' && loaded.problems[0]).toMatch(/selector s1\): a ed25519 key cannot sign rsa-sha256; key .*ed\.pem is ed25519: set digest: ed25519-sha256/);
  });

  it('fails on a signer option the engine refuses, naming the key', async () => {
    const loaded = await loadKeyStore([selector({ agentId: 'user@elsewhere.example' })]);
    expect(loaded.kind === 'error' && loaded.problems[0]).toMatch(/identity "user@elsewhere\.example" must be an address in example\.com.*\(key .*rsa\.pem\)/);
  });

  it('reports every problem at once and loads nothing', async () => {
    const loaded = await loadKeyStore([
      selector({ keyPath: join(dir, 'missing-1.pem') }),
      selector({ selector: 'good' }),
      selector({ fromDomain: 'example.org', signingDomain: 'example.org', keyPath: join(dir, 'missing-2.pem') }),
    ]);
    expect(loaded.kind).toBe('error');
    if (loaded.kind !== 'error') return;
    expect(loaded.problems).toHaveLength(2);
    expect(loaded.problems.join('\n')).toContain('missing-1.pem');
    expect(loaded.problems.join('\n')).toContain('missing-2.pem');
  });

  it('refuses a key file writable by others', async () => {
    const path = await keyFile('writable.pem', generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), 0o666);
    const loaded = await loadKeyStore([selector({ keyPath: path, algorithm: 'ed25519-sha256' })]);
    expect(loaded.kind === 'error' && loaded.problems[0]).toMatch(/writable by others/);
  });
  describe('reloading with the running store', () => {
    const pemOf = (key: KeyObject): string => key.export({ format: 'pem', type: 'pkcs8' }).toString();
    const keyOf = (store: KeyStore, domain: string): KeyObject => store.signersFor(domain)[0]!.signer.config.privateKey;

    it('parses only the keys whose files changed: a rotated file signs with its new key at once', async () => {
      const rotating = await keyFile('rotating.pem', pemOf(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey));
      const selectors = [selector({}), selector({ fromDomain: 'example.org', signingDomain: 'example.org', keyPath: rotating })];
      const running = (await storeOf(selectors)).store;
      const fresh = generateKeyPairSync('rsa', { modulusLength: 2048 });
      await keyFile('rotating.pem', pemOf(fresh.privateKey));
      const loaded = await loadKeyStore(selectors, running);
      if (loaded.kind !== 'ok') throw new Error(loaded.problems.join('\n'));
      expect(keyOf(loaded.store, 'example.com')).toBe(keyOf(running, 'example.com'));
      expect(keyOf(loaded.store, 'example.org')).not.toBe(keyOf(running, 'example.org'));
      const freshRecord = `v=DKIM1; k=rsa; p=${fresh.publicKey.export({ format: 'der', type: 'spki' }).toString('base64')}`;
      const message = BASIC_MESSAGE.toString('latin1').replace(/^From: .*$/m, 'From: a@example.org');
      const signed = await signMessage(Buffer.from(message, 'latin1'), loaded.store.signersFor('example.org').map((e) => e.signer), NOW);
      if (signed.kind !== 'signed') throw new Error(signed.reason);
      const report = await verifyMessage(Buffer.concat([Buffer.from(signed.fields.join(''), 'latin1'), Buffer.from(message, 'latin1')]), {
        lookupTxt: tableLookup({ 's1._domainkey.example.org': freshRecord }),
        nowSec: NOW,
      });
      expect(report.signatures.map((v) => v.result)).toEqual(['pass']);
    });

    it('still checks the file of an unchanged key: one made writable by others is refused', async () => {
      const path = await keyFile('loosened.pem', pemOf(generateKeyPairSync('ed25519').privateKey));
      const selectors = [selector({ keyPath: path, algorithm: 'ed25519-sha256' })];
      const running = (await storeOf(selectors)).store;
      await chmod(path, 0o666);
      const loaded = await loadKeyStore(selectors, running);
      expect(loaded.kind === 'error' && loaded.problems[0]).toMatch(/writable by others/);
    });

    it('parses a key once when several files hold it', async () => {
      const pem = pemOf(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
      const [a, b] = [await keyFile('same-a.pem', pem), await keyFile('same-b.pem', pem)];
      const { store } = await storeOf([selector({ keyPath: a }), selector({ fromDomain: 'example.org', signingDomain: 'example.org', keyPath: b })]);
      expect(keyOf(store, 'example.org')).toBe(keyOf(store, 'example.com'));
      expect(store.parsedKeys.size).toBe(1);
    });
  });
});
