// Does DNS publish our key? Compares a selector's TXT records with its private key, and checks an Ed25519
// selector's records against RFC 8463, and says what a missing record means. The one home of these judgements, for keycheck and doctor. Pure.
// Input: TXT record texts from DNS (untrusted) and a private key loaded by loadPrivateKey.

import { createPublicKey, type KeyObject } from 'node:crypto';
import type { SigningSelector } from '../config/config.js';
import { MAX_RSA_KEY_BITS, parseKeyRecord, type PublicKeyRecord } from '../dkim/key-record.js';
import { MAX_TXT_ANSWER_BYTES, type TxtLookupOutcome } from '../dkim/txt-lookup.js';

export type PublishedKeyMatch =
  /** A record holds our public key; `problems` say why receivers would still not (always) use it for our signatures. */
  | { kind: 'match'; record: PublicKeyRecord; problems: string[] }
  /** No record holds our public key: one reason per record. */
  | { kind: 'no_match'; problems: string[] };

/** The DNS name of a selector's key record: S._domainkey.D. */
export function publishedKeyName(sel: Pick<SigningSelector, 'selector' | 'signingDomain'>): string {
  return `${sel.selector}._domainkey.${sel.signingDomain}`;
}

/**
 * What a lookup that found no record means for the selector, and what to do. A failed lookup (timeout,
 * SERVFAIL) says nothing about whether the record is published: the resolvers are what to check. A found
 * answer without records counts as no TXT record.
 */
export function unpublishedProblem(lookup: TxtLookupOutcome): string {
  if (lookup.kind === 'timeout' || lookup.kind === 'servfail') {
    return `the lookup failed (${lookup.kind}), so it is not known whether it is published; check dns.servers or --dns-server`;
  }
  if (lookup.kind === 'too_large') return `the TXT answer is ${lookup.bytes} bytes, over ${MAX_TXT_ANSWER_BYTES}: receivers refuse it; publish only the key record there`;
  return `not published (${lookup.kind === 'nxdomain' ? 'no such name' : 'no TXT record'}); publish the record dkimgate keygen printed`;
}

/** What a record must suit: the selector's digest, and its i= (null: none, which means @d=) against d=. */
export type KeyUse = Pick<SigningSelector, 'algorithm' | 'agentId' | 'signingDomain'>;

/** Finds the record that publishes `privateKey`'s public half and checks that it applies to the selector's signatures. */
export function matchPublishedKey(records: readonly string[], privateKey: KeyObject, use: KeyUse): PublishedKeyMatch {
  const mine = publicDer(privateKey);
  const problems: string[] = [];
  for (const txt of records) {
    const parsed = parseKeyRecord(txt);
    if (parsed.kind === 'error') {
      problems.push(parsed.detail);
      continue;
    }
    if (!publicDer(parsed.key.publicKey).equals(mine)) {
      problems.push('published key differs from the private key');
      continue;
    }
    return { kind: 'match', record: parsed.key, problems: [...applicabilityProblems(parsed.key, use), ...otherKeyProblems(records, mine)] };
  }
  if (records.length === 0) problems.push('no TXT record');
  return { kind: 'no_match', problems };
}

/**
 * RFC 8463 for an ed25519-sha256 selector: some record is k=ed25519 with a raw 32-byte p=. Null when one
 * is; else the reason, taken from the first record that claims k=ed25519 (the usual mistakes: p= holding
 * the whole SubjectPublicKeyInfo, or k= left out).
 */
export function checkEd25519Records(records: readonly string[]): string | null {
  let firstProblem: string | null = null;
  for (const txt of records) {
    const parsed = parseKeyRecord(txt);
    if (parsed.kind === 'ok' && parsed.key.keyType === 'ed25519') return null;
    const claimsEd25519 = /(?:^|;)\s*k\s*=\s*ed25519\s*(?:;|$)/i.test(txt);
    const problem = parsed.kind === 'error' ? parsed.detail : 'the record is k=rsa';
    if (claimsEd25519) return problem;
    firstProblem ??= problem;
  }
  return firstProblem === null ? 'no TXT record' : `no record has k=ed25519 (${firstProblem})`;
}

/** Why receivers would not use this record for the selector's signatures (RFC 6376 §3.6.1); [] when they would. */
function applicabilityProblems(key: PublicKeyRecord, use: KeyUse): string[] {
  const { algorithm, agentId, signingDomain } = use;
  const problems: string[] = [];
  const keyType = algorithm === 'ed25519-sha256' ? 'ed25519' : 'rsa';
  if (key.keyType !== keyType) problems.push(`published key is ${key.keyType}, digest is ${algorithm}`);
  const hash = algorithm === 'rsa-sha1' ? 'sha1' : 'sha256';
  if (key.hashes !== null && !key.hashes.includes(hash)) problems.push(`record h=${key.hashes.join(':')} excludes ${hash}`);
  if (key.services !== null && !key.services.includes('*') && !key.services.includes('email')) problems.push('record s= excludes email');
  if (key.strict && agentId !== null) {
    const identityDomain = agentId.slice(agentId.lastIndexOf('@') + 1).toLowerCase();
    if (identityDomain !== signingDomain.toLowerCase()) {
      problems.push(`record t=s forbids an i= in a subdomain of ${signingDomain}, but identity is ${agentId}: receivers give dkim=permerror; use an identity @${signingDomain} or publish the record without t=s`);
    }
  }
  if (key.versionNotFirst) problems.push('v=DKIM1 is not the first tag: RFC 6376 §3.6.1 wants it first, strict verifiers refuse the record');
  if (key.keyType === 'rsa' && key.keyBits > MAX_RSA_KEY_BITS) problems.push(`RSA key of ${key.keyBits} bits: verifiers (dkimgate too) refuse keys over ${MAX_RSA_KEY_BITS} bits`);
  return problems;
}

/**
 * A verifier uses any one valid key record of the name (RFC 6376 §3.6.2.2; dkimgate takes the first), so
 * another key published beside ours makes our signatures fail whenever it is the one picked.
 */
function otherKeyProblems(records: readonly string[], mine: Buffer): string[] {
  const others: string[] = [];
  for (const txt of records) {
    const parsed = parseKeyRecord(txt);
    if (parsed.kind === 'ok' && !publicDer(parsed.key.publicKey).equals(mine)) others.push(`${parsed.key.keyType} ${parsed.key.keyBits} bits`);
  }
  if (others.length === 0) return [];
  const what = others.length === 1 ? `another valid key record (${others[0]}) is` : `${others.length} other valid key records (${others.join(', ')}) are`;
  return [`${what} published beside ours: verifiers use any one of them, so signatures fail whenever they pick another; remove ${others.length === 1 ? 'it' : 'them'} and keep only ours (a new key goes under a new selector)`];
}

/** The public half as comparable bytes: SPKI DER for RSA and Ed25519 alike. */
function publicDer(key: KeyObject): Buffer {
  const pub = key.type === 'public' ? key : createPublicKey(key);
  return pub.export({ type: 'spki', format: 'der' }) as Buffer;
}
