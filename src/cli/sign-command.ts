// `dkimgate sign`: signs one message with the options of the daemon's sign section and prints it.
// Touches: the private key file (read once), --dns-zone files (only checked), the message file or stdin; writes stdout.

import { parseArgs } from 'node:util';
import { DEFAULTS } from '../config/defaults.js';
import { normalizeIdentity } from '../config/dkim-syntax.js';
import { createSigner, MAX_LIFETIME_HOURS, signMessage, type Signer } from '../dkim/sign.js';
import type { Canonicalization, SigningAlgorithm } from '../dkim/signature.js';
import { loadPrivateKey } from '../keys/load-private-key.js';
import { detectLineEnding, toCrlf } from '../mail/line-endings.js';
import { CliError, UsageError, type CommandRunner } from './cli-error.js';
import { checkDnsFlags, DNS_OPTIONS } from './dns-options.js';
import { assertPrependable, parseNow, readMessage } from './read-input.js';

export const SIGN_USAGE = `usage: dkimgate sign --domain D --selector S --key FILE [--digest rsa-sha256|rsa-sha1|ed25519-sha256]
                     [--header-canon relaxed|simple] [--body-canon relaxed|simple] [--headerlist LIST]
                     [--identity ADDR] [--lifetime HOURS] [--body-length-limit] [--copy-headers]
                     [--now UNIX] [--dns-server HOST[:PORT]]... [--dns-zone FILE]... [FILE]

Signs the message in FILE (or stdin) and prints it with the DKIM-Signature field prepended,
otherwise byte-exact. Options mean what they mean in the daemon's sign section.

  --domain D            signing domain (d=)
  --selector S          selector (s=); the key is published at S._domainkey.D
  --key FILE            private key (PEM), e.g. keys/D/S.pem from dkimgate keygen
  --digest ALG          rsa-sha256 (default for RSA keys), rsa-sha1, ed25519-sha256 (default for Ed25519 keys)
  --header-canon C      relaxed (default) or simple
  --body-canon C        relaxed (default) or simple
  --headerlist LIST     fields to sign, Momentum syntax: Name, Name? (if present), Name+ (all),
                        Name* (all, assert absence); repeat a name to oversign
                        (default ${DEFAULTS.config.sign.headerlist})
  --identity ADDR       agent identity (i=), an address in D or a subdomain
  --lifetime HOURS      signature lifetime (x=); 0 for none, at most ${MAX_LIFETIME_HOURS} (ten years)
  --body-length-limit   add l= (the signed body length)
  --copy-headers        add z= (copies of the signed header fields)
  --now UNIX            signing time (t=)
  --dns-server H[:P]    taken as verify takes them (the DNS options are shared) and checked, but
  --dns-zone FILE       signing looks nothing up: they change nothing
`;

function oneOf<T extends string>(flag: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`--${flag} ${value}: expected one of ${allowed.join(', ')}`);
  return value as T;
}

export const runSign: CommandRunner = async (argv, io) => {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      domain: { type: 'string' },
      selector: { type: 'string' },
      key: { type: 'string' },
      digest: { type: 'string' },
      'header-canon': { type: 'string' },
      'body-canon': { type: 'string' },
      headerlist: { type: 'string' },
      identity: { type: 'string' },
      lifetime: { type: 'string' },
      'body-length-limit': { type: 'boolean', default: false },
      'copy-headers': { type: 'boolean', default: false },
      now: { type: 'string' },
      ...DNS_OPTIONS,
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    io.stdout.write(SIGN_USAGE);
    return 0;
  }
  for (const required of ['domain', 'selector', 'key'] as const) {
    if (!values[required]) throw new UsageError(`sign needs --${required} (see dkimgate sign --help)`);
  }
  if (positionals.length > 1) throw new UsageError('sign takes at most one FILE');
  const d = DEFAULTS.config.sign;
  const lifetime = values.lifetime === undefined ? d.lifetime : Number(values.lifetime);
  if (!(lifetime >= 0 && lifetime <= MAX_LIFETIME_HOURS) || values.lifetime?.trim() === '') {
    throw new UsageError(`--lifetime ${values.lifetime}: expected hours from 0 to ${MAX_LIFETIME_HOURS}`);
  }
  const nowSec = parseNow(values.now);
  await checkDnsFlags({ servers: values['dns-server'], zones: values['dns-zone'] });
  const key = await loadPrivateKey(values.key!).catch((err: Error) => {
    throw new CliError(err.message);
  });
  for (const warning of key.warnings) io.stderr.write(`warning: ${warning}\n`);
  const defaultDigest: SigningAlgorithm = key.keyType === 'ed25519' ? 'ed25519-sha256' : d.digest;
  const canons = ['relaxed', 'simple'] as const;
  let signer: Signer;
  try {
    signer = createSigner({
      signingDomain: values.domain!,
      selector: values.selector!,
      privateKey: key.keyObject,
      algorithm: oneOf<SigningAlgorithm>('digest', values.digest, ['rsa-sha256', 'rsa-sha1', 'ed25519-sha256'], defaultDigest),
      headerCanon: oneOf<Canonicalization>('header-canon', values['header-canon'], canons, d.headerCanon),
      bodyCanon: oneOf<Canonicalization>('body-canon', values['body-canon'], canons, d.bodyCanon),
      headerList: values.headerlist ?? d.headerlist,
      agentId: values.identity === undefined ? d.identity : normalizeIdentity(values.identity),
      lifetimeHours: lifetime,
      bodyLengthLimit: values['body-length-limit'] || d.bodyLengthLimit,
      copyHeaders: values['copy-headers'] || d.copyHeaders,
    });
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError((err as Error).message);
  }
  const raw = await readMessage(positionals[0], io.stdin);
  assertPrependable(raw, positionals[0], 'DKIM-Signature');
  const outcome = await signMessage(toCrlf(raw), [signer], nowSec);
  if (outcome.kind === 'error') throw new CliError(`cannot sign: ${outcome.reason}`);
  const eol = detectLineEnding(raw);
  for (const field of outcome.fields) io.stdout.write(eol === '\r\n' ? field : field.replace(/\r\n/g, '\n'));
  io.stdout.write(raw);
  return 0;
};
