// The signing keys of one configuration: every key loaded once, one Signer per selector, grouped by From domain.
// Touches: the key files (through loadPrivateKey), at start-up and reload only. Never logs or returns key material.

import { createHash } from 'node:crypto';
import type { SignCondition, SigningSelector } from '../config/config.js';
import { createSigner, type Signer } from '../dkim/sign.js';
import { KeyLoadError, keySizeWarning, parsePrivateKeyPem, readPrivateKeyFile, type LoadedKey, type PrivateKeyType } from './load-private-key.js';

/** One configured key, ready to sign with. */
export interface SignerEntry {
  /** The configured From domain (lower case, A-labels). */
  readonly fromDomain: string;
  /** d=. */
  readonly signingDomain: string;
  readonly selector: string;
  readonly signCondition: SignCondition;
  readonly keyPath: string;
  readonly keyType: PrivateKeyType;
  readonly keyBits: number;
  /** Where the entry is configured, e.g. "sign.domains.example.com.selectors[1]". */
  readonly origin: string;
  readonly signer: Signer;
}

/** Immutable: a reload builds a new store, and the caller swaps it in only when loading succeeded. */
export interface KeyStore {
  /** From domain (lower case, A-labels) -> its keys, in configuration order. */
  readonly byFromDomain: ReadonlyMap<string, readonly SignerEntry[]>;
  /** The keys configured for exactly this From domain (any case); [] when none. */
  signersFor(fromDomain: string): readonly SignerEntry[];
  /** Number of entries (selectors). */
  readonly size: number;
  /** The parsed keys in use, by the SHA-256 of their PEM text: the next load parses only keys that changed. */
  readonly parsedKeys: ReadonlyMap<string, ParsedKey>;
}

/** A private key as parsed from its PEM text (without the warnings about its file). */
export type ParsedKey = Omit<LoadedKey, 'warnings'>;

type KeyOutcome = { kind: 'ok'; key: LoadedKey } | { kind: 'error'; message: string };

/**
 * Key files read at a time. Each parse of an RSA key is a few tenths of a millisecond on the event loop;
 * with thousands of keys read all at once, their parses would run back to back in one turn (seconds,
 * every session held). A few at a time, the sessions get their turns between reads.
 */
const KEY_FILES_AT_ONCE = 16;

export type KeyStoreLoad =
  | { kind: 'ok'; store: KeyStore; warnings: string[] }
  /** One line per problem, naming the domain, selector and key path. */
  | { kind: 'error'; problems: string[] };

const NONE: readonly SignerEntry[] = Object.freeze([]);

/**
 * Loads every distinct key file once (a few at a time), then builds one Signer per selector. A key whose
 * PEM text `previous` (the running store) already parsed is not parsed again, so a reload costs little
 * with thousands of unchanged keys. Any problem fails the whole load (a half-loaded store would relay
 * some mail unsigned); problems are reported all at once. Warnings (e.g. a key readable by others) are
 * reported once per key file.
 */
export async function loadKeyStore(selectors: readonly SigningSelector[], previous?: KeyStore): Promise<KeyStoreLoad> {
  const paths = [...new Set(selectors.map((s) => s.keyPath))];
  const loaded = new Map<string, KeyOutcome>();
  const parsedKeys = new Map<string, ParsedKey>();
  let next = 0;
  const loadSome = async (): Promise<void> => {
    while (next < paths.length) {
      const path = paths[next++]!;
      loaded.set(path, await loadKey(path, parsedKeys, previous?.parsedKeys));
    }
  };
  await Promise.all(Array.from({ length: Math.min(KEY_FILES_AT_ONCE, paths.length) }, loadSome));
  const problems: string[] = [];
  const warnings: string[] = [];
  for (const path of paths) {
    const outcome = loaded.get(path);
    if (outcome?.kind === 'ok') warnings.push(...outcome.key.warnings);
  }
  const groups = new Map<string, SignerEntry[]>();
  for (const s of selectors) {
    const where = `${s.origin} (domain ${s.fromDomain}, selector ${s.selector})`;
    const outcome = loaded.get(s.keyPath);
    if (outcome === undefined || outcome.kind === 'error') {
      problems.push(`${where}: ${outcome?.message ?? `private key ${s.keyPath} was not loaded`}`);
      continue;
    }
    const key = outcome.key;
    let signer: Signer;
    try {
      signer = createSigner({
        signingDomain: s.signingDomain,
        selector: s.selector,
        privateKey: key.keyObject,
        algorithm: s.algorithm,
        headerCanon: s.headerCanon,
        bodyCanon: s.bodyCanon,
        headerList: s.headerList,
        agentId: s.agentId,
        lifetimeHours: s.lifetimeHours,
        bodyLengthLimit: s.bodyLengthLimit,
        copyHeaders: s.copyHeaders,
      });
    } catch (error) {
      const hint = key.keyType === 'ed25519' ? 'ed25519-sha256' : 'rsa-sha256';
      const detail = error instanceof Error ? error.message : String(error);
      const fix = /cannot sign/.test(detail) ? `; key ${s.keyPath} is ${key.keyType}: set digest: ${hint} or use another key` : ` (key ${s.keyPath})`;
      problems.push(`${where}: ${detail}${fix}`);
      continue;
    }
    const fromDomain = s.fromDomain.toLowerCase();
    const entry: SignerEntry = Object.freeze({
      fromDomain,
      signingDomain: signer.config.signingDomain,
      selector: s.selector,
      signCondition: s.signCondition,
      keyPath: s.keyPath,
      keyType: key.keyType,
      keyBits: key.keyBits,
      origin: s.origin,
      signer,
    });
    const group = groups.get(fromDomain);
    if (group === undefined) groups.set(fromDomain, [entry]);
    else group.push(entry);
  }
  if (problems.length > 0) return { kind: 'error', problems };
  const byFromDomain = new Map<string, readonly SignerEntry[]>();
  let size = 0;
  for (const [domain, entries] of groups) {
    byFromDomain.set(domain, Object.freeze(entries));
    size += entries.length;
  }
  return { kind: 'ok', store: new FrozenKeyStore(byFromDomain, size, parsedKeys), warnings };
}

/** Reads and checks one key file; parses it unless a key of the same PEM text was parsed (this load or the last). */
async function loadKey(path: string, parsedKeys: Map<string, ParsedKey>, reuse: ReadonlyMap<string, ParsedKey> | undefined): Promise<KeyOutcome> {
  try {
    const { pem, warnings } = await readPrivateKeyFile(path);
    const digest = createHash('sha256').update(pem, 'latin1').digest('base64');
    const parsed = parsedKeys.get(digest) ?? reuse?.get(digest) ?? parsePrivateKeyPem(pem, path);
    parsedKeys.set(digest, parsed);
    const sizeWarning = keySizeWarning(path, parsed.keyType, parsed.keyBits);
    if (sizeWarning !== null) warnings.push(sizeWarning);
    return { kind: 'ok', key: { ...parsed, warnings } };
  } catch (error) {
    return { kind: 'error', message: error instanceof KeyLoadError ? error.message : `private key ${path} cannot be loaded (${String(error)})` };
  }
}

class FrozenKeyStore implements KeyStore {
  constructor(
    private readonly map: Map<string, readonly SignerEntry[]>,
    readonly size: number,
    readonly parsedKeys: ReadonlyMap<string, ParsedKey>,
  ) {
    Object.freeze(this);
  }

  get byFromDomain(): ReadonlyMap<string, readonly SignerEntry[]> {
    return this.map;
  }

  signersFor(fromDomain: string): readonly SignerEntry[] {
    return this.map.get(fromDomain.toLowerCase()) ?? NONE;
  }
}
