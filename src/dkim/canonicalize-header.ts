// Header canonicalization (RFC 6376 §3.4.1, §3.4.2) of single fields, on bytes.
// Input: untrusted header bytes; linear in the field size, whatever its folding.

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HT = 0x09;
const COLON = 0x3a;

/** simple: the field unchanged, CRLF-terminated. `end` excludes nothing: pass the field's full range. */
export function canonicalizeHeaderSimple(buf: Buffer, start: number, end: number): Buffer {
  const field = buf.subarray(start, end);
  if (end - start >= 2 && buf[end - 2] === CR && buf[end - 1] === LF) return field;
  return Buffer.concat([field, Buffer.from('\r\n')]);
}

/**
 * relaxed: lower-case name, no WSP around the colon, unfolded, WSP runs reduced to one SP,
 * no WSP at the end of the value; CRLF-terminated. Byte loop: linear, no regular expressions.
 */
export function canonicalizeHeaderRelaxed(buf: Buffer, start: number, end: number): Buffer {
  const out = Buffer.allocUnsafe(end - start + 2);
  let o = 0;
  let i = start;
  // Name: lower-cased, WSP before the colon dropped.
  let nameEnd = o;
  for (; i < end; i++) {
    const b = buf[i]!;
    if (b === COLON) break;
    if (b === CR || b === LF) continue;
    out[o++] = b >= 0x41 && b <= 0x5a ? b + 0x20 : b;
    if (b !== SP && b !== HT) nameEnd = o;
  }
  o = nameEnd;
  out[o++] = COLON;
  i++;
  // Value: CR and LF removed (unfolding), WSP runs -> one SP, none at either end.
  let pendingSpace = false;
  let seenContent = false;
  for (; i < end; i++) {
    const b = buf[i]!;
    if (b === CR || b === LF) continue;
    if (b === SP || b === HT) {
      pendingSpace = seenContent;
      continue;
    }
    if (pendingSpace) {
      out[o++] = SP;
      pendingSpace = false;
    }
    out[o++] = b;
    seenContent = true;
  }
  out[o++] = CR;
  out[o++] = LF;
  return out.subarray(0, o);
}

export function canonicalizeHeader(canon: 'simple' | 'relaxed', buf: Buffer, start: number, end: number): Buffer {
  return canon === 'relaxed' ? canonicalizeHeaderRelaxed(buf, start, end) : canonicalizeHeaderSimple(buf, start, end);
}
