import { createPublicKey, randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_KEY_RECORD_BYTES, MAX_RSA_EXPONENT_BITS, MAX_RSA_KEY_BITS, parseKeyRecord, parseKeyRecordCached, type PublicKeyRecord } from '../../../src/dkim/key-record.js';
import { ed25519Key, rsaKey, type TestKey } from '../../helpers/dkim-test-kit.js';

let rsa: TestKey;
let ed: TestKey;
/** The same RSA key as a bare PKCS#1 RSAPublicKey. */
let rsaPkcs1: string;
/** An Ed25519 key as a whole SubjectPublicKeyInfo (RFC 8463 wants the raw 32 bytes). */
let edSpki: string;

beforeAll(() => {
  rsa = rsaKey(1024);
  ed = ed25519Key();
  rsaPkcs1 = (rsa.publicKey.export({ type: 'pkcs1', format: 'der' }) as Buffer).toString('base64');
  edSpki = (ed.publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64');
});

/**
 * The p= of an RSA public key with a modulus of exactly `bits` bits. Only the key record parser sees it,
 * so a random odd modulus does (generating a real 16384-bit key would take minutes).
 */
function rsaModulusOfBits(bits: number, exponent: Buffer = Buffer.from([1, 0, 1])): string {
  const n = randomBytes(bits / 8);
  n[0]! |= 0x80;
  n[n.length - 1]! |= 1;
  const key = createPublicKey({ key: { kty: 'RSA', n: n.toString('base64url'), e: exponent.toString('base64url') }, format: 'jwk' });
  return (key.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64');
}

function ok(txt: string): PublicKeyRecord {
  const parsed = parseKeyRecord(txt);
  if (parsed.kind !== 'ok') throw new Error(`expected ok, got ${parsed.reason}: ${parsed.detail}`);
  return parsed.key;
}

/** Records refer to the test keys by placeholder: RSA, PKCS1, ED, EDSPKI. */
function record(template: string): string {
  return template.replace(/\{(\w+)\}/g, (_m, k: string) => ({ RSA: rsa.p, PKCS1: rsaPkcs1, ED: ed.p, EDSPKI: edSpki })[k] ?? `{${k}}`);
}

describe('key records (RFC 6376 §3.6.1, RFC 8463 §4)', () => {
  it.each([
    ['an RSA key with v= and k=', 'v=DKIM1; k=rsa; p={RSA}', { keyType: 'rsa', keyBits: 1024 }],
    ['an RSA key without v= (optional)', 'p={RSA}', { keyType: 'rsa', keyBits: 1024, versionNotFirst: false }],
    ['v=DKIM1 after another tag (as OpenDKIM, dkimpy and Mail::DKIM read it)', 'k=rsa; v=DKIM1; p={RSA}', { keyType: 'rsa', versionNotFirst: true }],
    ['v=DKIM1 first', 'v=DKIM1; k=rsa; p={RSA}', { versionNotFirst: false }],
    ['an RSA key without k= (rsa is the default)', 'v=DKIM1; p={RSA}', { keyType: 'rsa' }],
    ['k= in upper case', 'v=DKIM1; k=RSA; p={RSA}', { keyType: 'rsa' }],
    ['a PKCS#1 RSAPublicKey instead of SubjectPublicKeyInfo', 'v=DKIM1; k=rsa; p={PKCS1}', { keyType: 'rsa', keyBits: 1024 }],
    ['an Ed25519 key', 'v=DKIM1; k=ed25519; p={ED}', { keyType: 'ed25519', keyBits: 256 }],
    ['no h= (every hash allowed)', 'p={RSA}', { hashes: null }],
    ['h=sha256', 'h=sha256; p={RSA}', { hashes: ['sha256'] }],
    ['h= with several hashes, lower-cased', 'h=SHA1 : sha256; p={RSA}', { hashes: ['sha1', 'sha256'] }],
    ['h= with an unknown hash kept', 'h=sha512:sha256; p={RSA}', { hashes: ['sha512', 'sha256'] }],
    ['no s= (every service)', 'p={RSA}', { services: null }],
    ['s=email', 's=email; p={RSA}', { services: ['email'] }],
    ['s=*', 's=*; p={RSA}', { services: ['*'] }],
    ['s= with several services', 's=other:Email; p={RSA}', { services: ['other', 'email'] }],
    ['no t=', 'p={RSA}', { flags: [], testing: false, strict: false }],
    ['t=y', 't=y; p={RSA}', { flags: ['y'], testing: true, strict: false }],
    ['t=s', 't=s; p={RSA}', { flags: ['s'], testing: false, strict: true }],
    ['t=y:s with FWS', 't= y : s ; p={RSA}', { flags: ['y', 's'], testing: true, strict: true }],
    ['t= with an unknown flag', 't=q; p={RSA}', { flags: ['q'], testing: false, strict: false }],
    ['n= notes', 'v=DKIM1; n=hello there, world; p={RSA}', { keyType: 'rsa' }],
    ['unknown tags', 'v=DKIM1; foo=bar; p={RSA}; zz=1', { keyType: 'rsa' }],
    ['FWS around tags and "="', ' v = DKIM1 ;\tk = rsa ; p = {RSA} ; ', { keyType: 'rsa' }],
    ['a trailing ";" and empty segments', 'v=DKIM1;; p={RSA};;', { keyType: 'rsa' }],
  ])('accepts %s', (_name, template, expected) => {
    expect(ok(record(template))).toMatchObject(expected);
  });

  it('accepts FWS inside p= and reports the key without it', () => {
    const folded = `${rsa.p.slice(0, 40)} \r\n\t${rsa.p.slice(40, 100)}\r\n ${rsa.p.slice(100)}`;
    const key = ok(`v=DKIM1; p=${folded}`);
    expect(key.publicKeyBase64).toBe(rsa.p);
    expect(key.publicKey.equals(rsa.publicKey)).toBe(true);
  });

  it('gives the same public key for SubjectPublicKeyInfo and PKCS#1', () => {
    expect(ok(record('p={PKCS1}')).publicKey.equals(ok(record('p={RSA}')).publicKey)).toBe(true);
  });

  it('gives the published Ed25519 key', () => {
    expect(ok(record('k=ed25519; p={ED}')).publicKey.equals(ed.publicKey)).toBe(true);
  });

  it(`accepts an RSA key of ${MAX_RSA_KEY_BITS} bits`, () => {
    expect(ok(`v=DKIM1; p=${rsaModulusOfBits(MAX_RSA_KEY_BITS)}`).keyBits).toBe(MAX_RSA_KEY_BITS);
  });
});

describe('key record reasons', () => {
  it.each([
    ['an empty record', '', 'key_syntax'],
    ['a record without p=', 'v=DKIM1; k=rsa', 'key_syntax'],
    ['P= in upper case (tag names are case-sensitive)', 'v=DKIM1; P={RSA}', 'key_syntax'],
    ['v=DKIM2', 'v=DKIM2; p={RSA}', 'key_syntax'],
    ['v=DKIM2 after another tag', 'k=rsa; v=DKIM2; p={RSA}', 'key_syntax'],
    ['v=dkim1 in lower case', 'v=dkim1; p={RSA}', 'key_syntax'],
    ['a duplicated tag', 'v=DKIM1; p={RSA}; p={RSA}', 'key_syntax'],
    ['a segment without "="', 'v=DKIM1; junk; p={RSA}', 'key_syntax'],
    ['a bad tag name', 'v=DKIM1; 1p=x; p={RSA}', 'key_syntax'],
    ['an empty p=', 'v=DKIM1; k=rsa; p=', 'key_revoked'],
    ['a p= of FWS only', 'v=DKIM1; p= \r\n\t ', 'key_revoked'],
    ['an empty p= with an unknown k=', 'v=DKIM1; k=dsa; p=', 'key_revoked'],
    ['p= that is not base64', 'v=DKIM1; p=not*base64', 'key_syntax'],
    ['p= with padding in the middle', 'v=DKIM1; p=AA==AAAA', 'key_syntax'],
    ['p= of a length base64 cannot have', 'v=DKIM1; p=AAAAA', 'key_syntax'],
    ['p= that is base64 but not a key', 'v=DKIM1; p=AAAAAAAA', 'key_syntax'],
    ['an unknown k=', 'v=DKIM1; k=dsa; p={RSA}', 'key_type_mismatch'],
    ['k=ed25519 with an RSA key', 'v=DKIM1; k=ed25519; p={RSA}', 'key_syntax'],
    ['k=ed25519 with a whole SubjectPublicKeyInfo', 'v=DKIM1; k=ed25519; p={EDSPKI}', 'key_syntax'],
    ['k=ed25519 with 31 bytes', `v=DKIM1; k=ed25519; p=${Buffer.alloc(31, 1).toString('base64')}`, 'key_syntax'],
    ['k=rsa with a raw Ed25519 key', 'v=DKIM1; k=rsa; p={ED}', 'key_syntax'],
    ['k=rsa with an Ed25519 SubjectPublicKeyInfo', 'v=DKIM1; k=rsa; p={EDSPKI}', 'key_syntax'],
  ])('reports %s as %s', (_name, template, reason) => {
    expect(parseKeyRecord(record(template))).toMatchObject({ kind: 'error', reason });
  });

  it.each([
    ['an Ed25519 record whose p= is the whole SubjectPublicKeyInfo', 'v=DKIM1; k=ed25519; p={EDSPKI}', /SubjectPublicKeyInfo \(44 bytes\).*raw 32-byte key/],
    ['an Ed25519 key published without k=ed25519', 'v=DKIM1; p={ED}', /Ed25519 key but k= is rsa.*add k=ed25519/],
    ['an Ed25519 SubjectPublicKeyInfo published with k=rsa', 'v=DKIM1; k=rsa; p={EDSPKI}', /add k=ed25519/],
    ['an RSA record whose p= is no key at all', 'v=DKIM1; p=AAAAAAAA', /^p= is not an RSA public key$/],
  ])('names the publishing mistake in %s', (_name, template, detail) => {
    expect(parseKeyRecord(record(template))).toMatchObject({ kind: 'error', reason: 'key_syntax', detail: expect.stringMatching(detail) });
  });

  it(`reads a record of exactly ${MAX_KEY_RECORD_BYTES} bytes and refuses one byte more`, () => {
    const base = `v=DKIM1; p=${rsa.p}; n=`;
    const exact = base + 'x'.repeat(MAX_KEY_RECORD_BYTES - base.length);
    expect(exact).toHaveLength(MAX_KEY_RECORD_BYTES);
    expect(parseKeyRecord(exact).kind).toBe('ok');
    expect(parseKeyRecord(`${exact}x`)).toMatchObject({ kind: 'error', reason: 'key_record_too_large', detail: expect.stringMatching(/too large/) });
  });

  it('refuses a 100 KB record', () => {
    const huge = `v=DKIM1; p=${rsa.p}; n=${'x'.repeat(100 * 1024)}`;
    expect(parseKeyRecord(huge)).toMatchObject({ kind: 'error', reason: 'key_record_too_large', detail: expect.stringMatching(/too large/) });
  });

  // The size itself is judged by the verifier (step 9, key_too_large): the record is well formed.
  it('reads a 16384-bit RSA key and reports its size', () => {
    const p = rsaModulusOfBits(16384);
    expect(p.length).toBeLessThan(MAX_KEY_RECORD_BYTES);
    expect(ok(`v=DKIM1; k=rsa; p=${p}`).keyBits).toBe(16384);
  });

  it(`refuses an RSA public exponent longer than ${MAX_RSA_EXPONENT_BITS} bits`, () => {
    const exponent = (bits: number) => {
      const e = randomBytes(bits / 8);
      e[0]! |= 0x80;
      e[e.length - 1]! |= 1;
      return e;
    };
    expect(ok(`v=DKIM1; p=${rsaModulusOfBits(2048, exponent(64))}`).keyBits).toBe(2048);
    for (const bits of [72, 2048]) {
      expect(parseKeyRecord(`v=DKIM1; p=${rsaModulusOfBits(2048, exponent(bits))}`)).toMatchObject({
        kind: 'error',
        reason: 'key_syntax',
        detail: expect.stringMatching(new RegExp(`exponent of ${bits} bits`)),
      });
    }
  });

  it('refuses an even or trivial RSA public exponent', () => {
    for (const e of [[1], [2], [1, 0, 0]]) {
      expect(parseKeyRecord(`v=DKIM1; p=${rsaModulusOfBits(2048, Buffer.from(e))}`)).toMatchObject({ kind: 'error', reason: 'key_syntax', detail: expect.stringMatching(/exponent/) });
    }
  });

  it('makes untrusted text printable in the detail', () => {
    const parsed = parseKeyRecord('v=DKIM1\x00\x1b[2J\xff; p=x');
    expect(parsed.kind === 'error' && parsed.detail).toMatch(/^[\x20-\x7e…]*$/);
  });
});

describe('the key record memo', () => {
  it('returns the same parse for the same text and a fresh parse for other text', () => {
    const txt = record('v=DKIM1; p={RSA}');
    const first = parseKeyRecordCached(txt);
    expect(parseKeyRecordCached(txt)).toBe(first);
    expect(first).toEqual(parseKeyRecord(txt));
    expect(parseKeyRecordCached(`${txt};`)).not.toBe(first);
  });
});
