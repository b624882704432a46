// What the DKIM engine needs from DNS: one TXT lookup with an outcome from a closed set.
// Input: none; the DNS adapter (src/dns) implements this, tests pass a table.

/** The outcome of one TXT lookup (RFC 6376 §3.6.2.2). `records` holds one string per TXT record, its character-strings concatenated. */
export type TxtLookupOutcome =
  | { kind: 'found'; records: string[] }
  | { kind: 'nxdomain' }
  | { kind: 'nodata' }
  /** The answer's records hold more than MAX_TXT_ANSWER_BYTES: refused unread (a key record is under 3 KB). */
  | { kind: 'too_large'; bytes: number }
  | { kind: 'timeout' }
  | { kind: 'servfail' };

/** Looks up the TXT records at `name` (a fully qualified name without the trailing dot). Never rejects. */
export type TxtLookup = (name: string) => Promise<TxtLookupOutcome>;

/** TXT answers (all records at a name, strings joined) larger than this are refused: dkim=permerror. */
export const MAX_TXT_ANSWER_BYTES = 16384;
