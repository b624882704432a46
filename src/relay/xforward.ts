// XFORWARD towards the next hop (Postfix's XFORWARD_README): who our client was, so that the next hop's log and its
// Received field name the original client (and the up-stream queue id) instead of dkimgate on loopback.
// Input: attributes from our client's session (its own XFORWARD, already xtext-decoded, or its connection); pure.

import { isIP } from 'node:net';
import { encodeXtext } from './envelope-params.js';

/** The attributes Postfix defines, in the order it sends them. */
const ATTRIBUTE_NAMES = ['NAME', 'ADDR', 'PORT', 'PROTO', 'HELO', 'IDENT', 'SOURCE'] as const;
export type XforwardName = (typeof ATTRIBUTE_NAMES)[number];

/** A value per attribute: null sends [UNAVAILABLE], a missing one sends nothing. */
export type XforwardAttributes = Partial<Record<XforwardName, string | null>>;

const UNAVAILABLE = '[UNAVAILABLE]';
/** XFORWARD_README note 1: at most 255 characters; no controls, non-ASCII or whitespace. */
const VALUE_RE = /^[\x21-\x7e]{1,255}$/;
/** XFORWARD_README note 2: no command over the 512-character limit of SMTP (CRLF included). */
const MAX_COMMAND = 510;

/**
 * The XFORWARD command lines for the attributes the next hop announced, each within 512 characters. A value that is
 * not a printable ASCII word of at most 255 characters goes as [UNAVAILABLE]: better unknown than refused (501).
 */
export function formatXforwardCommands(attributes: XforwardAttributes, announced: readonly string[]): string[] {
  const commands: string[] = [];
  let current = 'XFORWARD';
  for (const name of ATTRIBUTE_NAMES) {
    if (!(name in attributes) || !announced.includes(name)) continue;
    const part = ` ${name}=${encodeValue(name, attributes[name] ?? null)}`;
    if (current.length + part.length > MAX_COMMAND && current !== 'XFORWARD') {
      commands.push(current);
      current = 'XFORWARD';
    }
    current += part;
  }
  if (current !== 'XFORWARD') commands.push(current);
  return commands;
}

function encodeValue(name: XforwardName, value: string | null): string {
  if (value === null || !VALUE_RE.test(value)) return UNAVAILABLE;
  // Postfix writes an IPv6 ADDR with its "IPv6:" prefix; an IPv4-mapped one is the IPv4 client it stands for
  if (name === 'ADDR') {
    const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(value);
    if (mapped) return mapped[1]!;
    if (isIP(value) === 6) return `IPv6:${value}`;
  }
  const encoded = encodeXtext(value);
  return encoded.length <= 255 ? encoded : UNAVAILABLE;
}

/** The parts of an smtp-server session clientXforward reads. */
export interface XforwardSource {
  /** The attributes a trusted proxy sent (smtp-server refuses XFORWARD from anyone else); [UNAVAILABLE] is false. */
  xForward: Map<string, unknown>;
  remoteAddress: string;
  remotePort: number;
  hostNameAppearsAs: string;
  /** SMTP, ESMTP, ESMTPS, ESMTPSA, LMTP, … (RFC 3848) */
  transmissionType: string;
}

/**
 * What the next hop is told about our client: the proxy's own XFORWARD as it sent it, where there was one (an
 * attribute it did not send is unknown: XFORWARD_README note 4, never mixed with our session's), else the client's
 * connection. Reverse lookups are off, so our client's NAME is unknown.
 * SOURCE is always REMOTE: for a LOCAL source (or an unknown ADDR with no SOURCE) Postfix adds a missing Date or
 * Message-ID and rewrites header addresses, after we signed, which breaks the signature. The mail was accepted and
 * rewritten on its first pass already; the re-injection recipe treats dkimgate as a remote client for that reason.
 */
export function clientXforward(session: XforwardSource): XforwardAttributes {
  if (ATTRIBUTE_NAMES.some((name) => session.xForward.has(name))) {
    const attributes: XforwardAttributes = {};
    for (const name of ATTRIBUTE_NAMES) {
      const value = session.xForward.get(name);
      attributes[name] = typeof value === 'string' && value !== '' ? value : typeof value === 'number' && value > 0 ? String(value) : null;
    }
    return { ...attributes, SOURCE: 'REMOTE' };
  }
  return {
    NAME: null,
    ADDR: session.remoteAddress,
    PORT: session.remotePort > 0 ? String(session.remotePort) : null,
    PROTO: session.transmissionType,
    HELO: session.hostNameAppearsAs || null,
    SOURCE: 'REMOTE',
  };
}
