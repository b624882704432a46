// Generates DKIM key pairs (RSA or Ed25519) and formats their DNS key records (RFC 6376 §3.6.1, RFC 8463).
// Uses node:crypto only; writes nothing (the keygen command does the file I/O).

import { createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';

export type GeneratedKeyType = 'rsa' | 'ed25519';

export const DEFAULT_RSA_BITS = 2048;
export const MIN_GENERATED_RSA_BITS = 1024;
export const MAX_GENERATED_RSA_BITS = 4096;

export interface GeneratedKey {
  keyType: GeneratedKeyType;
  /** RSA modulus bits; 256 for Ed25519. */
  keyBits: number;
  /** PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"). */
  privateKeyPem: string;
  /** The key record value, e.g. "v=DKIM1; k=rsa; p=MIIB…". */
  txtRecord: string;
}

const generateKeyPairAsync = promisify(generateKeyPair);

/** Generates a key pair: RSA of `bits` (1024–4096, default 2048) or Ed25519. Throws RangeError on bad bits. */
export async function generateKey(options: { type: GeneratedKeyType; bits?: number }): Promise<GeneratedKey> {
  if (options.type === 'ed25519') {
    const { privateKey } = await generateKeyPairAsync('ed25519');
    return {
      keyType: 'ed25519',
      keyBits: 256,
      privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
      txtRecord: formatKeyRecord(privateKey),
    };
  }
  const bits = options.bits ?? DEFAULT_RSA_BITS;
  if (!Number.isInteger(bits) || bits < MIN_GENERATED_RSA_BITS || bits > MAX_GENERATED_RSA_BITS) {
    throw new RangeError(`RSA key size must be a whole number of bits from ${MIN_GENERATED_RSA_BITS} to ${MAX_GENERATED_RSA_BITS}`);
  }
  const { privateKey } = await generateKeyPairAsync('rsa', { modulusLength: bits, publicExponent: 0x10001 });
  return {
    keyType: 'rsa',
    keyBits: bits,
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    txtRecord: formatKeyRecord(privateKey),
  };
}

/**
 * The p= value for a key (public or private): RSA as base64 of the DER SubjectPublicKeyInfo
 * (RFC 6376 §3.6.1), Ed25519 as base64 of the raw 32-byte public key (RFC 8463 §4.2).
 */
export function formatPublicKeyBase64(key: KeyObject): string {
  const publicKey = key.type === 'public' ? key : createPublicKey(key);
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  if (publicKey.asymmetricKeyType === 'ed25519') return spki.subarray(spki.length - 32).toString('base64');
  if (publicKey.asymmetricKeyType === 'rsa') return spki.toString('base64');
  throw new TypeError(`a ${publicKey.asymmetricKeyType ?? 'unknown'} key cannot be published for DKIM`);
}

/** The DKIM key record value for a key: "v=DKIM1; k=rsa|ed25519; p=…". */
export function formatKeyRecord(key: KeyObject): string {
  const keyType = key.asymmetricKeyType === 'ed25519' ? 'ed25519' : 'rsa';
  return `v=DKIM1; k=${keyType}; p=${formatPublicKeyBase64(key)}`;
}

/** RFC 1035 §3.3: a character-string holds at most 255 bytes. */
export const MAX_CHARACTER_STRING_BYTES = 255;

/**
 * The record in DNS master-file form, ready to paste into a zone: one line when the value fits
 * one character-string, else `( "…" "…" )` over several lines, each string at most 255 bytes.
 */
export function formatTxtRecordZone(selector: string, domain: string, value: string): string {
  const owner = `${selector}._domainkey.${domain.replace(/\.$/, '')}.`;
  const strings = splitCharacterStrings(value).map(quoteCharacterString);
  if (strings.length === 1) return `${owner} IN TXT ${strings[0] ?? '""'}`;
  return `${owner} IN TXT ( ${strings.join('\n\t')} )`;
}

/** Splits text into pieces of at most 255 bytes (UTF-8), never inside a character. */
export function splitCharacterStrings(value: string): string[] {
  const pieces: string[] = [];
  let current = '';
  let currentBytes = 0;
  for (const char of value) {
    const bytes = Buffer.byteLength(char);
    if (currentBytes + bytes > MAX_CHARACTER_STRING_BYTES) {
      pieces.push(current);
      current = '';
      currentBytes = 0;
    }
    current += char;
    currentBytes += bytes;
  }
  pieces.push(current);
  return pieces;
}

function quoteCharacterString(piece: string): string {
  return `"${piece.replace(/["\\]/g, (char) => `\\${char}`)}"`;
}
