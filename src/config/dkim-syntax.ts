// Syntax of the DKIM names an operator configures: domains, selectors, headerlists, key and i= templates.
// Pure; input: text from the config file or the command line.

import { domainToASCII } from 'node:url';

export type DomainParse = { kind: 'ok'; domain: string } | { kind: 'error'; reason: string };

// RFC 5321 §4.1.2 sub-domain: Let-dig [Ldh-str]; RFC 1035 §2.3.4 label length.
const LDH_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** Parses a domain name: lower-cased, U-labels converted to A-labels (xn--), trailing dot dropped. */
export function parseDomainName(input: string): DomainParse {
  let text = input.endsWith('.') ? input.slice(0, -1) : input;
  if (/[^\x00-\x7f]/.test(text)) {
    const ascii = domainToASCII(text);
    if (ascii === '') return { kind: 'error', reason: `"${input}" is not a valid internationalized domain name` };
    text = ascii;
  }
  text = text.toLowerCase();
  if (text.length === 0 || text.length > 253) {
    return { kind: 'error', reason: `"${input}" is not a domain name (1 to 253 characters)` };
  }
  for (const label of text.split('.')) {
    if (!LDH_LABEL.test(label)) {
      return {
        kind: 'error',
        reason: `"${input}" is not a domain name: label "${label}" must be 1-63 letters, digits or hyphens, not starting or ending with a hyphen`,
      };
    }
  }
  return { kind: 'ok', domain: text };
}

/** Checks a DKIM selector (RFC 6376 §3.1: sub-domain *("." sub-domain)). Returns a problem or null. */
export function checkSelector(text: string): string | null {
  if (text.length === 0) return 'a selector must not be empty';
  if (text.length > 63 * 4) return `selector "${text}" is too long`;
  if (text.split('.').every((label) => LDH_LABEL.test(label))) return null;
  return `"${text}" is not a selector: use letters, digits and hyphens, in dot-separated labels (e.g. s2026, ed2026)`;
}

/** Checks a key path template: only %{d} and %{s} may follow a "%". Returns a problem or null. */
export function checkKeyTemplate(text: string): string | null {
  if (text.trim() === '') return 'must name a key file, e.g. keys/%{d}/%{s}.pem';
  const stray = text.replace(/%\{[ds]\}/g, '').indexOf('%');
  if (stray !== -1) return `"${text}": only %{d} (domain) and %{s} (selector) may be used in the key path`;
  return null;
}

/** Expands %{d} and %{s} in a key path or identity template. */
export function expandTemplate(template: string, signingDomain: string, selector: string): string {
  return template.replace(/%\{([ds])\}/g, (_match, name: string) => (name === 'd' ? signingDomain : selector));
}

// RFC 5322 §3.2.3 dot-atom-text (local part of i=).
const DOT_ATOM = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;

/** Checks an i= template before expansion: "[local]@domain", domain may be %{d}. Returns a problem or null. */
export function checkIdentityTemplate(text: string): string | null {
  const at = text.lastIndexOf('@');
  if (at === -1) return `"${text}" is not an identity; write [local-part]@domain, e.g. @example.com or @%{d}`;
  const local = text.slice(0, at);
  if (local !== '' && !DOT_ATOM.test(local)) return `"${text}": the local part must be a dot-atom (letters, digits, . and !#$%&'*+/=?^_\`{|}~-)`;
  const domain = text.slice(at + 1);
  if (domain.replace(/%\{d\}/g, 'example').includes('%')) return `"${text}": only %{d} may be used in the identity`;
  if (domain.includes('%{d}')) return null;
  const parsed = parseDomainName(domain);
  return parsed.kind === 'ok' ? null : parsed.reason;
}

/**
 * An i= (or i= template) with its domain written as d= is: lower case, A-labels, no trailing dot (the
 * domain part of a template with %{d} is kept as written). Unchanged when the domain does not parse.
 */
export function normalizeIdentity(text: string): string {
  const at = text.lastIndexOf('@');
  if (at === -1) return text;
  const domain = text.slice(at + 1);
  if (domain.includes('%{d}')) return text;
  const parsed = parseDomainName(domain);
  return parsed.kind === 'ok' ? `${text.slice(0, at + 1)}${parsed.domain}` : text;
}

/** Checks an expanded i= against its d= (RFC 6376 §3.5: same domain or a subdomain). Returns a problem or null. */
export function checkIdentityInDomain(identity: string, signingDomain: string): string | null {
  const domainPart = identity.slice(identity.lastIndexOf('@') + 1).toLowerCase();
  if (domainPart === signingDomain || domainPart.endsWith('.' + signingDomain)) return null;
  return `identity ${identity} is not within the signing domain ${signingDomain} (RFC 6376 §3.5); use @${signingDomain}, a subdomain of it, or @%{d}`;
}
