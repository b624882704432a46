// Who the SMTP client is for the sign decision: its address (the connection's, or a trusted proxy's XFORWARD ADDR)
// and its SMTP AUTH user (interface.md §4). Pure; input: socket addresses and XFORWARD values (untrusted text).

import { formatIpBytes, parseCidr, parseIpBytes, type Cidr } from '../config/address-syntax.js';

export interface ClientIdentity {
  /** Normalized client IP address (an IPv4-mapped IPv6 address is written as IPv4); null: unknown. */
  address: string | null;
  /** Where the address came from: the TCP connection, or the XFORWARD ADDR of a trusted proxy. */
  via: 'connection' | 'xforward';
  /** The SMTP AUTH user of this session, or null. */
  authUser: string | null;
}

export interface ClientFacts {
  /** The address the TCP connection came from (smtp-server's address before any XFORWARD). */
  peerAddress: string;
  /** The ADDR value of the last XFORWARD (raw or as smtp-server decoded it); null/undefined: none sent. */
  xforwardAddr: string | null | undefined;
  /** The peer is in the listener's (or the global) xforward_hosts. */
  peerIsXforwardHost: boolean;
  authUser: string | null;
}

// Postfix XFORWARD_README: "[UNAVAILABLE]" when Postfix has no value, "[TEMPUNAVAIL]" when lookups failed.
const UNAVAILABLE = new Set(['[UNAVAILABLE]', '[TEMPUNAVAIL]']);

/**
 * The client as the sign decision sees it (interface.md §4):
 * - a peer that is not an XFORWARD host is the client; its own address counts;
 * - a peer that is an XFORWARD host is a proxy: the client is its ADDR. A proxy's own address never
 *   stands in for the client, so a proxy that sent no ADDR (or ADDR=[UNAVAILABLE]) leaves the client
 *   unknown (address null), and an unknown client matches no relay_hosts entry.
 * An address that is not an IP literal is unknown too. The AUTH user is carried as given: SMTP AUTH is
 * proven on this very connection, whatever the address.
 */
export function describeClient(facts: ClientFacts): ClientIdentity {
  if (!facts.peerIsXforwardHost) {
    return { address: normalizeClientAddress(facts.peerAddress), via: 'connection', authUser: facts.authUser };
  }
  const addr = facts.xforwardAddr;
  const address = addr === null || addr === undefined || UNAVAILABLE.has(addr.trim().toUpperCase()) ? null : normalizeClientAddress(addr);
  return { address, via: 'xforward', authUser: facts.authUser };
}

/**
 * An IP address as text for matching and logs: IPv4 dotted quad (also for IPv4-mapped IPv6), IPv6 in
 * RFC 5952 form. Accepts the forms a socket or XFORWARD gives: "IPv6:" prefix, [brackets], a %zone
 * (dropped). Returns null when the text is not an IP address.
 */
export function normalizeClientAddress(text: string): string | null {
  const bytes = parseClientAddress(text);
  if (bytes === null) return null;
  return formatIpBytes(bytes.length === 16 && isV4Mapped(bytes) ? bytes.subarray(12) : bytes);
}

/**
 * Whether `address` lies in any of the blocks. An IPv4 address and its IPv4-mapped IPv6 form
 * (::ffff:192.0.2.1) are the same client: each matches IPv4 entries and IPv6 entries that cover
 * ::ffff:0:0/96. Text that is not an IP address matches nothing.
 */
export function matchCidrs(address: string, cidrs: readonly Cidr[]): boolean {
  const bytes = parseClientAddress(address);
  if (bytes === null) return false;
  let v4: Uint8Array | null = null;
  let v6: Uint8Array;
  if (bytes.length === 4) {
    v4 = bytes;
    v6 = new Uint8Array(16);
    v6[10] = 0xff;
    v6[11] = 0xff;
    v6.set(bytes, 12);
  } else {
    v6 = bytes;
    if (isV4Mapped(bytes)) v4 = bytes.subarray(12);
  }
  for (const cidr of cidrs) {
    const candidate = cidr.family === 4 ? v4 : v6;
    if (candidate !== null && inBlock(candidate, cidr)) return true;
  }
  return false;
}

/**
 * Parses CIDR texts that the config loader already validated (relay_hosts, xforward_hosts).
 * Throws on a bad entry: that is a bug, the config check refuses them first.
 */
export function compileCidrs(texts: readonly string[]): Cidr[] {
  return texts.map((text) => {
    const parsed = parseCidr(text);
    if (parsed.kind === 'error') throw new Error(`invalid CIDR in a validated config: ${parsed.reason}`);
    return parsed.cidr;
  });
}

/** The most specific block holding `address` (longest prefix), or null. */
export function longestMatch<T extends { cidr: Cidr }>(address: string, entries: readonly T[]): T | null {
  let best: T | null = null;
  for (const entry of entries) {
    if ((best === null || entry.cidr.prefix > best.cidr.prefix) && matchCidrs(address, [entry.cidr])) best = entry;
  }
  return best;
}

function parseClientAddress(input: string): Uint8Array | null {
  let text = input.trim();
  if (text.length > 64) return null;
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  if (/^ipv6:/i.test(text)) text = text.slice(5);
  const zone = text.indexOf('%');
  if (zone !== -1) text = text.slice(0, zone);
  return parseIpBytes(text);
}

function isV4Mapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

function inBlock(bytes: Uint8Array, cidr: Cidr): boolean {
  if (bytes.length !== cidr.bytes.length) return false;
  let bits = cidr.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((bytes[i] ?? 0) & mask) !== (cidr.bytes[i] ?? 0)) return false;
  }
  return true;
}
