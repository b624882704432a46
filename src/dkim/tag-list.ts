// RFC 6376 §3.2 tag=value lists, as used by DKIM-Signature fields and key records.
// Input: untrusted text (latin1, bytes 1:1); returns a map or a reason, never throws.

export type TagListParse =
  | { kind: 'ok'; tags: Map<string, string> }
  | { kind: 'error'; reason: 'duplicate_tag' | 'bad_tag_syntax'; detail: string };

function isFws(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;
}

/** tag-name = ALPHA *ALNUMPUNC (ALNUMPUNC: letters, digits, "_"). */
function isTagName(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const letter = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
    if (i === 0 ? !letter : !(letter || (c >= 0x30 && c <= 0x39) || c === 0x5f)) return false;
  }
  return true;
}

/**
 * Parses `tag=value; tag=value[;]`. Values keep interior whitespace (callers strip it where the
 * grammar allows FWS, e.g. b=, bh=, h=). Empty segments (";;") are tolerated; a duplicated tag
 * name is an error (RFC 6376 §3.2: "Tags with duplicate names MUST NOT occur").
 * Works on offsets: only names and values become strings.
 */
export function parseTagList(text: string): TagListParse {
  const tags = new Map<string, string>();
  const len = text.length;
  let pos = 0;
  let eq = -1; // the first "=" at or after pos (found once for every segment it lies beyond), len when none
  while (pos <= len) {
    let semi = text.indexOf(';', pos);
    if (semi === -1) semi = len;
    if (eq < pos) {
      eq = text.indexOf('=', pos);
      if (eq === -1) eq = len;
    }
    let a = pos;
    if (eq >= semi) {
      while (a < semi && isFws(text.charCodeAt(a))) a++;
      if (a === semi) {
        pos = semi + 1;
        continue;
      }
      return { kind: 'error', reason: 'bad_tag_syntax', detail: `tag without "=": ${preview(text.slice(pos, semi))}` };
    }
    let z = eq;
    while (a < z && isFws(text.charCodeAt(a))) a++;
    while (z > a && isFws(text.charCodeAt(z - 1))) z--;
    const name = text.slice(a, z);
    if (!isTagName(name)) {
      return { kind: 'error', reason: 'bad_tag_syntax', detail: `bad tag name: ${preview(name)}` };
    }
    if (tags.has(name)) return { kind: 'error', reason: 'duplicate_tag', detail: `duplicated tag ${name}=` };
    a = eq + 1;
    z = semi;
    while (a < z && isFws(text.charCodeAt(a))) a++;
    while (z > a && isFws(text.charCodeAt(z - 1))) z--;
    tags.set(name, text.slice(a, z));
    pos = semi + 1;
  }
  return { kind: 'ok', tags };
}

/** Removes every FWS character (for base64 and colon-separated values, RFC 6376 §3.5). */
export function removeFws(s: string): string {
  return /[\s]/.test(s) ? s.replace(/[ \t\r\n]+/g, '') : s;
}

/** A short, printable excerpt of untrusted text for reasons and logs. */
export function preview(s: string, max = 40): string {
  const printable = s.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > max ? `${printable.slice(0, max)}…` : printable;
}
