// Domain names from headers and from the operator, compared in one form: lower case, A-labels, no trailing dot.
// Pure; input: untrusted header text (bytes held one per character, latin1) or configured names.

import { isUtf8 } from 'node:buffer';
import { domainToASCII } from 'node:url';

/**
 * The comparable form of a domain name: configured names are A-labels (the config converts U-labels),
 * while an internationalized From (RFC 6532) names the same domain in U-labels, as UTF-8 bytes held one
 * per character. Bytes that are not UTF-8 are read as the characters they are. A name IDNA cannot
 * convert stays as it is (lower-cased), so it matches no configured name. '' for an empty name.
 */
export function normalizeDomainName(text: string): string {
  let domain = text.trim();
  if (/[^\x00-\x7f]/.test(domain)) domain = toALabels(domain);
  domain = domain.toLowerCase();
  return domain.endsWith('.') ? domain.slice(0, -1) : domain;
}

function toALabels(domain: string): string {
  const bytes = /^[\x00-\xff]*$/.test(domain) ? Buffer.from(domain, 'latin1') : null;
  const unicode = bytes !== null && isUtf8(bytes) ? bytes.toString('utf8') : domain;
  const ascii = domainToASCII(unicode);
  return ascii === '' ? domain : ascii;
}
