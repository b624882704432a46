// `dkimgate keycheck`: for every configured domain/selector, does the published key match the private key?
// Touches: the config file, private key files (read once each), DNS or zone files; writes one line per pair.

import { createPublicKey, type KeyObject } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { Config, SigningSelector } from '../config/config.js';
import { parseKeyRecord } from '../dkim/key-record.js';
import type { TxtLookup } from '../dkim/txt-lookup.js';
import { loadPrivateKey } from '../keys/load-private-key.js';
import { UsageError, type CommandRunner } from './cli-error.js';
import { loadCliConfig, CONFIG_OPTION } from './config-option.js';
import { createCliLookup, DNS_OPTIONS } from './dns-options.js';
import { resolveSigningSelectors } from '../config/resolve-signing-selectors.js';

export const KEYCHECK_USAGE = `usage: dkimgate keycheck [--config FILE] [--dns-server HOST[:PORT]]... [--dns-zone FILE]...

For every domain and selector in the sign section, looks up S._domainkey.D and tells whether the
published key matches the private key. One line per pair; exit status 1 on any mismatch or error.
--dns-zone files answer before DNS (after the config's dns.zone_files): pass the zone fragment you
are about to publish to test it before publishing. --dns-server replaces the config's dns.servers.
`;

/** The public half as comparable bytes: SPKI DER for RSA and Ed25519 alike. */
function publicDer(key: KeyObject): Buffer {
  // The public half of a private key is derived; a public key is used as is.
  const pub = key.type === 'public' ? key : createPublicKey(key);
  return pub.export({ type: 'spki', format: 'der' }) as Buffer;
}

export type KeycheckLine = { ok: boolean; text: string };

export async function checkSelector(sel: SigningSelector, lookupTxt: TxtLookup): Promise<KeycheckLine> {
  const label = `${sel.selector}._domainkey.${sel.signingDomain}`;
  let privateKey;
  try {
    privateKey = await loadPrivateKey(sel.keyPath);
  } catch (err) {
    return { ok: false, text: `FAIL ${label}: ${(err as Error).message}` };
  }
  const outcome = await lookupTxt(label);
  if (outcome.kind !== 'found' || outcome.records.length === 0) {
    const why = outcome.kind === 'found' ? 'no TXT record' : outcome.kind === 'nodata' ? 'no TXT record' : outcome.kind;
    return { ok: false, text: `FAIL ${label}: not published (${why}); publish the record printed by dkimgate keygen` };
  }
  const mine = publicDer(privateKey.keyObject);
  const problems: string[] = [];
  for (const txt of outcome.records) {
    const parsed = parseKeyRecord(txt);
    if (parsed.kind === 'error') {
      problems.push(parsed.detail);
      continue;
    }
    if (publicDer(parsed.key.publicKey).equals(mine)) {
      const expectKey = sel.algorithm === 'ed25519-sha256' ? 'ed25519' : 'rsa';
      if (parsed.key.keyType !== expectKey) return { ok: false, text: `FAIL ${label}: published key is ${parsed.key.keyType}, digest is ${sel.algorithm}` };
      const notes = [`${parsed.key.keyType} ${parsed.key.keyBits} bits`];
      if (parsed.key.testing) notes.push('t=y testing');
      return { ok: true, text: `ok   ${label}: published key matches ${sel.keyPath} (${notes.join(', ')})` };
    }
    problems.push('published key differs from the private key');
  }
  return { ok: false, text: `FAIL ${label}: ${problems.join('; ')} (private key ${sel.keyPath})` };
}

export const runKeycheck: CommandRunner = async (argv, io) => {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: { ...DNS_OPTIONS, ...CONFIG_OPTION, help: { type: 'boolean', default: false } },
  });
  if (values.help) {
    io.stdout.write(KEYCHECK_USAGE);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`keycheck takes no FILE (got ${positionals[0]})`);
  const config: Config = await loadCliConfig(values.config);
  const selectors = resolveSigningSelectors(config);
  if (selectors.length === 0) {
    io.stderr.write('keycheck: no domain has a selector in the sign section; nothing to check\n');
    return 1;
  }
  const lookupTxt = await createCliLookup({
    servers: values['dns-server'] ?? config.dns.servers,
    zones: [...config.dns.zoneFiles, ...(values['dns-zone'] ?? [])],
  });
  const lines = await Promise.all(selectors.map((sel) => checkSelector(sel, lookupTxt)));
  for (const line of lines) io.stdout.write(`${line.text}\n`);
  return lines.every((l) => l.ok) ? 0 : 1;
};
