// RFC 6376 §3.2 tag=value lists, as used by DKIM-Signature fields and key records.
// Input: untrusted text (latin1, bytes 1:1); returns a map or a reason, never throws.

export type TagListParse =
  | { kind: 'ok'; tags: Map<string, string> }
  | { kind: 'error'; reason: 'duplicate_tag' | 'bad_tag_syntax'; detail: string };

const TAG_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;

/** Strips FWS (WSP and CRLF) from both ends. */
function trimFws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isFws(s.charCodeAt(a))) a++;
  while (b > a && isFws(s.charCodeAt(b - 1))) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

function isFws(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;
}

/**
 * Parses `tag=value; tag=value[;]`. Values keep interior whitespace (callers strip it where the
 * grammar allows FWS, e.g. b=, bh=, h=). Empty segments (";;") are tolerated; a duplicated tag
 * name is an error (RFC 6376 §3.2: "Tags with duplicate names MUST NOT occur").
 */
export function parseTagList(text: string): TagListParse {
  const tags = new Map<string, string>();
  let pos = 0;
  const len = text.length;
  while (pos <= len) {
    let semi = text.indexOf(';', pos);
    if (semi === -1) semi = len;
    const spec = text.slice(pos, semi);
    pos = semi + 1;
    const eq = spec.indexOf('=');
    if (eq === -1) {
      if (trimFws(spec) === '') continue;
      return { kind: 'error', reason: 'bad_tag_syntax', detail: `tag without "=": ${preview(spec)}` };
    }
    const name = trimFws(spec.slice(0, eq));
    if (!TAG_NAME.test(name)) {
      return { kind: 'error', reason: 'bad_tag_syntax', detail: `bad tag name: ${preview(name)}` };
    }
    if (tags.has(name)) return { kind: 'error', reason: 'duplicate_tag', detail: `duplicated tag ${name}=` };
    tags.set(name, trimFws(spec.slice(eq + 1)));
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
