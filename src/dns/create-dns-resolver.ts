// The DNS adapter: TXT lookups from static zone records first, then the DNS servers in turn, with a cache and in-flight sharing.
// Touches: the configured DNS servers over the network (or the system's), zone files at start-up; trusts no answer's shape.

import { readFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import type { TxtLookup, TxtLookupOutcome } from '../dkim/txt-lookup.js';
import { askServersInTurn, systemServers } from './ask-servers-in-turn.js';
import { LruCache } from './lru-cache.js';
import { parseZoneFile, type ZoneTxtRecord } from './zone-file.js';

export type DnsResolverOptions = {
  /** "host", "host:port", "[v6]", "[v6]:port" or a bare IPv6 address; hosts are IP addresses. Empty: the system's resolvers. */
  servers: string[];
  /** Static records that answer before DNS (see loadZoneFiles). */
  zoneRecords?: ZoneTxtRecord[];
  /** Longest time one lookup may take, DNS round trips included; shared among the servers (see askServersInTurn). */
  timeoutMs: number;
  /** Most names kept in the cache; 0 disables caching. */
  cacheSize: number;
  /** How long found records are cached. */
  cacheTtlSec: number;
  /** How long NXDOMAIN and no-TXT answers are cached. */
  negativeTtlSec: number;
  /** Clock for cache expiry, in milliseconds; defaults to a monotonic clock. */
  nowMs?: () => number;
};

export type DnsResolverStats = { hits: number; misses: number };

export type DnsResolver = {
  lookupTxt: TxtLookup;
  /** Cache hits and misses; zone answers and names that cannot exist count as neither. */
  stats(): DnsResolverStats;
};

export type ServerAddressParse =
  | { kind: 'ok'; host: string; port: number; family: 4 | 6; /** The form node:dns setServers takes. */ server: string }
  | { kind: 'error'; reason: string };

const DNS_PORT = 53;
const MAX_NAME_CHARS = 253; // RFC 1035 §2.3.4: 255 octets on the wire
const MAX_LABEL_CHARS = 63;

/** Creates the resolver. Throws an Error on an invalid option (a start-up configuration error). */
export function createDnsResolver(opts: DnsResolverOptions): DnsResolver {
  requireWhole('timeoutMs', opts.timeoutMs, 1);
  requireWhole('cacheSize', opts.cacheSize, 0);
  requireWhole('cacheTtlSec', opts.cacheTtlSec, 0);
  requireWhole('negativeTtlSec', opts.negativeTtlSec, 0);
  const servers = opts.servers.map((text) => {
    const parsed = parseServerAddress(text);
    if (parsed.kind === 'error') throw new Error(`invalid DNS server "${text}": ${parsed.reason}`);
    return parsed.server;
  });

  const { timeoutMs } = opts;
  // The system's resolvers are listed here, so that each gets its turn within the deadline as listed ones do.
  const asked = servers.length > 0 ? servers : systemServers();
  const zone = groupByName(opts.zoneRecords ?? []);
  const cache = new LruCache<TxtLookupOutcome>({ capacity: opts.cacheSize, nowMs: opts.nowMs ?? (() => performance.now()) });
  const inFlight = new Map<string, Promise<TxtLookupOutcome>>();
  const counts: DnsResolverStats = { hits: 0, misses: 0 };

  function ttlMsOf(outcome: TxtLookupOutcome): number {
    if (outcome.kind === 'found') return opts.cacheTtlSec * 1000;
    if (outcome.kind === 'nxdomain' || outcome.kind === 'nodata' || outcome.kind === 'too_large') return opts.negativeTtlSec * 1000;
    return 0; // timeout and servfail are transient: never cached
  }

  async function lookupTxt(rawName: string): Promise<TxtLookupOutcome> {
    try {
      const name = normalizeName(rawName);
      const records = zone.get(name);
      if (records !== undefined) return { kind: 'found', records: [...records] };
      if (!isPossibleName(name)) return { kind: 'nxdomain' };
      const cached = cache.get(name);
      if (cached !== undefined) {
        counts.hits++;
        return copyOf(cached);
      }
      counts.misses++;
      let pending = inFlight.get(name);
      if (pending === undefined) {
        pending = askServersInTurn(name, asked, timeoutMs).then((outcome) => {
          inFlight.delete(name);
          cache.set(name, outcome, ttlMsOf(outcome));
          return outcome;
        });
        inFlight.set(name, pending);
      }
      return copyOf(await pending);
    } catch {
      return { kind: 'servfail' }; // not expected; the contract is never to reject
    }
  }

  return { lookupTxt, stats: () => ({ ...counts }) };
}

/** Why a zone file was not loaded: "file: cannot read zone file: no such file", or "file:line: message". */
export class ZoneFileError extends Error {
  constructor(
    message: string,
    /** True when the file could not be read (an I/O failure), false when its text does not parse. */
    readonly unreadable: boolean,
  ) {
    super(message);
    this.name = 'ZoneFileError';
  }
}

/** Reads zone files at start-up; throws a ZoneFileError on the first file that cannot be read or parsed. */
export async function loadZoneFiles(paths: string[]): Promise<ZoneTxtRecord[]> {
  const records: ZoneTxtRecord[] = [];
  for (const path of paths) {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      throw new ZoneFileError(`${path}: cannot read zone file: ${readFaultText(err)}`, true);
    }
    const parsed = parseZoneFile(text, { fileName: path });
    if (parsed.kind === 'error') throw new ZoneFileError(`${path}:${parsed.line}: ${parsed.message}`, false);
    records.push(...parsed.records);
  }
  return records;
}

function readFaultText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return code ?? String(err);
}

/**
 * Parses "IPv4", "IPv4:port", "[IPv6]", "[IPv6]:port" or a bare IPv6 address (which takes no port:
 * write "[::1]:5353"). Host names are refused: a resolver's address must not need a resolver.
 */
export function parseServerAddress(text: string): ServerAddressParse {
  if (text === '') return { kind: 'error', reason: 'empty address' };
  if (text.startsWith('[')) {
    const match = /^\[([^\]]*)\](?::([^:]*))?$/.exec(text);
    if (match === null) return { kind: 'error', reason: 'expected "[IPv6]" or "[IPv6]:port"' };
    const host = match[1] as string;
    if (!isIPv6(host)) return { kind: 'error', reason: `"${host}" is not an IPv6 address` };
    return withPort(host, 6, match[2]);
  }
  const colons = text.split(':').length - 1;
  if (colons >= 2) {
    if (!isIPv6(text)) return { kind: 'error', reason: 'not an IPv6 address (write a port as "[IPv6]:port")' };
    return withPort(text, 6, undefined);
  }
  const [host, port] = text.split(':') as [string, string | undefined];
  if (!isIPv4(host)) {
    return { kind: 'error', reason: `"${host}" is not an IPv4 address (a DNS server is given by its IP address)` };
  }
  return withPort(host, 4, port);
}

function withPort(host: string, family: 4 | 6, portText: string | undefined): ServerAddressParse {
  let port = DNS_PORT;
  if (portText !== undefined) {
    if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      return { kind: 'error', reason: `port "${portText}" is not a number from 1 to 65535` };
    }
    port = Number(portText);
  }
  const server = family === 4 ? `${host}:${port}` : `[${host}]:${port}`;
  return { kind: 'ok', host, port, family, server };
}

function groupByName(records: ZoneTxtRecord[]): Map<string, string[]> {
  const byName = new Map<string, string[]>();
  for (const record of records) {
    const name = normalizeName(record.name);
    const list = byName.get(name) ?? [];
    list.push(record.strings.join(''));
    byName.set(name, list);
  }
  return byName;
}

/** DNS names compare ASCII case-insensitively (RFC 4343); one trailing dot is allowed. */
function normalizeName(name: string): string {
  const bare = name.endsWith('.') ? name.slice(0, -1) : name;
  return bare.replace(/[A-Z]+/g, (upper) => upper.toLowerCase());
}

/** A name that cannot be in DNS (empty, an empty or over-long label, over 253 characters) has no records. */
function isPossibleName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_NAME_CHARS) return false;
  let start = 0;
  for (;;) {
    const dot = name.indexOf('.', start);
    const end = dot === -1 ? name.length : dot;
    if (end === start || end - start > MAX_LABEL_CHARS) return false;
    if (dot === -1) return true;
    start = dot + 1;
  }
}

function copyOf(outcome: TxtLookupOutcome): TxtLookupOutcome {
  return outcome.kind === 'found' ? { kind: 'found', records: [...outcome.records] } : outcome;
}

function requireWhole(option: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) throw new Error(`DNS option ${option} must be a whole number >= ${min}, got ${value}`);
}
