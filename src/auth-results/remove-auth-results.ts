// Finds and cuts out incoming Authentication-Results fields that claim our authserv-id (RFC 8601 §5).
// Input: untrusted header bytes; reads only each A-R field's leading authserv-id, one pass, never throws.

import type { HeaderField } from '../mail/header-fields.js';

const SP = 0x20;
const HT = 0x09;
const CR = 0x0d;
const LF = 0x0a;
const DQUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN = 0x28;
const CLOSE = 0x29;
const DOT = 0x2e;

/**
 * Every Authentication-Results field whose authserv-id equals `authservId`, in header order.
 * RFC 8601 §2.2: authres-payload = [CFWS] authserv-id ..., authserv-id = value (RFC 2045 token or
 * quoted-string). Comments (nested, with quoted-pairs) and folding before the id are skipped; the id
 * is compared ignoring ASCII case and one trailing dot. Anything after the id (a version "1", ";",
 * garbage) does not matter: a field that starts with our id is removed, since a lenient reader
 * downstream would take it for ours. Fields of other ids, and fields whose id cannot be read
 * (an unterminated comment or quote), are kept: they do not claim to be ours.
 */
export function findOurAuthResults(fields: readonly HeaderField[], buf: Buffer, authservId: string): HeaderField[] {
  const ours = normalizeId(Buffer.from(authservId, 'utf8').toString('latin1'));
  const found: HeaderField[] = [];
  if (ours === '') return found;
  for (const field of fields) {
    if (!field.hasName('authentication-results')) continue;
    const id = readAuthservId(buf, field.colon + 1, Math.min(field.end, buf.length), ours.length + 256);
    if (id !== null && normalizeId(id) === ours) found.push(field);
  }
  return found;
}

/**
 * The message without `remove`, as slices of `buf` in order (no bytes copied; the last slice runs to
 * the end of `buf`, body included). Fields may come in any order; overlapping or out-of-range ones
 * are clamped. With nothing to remove the result is [buf].
 */
export function removeFields(buf: Buffer, remove: readonly HeaderField[]): Buffer[] {
  if (remove.length === 0) return [buf];
  const sorted = [...remove].sort((a, b) => a.start - b.start);
  const slices: Buffer[] = [];
  let pos = 0;
  for (const field of sorted) {
    const start = Math.max(pos, Math.min(field.start, buf.length));
    const end = Math.max(start, Math.min(field.end, buf.length));
    if (start > pos) slices.push(buf.subarray(pos, start));
    pos = end;
  }
  if (pos < buf.length) slices.push(buf.subarray(pos));
  return slices;
}

/**
 * Reads the authserv-id starting at `pos` (after the colon); null when there is none, it is
 * unterminated, or it is longer than `maxChars` (it cannot be ours then).
 */
function readAuthservId(buf: Buffer, pos: number, end: number, maxChars: number): string | null {
  // [CFWS]: whitespace, folding and comments, nested comments with quoted-pairs (RFC 5322 §3.2.2).
  let depth = 0;
  while (pos < end) {
    const b = buf[pos]!;
    if (depth > 0) {
      if (b === BACKSLASH) pos += 2;
      else {
        if (b === OPEN) depth++;
        else if (b === CLOSE) depth--;
        pos++;
      }
      continue;
    }
    if (b === SP || b === HT || b === CR || b === LF) pos++;
    else if (b === OPEN) {
      depth = 1;
      pos++;
    } else break;
  }
  if (pos >= end) return null;
  if (buf[pos] === DQUOTE) {
    // quoted-string: qtext and quoted-pairs up to the closing quote; folding inside is removed (RFC 5322 §3.2.4).
    let out = '';
    for (let i = pos + 1; i < end; i++) {
      const b = buf[i]!;
      if (b === DQUOTE) return out;
      if (b === BACKSLASH && i + 1 < end) out += String.fromCharCode(buf[++i]!);
      else if (b !== CR && b !== LF) out += String.fromCharCode(b);
      if (out.length > maxChars) return null;
    }
    return null;
  }
  let stop = pos;
  while (stop < end && isTokenByte(buf[stop]!)) stop++;
  return stop > pos && stop - pos <= maxChars ? buf.toString('latin1', pos, stop) : null;
}

/** RFC 2045 token: any CHAR except SPACE, CTLs and tspecials ()<>@,;:\"/[]?= ; bytes >= 0x80 are let in (UTF-8 ids). */
function isTokenByte(b: number): boolean {
  if (b <= SP || b === 0x7f) return false;
  switch (b) {
    case 0x28: case 0x29: case 0x3c: case 0x3e: case 0x40: case 0x2c: case 0x3b: case 0x3a:
    case 0x5c: case 0x22: case 0x2f: case 0x5b: case 0x5d: case 0x3f: case 0x3d:
      return false;
    default:
      return true;
  }
}

/** ASCII lower case, one trailing dot dropped, surrounding blanks trimmed (latin1 text). */
function normalizeId(id: string): string {
  let text = id.trim().replace(/[A-Z]+/g, (s) => s.toLowerCase());
  if (text.length > 1 && text.charCodeAt(text.length - 1) === DOT) text = text.slice(0, -1);
  return text;
}
