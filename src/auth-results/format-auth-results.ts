// RFC 8601 Authentication-Results field for DKIM verdicts, with RFC 6008 header.b.
// Input: verdicts whose values came from untrusted signatures: every value is emitted as a token
// or a quoted-string, never raw, so a sender cannot inject results or fields.

import type { SignatureVerdict } from '../dkim/verify.js';
import { PHRASE_BY_REASON } from '../dkim/results.js';

const LINE_LIMIT = 78;
// A property value longer than this is left out: nothing legitimate is that long (an address is at
// most 254 octets) and no field line may exceed 998 characters (RFC 5322 §2.1.1).
const MAX_VALUE_CHARS = 255;
// RFC 2045 token: no SPACE, CTLs or tspecials.
const TOKEN = /^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+$/;
// RFC 8601 §2.2 pvalue: [ [ local-part ] "@" ] domain-name, with a dot-atom local part.
const ADDRESS = /^(?:[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*)?@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/;

/** A value as a token, or as a quoted-string with `"` and `\` escaped and non-printable bytes replaced. */
export function formatValue(value: string): string {
  if (TOKEN.test(value)) return value;
  const safe = value.replace(/[^\x20-\x7e]/g, '?').replace(/["\\]/g, (c) => `\\${c}`);
  return `"${safe}"`;
}

function formatAddressValue(value: string): string {
  return ADDRESS.test(value) ? value : formatValue(value);
}

/** A comment with its parentheses and backslashes escaped (RFC 5322 §3.2.2). */
function formatComment(text: string): string {
  return `(${text.replace(/[^\x20-\x7e]/g, '?').replace(/[()\\]/g, (c) => `\\${c}`)})`;
}

/**
 * header.b of each verdict: its first 8 characters of b=, or more where another signature's b= starts
 * the same (RFC 6008 §4), so a reader can tell which signature a result is for. Signatures with the same
 * b= (as far as it was kept) cannot be told apart and do not lengthen each other. Sorted, so each value
 * is compared with its two neighbours only: linear in the signatures, not quadratic.
 */
function uniqueHeaderBs(verdicts: readonly SignatureVerdict[]): (string | null)[] {
  const full = verdicts.map((v) => v.bPrefix ?? null);
  const distinct = [...new Set(full.filter((b): b is string => b !== null && b !== ''))].sort();
  const length = new Map<string, number>();
  distinct.forEach((b, k) => {
    const shared = Math.max(k > 0 ? commonPrefixLength(b, distinct[k - 1]!) : 0, k + 1 < distinct.length ? commonPrefixLength(b, distinct[k + 1]!) : 0);
    length.set(b, Math.max(8, shared + 1));
  });
  return verdicts.map((v, i) => {
    const b = full[i];
    return b ? b.slice(0, length.get(b)) : v.headerB;
  });
}

function commonPrefixLength(a: string, b: string): number {
  let n = 0;
  while (n < a.length && n < b.length && a.charCodeAt(n) === b.charCodeAt(n)) n++;
  return n;
}

/** The resinfo words of one verdict: "dkim=pass", a comment, then the header.* properties. */
function resinfoWords(v: SignatureVerdict, headerB: string | null): string[] {
  const words = [`dkim=${v.result}`];
  const notes: string[] = [];
  if (v.reason) notes.push(PHRASE_BY_REASON[v.reason]);
  else if (v.keyBits) notes.push(`${v.keyBits}-bit key`);
  if (v.testing) notes.push('test mode');
  if (notes.length > 0) words.push(formatComment(notes.join(', ')));
  const property = (name: string, value: string | null, format: (v: string) => string) => {
    if (value && value.length <= MAX_VALUE_CHARS) words.push(`${name}=${format(value)}`);
  };
  property('header.d', v.domain, formatValue);
  property('header.i', v.identity, formatAddressValue);
  property('header.s', v.selector, formatValue);
  property('header.a', v.algorithm, formatValue);
  property('header.b', headerB, formatValue);
  return words;
}

export interface FormattedAuthResults {
  /** The field folded to lines of at most 78 characters, CRLF-terminated, ready to prepend. */
  readonly field: string;
  /** The same field on one line, without CRLF (for logs and JSON). */
  readonly unfolded: string;
}

/** Formats our Authentication-Results field; no verdicts means `dkim=none`. Never more than max_signatures + 1 resinfos. */
export function formatAuthResults(authservId: string, verdicts: readonly SignatureVerdict[]): FormattedAuthResults {
  // Signatures beyond max_signatures share one resinfo: a header of thousands of signatures must not
  // make our field (and the message we relay) grow with them (reliability.md invariant 6).
  const skipped = verdicts.filter((v) => v.reason === 'not_evaluated').length;
  const listed = skipped > 1 ? verdicts.filter((v) => v.reason !== 'not_evaluated') : verdicts;
  const headerBs = uniqueHeaderBs(listed);
  const resinfos = verdicts.length === 0 ? [['dkim=none']] : listed.map((v, i) => resinfoWords(v, headerBs[i] ?? null));
  if (skipped > 1) resinfos.push(['dkim=neutral', formatComment(`${skipped} signatures beyond max_signatures, not evaluated`)]);
  const head = `Authentication-Results: ${formatValue(authservId)}`;
  const unfolded = `${head}; ${resinfos.map((r) => r.join(' ')).join('; ')}`;
  let field = `${head};`;
  let lineLength = field.length;
  resinfos.forEach((words, i) => {
    const last = i === resinfos.length - 1;
    field += '\r\n\t';
    lineLength = 1;
    words.forEach((word, j) => {
      const piece = j === words.length - 1 && !last ? `${word};` : word;
      if (j > 0 && lineLength + 1 + piece.length > LINE_LIMIT) {
        field += '\r\n\t';
        lineLength = 1;
      } else if (j > 0) {
        field += ' ';
        lineLength++;
      }
      field += piece;
      lineLength += piece.length;
    });
  });
  return { field: `${field}\r\n`, unfolded };
}

/** Upper bound of one resinfo's characters: result, comment, four properties of at most MAX_VALUE_CHARS escaped, folding. */
const MAX_RESINFO_CHARS = 2400;

/** Upper bound of the bytes of our field for a message verified with max_signatures (CRLF included). */
export function maxAuthResultsBytes(authservId: string, maxSignatures: number): number {
  return 40 + 2 * authservId.length + (maxSignatures + 1) * MAX_RESINFO_CHARS;
}
