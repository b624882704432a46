// Builds the TXT lookup for commands from --dns-server and --dns-zone (interface.md §1).
// Touches: zone files (read once) and, through the resolver, the DNS servers named.

import { DEFAULTS } from '../config/defaults.js';
import { createDnsResolver, loadZoneFiles, parseServerAddress } from '../dns/create-dns-resolver.js';
import type { TxtLookup } from '../dkim/txt-lookup.js';
import { CliError, UsageError } from './cli-error.js';

export const DNS_OPTIONS = {
  'dns-server': { type: 'string', multiple: true },
  'dns-zone': { type: 'string', multiple: true },
} as const;

export interface DnsFlags {
  servers?: string[];
  zones?: string[];
}

export async function createCliLookup(flags: DnsFlags): Promise<TxtLookup> {
  const servers = flags.servers ?? [...DEFAULTS.config.dns.servers];
  for (const s of servers) {
    const parsed = parseServerAddress(s);
    if (parsed.kind === 'error') throw new UsageError(`--dns-server ${s}: ${parsed.reason}`);
  }
  let zoneRecords;
  try {
    zoneRecords = await loadZoneFiles(flags.zones ?? [...DEFAULTS.config.dns.zoneFiles]);
  } catch (err) {
    throw new CliError(`--dns-zone ${(err as Error).message}`, 2);
  }
  const d = DEFAULTS.config.dns;
  const resolver = createDnsResolver({
    servers,
    zoneRecords,
    timeoutMs: d.timeout,
    cacheSize: d.cacheSize,
    cacheTtlSec: d.cacheTtl,
    negativeTtlSec: d.negativeTtl,
  });
  return resolver.lookupTxt;
}
