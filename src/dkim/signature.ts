// DKIM-Signature fields (RFC 6376 §3.5, RFC 8463): field value -> parsed signature or reason.
// Input: untrusted header text (latin1, bytes 1:1); every value is checked and bounded; never throws.

import { decodeFoldedBase64, isFoldedBase64, unfoldedPrefix } from './folded-base64.js';
import { preview, removeFws, scanTagList, type TagSink } from './tag-list.js';
import type { VerifyReason } from './results.js';

export type SigningAlgorithm = 'rsa-sha256' | 'rsa-sha1' | 'ed25519-sha256';
export type Canonicalization = 'simple' | 'relaxed';

export interface ParsedSignature {
  readonly algorithm: SigningAlgorithm;
  readonly keyType: 'rsa' | 'ed25519';
  readonly hashAlgorithm: 'sha256' | 'sha1';
  readonly signature: Buffer;
  readonly bodyHash: Buffer;
  readonly headerCanon: Canonicalization;
  readonly bodyCanon: Canonicalization;
  /** d=, lower-cased. */
  readonly signingDomain: string;
  readonly selector: string;
  /** h=, lower-cased names in order. */
  readonly signedHeaders: readonly string[];
  /** i=, as written; defaults to "@" + d. */
  readonly agentId: string;
  /** The domain part of i=, lower-cased. */
  readonly agentDomain: string;
  readonly bodyLength: number | null;
  readonly timestamp: number | null;
  readonly expiration: number | null;
  /** The first 8 characters of b= (RFC 6008 header.b). */
  readonly headerB: string;
  /**
   * Where the b= value lies in the parsed text, FWS around it included: [from, to) as findBValue
   * (signature-field.ts) gives it in the field, so the verifier need not search for it again.
   */
  readonly bValue: readonly [number, number];
}

/** What could be read from a signature, even a broken one, for reporting. */
export interface SignatureLabels {
  domain: string | null;
  selector: string | null;
  identity: string | null;
  algorithm: string | null;
  canonicalization: string | null;
  headerB: string | null;
  /** The start of b= (FWS removed, at most B_PREFIX_CHARS), to tell signatures apart in header.b (RFC 6008 §4). */
  bPrefix: string | null;
}

export type SignatureParse =
  | { kind: 'ok'; signature: ParsedSignature; labels: SignatureLabels }
  | { kind: 'error'; reason: VerifyReason; detail: string; labels: SignatureLabels };

/** DKIM-Signature fields larger than this are refused unparsed (reliability invariant 6). */
export const MAX_SIGNATURE_FIELD_BYTES = 65536;
/** h= entries beyond this are refused: each costs a header canonicalization. */
export const MAX_SIGNED_HEADERS = 1000;

// RFC 6376 §3.5 / RFC 5321 sub-domain: letters, digits, hyphens; labels joined by dots.
/** The d= and s= syntax (RFC 6376 §3.5); the signer checks its configuration with the same rules. */
export const DOMAIN = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
export const SELECTOR = /^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$/;
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;
const FIELD_NAME_LIST = /^[\x21-\x39\x3b-\x7e]+(?::[\x21-\x39\x3b-\x7e]+)*$/;
const DIGITS = /^[0-9]+$/;
const ALGORITHMS = new Map<string, { keyType: 'rsa' | 'ed25519'; hash: 'sha256' | 'sha1' }>([
  ['rsa-sha256', { keyType: 'rsa', hash: 'sha256' }],
  ['rsa-sha1', { keyType: 'rsa', hash: 'sha1' }],
  ['ed25519-sha256', { keyType: 'ed25519', hash: 'sha256' }],
]);

// The tags a signature uses (RFC 6376 §3.5), each in a slot of SignatureTags: a DKIM-Signature is
// parsed once per message, and slots cost less than a Map of names (no name strings, no hashing).
const V = 0;
const A = 1;
const B = 2;
const BH = 3;
const C = 4;
const D = 5;
const H = 6;
const I = 7;
const L = 8;
const Q = 9;
const S = 10;
const T = 11;
const X = 12;

function isFws(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;
}

/** The slot of each one-letter tag name (tag names are case-sensitive, RFC 6376 §3.2), -1 for others. */
const LETTER_SLOT = new Int8Array(128).fill(-1);
for (const [letter, slot] of [['v', V], ['a', A], ['b', B], ['c', C], ['d', D], ['h', H], ['i', I], ['l', L], ['q', Q], ['s', S], ['t', T], ['x', X]] as const) {
  LETTER_SLOT[letter.charCodeAt(0)] = slot;
}
const REQUIRED: readonly (readonly [number, string])[] = [[V, 'v'], [A, 'a'], [B, 'b'], [BH, 'bh'], [D, 'd'], [H, 'h'], [S, 's']];

/** A signature's tag list: the values of the tags in use by slot; other tags only checked for duplicates. */
class SignatureTags implements TagSink {
  // A literal: Array(13).fill() costs more than the rest of the tag scan.
  readonly values: (string | undefined)[] = [undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined];
  private others: Set<string> | null = null;
  /** b='s value with the FWS around it: [after "=", before ";" or the end). */
  bFrom = -1;
  bTo = -1;

  put(text: string, a: number, z: number, va: number, vz: number): boolean {
    // Tag names start with an ASCII letter (scanTagList checked), so charCodeAt(a) < 128.
    const slot =
      z - a === 1 ? LETTER_SLOT[text.charCodeAt(a)]! : z - a === 2 && text.charCodeAt(a) === 0x62 && text.charCodeAt(a + 1) === 0x68 ? BH : -1;
    if (slot === -1) {
      const name = text.slice(a, z);
      this.others ??= new Set();
      if (this.others.has(name)) return false;
      this.others.add(name);
      return true;
    }
    if (this.values[slot] !== undefined) return false;
    this.values[slot] = text.slice(va, vz);
    if (slot === B) {
      // Only FWS lies between "=" and the trimmed value, and between it and ";" (or the end).
      let from = va;
      let to = vz;
      while (isFws(text.charCodeAt(from - 1))) from--;
      while (to < text.length && isFws(text.charCodeAt(to))) to++;
      this.bFrom = from;
      this.bTo = to;
    }
    return true;
  }
}

function isDomain(s: string): boolean {
  return DOMAIN.test(s);
}

/** A decimal tag value (RFC 6376: at most 76 digits; we accept at most 15 so it stays an exact number). */
function parseDecimal(s: string): number | null {
  return DIGITS.test(s) && s.length <= 15 ? Number(s) : null;
}

/** s.split(':') by indexOf and slice: for the ten names of a usual h= about half the time of String.prototype.split (V8, Node 20). */
function splitColons(s: string): string[] {
  const parts: string[] = [];
  let from = 0;
  for (;;) {
    const colon = s.indexOf(':', from);
    if (colon === -1) break;
    parts.push(s.slice(from, colon));
    from = colon + 1;
  }
  parts.push(s.slice(from));
  return parts;
}

interface Refusal {
  reason: VerifyReason;
  detail: string;
}

/** h= (as written, FWS and all) -> its field names lower-cased, in order; or why it is refused. */
function parseSignedHeaders(text: string): readonly string[] | Refusal {
  const h = removeFws(text);
  if (h === '') return { reason: 'bad_tag_value', detail: 'empty h= tag' };
  // Split once, lower-cased (lower-casing adds no ":"); valid names are ASCII, so this lower-cases each name.
  const names = splitColons(h.toLowerCase());
  if (names.length > MAX_SIGNED_HEADERS) return { reason: 'header_too_large', detail: `h= lists ${names.length} fields` };
  // One test of the whole list; name by name only to report the first bad one as written.
  if (!FIELD_NAME_LIST.test(h)) {
    for (const name of h.split(':')) {
      if (!FIELD_NAME.test(name)) return { reason: 'bad_tag_value', detail: `bad field name in h=: ${preview(name)}` };
    }
  }
  // Not frozen: a frozen array is another elements kind, and selectSignedFields, which also gets the
  // signer's plain arrays, runs ~40 % slower when it sees both. ParsedSignature exposes it read-only.
  return names;
}

/**
 * Valid h= lists by their text. A signer writes the same h= (folding included) on all its messages, so a
 * verifier meets few distinct ones; parsing one costs ~0.5 µs (FWS removal, lower-casing, splitting).
 */
const signedHeadersMemo = new Map<string, readonly string[]>();
const SIGNED_HEADERS_MEMO_SIZE = 256;
/** Longer h= texts are parsed every time: the memo must not hold on to large hostile values. */
const SIGNED_HEADERS_MEMO_MAX_TEXT = 1024;

/** parseSignedHeaders through the memo (refusals are not kept: they are rare and cheap to redo). */
function signedHeadersOf(text: string): readonly string[] | Refusal {
  const hit = signedHeadersMemo.get(text);
  if (hit) return hit;
  const parsed = parseSignedHeaders(text);
  if ('detail' in parsed || text.length > SIGNED_HEADERS_MEMO_MAX_TEXT) return parsed;
  if (signedHeadersMemo.size >= SIGNED_HEADERS_MEMO_SIZE) signedHeadersMemo.delete(signedHeadersMemo.keys().next().value as string);
  signedHeadersMemo.set(text, parsed);
  return parsed;
}

/** Characters of b= kept for header.b: as many as an Authentication-Results value may have (format-auth-results.ts). */
export const B_PREFIX_CHARS = 255;

/** Parses the value of one DKIM-Signature field (everything after the colon). */
export function parseSignature(value: string): SignatureParse {
  const labels: SignatureLabels = { domain: null, selector: null, identity: null, algorithm: null, canonicalization: null, headerB: null, bPrefix: null };
  const error = (reason: VerifyReason, detail: string): SignatureParse => ({ kind: 'error', reason, detail, labels });
  if (value.length > MAX_SIGNATURE_FIELD_BYTES) return error('header_too_large', `signature field of ${value.length} bytes`);
  const parsed = new SignatureTags();
  const syntax = scanTagList(value, parsed);
  if (syntax) return error(syntax.reason, syntax.detail);
  const tags = parsed.values;

  // Fill the labels first so even a broken signature is reported with what it claims.
  const d = tags[D];
  if (d !== undefined && isDomain(d)) labels.domain = d.toLowerCase();
  const s = tags[S];
  if (s !== undefined && SELECTOR.test(s)) labels.selector = s;
  const a = tags[A]?.toLowerCase();
  const alg = a === undefined ? undefined : ALGORITHMS.get(a);
  if (alg) labels.algorithm = a!;
  const b = tags[B];
  // b= is the longest value: its base64 is checked once, for the label and for decoding.
  const bIsBase64 = b !== undefined && isFoldedBase64(b);
  if (bIsBase64) {
    labels.bPrefix = unfoldedPrefix(b, B_PREFIX_CHARS);
    labels.headerB = labels.bPrefix.slice(0, 8);
  }

  for (const [slot, tag] of REQUIRED) {
    if (tags[slot] === undefined) return error('missing_tag', `signature has no ${tag}= tag`);
  }
  if (tags[V] !== '1') return error('bad_version', `unsupported signature version v=${preview(tags[V]!)}`);
  if (!alg) return error('unknown_algorithm', `unknown algorithm a=${preview(tags[A]!)}`);
  const algorithm = a as SigningAlgorithm;

  const c = (tags[C] ?? 'simple/simple').toLowerCase();
  const slash = c.indexOf('/');
  const hc = slash === -1 ? c : c.slice(0, slash);
  const bc = slash === -1 ? 'simple' : c.slice(slash + 1); // a second "/" makes it invalid
  if ((hc !== 'simple' && hc !== 'relaxed') || (bc !== 'simple' && bc !== 'relaxed')) {
    return error('unknown_canonicalization', `unknown canonicalization c=${preview(c)}`);
  }
  labels.canonicalization = `${hc}/${bc}`;

  if (labels.domain === null) return error('bad_tag_value', `bad domain d=${preview(d!)}`);
  if (labels.selector === null) return error('bad_tag_value', `bad selector s=${preview(s!)}`);
  const signingDomain = labels.domain;

  const q = tags[Q];
  if (q !== undefined && !removeFws(q).toLowerCase().split(':').includes('dns/txt')) {
    return error('bad_tag_value', `unsupported query method q=${preview(q)}`);
  }

  const signedHeaders = signedHeadersOf(tags[H]!);
  if ('detail' in signedHeaders) return error(signedHeaders.reason, signedHeaders.detail);

  let agentId = `@${signingDomain}`;
  let agentDomain = signingDomain;
  const i = tags[I];
  if (i !== undefined) {
    const at = i.lastIndexOf('@');
    const dom = at === -1 ? '' : i.slice(at + 1);
    if (at === -1 || !isDomain(dom)) return error('bad_tag_value', `bad identity i=${preview(i)}`);
    agentId = i;
    agentDomain = dom.toLowerCase();
    labels.identity = i;
    // RFC 6376 §3.5: the domain of i= must be the same as or a subdomain of d=.
    if (agentDomain !== signingDomain && !agentDomain.endsWith(`.${signingDomain}`)) {
      return error('identity_outside_domain', `i=${preview(i)} is not within d=${signingDomain}`);
    }
  } else {
    labels.identity = agentId;
  }

  let bodyLength: number | null = null;
  const l = tags[L];
  if (l !== undefined) {
    // RFC 6376 allows up to 76 digits; past 15 (beyond any message we take) it is longer than the body.
    bodyLength = parseDecimal(l) ?? (DIGITS.test(l) && l.length <= 76 ? Infinity : null);
    if (bodyLength === null) return error('bad_tag_value', `bad body length l=${preview(l)}`);
  }
  let timestamp: number | null = null;
  const t = tags[T];
  if (t !== undefined) {
    timestamp = parseDecimal(t);
    if (timestamp === null) return error('bad_tag_value', `bad timestamp t=${preview(t)}`);
  }
  let expiration: number | null = null;
  const x = tags[X];
  if (x !== undefined) {
    expiration = parseDecimal(x);
    if (expiration === null) return error('bad_tag_value', `bad expiration x=${preview(x)}`);
    // RFC 6376 §3.5: x= MUST be greater than t=.
    if (timestamp !== null && expiration <= timestamp) return error('bad_tag_value', 'x= is not after t=');
  }

  const signature = decodeFoldedBase64(b!, bIsBase64);
  if (signature === null) return error('bad_base64', 'b= is not valid base64');
  const bodyHash = decodeFoldedBase64(tags[BH]!);
  if (bodyHash === null) return error('bad_base64', 'bh= is not valid base64');

  return {
    kind: 'ok',
    labels,
    signature: {
      algorithm,
      keyType: alg.keyType,
      hashAlgorithm: alg.hash,
      signature,
      bodyHash,
      headerCanon: hc,
      bodyCanon: bc,
      signingDomain,
      selector: labels.selector,
      signedHeaders,
      agentId,
      agentDomain,
      bodyLength,
      timestamp,
      expiration,
      headerB: labels.headerB ?? '',
      bValue: [parsed.bFrom, parsed.bTo],
    },
  };
}
