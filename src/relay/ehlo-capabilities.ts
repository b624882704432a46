// The extensions a next hop announces in its EHLO/LHLO reply (RFC 5321 §4.1.1.1), as plain fields.
// Input: a parsed reply from the next hop (untrusted text, already bounded by the reply parser).

import type { SmtpReply } from './smtp-reply.js';

export type NextHopCapabilities = {
  /** RFC 1870 SIZE announced. */
  size: boolean;
  /** Its declared limit in bytes; null when absent or 0 (no fixed limit). */
  maxSizeBytes: number | null;
  pipelining: boolean;
  /** RFC 6152 */
  eightBitMime: boolean;
  /** RFC 6531 */
  smtpUtf8: boolean;
  /** RFC 3461 */
  dsn: boolean;
  /** RFC 3207 */
  startTls: boolean;
  /** RFC 2034 */
  enhancedStatusCodes: boolean;
  /** RFC 4954 SASL mechanisms, upper case. */
  authMechanisms: string[];
  /** Postfix's XFORWARD: the attribute names it takes (NAME, ADDR, PORT, PROTO, HELO, IDENT, SOURCE), upper case; empty when not announced. */
  xforwardAttributes: string[];
  /** Every extension keyword, upper case, in order. */
  keywords: string[];
};

/** Capabilities of a next hop that answered HELO (or nothing): no extensions. */
export const NO_CAPABILITIES: NextHopCapabilities = Object.freeze({
  size: false,
  maxSizeBytes: null,
  pipelining: false,
  eightBitMime: false,
  smtpUtf8: false,
  dsn: false,
  startTls: false,
  enhancedStatusCodes: false,
  authMechanisms: [],
  xforwardAttributes: [],
  keywords: [],
}) as NextHopCapabilities;

const MAX_AUTH_MECHANISMS = 32;

/** Reads the extension lines of a 250 EHLO reply; the first line is the server's greeting and carries none. */
export function parseEhloCapabilities(reply: SmtpReply): NextHopCapabilities {
  const caps: NextHopCapabilities = { ...NO_CAPABILITIES, authMechanisms: [], xforwardAttributes: [], keywords: [] };
  for (const line of reply.lines.slice(1)) {
    const words = line.trim().split(/\s+/);
    const first = (words[0] ?? '').toUpperCase();
    // "AUTH=LOGIN PLAIN": the pre-RFC 4954 form some servers still send
    const keyword = first.startsWith('AUTH=') ? 'AUTH' : first;
    if (keyword === '' || !/^[A-Z0-9][A-Z0-9-]*$/.test(keyword)) continue;
    if (!caps.keywords.includes(keyword)) caps.keywords.push(keyword);
    const args = first.startsWith('AUTH=') ? [first.slice(5), ...words.slice(1)] : words.slice(1);
    switch (keyword) {
      case 'SIZE': {
        caps.size = true;
        const limit = args[0] !== undefined && /^[0-9]{1,20}$/.test(args[0]) ? Number(args[0]) : 0;
        caps.maxSizeBytes = limit > 0 && Number.isSafeInteger(limit) ? limit : null;
        break;
      }
      case 'PIPELINING':
        caps.pipelining = true;
        break;
      case '8BITMIME':
        caps.eightBitMime = true;
        break;
      case 'SMTPUTF8':
        caps.smtpUtf8 = true;
        break;
      case 'DSN':
        caps.dsn = true;
        break;
      case 'STARTTLS':
        caps.startTls = true;
        break;
      case 'ENHANCEDSTATUSCODES':
        caps.enhancedStatusCodes = true;
        break;
      case 'XFORWARD':
        for (const attribute of args) {
          const name = attribute.toUpperCase();
          if (/^[A-Z]{1,16}$/.test(name) && !caps.xforwardAttributes.includes(name)) caps.xforwardAttributes.push(name);
        }
        break;
      case 'AUTH':
        for (const mechanism of args) {
          const name = mechanism.toUpperCase();
          if (name !== '' && !caps.authMechanisms.includes(name) && caps.authMechanisms.length < MAX_AUTH_MECHANISMS) {
            caps.authMechanisms.push(name);
          }
        }
        break;
    }
  }
  return caps;
}
