// `dkimgate verify`: verifies one message and prints it with our Authentication-Results, or JSON.
// Touches: the configuration (for dns, verify and authserv_id), the message file or stdin, DNS (or zone files); writes stdout.

import { isUtf8 } from 'node:buffer';
import { parseArgs } from 'node:util';
import { formatAuthResults } from '../auth-results/format-auth-results.js';
import { MAX_AUTHSERV_ID_CHARS, MAX_SIGNATURES_LIMIT } from '../config/schema.js';
import { PHRASE_BY_REASON } from '../dkim/results.js';
import { MAX_RSA_KEY_BITS } from '../dkim/key-record.js';
import { verifyMessage } from '../dkim/verify.js';
import { detectLineEnding, toCrlf } from '../mail/line-endings.js';
import { UsageError, type CommandRunner } from './cli-error.js';
import { CONFIG_OPTION, loadCliConfig } from './config-option.js';
import { createCliLookup, DNS_OPTIONS } from './dns-options.js';
import { assertPrependable, parseNow, readMessage } from './read-input.js';

export const VERIFY_USAGE = `usage: dkimgate verify [--config FILE] [--authserv-id ID] [--json] [--dns-server HOST[:PORT]]... [--dns-zone FILE]...
                       [--now UNIX] [--allow-sha1] [--min-key-bits N] [--max-signatures N] [FILE]

Verifies every DKIM-Signature of the message in FILE (or stdin) and prints the message with an
Authentication-Results field prepended, or with --json one JSON object. The exit status is 0
whenever a verdict was produced, whatever the result.

It judges as the daemon would: it reads the same configuration (FILE, else $DKIMGATE_CONFIG, else
config/dkimgate.yaml when present, else the built-in one) for authserv_id, the verify section and the dns section
(resolvers and zone files, so the demo key of \`npm start\` resolves from the project root).
The options below override it; --config /dev/null ignores any file.

  --config FILE        the configuration to read
  --authserv-id ID     our authserv-id in the field (default: authserv_id, the host name)
  --json               print {"authservId", "authenticationResults", "signatures": [...]}
  --dns-server H[:P]   resolver to ask instead of dns.servers or the system's (repeatable)
  --dns-zone FILE      static TXT records in master-file form, asked first (repeatable)
  --now UNIX           verification time, for x= and t= checks
  --allow-sha1         accept rsa-sha1 signatures (RFC 8301 forbids them by default)
  --min-key-bits N     RSA keys under N bits yield policy (default verify.min_key_bits, 1024; at most 8192)
  --max-signatures N   signatures evaluated, from the top (default verify.max_signatures, 5; at most 1000)
`;

function positiveInt(flag: string, value: string | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (!/^[0-9]{1,6}$/.test(value) || Number(value) < 1 || Number(value) > max) {
    throw new UsageError(`--${flag} ${value}: expected a whole number from 1 to ${max}`);
  }
  return Number(value);
}

/** Header bytes held one per character (latin1) as text: decoded as UTF-8 when they are that (RFC 6532). */
function headerText(value: string): string {
  if (!/[^\x00-\x7f]/.test(value)) return value;
  const bytes = Buffer.from(value, 'latin1');
  return isUtf8(bytes) ? bytes.toString('utf8') : value;
}

export const runVerify: CommandRunner = async (argv, io) => {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      ...DNS_OPTIONS,
      ...CONFIG_OPTION,
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
  const { config } = await loadCliConfig(values.config);
  const authservId = values['authserv-id'] ?? config.authservId;
  if (!/^[\x21-\x7e]+$/.test(authservId)) throw new UsageError(`--authserv-id ${authservId}: must be printable ASCII without spaces`);
  if (authservId.length > MAX_AUTHSERV_ID_CHARS) throw new UsageError(`--authserv-id: ${authservId.length} characters; at most ${MAX_AUTHSERV_ID_CHARS} (a host name)`);
  const nowSec = parseNow(values.now);
  const v = config.verify;
  const lookupTxt = await createCliLookup(config.dns, { servers: values['dns-server'], zones: values['dns-zone'] });
  const raw = await readMessage(positionals[0], io.stdin);
  // --json prints no message; the default output puts our field above it
  if (!values.json) assertPrependable(raw, positionals[0], 'Authentication-Results field');
  const report = await verifyMessage(toCrlf(raw), {
    lookupTxt,
    nowSec,
    maxSignatures: positiveInt('max-signatures', values['max-signatures'], v.maxSignatures, MAX_SIGNATURES_LIMIT),
    // Above the largest key verified, every RSA signature would be refused.
    minKeyBits: positiveInt('min-key-bits', values['min-key-bits'], v.minKeyBits, MAX_RSA_KEY_BITS),
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
      identity: s.identity === null ? null : headerText(s.identity),
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
