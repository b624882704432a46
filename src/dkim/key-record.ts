// DKIM key records (RFC 6376 §3.6.1, RFC 8463 §4): TXT text -> public key or reason.
// Input: untrusted DNS text; bounded in size and modulus bits; never throws.

import { createPublicKey, type KeyObject } from 'node:crypto';
import { parseTagList, preview, removeFws } from './tag-list.js';

export interface PublicKeyRecord {
  readonly keyType: 'rsa' | 'ed25519';
  readonly publicKey: KeyObject;
  /** RSA modulus bits; 256 for Ed25519. */
  readonly keyBits: number;
  /** h= acceptable hash algorithms, lower-case; null when absent (all allowed). */
  readonly hashes: readonly string[] | null;
  /** s= service types; null when absent (all). */
  readonly services: readonly string[] | null;
  readonly flags: readonly string[];
  /** t=y: the domain is testing DKIM. */
  readonly testing: boolean;
  /** t=s: i= must not be a subdomain of d=. */
  readonly strict: boolean;
  /**
   * v=DKIM1 stands after another tag. RFC 6376 §3.6.1 asks publishers to put it first; verifiers (OpenDKIM,
   * dkimpy, Mail::DKIM, and so dkimgate) use such a record all the same, keycheck and doctor point it out.
   */
  readonly versionNotFirst: boolean;
  readonly publicKeyBase64: string;
}

export type KeyRecordReason = 'key_syntax' | 'key_record_too_large' | 'key_revoked' | 'key_type_mismatch';
export type KeyRecordParse =
  | { kind: 'ok'; key: PublicKeyRecord }
  | { kind: 'error'; reason: KeyRecordReason; detail: string };

/** Records longer than this are refused before parsing (a 16384-bit RSA key fits in under 3 KB). */
export const MAX_KEY_RECORD_BYTES = 8192;
/**
 * Moduli larger than this are not used (dkim=policy, key_too_large): verification time grows with the
 * square of the size, and RFC 8301 §3.2 asks verifiers for 1024 to 4096 bits only.
 */
export const MAX_RSA_KEY_BITS = 8192;
/**
 * Public exponents longer than this are refused as malformed: a verification costs one multiplication
 * per exponent bit (65537 has 17), and OpenSSL itself refuses longer ones above 3072-bit moduli.
 */
export const MAX_RSA_EXPONENT_BITS = 64;

// RFC 8410 SubjectPublicKeyInfo prefix for a raw 32-byte Ed25519 key.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function fail(reason: KeyRecordReason, detail: string): KeyRecordParse {
  return { kind: 'error', reason, detail };
}

function colonList(value: string): string[] {
  return removeFws(value)
    .split(':')
    .filter((s) => s !== '')
    .map((s) => s.toLowerCase());
}

/** Parses one key record. Unknown tags are ignored (RFC 6376 §3.6.1). */
export function parseKeyRecord(txt: string): KeyRecordParse {
  if (txt.length > MAX_KEY_RECORD_BYTES) return fail('key_record_too_large', `key record of ${txt.length} bytes is too large (at most ${MAX_KEY_RECORD_BYTES})`);
  const parsed = parseTagList(txt);
  if (parsed.kind === 'error') return fail('key_syntax', parsed.detail);
  const tags = parsed.tags;
  const v = tags.get('v');
  if (v !== undefined && v !== 'DKIM1') return fail('key_syntax', `unsupported key record version v=${preview(v)}`);
  const p = tags.get('p');
  if (p === undefined) return fail('key_syntax', 'key record has no p= tag');
  const keyData = removeFws(p);
  if (keyData === '') return fail('key_revoked', 'key revoked (empty p=)');
  if (!BASE64.test(keyData) || keyData.length % 4 === 1) return fail('key_syntax', 'p= is not valid base64');
  const k = (tags.get('k') ?? 'rsa').toLowerCase();
  if (k !== 'rsa' && k !== 'ed25519') return fail('key_type_mismatch', `unknown key type k=${preview(k)}`);
  const der = Buffer.from(keyData, 'base64');
  const flags = colonList(tags.get('t') ?? '');
  const hashesTag = tags.get('h');
  const servicesTag = tags.get('s');
  let publicKey: KeyObject;
  let keyBits: number;
  if (k === 'ed25519') {
    if (der.length === ED25519_SPKI_PREFIX.length + 32 && der.subarray(0, ED25519_SPKI_PREFIX.length).equals(ED25519_SPKI_PREFIX)) {
      return fail('key_syntax', 'ed25519 p= holds a SubjectPublicKeyInfo (44 bytes); RFC 8463 §4.2 publishes the raw 32-byte key');
    }
    if (der.length !== 32) return fail('key_syntax', `ed25519 key is ${der.length} bytes, expected 32`);
    try {
      publicKey = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, der]), format: 'der', type: 'spki' });
    } catch {
      return fail('key_syntax', 'ed25519 key does not parse');
    }
    keyBits = 256;
  } else {
    const key = parseRsaPublicKey(der);
    if (!key) {
      const ed25519 = der.length === 32 || der.subarray(0, ED25519_SPKI_PREFIX.length).equals(ED25519_SPKI_PREFIX);
      return fail('key_syntax', ed25519 ? 'p= looks like an Ed25519 key but k= is rsa (k= missing means rsa): add k=ed25519' : 'p= is not an RSA public key');
    }
    publicKey = key;
    keyBits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    const exponent = key.asymmetricKeyDetails?.publicExponent ?? 0n;
    const exponentBits = exponent.toString(2).length;
    if (exponentBits > MAX_RSA_EXPONENT_BITS) {
      return fail('key_syntax', `RSA public exponent of ${exponentBits} bits exceeds ${MAX_RSA_EXPONENT_BITS} bits`);
    }
    if (exponent < 3n || exponent % 2n === 0n) return fail('key_syntax', `RSA public exponent ${exponent} is not an odd number of at least 3`);
  }
  return {
    kind: 'ok',
    key: {
      keyType: k,
      publicKey,
      keyBits,
      hashes: hashesTag === undefined ? null : colonList(hashesTag),
      services: servicesTag === undefined ? null : colonList(servicesTag),
      flags,
      testing: flags.includes('y'),
      strict: flags.includes('s'),
      versionNotFirst: v !== undefined && tags.keys().next().value !== 'v',
      publicKeyBase64: keyData,
    },
  };
}

/** RFC 6376 says SubjectPublicKeyInfo; some publishers put a bare RSAPublicKey (PKCS#1). Accept both. */
function parseRsaPublicKey(der: Buffer): KeyObject | null {
  for (const type of ['spki', 'pkcs1'] as const) {
    try {
      const key = createPublicKey({ key: der, format: 'der', type });
      if (key.asymmetricKeyType === 'rsa') return key;
    } catch {
      // try the next encoding
    }
  }
  return null;
}

const memo = new Map<string, KeyRecordParse>();
const MEMO_SIZE = 1024;

/** parseKeyRecord with a bounded memo keyed by the record text: the same published key is parsed once. */
export function parseKeyRecordCached(txt: string): KeyRecordParse {
  const hit = memo.get(txt);
  if (hit) return hit;
  const result = parseKeyRecord(txt);
  if (memo.size >= MEMO_SIZE) memo.delete(memo.keys().next().value as string);
  memo.set(txt, result);
  return result;
}
