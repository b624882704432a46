// DKIM signing (RFC 6376 §5, RFC 8463): a message and signer configurations -> DKIM-Signature fields.
// Input: message bytes (CRLF) already accepted for signing; private keys as parsed KeyObjects. No I/O.

import { createHash, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { frameMessage, type FramedMessage } from '../mail/header-fields.js';
import { BodyHasher, type BodyHashSpec } from './body-hasher.js';
import { chooseSignedHeaders, parseHeaderList, selectSignedFields, type HeaderListEntry } from './header-selection.js';
import { DOMAIN, SELECTOR, type Canonicalization, type SigningAlgorithm } from './signature.js';
import { headerHashInput } from './signature-field.js';

export interface SignerConfig {
  signingDomain: string;
  selector: string;
  privateKey: KeyObject;
  algorithm: SigningAlgorithm;
  headerCanon: Canonicalization;
  bodyCanon: Canonicalization;
  /** Momentum headerlist, e.g. "From:From:Subject:Date:To:Cc?". */
  headerList: string;
  /** i=; null or absent for none. */
  agentId?: string | null;
  /** Hours until x=; 0 or absent for no x=. */
  lifetimeHours?: number;
  /** Add l= (the canonical body length). */
  bodyLengthLimit?: boolean;
  /** Add z= with the signed header fields. */
  copyHeaders?: boolean;
}

export interface Signer {
  readonly config: Readonly<SignerConfig>;
  readonly headerListEntries: readonly HeaderListEntry[];
  readonly hashAlgorithm: 'sha256' | 'sha1';
}

export type SignOutcome = { kind: 'signed'; fields: string[] } | { kind: 'error'; reason: string };

const LINE_LIMIT = 78;

/**
 * The longest lifetime (ten years): x= must stay a decimal integer of at most 12 digits (RFC 6376 §3.5),
 * and a longer "expiry" is no expiry an operator means.
 */
export const MAX_LIFETIME_HOURS = 87_600;

/** Validates a signer configuration once (start-up or reload); throws Error naming the problem. */
export function createSigner(config: SignerConfig): Signer {
  const { signingDomain, selector, privateKey, algorithm } = config;
  if (!DOMAIN.test(signingDomain)) throw new Error(`signing domain "${signingDomain}" is not a valid domain name`);
  if (!SELECTOR.test(selector)) throw new Error(`selector "${selector}" is not valid (letters, digits, hyphens, dots)`);
  const keyType = privateKey.asymmetricKeyType;
  if (privateKey.type !== 'private') throw new Error('the signing key must be a private key');
  if (algorithm === 'ed25519-sha256' ? keyType !== 'ed25519' : keyType !== 'rsa') {
    throw new Error(`a ${keyType} key cannot sign ${algorithm}`);
  }
  const list = parseHeaderList(config.headerList);
  if (list.kind === 'error') throw new Error(`headerlist ${list.reason}`);
  if (config.agentId) {
    const at = config.agentId.lastIndexOf('@');
    const dom = config.agentId.slice(at + 1).toLowerCase();
    const d = signingDomain.toLowerCase();
    if (at === -1 || (dom !== d && !dom.endsWith(`.${d}`))) {
      throw new Error(`identity "${config.agentId}" must be an address in ${signingDomain} or a subdomain (RFC 6376 §3.5 i=)`);
    }
    if (/[\s;]/.test(config.agentId)) throw new Error(`identity "${config.agentId}" contains whitespace or ";"`);
  }
  const lifetime = config.lifetimeHours ?? 0;
  if (!(lifetime >= 0 && lifetime <= MAX_LIFETIME_HOURS)) throw new Error(`lifetime must be a number of hours from 0 to ${MAX_LIFETIME_HOURS}`);
  return {
    config: { ...config, signingDomain: signingDomain.toLowerCase() },
    headerListEntries: list.entries,
    hashAlgorithm: algorithm === 'rsa-sha1' ? 'sha1' : 'sha256',
  };
}

/** DKIM-Quoted-Printable (RFC 6376 §2.11) for z=, with "|" encoded too (§3.5). */
function dkimQuotedPrintable(bytes: Buffer): string {
  let out = '';
  for (const b of bytes) {
    const safe = (b >= 0x21 && b <= 0x3a) || b === 0x3c || (b >= 0x3e && b <= 0x7e && b !== 0x7c);
    out += safe ? String.fromCharCode(b) : `=${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Splits DKIM-Quoted-Printable text into pieces of at most `max` characters, never inside an =XX escape. */
function splitQuotedPrintable(text: string, max: number): string[] {
  const pieces: string[] = [];
  let start = 0;
  while (text.length - start > max) {
    let end = start + max;
    // Step back when the cut would fall inside "=XX".
    if (text[end - 1] === '=') end -= 1;
    else if (text[end - 2] === '=') end -= 2;
    pieces.push(text.slice(start, end));
    start = end;
  }
  pieces.push(text.slice(start));
  return pieces;
}

/** Folds tag=value pieces into lines of at most 78 characters where the grammar allows FWS. */
class FieldFolder {
  private text = 'DKIM-Signature:';
  private lineLength = this.text.length;

  /** Adds a whole piece, on a new line if it does not fit. */
  add(piece: string): void {
    if (this.lineLength + 1 + piece.length > LINE_LIMIT) this.newLine();
    else this.append(' ');
    this.append(piece);
  }

  /** Adds `prefix` then pieces, starting a new line before any piece that does not fit (FWS may stand between pieces). */
  addPieces(prefix: string, pieces: string[]): void {
    this.add(prefix + (pieces[0] ?? ''));
    for (let i = 1; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (this.lineLength + piece.length > LINE_LIMIT) this.newLine();
      this.append(piece);
    }
  }

  /** Adds base64 that may break anywhere (FWS is allowed inside b= and bh=). */
  addBase64(prefix: string, value: string, suffix: string): void {
    const whole = prefix.length + value.length + suffix.length;
    if (this.lineLength + 1 + whole > LINE_LIMIT && 1 + whole <= LINE_LIMIT) this.newLine();
    else if (prefix !== '') this.append(' ');
    this.append(prefix);
    let rest = value + suffix;
    while (rest.length > 0) {
      let room = LINE_LIMIT - this.lineLength;
      if (room <= 8) {
        this.newLine();
        room = LINE_LIMIT - this.lineLength;
      }
      this.append(rest.slice(0, room));
      rest = rest.slice(room);
    }
  }

  newLine(): void {
    this.text += '\r\n\t';
    this.lineLength = 1;
  }

  private append(s: string): void {
    this.text += s;
    this.lineLength += s.length;
  }

  toString(): string {
    return this.text;
  }
}

function buildField(
  signer: Signer,
  framed: FramedMessage,
  signedHeaders: string[],
  bodyHash: Buffer,
  bodyLength: number,
  nowSec: number,
): { prefix: string; folder: FieldFolder } {
  const c = signer.config;
  const f = new FieldFolder();
  f.add('v=1;');
  f.add(`a=${c.algorithm};`);
  f.add(`c=${c.headerCanon}/${c.bodyCanon};`);
  f.add(`d=${c.signingDomain};`);
  f.add(`s=${c.selector};`);
  if (c.agentId) f.add(`i=${c.agentId};`);
  f.add(`t=${nowSec};`);
  // x= must be later than t= (RFC 6376 §3.5): a lifetime under half a second still expires a second later.
  if (c.lifetimeHours && c.lifetimeHours > 0) f.add(`x=${nowSec + Math.max(1, Math.round(c.lifetimeHours * 3600))};`);
  if (c.bodyLengthLimit) f.add(`l=${bodyLength};`);
  // FWS may stand around the colons of h= (RFC 6376 §3.5).
  f.addPieces('h=', signedHeaders.map((name, i) => name + (i === signedHeaders.length - 1 ? ';' : ':')));
  if (c.copyHeaders) {
    const copies: string[] = [];
    for (const field of selectSignedFields(framed.fields, signedHeaders.map((n) => n.toLowerCase()))) {
      if (!field) continue;
      let vStart = field.colon + 1;
      let vEnd = field.end;
      if (framed.buf[vEnd - 1] === 0x0a && framed.buf[vEnd - 2] === 0x0d) vEnd -= 2;
      while (vStart < vEnd && (framed.buf[vStart] === 0x20 || framed.buf[vStart] === 0x09)) vStart++;
      const unfolded = Buffer.from(framed.buf.toString('latin1', vStart, vEnd).replace(/\r\n/g, ''), 'latin1');
      copies.push(`${field.name}:${dkimQuotedPrintable(unfolded)}`);
    }
    // FWS may stand anywhere in z= but inside an =XX escape (RFC 6376 §2.11): long copies are split too.
    if (copies.length > 0) f.addPieces('z=', copies.flatMap((copy, i) => splitQuotedPrintable(copy + (i === copies.length - 1 ? ';' : '|'), 64)));
  }
  f.addBase64('bh=', bodyHash.toString('base64'), ';');
  f.add('b=');
  return { prefix: f.toString(), folder: f };
}

/**
 * Why a message cannot get a signature any verifier accepts, or null: it needs exactly one From field
 * (RFC 5322 §3.6; a verifier gives every signature of a message with several dkim=policy, interface.md §2).
 */
function fromFieldProblem(framed: FramedMessage): string | null {
  let count = 0;
  for (const f of framed.fields) if (f.hasName('from')) count++;
  if (count === 0) return 'message has no From field';
  if (count > 1) return `message has ${count} From fields; RFC 5322 allows one, and verifiers reject every signature of such a message`;
  return null;
}

/** The body hashes the signers need (feed them to a BodyHasher while the body arrives). */
export function bodyHashSpecs(signers: readonly Signer[]): BodyHashSpec[] {
  return signers.map((s) => ({ canon: s.config.bodyCanon, hash: s.hashAlgorithm, limit: null }));
}

/**
 * Signs a message whose header is framed and whose body was hashed with `bodyHashSpecs(signers)`;
 * one field per signer, to be prepended in the returned order.
 */
export function signFramed(framed: FramedMessage, bodies: BodyHasher, signers: readonly Signer[], nowSec: number): SignOutcome {
  const fromProblem = fromFieldProblem(framed);
  if (fromProblem !== null) return { kind: 'error', reason: fromProblem };
  const specs = bodyHashSpecs(signers);
  const fields: string[] = [];
  for (let i = 0; i < signers.length; i++) {
    const signer = signers[i]!;
    const c = signer.config;
    const body = bodies.result(specs[i]!);
    const signedHeaders = chooseSignedHeaders(framed.fields, signer.headerListEntries);
    const { prefix, folder } = buildField(signer, framed, signedHeaders, body.digest, body.canonicalLength, nowSec);
    const selected = selectSignedFields(framed.fields, signedHeaders.map((n) => n.toLowerCase()));
    const prefixBytes = Buffer.from(`${prefix}\r\n`, 'latin1');
    const data = headerHashInput(c.headerCanon, framed.buf, selected, prefixBytes, prefixBytes.indexOf(0x3a));
    let signature: Buffer;
    try {
      signature =
        c.algorithm === 'ed25519-sha256'
          ? cryptoSign(null, createHash('sha256').update(data).digest(), c.privateKey)
          : cryptoSign(signer.hashAlgorithm, data, c.privateKey);
    } catch (err) {
      return { kind: 'error', reason: `signing with ${c.selector}._domainkey.${c.signingDomain} failed: ${(err as Error).message}` };
    }
    folder.addBase64('', signature.toString('base64'), '');
    fields.push(`${folder.toString()}\r\n`);
  }
  return { kind: 'signed', fields };
}

/** Signs a whole message held in memory; one field per signer, to be prepended in the returned order. */
export async function signMessage(message: Buffer, signers: readonly Signer[], nowSec: number): Promise<SignOutcome> {
  const framed = frameMessage(message);
  const fromProblem = fromFieldProblem(framed);
  if (fromProblem !== null) return { kind: 'error', reason: fromProblem };
  const bodies = new BodyHasher(bodyHashSpecs(signers));
  bodies.update(message.subarray(framed.bodyStart));
  bodies.finish();
  return signFramed(framed, bodies, signers, nowSec);
}

/** Copies of one field assumed for an "all copies" headerlist entry (Name+ / Name*) in the estimate below. */
const ALL_COPIES_ESTIMATE = 4;
/** z= is estimated, not bounded: copies of the signed fields, quoted-printable. */
const COPIED_HEADERS_ESTIMATE = 4096;

/**
 * An upper estimate of the bytes of the field this signer adds (CRLF included), for the SIZE we declare to the next
 * hop before the message arrives. Exact for everything but h= with Name+/Name* entries and z=, which are estimated.
 */
export function estimateSignatureFieldBytes(signer: Signer, keyBits: number): number {
  const c = signer.config;
  const signatureBytes = c.algorithm === 'ed25519-sha256' ? 64 : Math.ceil(keyBits / 8);
  let names = 0;
  for (const e of signer.headerListEntries) names += (e.name.length + 1) * (e.mode === 'all' || e.mode === 'all-assert' ? ALL_COPIES_ESTIMATE : 1);
  const unfolded =
    'DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;'.length +
    (4 + c.signingDomain.length) +
    (4 + c.selector.length) +
    (c.agentId ? 4 + c.agentId.length : 0) +
    3 * 24 + // t=, x=, l=
    (3 + names) +
    (c.copyHeaders ? COPIED_HEADERS_ESTIMATE : 0) +
    (5 + 44) +
    (3 + Math.ceil(signatureBytes / 3) * 4);
  // Folding adds CRLF + TAB at most every 70 characters.
  return unfolded + Math.ceil(unfolded / 70) * 3 + 2;
}
