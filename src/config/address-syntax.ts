// Syntax of network addresses in the config: IP literals, CIDR blocks, host names, resolver addresses.
// Pure; input: text from the operator's config file or command line.

import { isIPv4, isIPv6 } from 'node:net';

export interface Cidr {
  family: 4 | 6;
  /** Network address bytes (4 or 16). */
  bytes: Uint8Array;
  prefix: number;
  /** Normalized text, always with a prefix length, e.g. "10.0.0.0/8", "2001:db8::/32". */
  text: string;
}

export type CidrParse = { kind: 'ok'; cidr: Cidr } | { kind: 'error'; reason: string };

/** Parses "ADDR/LEN" or a bare address (a /32 or /128 block). Host bits set are an error. */
export function parseCidr(input: string): CidrParse {
  const text = input.trim();
  const slash = text.indexOf('/');
  const addressText = slash === -1 ? text : text.slice(0, slash);
  const prefixText = slash === -1 ? null : text.slice(slash + 1);
  const bytes = parseIpBytes(addressText);
  if (bytes === null) {
    return { kind: 'error', reason: `"${input}" is not an IPv4 or IPv6 address or CIDR block (e.g. 192.0.2.0/24, 2001:db8::/32)` };
  }
  const family: 4 | 6 = bytes.length === 4 ? 4 : 6;
  const maxPrefix = bytes.length * 8;
  let prefix = maxPrefix;
  if (prefixText !== null) {
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > maxPrefix) {
      return { kind: 'error', reason: `"${input}": prefix length must be 0 to ${maxPrefix}` };
    }
    prefix = Number(prefixText);
  }
  const network = maskBytes(bytes, prefix);
  if (!network.every((byte, i) => byte === bytes[i])) {
    const suggestion = `${formatIpBytes(network)}/${prefix}`;
    return { kind: 'error', reason: `"${input}" has host bits set; did you mean ${suggestion}?` };
  }
  return { kind: 'ok', cidr: { family, bytes: network, prefix, text: `${formatIpBytes(network)}/${prefix}` } };
}

/** Parses an IPv4 or IPv6 literal (no brackets, no zone id) into 4 or 16 bytes; null when it is not one. */
export function parseIpBytes(text: string): Uint8Array | null {
  if (isIPv4(text)) return Uint8Array.from(text.split('.').map(Number));
  if (!isIPv6(text) || text.includes('%')) return null;
  let head = text;
  let v4Tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    // An embedded IPv4 tail (::ffff:192.0.2.1): two placeholder groups now, its bytes below.
    v4Tail = tail.split('.').map(Number);
    head = text.slice(0, lastColon + 1) + '0:0';
  }
  const groupCount = 8;
  const [left = '', right] = head.split('::') as [string, string | undefined];
  const leftGroups = left === '' ? [] : left.split(':');
  const rightGroups = right === undefined || right === '' ? [] : right.split(':');
  const missing = groupCount - leftGroups.length - rightGroups.length;
  const groups = right === undefined ? leftGroups : [...leftGroups, ...Array<string>(missing).fill('0'), ...rightGroups];
  if (groups.length !== groupCount) return null;
  const bytes = new Uint8Array(16);
  groups.forEach((group, i) => {
    const value = parseInt(group, 16);
    bytes[i * 2] = value >> 8;
    bytes[i * 2 + 1] = value & 0xff;
  });
  if (v4Tail.length === 4) bytes.set(v4Tail, 12);
  return bytes;
}

/** Formats 4 bytes as dotted quad, 16 bytes as RFC 5952 text (lower case, longest zero run as ::). */
export function formatIpBytes(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength && j - i >= 2) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = (bytes[i] ?? 0) & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}

const HOST_LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;

/** "host:port" as an operator writes and a URL takes it: an IPv6 address in brackets ("[::1]:10027"). */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Checks a host to bind or connect to: an IP literal (no brackets) or a host name. Returns a problem or null. */
export function checkHost(text: string): string | null {
  if (text.startsWith('[') && text.endsWith(']')) return 'write IPv6 addresses without brackets, e.g. ::1';
  if (isIPv4(text) || isIPv6(text)) return null;
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  if (name.length > 0 && name.length <= 253 && name.split('.').every((label) => HOST_LABEL.test(label))) return null;
  return `"${text}" is not an IP address or host name`;
}

/** Checks a resolver address: "IP", "IP:PORT" or "[IPv6]:PORT". Returns a problem or null. */
export function checkDnsServer(text: string): string | null {
  const parsed = parseDnsServer(text);
  return parsed.kind === 'ok' ? null : parsed.reason;
}

export type DnsServerParse = { kind: 'ok'; host: string; port: number } | { kind: 'error'; reason: string };

/** Parses a resolver address: "IP", "IP:PORT", "[IPv6]" or "[IPv6]:PORT" (port defaults to 53). */
export function parseDnsServer(text: string): DnsServerParse {
  const bad: DnsServerParse = {
    kind: 'error',
    reason: `"${text}" is not a resolver address; write an IP address with an optional port, e.g. 127.0.0.1:5353 or [::1]:53`,
  };
  let host = text;
  let portText: string | null = null;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1] ?? '';
    portText = bracketed[2] ?? null;
    if (!isIPv6(host)) return bad;
  } else if (!isIPv6(text)) {
    const colon = text.lastIndexOf(':');
    if (colon !== -1) {
      host = text.slice(0, colon);
      portText = text.slice(colon + 1);
    }
    if (!isIPv4(host)) return bad;
  }
  if (host.includes('%')) return bad;
  let port = 53;
  if (portText !== null) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      return { kind: 'error', reason: `"${text}": port "${portText}" is not a number from 1 to 65535` };
    }
    port = Number(portText);
  }
  return { kind: 'ok', host, port };
}
