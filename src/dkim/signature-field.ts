// The signature's own field as it enters the header hash: b= emptied (RFC 6376 §3.7), no final CRLF;
// and the whole header hash input. Input: raw bytes of header fields (untrusted); linear.

import type { HeaderField } from '../mail/header-fields.js';
import { canonicalizeHeaderInto, relaxedInto, simpleInto } from './canonicalize-header.js';
import type { Canonicalization } from './signature.js';
import { relaxedFields } from './wasm/body-scan.js';

const SEMI = 0x3b;
const EQ = 0x3d;

function isFws(b: number | undefined): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0d || b === 0x0a;
}

/**
 * Where the value of the (first) b= tag lies in the field bytes, including its surrounding whitespace:
 * [from, to). The field's final CRLF is never part of it. null when there is no b= tag.
 */
export function findBValue(field: Buffer, colon: number): [number, number] | null {
  let segStart = colon + 1;
  let eq = -1; // the first "=" at or after segStart, found once for every segment it lies beyond
  while (segStart <= field.length) {
    let segEnd = field.indexOf(SEMI, segStart);
    if (segEnd === -1) segEnd = field.length;
    if (eq < segStart) {
      eq = field.indexOf(EQ, segStart);
      if (eq === -1) return null;
    }
    if (eq < segEnd) {
      let a = segStart;
      let z = eq;
      while (a < z && isFws(field[a])) a++;
      while (z > a && isFws(field[z - 1])) z--;
      if (z - a === 1 && field[a] === 0x62 /* b */) {
        // Keep the field's final CRLF (if the tag is last) so canonicalization sees a whole field.
        let valueEnd = segEnd;
        if (segEnd === field.length && field[valueEnd - 2] === 0x0d && field[valueEnd - 1] === 0x0a) valueEnd -= 2;
        return [eq + 1, valueEnd];
      }
    }
    segStart = segEnd + 1;
  }
  return null;
}

/** Copy of the field bytes with the value of the (first) b= tag removed, including its surrounding whitespace. */
export function withEmptyB(field: Buffer, colon: number): Buffer {
  const b = findBValue(field, colon);
  return b === null ? field : Buffer.concat([field.subarray(0, b[0]), field.subarray(b[1])]);
}

/** The canonicalized signature field for hashing: b= empty, no trailing CRLF (RFC 6376 §3.7). */
export function canonicalizeSignatureField(canon: Canonicalization, field: Buffer, colon: number): Buffer {
  const out = Buffer.allocUnsafe(field.length + 2);
  return out.subarray(0, canonicalizeSignatureFieldInto(canon, field, colon, out, 0));
}

/**
 * canonicalizeSignatureField written to `out` at `o` (no copy of the field with b= emptied is made);
 * returns the end offset. `out` needs field.length + 2 bytes from `o`. `b`: findBValue(field, colon),
 * when the caller knows it.
 */
export function canonicalizeSignatureFieldInto(
  canon: Canonicalization,
  field: Buffer,
  colon: number,
  out: Buffer,
  o: number,
  b: readonly [number, number] | null = findBValue(field, colon),
): number {
  const skipFrom = b === null ? -1 : b[0];
  const skipTo = b === null ? -1 : b[1];
  // Both canonicalizations end the field with CRLF; the signature field enters the hash without it.
  return canon === 'relaxed'
    ? relaxedInto(field, 0, field.length, skipFrom, skipTo, out, o) - 2
    : simpleInto(field, 0, field.length, skipFrom, skipTo, out, o) - 2;
}

/**
 * The header hash input (RFC 6376 §3.7) in one buffer: the selected fields of `buf` (null: nothing),
 * then the signature field with b= emptied and without its final CRLF. relaxed runs in WebAssembly
 * (one call for all fields). `bValue`: findBValue(signatureField, signatureColon), when the caller
 * knows it.
 */
export function headerHashInput(
  canon: Canonicalization,
  buf: Buffer,
  selected: readonly (HeaderField | null)[],
  signatureField: Buffer,
  signatureColon: number,
  bValue: readonly [number, number] | null = findBValue(signatureField, signatureColon),
): Buffer {
  if (canon === 'relaxed') {
    const fields: HeaderField[] = [];
    let lo = buf.length;
    let hi = 0;
    for (const f of selected) {
      if (!f) continue;
      fields.push(f);
      if (f.start < lo) lo = f.start;
      if (f.end > hi) hi = f.end;
    }
    if (hi < lo) lo = hi = 0;
    const out = relaxedFields(buf, lo, hi, fields, {
      buf: signatureField,
      start: 0,
      end: signatureField.length,
      skipFrom: bValue === null ? -1 : bValue[0],
      skipTo: bValue === null ? -1 : bValue[1],
    });
    // The signature field enters the hash without its final CRLF.
    return out.subarray(0, out.length - 2);
  }
  // Canonical forms are at most 2 bytes longer than the fields.
  let size = signatureField.length + 2;
  for (const f of selected) if (f) size += f.end - f.start + 2;
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  for (const f of selected) if (f) o = canonicalizeHeaderInto(canon, buf, f.start, f.end, out, o);
  o = canonicalizeSignatureFieldInto(canon, signatureField, signatureColon, out, o, bValue);
  return out.subarray(0, o);
}
