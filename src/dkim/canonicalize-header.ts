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
  return out.subarray(0, relaxedInto(buf, start, end, -1, -1, out, 0));
}

/**
 * relaxed canonicalization of bytes [start, end) without the bytes [skipFrom, skipTo) (a range after
 * the colon, or skipFrom = -1), written to `out` at `o`; returns the offset after the final CRLF.
 * `out` needs room for end - start + 2 bytes. Writing in place lets callers build the whole
 * header hash input in one buffer.
 */
export function relaxedInto(buf: Buffer, start: number, end: number, skipFrom: number, skipTo: number, out: Buffer, o: number): number {
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
  const valueStart = o;
  if (skipTo > skipFrom && skipFrom > i) {
    o = relaxedValue(buf, i + 1, skipFrom, out, o, valueStart);
    o = relaxedValue(buf, skipTo, end, out, o, valueStart);
  } else {
    o = relaxedValue(buf, i + 1, end, out, o, valueStart);
  }
  // No WSP at the end of the value.
  if (o > valueStart && out[o - 1] === SP) o--;
  out[o++] = CR;
  out[o++] = LF;
  return o;
}

/**
 * Value bytes [from, to) of a relaxed field written at `o`: CR and LF removed (unfolding), each WSP run
 * after the value's first content (at valueStart) written as one SP. All state is in `out`, so a value
 * may be written in several ranges.
 */
function relaxedValue(buf: Buffer, from: number, to: number, out: Buffer, o: number, valueStart: number): number {
  for (let i = from; i < to; i++) {
    const b = buf[i]!;
    // CR, LF, SP and HT are all <= SP: one comparison for the common case of a visible byte.
    if (b > SP) {
      out[o++] = b;
    } else if (b === SP || b === HT) {
      if (o > valueStart && out[o - 1] !== SP) out[o++] = SP;
    } else if (b !== CR && b !== LF) {
      out[o++] = b;
    }
  }
  return o;
}

/**
 * simple canonicalization of bytes [start, end) without [skipFrom, skipTo) (or skipFrom = -1), written
 * to `out` at `o`, CRLF-terminated; returns the offset after the CRLF. `out` needs end - start + 2 bytes.
 */
export function simpleInto(buf: Buffer, start: number, end: number, skipFrom: number, skipTo: number, out: Buffer, o: number): number {
  const o0 = o;
  if (skipTo > skipFrom && skipFrom >= start) {
    o += buf.copy(out, o, start, skipFrom);
    start = skipTo;
  }
  o += buf.copy(out, o, start, end);
  if (!(o - o0 >= 2 && out[o - 2] === CR && out[o - 1] === LF)) {
    out[o++] = CR;
    out[o++] = LF;
  }
  return o;
}

export function canonicalizeHeader(canon: 'simple' | 'relaxed', buf: Buffer, start: number, end: number): Buffer {
  return canon === 'relaxed' ? canonicalizeHeaderRelaxed(buf, start, end) : canonicalizeHeaderSimple(buf, start, end);
}

/** canonicalizeHeader into `out` at `o` (see relaxedInto); returns the offset after the final CRLF. */
export function canonicalizeHeaderInto(canon: 'simple' | 'relaxed', buf: Buffer, start: number, end: number, out: Buffer, o: number): number {
  return canon === 'relaxed' ? relaxedInto(buf, start, end, -1, -1, out, o) : simpleInto(buf, start, end, -1, -1, out, o);
}
