// Parses DNS master-file text (RFC 1035 §5) and keeps its TXT records, for static key records.
// Input: operator-supplied text, untrusted in shape; one linear pass, never throws, touches nothing.

/** One TXT record of a zone file: its owner and its character-strings, in file order. */
export type ZoneTxtRecord = {
  /** Absolute, ASCII lower-case, without the trailing dot; the root is ''. */
  name: string;
  /** The record's TTL in seconds (explicit, else $TTL, else the last explicit TTL), or null if none was stated. */
  ttl: number | null;
  /** The character-strings, escapes decoded, each a latin1 string of at most 255 octets (as node:dns returns them). */
  strings: string[];
};

export type ZoneParse =
  | { kind: 'ok'; records: ZoneTxtRecord[] }
  | { kind: 'error'; line: number; message: string };

export type ZoneParseOptions = {
  /** The initial origin for relative names and `@` (absolute; a trailing dot is optional). */
  origin?: string;
  /** The file's name, only to make messages clearer. */
  fileName?: string;
};

type Token = {
  /** The token as written, escapes kept; for a quoted token, without the quotes. */
  raw: string;
  quoted: boolean;
  line: number;
};

type Entry = {
  line: number;
  /** True when the entry's first line starts with blank space: the owner is the previous one. */
  ownerBlank: boolean;
  tokens: Token[];
};

type Fail = { kind: 'error'; line: number; message: string };

const MAX_TTL = 2147483647; // RFC 2181 §8
const MAX_STRING_OCTETS = 255; // RFC 1035 §3.3
const MAX_LABEL_OCTETS = 63; // RFC 1035 §2.3.4
const MAX_NAME_CHARS = 253; // 255 octets on the wire, RFC 1035 §2.3.4
const SHOWN_CHARS = 40;

/** Parses master-file text; keeps TXT records of class IN, skips other types, refuses $INCLUDE. */
export function parseZoneFile(text: string, opts: ZoneParseOptions = {}): ZoneParse {
  try {
    return parseEntries(text, opts);
  } catch (err) {
    // Not expected: the parser reports every problem as a value. Kept so a bug cannot crash start-up with a stack trace.
    return { kind: 'error', line: 0, message: `internal zone parser error: ${String(err)}` };
  }
}

function parseEntries(text: string, opts: ZoneParseOptions): ZoneParse {
  let origin: string | null = null;
  if (opts.origin !== undefined) {
    const parsed = parseName(opts.origin.endsWith('.') ? opts.origin : `${opts.origin}.`, null, 0);
    if (typeof parsed !== 'string') return { kind: 'error', line: 0, message: `invalid origin: ${parsed.message}` };
    origin = parsed;
  }
  const lexed = lexEntries(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  if (!Array.isArray(lexed)) return lexed;

  const records: ZoneTxtRecord[] = [];
  let previousOwner: string | null = null;
  let defaultTtl: number | null = null;
  let lastExplicitTtl: number | null = null;

  for (const entry of lexed) {
    const first = entry.tokens[0];
    if (first === undefined) continue;
    let index = 0;
    let owner: string;
    if (entry.ownerBlank) {
      if (previousOwner === null) {
        return fail(entry.line, 'the first record has no owner name (a line that starts with blank space reuses the previous owner)');
      }
      owner = previousOwner;
    } else {
      if (!first.quoted && first.raw.startsWith('$')) {
        const directive = applyDirective(entry, origin);
        if (directive.kind === 'error') return directive;
        if (directive.kind === 'origin') origin = directive.origin;
        else defaultTtl = directive.ttl;
        continue;
      }
      if (first.quoted) return fail(first.line, `an owner name must not be quoted: "${shown(first.raw)}"`);
      const name = parseName(first.raw, origin, first.line);
      if (typeof name !== 'string') return name;
      owner = name;
      previousOwner = name;
      index = 1;
    }

    // RFC 1035 §5.1: [<TTL>] [<class>] <type> <RDATA>, TTL and class in either order.
    let ttl: number | null = null;
    let recordClass: string | null = null;
    let typeToken: Token | undefined;
    for (; index < entry.tokens.length; index++) {
      const token = entry.tokens[index] as Token;
      if (!token.quoted && isDigit(token.raw.charCodeAt(0))) {
        if (ttl !== null) return fail(token.line, `a second TTL "${shown(token.raw)}" in one record`);
        const parsedTtl = parseTtl(token.raw);
        if (parsedTtl === null) return fail(token.line, `invalid TTL "${shown(token.raw)}" (seconds 0-${MAX_TTL}, or units like 1h30m)`);
        ttl = parsedTtl;
        continue;
      }
      if (!token.quoted && isClass(token.raw)) {
        if (recordClass !== null) return fail(token.line, `a second class "${shown(token.raw)}" in one record`);
        recordClass = token.raw.toUpperCase();
        continue;
      }
      typeToken = token;
      index++;
      break;
    }
    if (typeToken === undefined) return fail(entry.line, `record for "${displayName(owner)}" has no type`);
    if (typeToken.quoted || !/^[A-Za-z][A-Za-z0-9-]*$/.test(typeToken.raw)) {
      return fail(typeToken.line, `expected a record type (TXT, A, MX, …), found "${shown(typeToken.raw)}"`);
    }
    if (ttl !== null) lastExplicitTtl = ttl;
    const type = typeToken.raw.toUpperCase();
    if (type === 'TYPE16') return fail(typeToken.line, 'the generic TYPE16 form is not supported: write TXT with quoted strings');
    if (type !== 'TXT' || (recordClass !== null && recordClass !== 'IN')) continue;

    const strings: string[] = [];
    for (; index < entry.tokens.length; index++) {
      const token = entry.tokens[index] as Token;
      const decoded = decodeText(token.raw);
      if (typeof decoded !== 'string') return fail(token.line, decoded.error);
      if (decoded.length > MAX_STRING_OCTETS) {
        return fail(token.line, `a TXT character-string is ${decoded.length} octets, over the limit of ${MAX_STRING_OCTETS}: split it into several quoted strings`);
      }
      strings.push(decoded);
    }
    if (strings.length === 0) return fail(typeToken.line, `TXT record for "${displayName(owner)}" has no strings`);
    records.push({ name: owner, ttl: ttl ?? defaultTtl ?? lastExplicitTtl, strings });
  }
  return { kind: 'ok', records };

  function applyDirective(
    entry: Entry,
    currentOrigin: string | null,
  ): Fail | { kind: 'origin'; origin: string } | { kind: 'ttl'; ttl: number } {
    const [directive, argument, extra] = entry.tokens as [Token, Token | undefined, Token | undefined];
    const word = directive.raw.toUpperCase();
    if (word === '$INCLUDE') {
      const where = opts.fileName === undefined ? '' : ` (in ${opts.fileName})`;
      return fail(directive.line, `$INCLUDE is not supported${where}: pass each file with its own --dns-zone`);
    }
    if (word !== '$ORIGIN' && word !== '$TTL') {
      return fail(directive.line, `unknown directive "${shown(directive.raw)}" (supported: $ORIGIN, $TTL)`);
    }
    if (argument === undefined) return fail(directive.line, `${word} needs a value`);
    if (extra !== undefined) return fail(extra.line, `${word} takes one value, found also "${shown(extra.raw)}"`);
    if (argument.quoted) return fail(argument.line, `${word} value must not be quoted`);
    if (word === '$TTL') {
      const ttl = parseTtl(argument.raw);
      if (ttl === null) return fail(argument.line, `invalid $TTL "${shown(argument.raw)}" (seconds 0-${MAX_TTL}, or units like 1h30m)`);
      return { kind: 'ttl', ttl };
    }
    const name = parseName(argument.raw, currentOrigin, argument.line);
    if (typeof name !== 'string') return name;
    return { kind: 'origin', origin: name };
  }
}

/** Splits the text into entries (one per record or directive; parentheses join lines). */
function lexEntries(text: string): Entry[] | Fail {
  const entries: Entry[] = [];
  const length = text.length;
  let line = 1;
  let depth = 0;
  let parenLine = 0;
  let entry: Entry | null = null;
  let atLineStart = true;
  let i = 0;

  while (i < length) {
    const c = text.charCodeAt(i);
    if (c === 0x0a) {
      if (depth === 0 && entry !== null) {
        if (entry.tokens.length > 0) entries.push(entry);
        entry = null;
      }
      line++;
      atLineStart = true;
      i++;
      continue;
    }
    if (atLineStart) {
      atLineStart = false;
      if (depth === 0) entry = { line, ownerBlank: isBlank(c) || c === 0x28 /* ( */, tokens: [] };
    }
    const current = entry as Entry;
    if (isBlank(c)) {
      i++;
    } else if (c === 0x3b /* ; */) {
      const newline = text.indexOf('\n', i);
      i = newline === -1 ? length : newline;
    } else if (c === 0x28 /* ( */) {
      if (depth === 0) parenLine = line;
      depth++;
      i++;
    } else if (c === 0x29 /* ) */) {
      if (depth === 0) return fail(line, '")" without a matching "("');
      depth--;
      i++;
    } else if (c === 0x22 /* " */) {
      const start = i + 1;
      let j = start;
      for (;;) {
        if (j >= length) return fail(line, 'unterminated quoted string');
        const d = text.charCodeAt(j);
        if (d === 0x22) break;
        if (d === 0x0a) return fail(line, 'unterminated quoted string (a quoted string cannot span lines)');
        if (d === 0x5c /* \ */) {
          const next = text.charCodeAt(j + 1);
          if (j + 1 >= length || next === 0x0a) return fail(line, 'backslash at the end of a line');
          j += 2;
        } else {
          j++;
        }
      }
      current.tokens.push({ raw: text.slice(start, j), quoted: true, line });
      i = j + 1;
    } else {
      const start = i;
      let j = i;
      while (j < length) {
        const d = text.charCodeAt(j);
        if (d === 0x5c) {
          const next = text.charCodeAt(j + 1);
          if (j + 1 >= length || next === 0x0a) return fail(line, 'backslash at the end of a line');
          j += 2;
          continue;
        }
        if (d === 0x0a || isBlank(d) || d === 0x3b || d === 0x28 || d === 0x29) break;
        j++;
      }
      current.tokens.push({ raw: text.slice(start, j), quoted: false, line });
      i = j;
    }
  }
  if (depth > 0) return fail(parenLine, '"(" is never closed');
  if (entry !== null && entry.tokens.length > 0) entries.push(entry);
  return entries;
}

/**
 * Resolves a name token against the origin (RFC 1035 §5.1): `@`, absolute (trailing dot) or relative.
 * Returns the absolute lower-case name without the trailing dot, or a failure naming the line.
 */
function parseName(raw: string, origin: string | null, line: number): string | Fail {
  if (raw === '@') {
    if (origin === null) return fail(line, '"@" needs an origin: add $ORIGIN before it');
    return origin;
  }
  if (raw === '.') return '';
  const labels: string[] = [];
  let absolute = false;
  let start = 0;
  let i = 0;
  while (i <= raw.length) {
    const c = raw.charCodeAt(i);
    if (c === 0x5c) {
      if (i + 1 >= raw.length) return fail(line, `backslash at the end of name "${shown(raw)}"`);
      i += 2;
      continue;
    }
    if (i === raw.length || c === 0x2e /* . */) {
      if (i === raw.length && start === i && labels.length > 0) {
        absolute = true;
        break;
      }
      if (start === i) return fail(line, `empty label in name "${shown(raw)}"`);
      const label = decodeText(raw.slice(start, i));
      if (typeof label !== 'string') return fail(line, `${label.error} in name "${shown(raw)}"`);
      if (label.includes('.')) return fail(line, `an escaped dot inside a label is not supported: "${shown(raw)}"`);
      if (label.length > MAX_LABEL_OCTETS) return fail(line, `a label of ${label.length} octets (over ${MAX_LABEL_OCTETS}) in name "${shown(raw)}"`);
      labels.push(asciiLowerCase(label));
      start = i + 1;
    }
    i++;
  }
  if (!absolute) {
    if (origin === null) {
      return fail(line, `relative name "${shown(raw)}" needs an origin: add $ORIGIN or end the name with a dot`);
    }
    if (origin !== '') labels.push(origin);
  }
  const name = labels.join('.');
  if (name.length > MAX_NAME_CHARS) return fail(line, `name "${shown(name)}…" is longer than ${MAX_NAME_CHARS} characters`);
  return name;
}

/** Decodes RFC 1035 §5.1 escapes (\X and \DDD) into octets, returned as a latin1 string; literal text is taken as UTF-8. */
function decodeText(raw: string): string | { error: string } {
  if (raw.indexOf('\\') === -1) return toOctets(raw);
  const parts: string[] = [];
  let runStart = 0;
  let i = 0;
  while (i < raw.length) {
    if (raw.charCodeAt(i) !== 0x5c) {
      i++;
      continue;
    }
    parts.push(toOctets(raw.slice(runStart, i)));
    const next = raw.charCodeAt(i + 1);
    if (Number.isNaN(next)) return { error: 'backslash at the end of a string' };
    if (isDigit(next)) {
      const digits = raw.slice(i + 1, i + 4);
      if (!/^[0-9]{3}$/.test(digits)) return { error: `invalid escape "\\${shown(digits)}" (\\DDD needs three decimal digits)` };
      const value = Number(digits);
      if (value > 255) return { error: `invalid escape "\\${digits}" (over 255)` };
      parts.push(String.fromCharCode(value));
      i += 4;
    } else {
      // A surrogate pair escaped as one character stays whole.
      const width = next >= 0xd800 && next <= 0xdbff && i + 2 < raw.length ? 2 : 1;
      parts.push(toOctets(raw.slice(i + 1, i + 1 + width)));
      i += 1 + width;
    }
    runStart = i;
  }
  parts.push(toOctets(raw.slice(runStart)));
  return parts.join('');
}

/** Literal text becomes its UTF-8 octets, one latin1 character per octet, as a DNS server would serve it. */
function toOctets(text: string): string {
  return /[^\x00-\x7f]/.test(text) ? Buffer.from(text, 'utf8').toString('latin1') : text;
}

/** TTL: decimal seconds, or BIND-style units (1w2d3h4m5s); null when invalid or over 2^31-1. */
function parseTtl(raw: string): number | null {
  if (/^[0-9]+$/.test(raw)) {
    const value = Number(raw);
    return value <= MAX_TTL ? value : null;
  }
  if (!/^([0-9]+[wdhmsWDHMS])+$/.test(raw)) return null;
  const unitSeconds: Record<string, number> = { w: 604800, d: 86400, h: 3600, m: 60, s: 1 };
  let total = 0;
  for (const match of raw.matchAll(/([0-9]+)([a-zA-Z])/g)) {
    total += Number(match[1]) * (unitSeconds[(match[2] as string).toLowerCase()] as number);
  }
  return total <= MAX_TTL ? total : null;
}

function isClass(raw: string): boolean {
  return /^(IN|CH|CS|HS|CLASS[0-9]+)$/i.test(raw);
}

function isBlank(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function asciiLowerCase(text: string): string {
  return text.replace(/[A-Z]+/g, (upper) => upper.toLowerCase());
}

function displayName(name: string): string {
  return name === '' ? '.' : name;
}

/** Text for a message: cut short and with control characters made visible. */
function shown(text: string): string {
  const cut = text.length > SHOWN_CHARS ? `${text.slice(0, SHOWN_CHARS)}…` : text;
  return cut.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function fail(line: number, message: string): Fail {
  return { kind: 'error', line, message };
}
