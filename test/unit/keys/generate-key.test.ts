import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseZoneFile } from '../../../src/dns/zone-file.js';
import {
  formatKeyRecord,
  formatPublicKeyBase64,
  formatTxtRecordZone,
  generateKey,
  splitCharacterStrings,
} from '../../../src/keys/generate-key.js';

describe('generateKey', () => {
  it.each([1024, 2048, 3072])('generates an RSA %i-bit PKCS#8 key and its record', async (bits) => {
    const key = await generateKey({ type: 'rsa', bits });
    expect(key.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const privateKey = createPrivateKey(key.privateKeyPem);
    expect(privateKey.asymmetricKeyDetails?.modulusLength).toBe(bits);
    expect(key.keyBits).toBe(bits);
    const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).toString('base64');
    expect(key.txtRecord).toBe(`v=DKIM1; k=rsa; p=${spki}`);
  });

  it('generates 2048-bit RSA keys by default', async () => {
    expect((await generateKey({ type: 'rsa' })).keyBits).toBe(2048);
  });

  it('generates an Ed25519 key whose p= is the raw 32-byte public key (RFC 8463)', async () => {
    const key = await generateKey({ type: 'ed25519' });
    const publicKey = createPublicKey(createPrivateKey(key.privateKeyPem));
    const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');
    const p = key.txtRecord.replace(/^v=DKIM1; k=ed25519; p=/, '');
    expect(p).toHaveLength(44);
    expect(Buffer.from(p, 'base64')).toEqual(raw);
    expect(raw).toHaveLength(32);
  });

  it.each([512, 1023, 4097, 2048.5])('refuses RSA keys of %s bits', async (bits) => {
    await expect(generateKey({ type: 'rsa', bits })).rejects.toThrow(RangeError);
  });
});

describe('formatPublicKeyBase64', () => {
  it('gives the same value for a private key and its public key', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    expect(formatPublicKeyBase64(privateKey)).toBe(formatPublicKeyBase64(publicKey));
    expect(formatKeyRecord(publicKey)).toMatch(/^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/);
  });

  it('refuses key types DKIM cannot publish', () => {
    expect(() => formatPublicKeyBase64(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey)).toThrow(TypeError);
  });
});

describe('formatTxtRecordZone', () => {
  it('writes a record that fits one string on one line', () => {
    expect(formatTxtRecordZone('ed2026', 'example.com', 'v=DKIM1; k=ed25519; p=abc')).toBe(
      'ed2026._domainkey.example.com. IN TXT "v=DKIM1; k=ed25519; p=abc"',
    );
  });

  it('splits a long record into strings of at most 255 bytes inside parentheses', () => {
    const value = `v=DKIM1; k=rsa; p=${'A'.repeat(392)}`;
    const zone = formatTxtRecordZone('s1', 'example.com.', value);
    expect(zone).toBe(`s1._domainkey.example.com. IN TXT ( "${value.slice(0, 255)}"\n\t"${value.slice(255)}" )`);
  });

  it('escapes quotes and backslashes in the strings', () => {
    expect(formatTxtRecordZone('s', 'example.com', 'n="a\\b"')).toBe('s._domainkey.example.com. IN TXT "n=\\"a\\\\b\\""');
  });

  it('round-trips through the zone-file parser for any record text', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1200 }), (value) => {
        const parsed = parseZoneFile(formatTxtRecordZone('s1', 'example.com', value) + '\n');
        expect(parsed.kind).toBe('ok');
        if (parsed.kind !== 'ok') return;
        expect(parsed.records).toHaveLength(1);
        expect(parsed.records[0]?.name).toBe('s1._domainkey.example.com');
        expect(parsed.records[0]?.strings.join('')).toBe(value);
        for (const piece of parsed.records[0]?.strings ?? []) expect(Buffer.byteLength(piece, 'latin1')).toBeLessThanOrEqual(255);
      }),
      { numRuns: 200 },
    );
  });
});

describe('splitCharacterStrings', () => {
  it('never cuts a multi-byte character and never exceeds 255 bytes', () => {
    const value = 'é'.repeat(200);
    const pieces = splitCharacterStrings(value);
    expect(pieces.join('')).toBe(value);
    expect(pieces.map((piece) => Buffer.byteLength(piece))).toEqual([254, 146]);
  });
});
