// `dkimgate keygen`: writes a new private key to DIR/D/S.pem (0600, dirs 0700) and prints its TXT record.
// Touches: the keys directory (creates; replaces a key only with --force), stdout/stderr.

import { randomBytes } from 'node:crypto';
import { lstat, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { checkSelector, parseDomainName } from '../config/dkim-syntax.js';
import {
  DEFAULT_RSA_BITS,
  MAX_GENERATED_RSA_BITS,
  MIN_GENERATED_RSA_BITS,
  formatTxtRecordZone,
  generateKey,
  type GeneratedKeyType,
} from '../keys/generate-key.js';
import { writeNewKeyFile } from '../keys/write-key-file.js';
import { CliError, EXIT_OK, EXIT_RUNTIME, UsageError, usageErrorOf, type CommandRunner } from './cli-error.js';

export const KEYGEN_USAGE = `Usage: dkimgate keygen --domain D --selector S [--type rsa|ed25519] [--bits N] [--keys-dir DIR] [--force]

Generates a DKIM private key, writes it to DIR/D/S.pem (mode 0600) and prints the
DNS TXT record to publish at S._domainkey.D, in zone-file form.

Options:
  --domain D       signing domain (d=), e.g. example.com
  --selector S     selector (s=), e.g. s2026
  --type T         rsa (default) or ed25519 (RFC 8463; sign with it next to an RSA key)
  --bits N         RSA key size, ${MIN_GENERATED_RSA_BITS} to ${MAX_GENERATED_RSA_BITS} (default ${DEFAULT_RSA_BITS})
  --keys-dir DIR   key directory (default keys), matching sign.key "keys/%{d}/%{s}.pem"
  --force          replace an existing key file (the old key stops working once
                   receivers see the new record: prefer a new selector)
  -h, --help       show this help
`;

/** Runs `dkimgate keygen …`; `argv` holds the arguments after "keygen". */
export const runKeygen: CommandRunner = async (argv, io) => {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout.write(KEYGEN_USAGE);
    return EXIT_OK;
  }
  const options = parseKeygenArgs(argv);
  const dir = join(options.keysDir, options.domain);
  const path = join(dir, `${options.selector}.pem`);
  if (!options.force && (await exists(path))) throw refuseOverwrite(path);

  const key = await generateKey({ type: options.type, ...(options.bits === undefined ? {} : { bits: options.bits }) });
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new CliError(`cannot create directory ${dir}: ${errnoText(error)}; choose another --keys-dir or fix its permissions`, EXIT_RUNTIME);
  }
  if (options.force) {
    // Write beside, then rename over: the old key stays whole until the new one is complete.
    const temporary = join(dir, `.${options.selector}.pem.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      await writeNewKeyFile(temporary, key.privateKeyPem);
      await rename(temporary, path);
    } catch (error) {
      await rm(temporary, { force: true });
      throw new CliError(`cannot write ${path}: ${errnoText(error)}`, EXIT_RUNTIME);
    }
  } else {
    try {
      await writeNewKeyFile(path, key.privateKeyPem);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw refuseOverwrite(path);
      throw new CliError(`cannot write ${path}: ${errnoText(error)}`, EXIT_RUNTIME);
    }
  }

  io.stdout.write(formatTxtRecordZone(options.selector, options.domain, key.txtRecord) + '\n');
  const kind = key.keyType === 'rsa' ? `RSA ${key.keyBits} bits` : 'Ed25519';
  io.stderr.write(`dkimgate keygen: wrote ${path} (${kind}, mode 0600); publish the TXT record above at ${options.selector}._domainkey.${options.domain}\n`);
  return EXIT_OK;
};

interface KeygenOptions {
  domain: string;
  selector: string;
  type: GeneratedKeyType;
  bits: number | undefined;
  keysDir: string;
  force: boolean;
}

function parseKeygenArgs(argv: string[]): KeygenOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        domain: { type: 'string' },
        selector: { type: 'string' },
        type: { type: 'string' },
        bits: { type: 'string' },
        'keys-dir': { type: 'string' },
        force: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw usageErrorOf(error, 'keygen') ?? error;
  }
  if (values.domain === undefined) throw new UsageError('--domain is required, e.g. --domain example.com');
  if (values.selector === undefined) throw new UsageError('--selector is required, e.g. --selector s2026');
  const domain = parseDomainName(values.domain);
  if (domain.kind === 'error') throw new UsageError(`--domain: ${domain.reason}`);
  const selectorProblem = checkSelector(values.selector);
  if (selectorProblem !== null) throw new UsageError(`--selector: ${selectorProblem}`);
  const type = values.type ?? 'rsa';
  if (type !== 'rsa' && type !== 'ed25519') throw new UsageError(`--type must be rsa or ed25519, not "${type}"`);
  let bits: number | undefined;
  if (values.bits !== undefined) {
    if (type !== 'rsa') throw new UsageError('--bits applies to RSA keys only (Ed25519 keys are always 256 bits)');
    bits = /^\d{1,5}$/.test(values.bits) ? Number(values.bits) : NaN;
    if (!(bits >= MIN_GENERATED_RSA_BITS && bits <= MAX_GENERATED_RSA_BITS)) {
      throw new UsageError(`--bits must be a whole number from ${MIN_GENERATED_RSA_BITS} to ${MAX_GENERATED_RSA_BITS}, not "${values.bits}"`);
    }
  }
  const keysDir = values['keys-dir'] ?? 'keys';
  if (keysDir === '') throw new UsageError('--keys-dir must not be empty');
  return { domain: domain.domain, selector: values.selector, type, bits, keysDir, force: values.force ?? false };
}

function refuseOverwrite(path: string): CliError {
  return new CliError(
    `${path} already exists; refusing to overwrite a key that may be published in DNS: choose a new selector, or pass --force to replace it`,
    EXIT_RUNTIME,
  );
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

function errnoText(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'ENOTDIR') return 'a path component is not a directory';
  if (code === 'EROFS') return 'read-only file system';
  if (code === 'ENOSPC') return 'no space left on device';
  return code ?? (error instanceof Error ? error.message : String(error));
}
