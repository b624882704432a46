// RFC 6376 §3.2 tag=value lists, as used by DKIM-Signature fields and key records.
// Input: untrusted text (latin1, bytes 1:1); returns a map or a reason, never throws.

export interface TagListError {
  kind: 'error';
  reason: 'duplicate_tag' | 'bad_tag_syntax';
  detail: string;
}

export type TagListParse = { kind: 'ok'; tags: Map<string, string> } | TagListError;

/**
 * Receives the tags of a list in order: the name is text[nameStart, nameEnd) (a valid tag-name), the
 * value text[valueStart, valueEnd) (FWS around it trimmed). Returns false when the name was seen before.
 */
export interface TagSink {
  put(text: string, nameStart: number, nameEnd: number, valueStart: number, valueEnd: number): boolean;
}

function isFws(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;
}

/** tag-name = ALPHA *ALNUMPUNC (ALNUMPUNC: letters, digits, "_"), for text[a, z). */
function isTagName(text: string, a: number, z: number): boolean {
  if (z <= a) return false;
  for (let i = a; i < z; i++) {
    const c = text.charCodeAt(i);
    const letter = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
    if (i === a ? !letter : !(letter || (c >= 0x30 && c <= 0x39) || c === 0x5f)) return false;
  }
  return true;
}

/**
 * Scans `tag=value; tag=value[;]` into `sink`; returns the first error, or null. Values keep interior
 * whitespace (callers strip it where the grammar allows FWS, e.g. b=, bh=, h=). Empty segments (";;")
 * are tolerated; a duplicated tag name is an error (RFC 6376 §3.2: "Tags with duplicate names MUST
 * NOT occur"). Works on offsets: the sink decides what becomes a string.
 */
export function scanTagList(text: string, sink: TagSink): TagListError | null {
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
    if (!isTagName(text, a, z)) {
      return { kind: 'error', reason: 'bad_tag_syntax', detail: `bad tag name: ${preview(text.slice(a, z))}` };
    }
    let va = eq + 1;
    let vz = semi;
    while (va < vz && isFws(text.charCodeAt(va))) va++;
    while (vz > va && isFws(text.charCodeAt(vz - 1))) vz--;
    if (!sink.put(text, a, z, va, vz)) return { kind: 'error', reason: 'duplicate_tag', detail: `duplicated tag ${text.slice(a, z)}=` };
    pos = semi + 1;
  }
  return null;
}

/** Every tag of a list, by name, in order (see scanTagList). */
export function parseTagList(text: string): TagListParse {
  const tags = new Map<string, string>();
  const error = scanTagList(text, {
    put(t, a, z, va, vz) {
      const name = t.slice(a, z);
      if (tags.has(name)) return false;
      tags.set(name, t.slice(va, vz));
      return true;
    },
  });
  return error ?? { kind: 'ok', tags };
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
