// Builds the TXT lookup for commands from the configuration's dns section and --dns-server / --dns-zone (interface.md §1),
// and checks those options for sign, which takes them but looks nothing up.
// Touches: zone files (read once) and, through the resolver, the DNS servers named.

import { parseArgs } from 'node:util';
import type { DnsConfig } from '../config/config.js';
import { createDnsResolver, loadZoneFiles, parseServerAddress, ZoneFileError } from '../dns/create-dns-resolver.js';
import type { TxtLookup } from '../dkim/txt-lookup.js';
import { CliError, EXIT_RUNTIME, EXIT_USAGE, UsageError } from './cli-error.js';
import { CONFIG_OPTION } from './config-option.js';

export const DNS_OPTIONS = {
  'dns-server': { type: 'string', multiple: true },
  'dns-zone': { type: 'string', multiple: true },
} as const;

export interface DnsFlags {
  servers?: string[] | undefined;
  zones?: string[] | undefined;
}

export interface ConfigAndDnsArgs {
  help: boolean;
  config: string | undefined;
  dns: DnsFlags;
}

/** The arguments of commands that check the configured keys (keycheck, doctor): --config, --dns-server, --dns-zone, no FILE. */
export function parseConfigAndDnsArgs(command: string, argv: string[]): ConfigAndDnsArgs {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: { ...DNS_OPTIONS, ...CONFIG_OPTION, help: { type: 'boolean', default: false } },
  });
  if (!values.help && positionals.length > 0) throw new UsageError(`${command} takes no FILE (got ${positionals[0]})`);
  return { help: values.help, config: values.config, dns: { servers: values['dns-server'], zones: values['dns-zone'] } };
}

/**
 * The lookup a command uses: the configuration's dns section (the same one the daemon uses), where
 * --dns-server replaces dns.servers and --dns-zone files answer after dns.zone_files.
 */
export async function createCliLookup(dns: DnsConfig, flags: DnsFlags): Promise<TxtLookup> {
  checkServerFlags(flags);
  const servers = flags.servers ?? dns.servers;
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

/**
 * For a command that takes the shared DNS options but looks nothing up (sign): refuses what verify refuses,
 * a bad --dns-server address or a --dns-zone file that cannot be read or parsed.
 */
export async function checkDnsFlags(flags: DnsFlags): Promise<void> {
  checkServerFlags(flags);
  await loadZones(flags.zones ?? [], '--dns-zone');
}

function checkServerFlags(flags: DnsFlags): void {
  for (const s of flags.servers ?? []) {
    const parsed = parseServerAddress(s);
    if (parsed.kind === 'error') throw new UsageError(`--dns-server ${s}: ${parsed.reason}`);
  }
}

async function loadZones(paths: string[], origin: string) {
  try {
    return await loadZoneFiles(paths);
  } catch (err) {
    // a file that cannot be read is an I/O failure (exit 1); one that does not parse, bad input (exit 2)
    const unreadable = err instanceof ZoneFileError && err.unreadable;
    throw new CliError(`${origin} ${(err as Error).message}`, unreadable ? EXIT_RUNTIME : EXIT_USAGE);
  }
}
