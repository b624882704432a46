// Which header field instances a signature covers: h= selection bottom-up (RFC 6376 §5.4.2) and
// the signer's headerlist with Momentum's modifiers (Name, Name?, Name+, Name*; repeats oversign).
// Input: framed fields and validated name lists; pure.

import type { HeaderField } from '../mail/header-fields.js';

/** Groups field indexes by lower-cased name, top to bottom. */
function indexByName(fields: readonly HeaderField[]): Map<string, number[]> {
  const byName = new Map<string, number[]>();
  for (let i = 0; i < fields.length; i++) {
    const name = fields[i]!.lowerName;
    if (name === '') continue;
    const list = byName.get(name);
    if (list) list.push(i);
    else byName.set(name, [i]);
  }
  return byName;
}

/** Up to this many name comparisons, selection scans the fields; beyond, it indexes them by name (linear). */
const SCAN_BUDGET = 2048;

/**
 * For each h= name (lower-case ASCII, as the h= grammar allows), the field it covers: the n-th occurrence
 * of a name in h= takes the n-th instance from the bottom; null when none is left (the name then
 * contributes nothing, RFC 6376 §5.4.2).
 */
export function selectSignedFields(fields: readonly HeaderField[], signedHeaders: readonly string[]): (HeaderField | null)[] {
  const h = signedHeaders.length;
  if (h * (h + fields.length) <= SCAN_BUDGET) {
    // The common case: compare name bytes in place (no name strings, no maps), in plain loops (a
    // closure per name cost a third more), and only for fields whose name has the length sought.
    const selected: (HeaderField | null)[] = [];
    for (let j = 0; j < h; j++) {
      const name = signedHeaders[j]!;
      let n = 0;
      // Lengths first: most names differ in length, and comparing two distinct strings costs a call.
      for (let k = 0; k < j; k++) if (signedHeaders[k]!.length === name.length && signedHeaders[k] === name) n++;
      let found: HeaderField | null = null;
      for (let i = fields.length - 1; i >= 0; i--) {
        const f = fields[i]!;
        if (f.nameEnd - f.start === name.length && f.hasName(name) && n-- === 0) {
          found = f;
          break;
        }
      }
      selected.push(found);
    }
    return selected;
  }
  const byName = indexByName(fields);
  const used = new Map<string, number>();
  return signedHeaders.map((name) => {
    const list = byName.get(name);
    const n = used.get(name) ?? 0;
    used.set(name, n + 1);
    if (!list || n >= list.length) return null;
    return fields[list[list.length - 1 - n]!]!;
  });
}

export type HeaderListMode = 'one' | 'one-optional' | 'all' | 'all-assert';
export interface HeaderListEntry {
  /** As written, used in h=. */
  readonly name: string;
  readonly lowerName: string;
  readonly mode: HeaderListMode;
}

export type HeaderListParse =
  | { kind: 'ok'; entries: HeaderListEntry[]; /** The list without whitespace. */ normalized: string }
  | { kind: 'error'; reason: string };

/** At most this many headerlist entries: every limit is explicit. */
export const MAX_HEADERLIST_ENTRIES = 100;

// RFC 5322 §3.6.8 ftext without ";": a tag value cannot hold ";" (RFC 6376 §3.2), so such a name
// could never be written into h=. "?", "*" and "+" are taken as modifiers.
const FIELD_NAME = /^[\x21-\x39\x3c-\x7e]+$/;

/**
 * Parses a Momentum headerlist (the only parser of it: config validation uses it too): `Name`
 * signs one copy and, if none is left, asserts absence; `Name?` signs one copy, never asserts;
 * `Name+` signs all copies, never asserts; `Name*` signs all copies and asserts absence when there
 * is none. Listing a name twice oversigns it. From must be listed (RFC 6376 §5.4).
 */
export function parseHeaderList(list: string): HeaderListParse {
  const parts = list.split(':').map((part) => part.trim());
  if (parts.length > MAX_HEADERLIST_ENTRIES) {
    return { kind: 'error', reason: `lists ${parts.length} fields; at most ${MAX_HEADERLIST_ENTRIES} are allowed` };
  }
  const entries: HeaderListEntry[] = [];
  for (const [index, item] of parts.entries()) {
    if (item === '') {
      return { kind: 'error', reason: `entry ${index + 1} is empty; separate field names with single colons, e.g. "From:Subject:Date"` };
    }
    const last = item[item.length - 1];
    const mode: HeaderListMode = last === '?' ? 'one-optional' : last === '+' ? 'all' : last === '*' ? 'all-assert' : 'one';
    const name = mode === 'one' ? item : item.slice(0, -1);
    if (!FIELD_NAME.test(name) || /[?*+]/.test(name)) {
      return { kind: 'error', reason: `entry ${index + 1} ("${item.length > 40 ? `${item.slice(0, 40)}…` : item}") is a bad header name: use a field name with an optional trailing ?, * or +` };
    }
    entries.push({ name, lowerName: name.toLowerCase(), mode });
  }
  if (!entries.some((e) => e.lowerName === 'from')) {
    return { kind: 'error', reason: 'must include From (RFC 6376 §5.4: the From field must be signed)' };
  }
  return { kind: 'ok', entries, normalized: parts.join(':') };
}

/** The h= names for a message, in the headerlist's order (each name once per instance it covers or asserts absent). */
export function chooseSignedHeaders(fields: readonly HeaderField[], entries: readonly HeaderListEntry[]): string[] {
  // Small inputs (the common case) count by comparing name bytes in place.
  const byName = entries.length * fields.length <= SCAN_BUDGET ? null : indexByName(fields);
  const instances = (name: string): number => {
    if (byName) return byName.get(name)?.length ?? 0;
    let n = 0;
    for (const f of fields) if (f.hasName(name)) n++;
    return n;
  };
  const used = new Map<string, number>();
  const names: string[] = [];
  for (const entry of entries) {
    const available = instances(entry.lowerName) - (used.get(entry.lowerName) ?? 0);
    const take = entry.mode === 'one' || entry.mode === 'one-optional' ? Math.min(1, available) : available;
    for (let i = 0; i < take; i++) names.push(entry.name);
    used.set(entry.lowerName, (used.get(entry.lowerName) ?? 0) + take);
    // Asserting absence: a name listed once more than there are instances makes adding one break the signature.
    if (take === 0 && (entry.mode === 'one' || entry.mode === 'all-assert')) names.push(entry.name);
  }
  return names;
}
