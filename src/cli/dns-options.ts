// Builds the TXT lookup for commands from the configuration's dns section and --dns-server / --dns-zone (interface.md §1).
// Touches: zone files (read once) and, through the resolver, the DNS servers named.

import type { DnsConfig } from '../config/config.js';
import { createDnsResolver, loadZoneFiles, parseServerAddress } from '../dns/create-dns-resolver.js';
import type { TxtLookup } from '../dkim/txt-lookup.js';
import { CliError, UsageError } from './cli-error.js';

export const DNS_OPTIONS = {
  'dns-server': { type: 'string', multiple: true },
  'dns-zone': { type: 'string', multiple: true },
} as const;

export interface DnsFlags {
  servers?: string[] | undefined;
  zones?: string[] | undefined;
}

/**
 * The lookup a command uses: the configuration's dns section (the same one the daemon uses), where
 * --dns-server replaces dns.servers and --dns-zone files answer after dns.zone_files.
 */
export async function createCliLookup(dns: DnsConfig, flags: DnsFlags): Promise<TxtLookup> {
  const servers = flags.servers ?? dns.servers;
  for (const s of flags.servers ?? []) {
    const parsed = parseServerAddress(s);
    if (parsed.kind === 'error') throw new UsageError(`--dns-server ${s}: ${parsed.reason}`);
  }
  const zoneRecords = [...(await loadZones(dns.zoneFiles, 'dns.zone_files:')), ...(await loadZones(flags.zones ?? [], '--dns-zone'))];
  const resolver = createDnsResolver({
    servers,
    zoneRecords,
    timeoutMs: dns.timeout,
    cacheSize: dns.cacheSize,
    cacheTtlSec: dns.cacheTtl,
    negativeTtlSec: dns.negativeTtl,
  });
  return resolver.lookupTxt;
}

async function loadZones(paths: string[], origin: string) {
  try {
    return await loadZoneFiles(paths);
  } catch (err) {
    throw new CliError(`${origin} ${(err as Error).message}`, 2);
  }
}
