// Base64 tag values as written in a header field, folding whitespace included (RFC 6376 §3.5 b=, bh=).
// Input: untrusted text (latin1); never throws. Checked and decoded without first making a copy
// without the whitespace: b= is the longest value of a signature and this runs for every one.

import { removeFws } from './tag-list.js';

/** What /^[A-Za-z0-9+/]*={0,2}$/ accepts once FWS (SP, HT, CR, LF) is removed. */
const FOLDED_BASE64 = /^[A-Za-z0-9+/ \t\r\n]*(?:=[ \t\r\n]*){0,2}$/;

function isFws(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;
}

/** `s` is base64 once its FWS is removed (it may be empty). */
export function isFoldedBase64(s: string): boolean {
  return FOLDED_BASE64.test(s);
}

/** The first `count` characters of `s` without its FWS. */
export function unfoldedPrefix(s: string, count: number): string {
  let end = 0;
  for (let kept = 0; end < s.length && kept < count; end++) if (!isFws(s.charCodeAt(end))) kept++;
  return removeFws(s.slice(0, end));
}

/**
 * Bytes of base64 with FWS inside; null when not base64, empty, or of a length no encoder writes
 * (4n+1 characters without FWS). `checked`: isFoldedBase64(s), when the caller knows it.
 */
export function decodeFoldedBase64(s: string, checked = isFoldedBase64(s)): Buffer | null {
  if (!checked) return null;
  // Buffer.from skips whitespace (documented), and k base64 characters decode to floor(6k / 8) bytes.
  const bytes = Buffer.from(s, 'base64');
  let pad = 0;
  for (let i = s.length - 1; i >= 0; i--) {
    const c = s.charCodeAt(i);
    if (c === 0x3d) pad++;
    else if (!isFws(c)) break;
  }
  // The byte count gives k except when it is a multiple of 3 (k = 4q or 4q + 1): then count them.
  const rest = bytes.length % 3;
  const k = rest === 0 ? removeFws(s).length - pad : ((bytes.length - rest) / 3) * 4 + rest + 1;
  const length = k + pad;
  return length === 0 || length % 4 === 1 ? null : bytes;
}
