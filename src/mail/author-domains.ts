// The author domains of a message: the domain of each From field's first mailbox, and of every mailbox
// (a From field may name several authors, RFC 5322 §3.6.2).
// Input: untrusted header bytes; comments and quoted strings are skipped, never interpreted.

import { fieldValue, type FramedMessage } from './header-fields.js';

/** The addr-spec of the first mailbox in a From value (see mailboxAddresses). */
export function firstAddress(value: string): string | null {
  return mailboxAddresses(value)[0] ?? null;
}

/**
 * The addr-spec of each mailbox in a From value, in order: inside <...> when there is an angle address,
 * else the bare word with an "@". Comments "(...)" (nested) and quoted strings are skipped.
 */
export function mailboxAddresses(text: string): string[] {
  // The whole value, however long (limits.max_header_size bounds it): an author named past a cut would
  // escape policy.require and a user's domain limit. One pass; text outside quotes and comments is kept
  // as slices, not a character at a time (a megabyte of From stays linear).
  const kept: string[] = [];
  let run = -1; // start of text outside quotes and comments not yet kept
  const keepRun = (end: number) => {
    if (run !== -1) kept.push(text.slice(run, end));
    run = -1;
  };
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\' && (quoted || depth > 0)) {
      i++;
      continue;
    }
    if (quoted) {
      if (c === '"') quoted = false;
      // Keep a placeholder so "a@b"@c is not read as an address inside the quotes.
      kept.push(c === '@' ? '_' : c === ',' || c === '<' || c === '>' ? '_' : 'q');
      continue;
    }
    if (depth > 0) {
      if (c === '(') depth++;
      else if (c === ')') depth--;
      continue;
    }
    if (c === '(') {
      keepRun(i);
      depth++;
    } else if (c === '"') {
      keepRun(i);
      quoted = true;
    } else if (run === -1) run = i;
  }
  keepRun(text.length);
  const plain = kept.join('');
  // The first mailbox: up to a top-level comma (group syntax "name: a@b, c@d;" is read through).
  const afterGroup = plain.includes(':') && plain.indexOf(':') < (plain.indexOf('<') === -1 ? Infinity : plain.indexOf('<')) ? plain.slice(plain.indexOf(':') + 1) : plain;
  const specs: string[] = [];
  for (const part of afterGroup.split(',')) {
    if (!part.includes('@')) continue;
    const angle = /<([^<>]*)>/.exec(part);
    const spec = (angle ? angle[1]! : part).trim().replace(/;$/, '').trim();
    if (spec.includes('@')) specs.push(spec);
  }
  return specs;
}

/**
 * The domain of an addr-spec, ASCII letters lower-cased, without brackets' content (address literals give null).
 * Only ASCII: the text holds header bytes as latin1 characters, and lower-casing "Ã" (0xC3, the lead byte
 * of UTF-8 "ä") would make a UTF-8 domain (RFC 6532) undecodable.
 */
export function addressDomain(addrSpec: string): string | null {
  const at = addrSpec.lastIndexOf('@');
  const domain = addrSpec.slice(at + 1).trim().replace(/[A-Z]+/g, (s) => s.toLowerCase()).replace(/\.$/, '');
  if (domain === '' || domain.startsWith('[') || /[\s<>]/.test(domain)) return null;
  return domain;
}

/** For each From field, in header order, the domain of each of its mailboxes (null: an address literal or none usable). */
export function fromMailboxDomains(framed: FramedMessage): (string | null)[][] {
  const fields: (string | null)[][] = [];
  for (const field of framed.fields) {
    if (field.lowerName !== 'from') continue;
    fields.push(mailboxAddresses(fieldValue(framed.buf, field)).map(addressDomain));
  }
  return fields;
}

/** One entry per From field, in header order: its first mailbox's domain, or null when it has none. */
export function authorDomains(framed: FramedMessage): (string | null)[] {
  return firstDomains(fromMailboxDomains(framed));
}

/** The domain of every mailbox of every From field, in header order, each once; mailboxes without a usable domain are left out. */
export function allAuthorDomains(framed: FramedMessage): string[] {
  return everyDomain(fromMailboxDomains(framed));
}

/** authorDomains from fromMailboxDomains' result (for a caller that wants both without reading From twice). */
export function firstDomains(mailboxes: (string | null)[][]): (string | null)[] {
  return mailboxes.map((domains) => domains[0] ?? null);
}

/** allAuthorDomains from fromMailboxDomains' result (each domain once, where it first appears). */
export function everyDomain(mailboxes: (string | null)[][]): string[] {
  return [...new Set(mailboxes.flat().filter((d): d is string => d !== null))];
}
