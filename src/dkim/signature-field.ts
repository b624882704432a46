// The signature's own field as it enters the header hash: b= emptied (RFC 6376 §3.7), no final CRLF.
// Input: raw bytes of one DKIM-Signature field (untrusted); linear.

import { canonicalizeHeader } from './canonicalize-header.js';
import type { Canonicalization } from './signature.js';

const SEMI = 0x3b;
const EQ = 0x3d;

function isFws(b: number | undefined): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0d || b === 0x0a;
}

/** Copy of the field bytes with the value of the (first) b= tag removed, including its surrounding whitespace. */
export function withEmptyB(field: Buffer, colon: number): Buffer {
  let segStart = colon + 1;
  // Found once and reused (like nextColon in header-fields.ts), so runs of ";;;" stay linear.
  let nextEq = -2;
  while (segStart <= field.length) {
    let segEnd = field.indexOf(SEMI, segStart);
    if (segEnd === -1) segEnd = field.length;
    if (nextEq !== -1 && nextEq < segStart) nextEq = field.indexOf(EQ, segStart);
    const eq = nextEq;
    if (eq !== -1 && eq < segEnd) {
      let a = segStart;
      let z = eq;
      while (a < z && isFws(field[a])) a++;
      while (z > a && isFws(field[z - 1])) z--;
      if (z - a === 1 && field[a] === 0x62 /* b */) {
        // Keep the field's final CRLF (if the tag is last) so canonicalization sees a whole field.
        let valueEnd = segEnd;
        if (segEnd === field.length && field[valueEnd - 2] === 0x0d && field[valueEnd - 1] === 0x0a) valueEnd -= 2;
        return Buffer.concat([field.subarray(0, eq + 1), field.subarray(valueEnd)]);
      }
    }
    segStart = segEnd + 1;
  }
  return field;
}

/** The canonicalized signature field for hashing: b= empty, no trailing CRLF (RFC 6376 §3.7). */
export function canonicalizeSignatureField(canon: Canonicalization, field: Buffer, colon: number): Buffer {
  const emptied = withEmptyB(field, colon);
  const c = canonicalizeHeader(canon, emptied, 0, emptied.length);
  return c.subarray(0, c.length - 2);
}
