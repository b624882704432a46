// Loads one DKIM private key at start-up or reload: permission check, PEM parse into a KeyObject, size check.
// Touches: the key file (open, fstat, read). Never logs or returns key material as text.

import { createPrivateKey, type KeyObject } from 'node:crypto';
import { constants } from 'node:fs';
import { access, open } from 'node:fs/promises';

export type PrivateKeyType = 'rsa' | 'ed25519';

export interface LoadedKey {
  keyObject: KeyObject;
  keyType: PrivateKeyType;
  /** RSA modulus bits; 256 for Ed25519. */
  keyBits: number;
  /** Usable but worth fixing (e.g. readable by others); one line each, naming the file. */
  warnings: string[];
}

export type KeyLoadErrorCode =
  | 'missing'
  | 'unreadable'
  | 'not_a_file'
  | 'insecure_permissions'
  | 'insecure_owner'
  | 'too_large'
  | 'not_pem'
  | 'encrypted'
  | 'not_private'
  | 'unparsable'
  | 'wrong_type'
  | 'too_small';

/** Why a key cannot be used; `message` says what, where and how to fix it. */
export class KeyLoadError extends Error {
  constructor(
    readonly code: KeyLoadErrorCode,
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'KeyLoadError';
  }
}

/** RSA keys below this are refused (RFC 8301 §3.2: verifiers must not accept them). */
export const MIN_RSA_KEY_BITS = 1024;
/** nobody/nogroup on Debian, and the kernel's overflow uid for owners a user namespace does not map. */
const OVERFLOW_UID = 65534;
/** A PEM private key is a few kilobytes; anything bigger is not one. */
const MAX_KEY_FILE_BYTES = 64 * 1024;

/**
 * Reads, checks and parses the PEM private key at `path` (PKCS#8 or PKCS#1/SEC1 "traditional" PEM).
 * What is a risk: whoever can replace the key controls what we sign with, and whoever can read it can
 * sign as us anywhere. So a key writable by its group or others is refused, and so is a key owned by
 * another non-root user (the owner can chmod and replace it at will). A key others can read is
 * loaded with a warning: that is how container secrets arrive (root-owned, 0444 or 0644, on a
 * read-only mount), where it is harmless when nobody else shares the container.
 */
export async function loadPrivateKey(path: string): Promise<LoadedKey> {
  const { pem, warnings } = await readPrivateKeyFile(path);
  const { keyObject, keyType, keyBits } = parsePrivateKeyPem(pem, path);
  const sizeWarning = keySizeWarning(path, keyType, keyBits);
  if (sizeWarning !== null) warnings.push(sizeWarning);
  return { keyObject, keyType, keyBits, warnings };
}

/** The file half of loadPrivateKey: opens, checks and reads the key file; the PEM text is not parsed yet. */
export async function readPrivateKeyFile(path: string): Promise<{ pem: string; warnings: string[] }> {
  const warnings: string[] = [];
  let handle;
  try {
    // O_NONBLOCK: a FIFO planted at the key path must not hang start-up; fstat refuses it below.
    handle = await open(path, constants.O_RDONLY | constants.O_NOCTTY | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new KeyLoadError('missing', path, `private key ${path} does not exist; create it with "dkimgate keygen --domain D --selector S" or fix the sign.key path`);
    }
    if (code === 'EACCES' || code === 'EPERM') {
      throw new KeyLoadError(
        'unreadable',
        path,
        `private key ${path} is not readable by uid ${process.getuid?.() ?? '?'}; make it readable by the user dkimgate runs as (e.g. chown it to that user and chmod 600)`,
      );
    }
    throw new KeyLoadError('unreadable', path, `private key ${path} cannot be opened (${code ?? String(error)})`);
  }
  let pem: string;
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new KeyLoadError('not_a_file', path, `private key ${path} is not a regular file`);
    const mode = stat.mode & 0o777;
    const modeText = mode.toString(8).padStart(4, '0');
    if ((mode & 0o022) !== 0) {
      throw new KeyLoadError(
        'insecure_permissions',
        path,
        `private key ${path} is writable by ${(mode & 0o002) !== 0 ? 'others' : 'its group'} (mode ${modeText}); anyone who can replace it can sign as you: run chmod 600 ${path}`,
      );
    }
    const self = process.getuid?.();
    if (self !== undefined && stat.uid !== 0 && stat.uid !== self) {
      const owner = self === 0 ? 'root' : String(self);
      const overflow = stat.uid === OVERFLOW_UID ? ' (65534 is also how a user namespace shows an owner it does not map: chown it on the host)' : '';
      throw new KeyLoadError(
        'insecure_owner',
        path,
        `private key ${path} is owned by uid ${stat.uid}, neither root nor the user dkimgate runs as (uid ${self}): that user can read it and replace it; run chown ${owner} ${path}${overflow}`,
      );
    }
    if ((mode & 0o004) !== 0) {
      warnings.push(
        (await isReadOnlyFileSystem(path))
          ? `private key ${path} is readable by every user (mode ${modeText}) on a read-only mount, as container secrets are: harmless when no other user runs where it is mounted; otherwise give the secret mode 0400 (or 0440 with a group of dkimgate's)`
          : `private key ${path} is readable by others (mode ${modeText}); run chmod 600 ${path} (or 640 with a dedicated group)`,
      );
    }
    if (stat.size > MAX_KEY_FILE_BYTES) {
      throw new KeyLoadError('too_large', path, `${path} is ${stat.size} bytes, too big to be a PEM private key; check the sign.key path`);
    }
    pem = (await handle.readFile()).toString('latin1');
  } finally {
    await handle.close();
  }
  return { pem, warnings };
}

/** Advice on a usable key's size (RFC 8301: 2048 bits recommended, verifiers need only handle 4096), or null. */
export function keySizeWarning(path: string, keyType: PrivateKeyType, keyBits: number): string | null {
  if (keyType === 'rsa' && keyBits < 2048) {
    return `private key ${path} is RSA ${keyBits} bits; RFC 8301 recommends at least 2048: generate a new key with "dkimgate keygen" and a new selector`;
  }
  if (keyType === 'rsa' && keyBits > 4096) {
    return `private key ${path} is RSA ${keyBits} bits; verifiers need only support up to 4096 (RFC 8301), some will fail larger keys`;
  }
  return null;
}

/** Parses PEM text into a DKIM-usable private key or throws KeyLoadError naming `path`. No I/O. */
export function parsePrivateKeyPem(pem: string, path: string): Omit<LoadedKey, 'warnings'> {
  const begin = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(pem);
  if (begin === null) {
    throw new KeyLoadError(
      'not_pem',
      path,
      `${path} is not a PEM file (no "-----BEGIN" line); convert a DER key with: openssl pkey -inform DER -in ${path} -out key.pem`,
    );
  }
  const label = begin[1] ?? '';
  if (label === 'ENCRYPTED PRIVATE KEY' || /Proc-Type:\s*4,\s*ENCRYPTED/.test(pem)) {
    throw new KeyLoadError(
      'encrypted',
      path,
      `private key ${path} is protected by a passphrase; dkimgate needs it unencrypted: openssl pkey -in ${path} -out ${path}.plain, then chmod 600 and replace it`,
    );
  }
  if (!/PRIVATE KEY/.test(pem)) {
    throw new KeyLoadError('not_private', path, `${path} holds a ${label.toLowerCase()}, not a private key; point sign.key at the private key (PEM "BEGIN PRIVATE KEY")`);
  }
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey({ key: pem, format: 'pem' });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ERR_MISSING_PASSPHRASE') {
      throw new KeyLoadError('encrypted', path, `private key ${path} is protected by a passphrase; dkimgate needs it unencrypted: openssl pkey -in ${path} -out ${path}.plain`);
    }
    throw new KeyLoadError('unparsable', path, `private key ${path} cannot be parsed (${firstLine(error)}); regenerate it with "dkimgate keygen" or check it with: openssl pkey -in ${path} -noout`);
  }
  const type = keyObject.asymmetricKeyType;
  if (type === 'rsa') {
    const keyBits = keyObject.asymmetricKeyDetails?.modulusLength ?? 0;
    if (keyBits < MIN_RSA_KEY_BITS) {
      throw new KeyLoadError(
        'too_small',
        path,
        `private key ${path} is RSA ${keyBits} bits; keys under ${MIN_RSA_KEY_BITS} bits are refused (RFC 8301): generate a 2048-bit key with "dkimgate keygen" and publish it under a new selector`,
      );
    }
    return { keyObject, keyType: 'rsa', keyBits };
  }
  if (type === 'ed25519') return { keyObject, keyType: 'ed25519', keyBits: 256 };
  const hint = type === 'rsa-pss' ? 'RSA-PSS keys cannot make DKIM signatures (RFC 6376 uses PKCS#1 v1.5)' : 'DKIM signs with RSA or Ed25519 keys only';
  throw new KeyLoadError('wrong_type', path, `private key ${path} is of type ${type ?? 'unknown'}; ${hint}: generate one with "dkimgate keygen --type rsa|ed25519"`);
}

async function isReadOnlyFileSystem(path: string): Promise<boolean> {
  try {
    await access(path, constants.W_OK);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EROFS';
  }
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? 'unknown error';
}
