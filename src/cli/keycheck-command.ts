// `dkimgate keycheck`: for every configured domain/selector, does the published key match the private key?
// Touches: the config file, private key files (read once each), DNS or zone files; writes one line per pair.

import type { SigningSelector } from '../config/config.js';
import type { TxtLookup } from '../dkim/txt-lookup.js';
import { loadPrivateKey } from '../keys/load-private-key.js';
import { matchPublishedKey, publishedKeyName, unpublishedProblem } from '../keys/match-published-key.js';
import type { CommandRunner } from './cli-error.js';
import { loadCliConfig } from './config-option.js';
import { createCliLookup, parseConfigAndDnsArgs } from './dns-options.js';
import { resolveSigningSelectors } from '../config/resolve-signing-selectors.js';

export const KEYCHECK_USAGE = `usage: dkimgate keycheck [--config FILE] [--dns-server HOST[:PORT]]... [--dns-zone FILE]...

For every domain and selector in the sign section, looks up S._domainkey.D and tells whether the
published key matches the private key. One line per pair; exit status 1 on any mismatch or error.
Another valid key published beside ours is a mismatch too: verifiers may pick either record.
--dns-zone files answer before DNS (after the config's dns.zone_files): pass the zone fragment you
are about to publish to test it before publishing. --dns-server replaces the config's dns.servers.
The configuration is FILE, else $DKIMGATE_CONFIG, else config/dkimgate.yaml when present, else the
built-in one.
`;

export type KeycheckLine = { ok: boolean; text: string };

/** One line for one selector: ok when DNS publishes its private key in a record that applies to its digest. */
export async function checkSelector(sel: SigningSelector, lookupTxt: TxtLookup): Promise<KeycheckLine> {
  const label = publishedKeyName(sel);
  let privateKey;
  try {
    privateKey = await loadPrivateKey(sel.keyPath);
  } catch (err) {
    return { ok: false, text: `FAIL ${label}: ${(err as Error).message}` };
  }
  const outcome = await lookupTxt(label);
  if (outcome.kind !== 'found' || outcome.records.length === 0) {
    return { ok: false, text: `FAIL ${label}: ${unpublishedProblem(outcome)}` };
  }
  const match = matchPublishedKey(outcome.records, privateKey.keyObject, sel);
  if (match.kind === 'no_match') return { ok: false, text: `FAIL ${label}: ${match.problems.join('; ')} (private key ${sel.keyPath})` };
  if (match.problems.length > 0) return { ok: false, text: `FAIL ${label}: ${match.problems.join('; ')}` };
  const notes = [`${match.record.keyType} ${match.record.keyBits} bits`];
  if (match.record.testing) notes.push('t=y testing');
  return { ok: true, text: `ok   ${label}: published key matches ${sel.keyPath} (${notes.join(', ')})` };
}

export const runKeycheck: CommandRunner = async (argv, io) => {
  const args = parseConfigAndDnsArgs('keycheck', argv);
  if (args.help) {
    io.stdout.write(KEYCHECK_USAGE);
    return 0;
  }
  const { config } = await loadCliConfig(args.config);
  const selectors = resolveSigningSelectors(config);
  if (selectors.length === 0) {
    io.stderr.write('keycheck: no domain has a selector in the sign section; nothing to check\n');
    return 1;
  }
  const lookupTxt = await createCliLookup(config.dns, args.dns);
  const lines = await Promise.all(selectors.map((sel) => checkSelector(sel, lookupTxt)));
  for (const line of lines) io.stdout.write(`${line.text}\n`);
  return lines.every((l) => l.ok) ? 0 : 1;
};
