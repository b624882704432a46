// `dkimgate verify`: verifies one message and prints it with our Authentication-Results, or JSON.
// Touches: the message file or stdin, DNS (or zone files); writes stdout.

import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { formatAuthResults } from '../auth-results/format-auth-results.js';
import { DEFAULTS } from '../config/defaults.js';
import { PHRASE_BY_REASON } from '../dkim/results.js';
import { verifyMessage } from '../dkim/verify.js';
import { detectLineEnding, toCrlf } from '../mail/line-endings.js';
import { UsageError, type CommandRunner } from './cli-error.js';
import { createCliLookup, DNS_OPTIONS } from './dns-options.js';
import { parseNow, readMessage } from './read-input.js';

export const VERIFY_USAGE = `usage: dkimgate verify [--authserv-id ID] [--json] [--dns-server HOST[:PORT]]... [--dns-zone FILE]...
                       [--now UNIX] [--allow-sha1] [--min-key-bits N] [--max-signatures N] [FILE]

Verifies every DKIM-Signature of the message in FILE (or stdin) and prints the message with an
Authentication-Results field prepended, or with --json one JSON object. The exit status is 0
whenever a verdict was produced, whatever the result.

  --authserv-id ID     our authserv-id in the field (default: the host name)
  --json               print {"authservId", "authenticationResults", "signatures": [...]}
  --dns-server H[:P]   resolver to ask instead of the system's (repeatable)
  --dns-zone FILE      static TXT records in master-file form, asked first (repeatable)
  --now UNIX           verification time, for x= and t= checks
  --allow-sha1         accept rsa-sha1 signatures (RFC 8301 forbids them by default)
  --min-key-bits N     RSA keys under N bits yield policy (default 1024)
  --max-signatures N   signatures evaluated, from the top (default 5)
`;

function positiveInt(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^[0-9]{1,6}$/.test(value) || Number(value) < 1) throw new UsageError(`--${flag} ${value}: expected a whole number >= 1`);
  return Number(value);
}

export const runVerify: CommandRunner = async (argv, io) => {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      ...DNS_OPTIONS,
      'authserv-id': { type: 'string' },
      json: { type: 'boolean', default: false },
      now: { type: 'string' },
      'allow-sha1': { type: 'boolean', default: false },
      'min-key-bits': { type: 'string' },
      'max-signatures': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    io.stdout.write(VERIFY_USAGE);
    return 0;
  }
  if (positionals.length > 1) throw new UsageError('verify takes at most one FILE');
  const authservId = values['authserv-id'] ?? hostname();
  if (!/^[\x21-\x7e]+$/.test(authservId)) throw new UsageError(`--authserv-id ${authservId}: must be printable ASCII without spaces`);
  const nowSec = parseNow(values.now);
  const v = DEFAULTS.config.verify;
  const lookupTxt = await createCliLookup({ servers: values['dns-server'], zones: values['dns-zone'] });
  const raw = await readMessage(positionals[0], io.stdin);
  const report = await verifyMessage(toCrlf(raw), {
    lookupTxt,
    nowSec,
    maxSignatures: positiveInt('max-signatures', values['max-signatures'], v.maxSignatures),
    minKeyBits: positiveInt('min-key-bits', values['min-key-bits'], v.minKeyBits),
    allowSha1: values['allow-sha1'] || v.allowSha1,
    clockSkewSec: v.clockSkew,
  });
  const ar = formatAuthResults(authservId, report.signatures);
  if (values.json) {
    const signatures = report.signatures.map((s) => ({
      result: s.result,
      reason: s.reason ? PHRASE_BY_REASON[s.reason] : null,
      reasonCode: s.reason,
      detail: s.detail,
      domain: s.domain,
      selector: s.selector,
      identity: s.identity,
      algorithm: s.algorithm,
      canonicalization: s.canonicalization,
      keyBits: s.keyBits,
      headerB: s.headerB,
      testing: s.testing,
    }));
    io.stdout.write(`${JSON.stringify({ authservId, authenticationResults: ar.unfolded, signatures }, null, 2)}\n`);
    return 0;
  }
  // Prepend the field in the file's own line-ending style; the message bytes follow unchanged.
  const eol = detectLineEnding(raw);
  io.stdout.write(eol === '\r\n' ? ar.field : ar.field.replace(/\r\n/g, '\n'));
  io.stdout.write(raw);
  return 0;
};
