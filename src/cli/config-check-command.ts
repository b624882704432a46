// `dkimgate config check`: validates a config file and every file it references (keys, TLS, users, zones).
// Touches: reads the config and the files it names; writes findings to stdout/stderr. Never prints key material.

import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Config, ConfigProblem, SigningSelector } from '../config/config.js';
import { describeReadError, formatConfigProblem, formatConfigWarning } from '../config/load-config.js';
import { applyEnvironment, CONFIG_PATH_VARIABLE, fileWarningsUnderEnvironment } from '../config/environment-overrides.js';
import { parseConfigText } from '../config/parse-config-text.js';
import { resolveSigningSelectors } from '../config/resolve-signing-selectors.js';
import { parseZoneFile } from '../dns/zone-file.js';
import { spoolDirProblem } from '../pipeline/body-spool.js';
import { KeyLoadError, loadPrivateKey, type LoadedKey } from '../keys/load-private-key.js';
import { readCaFile, readListenerCertificates } from '../keys/tls-files.js';
import { loadUsersFile, UsersFileError } from '../smtp/users-file.js';
import { usersWithoutSigningDomain } from '../smtp/users-without-signing-domain.js';
import { EXIT_OK, EXIT_USAGE, usageErrorOf, type CommandRunner } from './cli-error.js';
import { DEFAULT_CONFIG_PATH } from './config-option.js';

export const CONFIG_CHECK_USAGE = `Usage: dkimgate config check [--config FILE]

Validates the configuration file (default $DKIMGATE_CONFIG, else ${DEFAULT_CONFIG_PATH}; built-in
defaults when that file does not exist) with the DKIMGATE_* environment overrides applied, and
the files it references: signing keys, TLS files, the users file and DNS zone files. Prints
"ok: FILE", or one line per problem as FILE:LINE: key: message (environment: VARIABLE: message
for an override) on stderr and exits with status 2.

Options:
  --config FILE   the file to check
  -h, --help      show this help
`;

/** Runs `dkimgate config check …`; `argv` holds the arguments after "config check". */
export const runConfigCheck: CommandRunner = async (argv, io) => {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout.write(CONFIG_CHECK_USAGE);
    return EXIT_OK;
  }
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (error) {
    throw usageErrorOf(error, 'config check') ?? error;
  }
  const fromEnvironment = process.env[CONFIG_PATH_VARIABLE];
  const explicit = values.config ?? (fromEnvironment === '' ? undefined : fromEnvironment);
  const file = explicit ?? DEFAULT_CONFIG_PATH;

  let text = '';
  let builtIn = false;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (explicit !== undefined || (error as NodeJS.ErrnoException).code !== 'ENOENT') {
      return report(io, [{ file, line: 0, keyPath: '', message: describeReadError(error) }], []);
    }
    builtIn = true;
  }
  const label = builtIn ? '(built-in defaults)' : file;
  const parsed = parseConfigText(text, label);
  if (parsed.kind === 'error') return report(io, parsed.problems, []); // with built-in defaults: a bug
  const overridden = applyEnvironment(parsed.config, process.env);
  if (overridden.kind === 'error') return report(io, overridden.problems, parsed.warnings);
  const findings = await checkReferencedFiles(overridden.config, label, parsed.lineOf);
  const warnings = [...fileWarningsUnderEnvironment(parsed.warnings, process.env), ...overridden.warnings, ...findings.warnings];
  if (findings.problems.length > 0) return report(io, findings.problems, warnings);
  for (const warning of warnings) io.stderr.write(formatConfigWarning(warning) + '\n');
  const environment = overridden.applied.length > 0 ? ` with ${overridden.applied.join(', ')} from the environment` : '';
  io.stdout.write(
    builtIn
      ? `ok: built-in defaults${environment} (${file} does not exist; pass --config FILE to check another file)\n`
      : `ok: ${file}${environment}\n`,
  );
  return EXIT_OK;
};

/** Checks the files a parsed config names. Relative paths are taken from the working directory, as the daemon does. */
export async function checkReferencedFiles(
  config: Config,
  file: string,
  lineOf: (keyPath: string) => number,
): Promise<{ problems: ConfigProblem[]; warnings: ConfigProblem[] }> {
  const problems: ConfigProblem[] = [];
  const warnings: ConfigProblem[] = [];
  const at = (keyPath: string, message: string): ConfigProblem => ({ file, line: lineOf(keyPath), keyPath, message });

  const loads = new Map<string, Promise<LoadedKey>>();
  for (const entry of resolveSigningSelectors(config)) {
    const what = `key for ${entry.fromDomain} selector ${entry.selector}`;
    let load = loads.get(entry.keyPath);
    const firstUse = load === undefined;
    if (load === undefined) {
      load = loadPrivateKey(entry.keyPath);
      load.catch(() => undefined);
      loads.set(entry.keyPath, load);
    }
    try {
      const key = await load;
      if (firstUse) for (const warning of key.warnings) warnings.push(at(entry.origin, `${what}: ${warning}`));
      const wanted = entry.algorithm === 'ed25519-sha256' ? 'ed25519' : 'rsa';
      if (key.keyType !== wanted) {
        problems.push(
          at(
            entry.origin,
            `${what}: ${entry.keyPath} is an ${key.keyType === 'rsa' ? 'RSA' : 'Ed25519'} key but digest is ${entry.algorithm}; set digest: ${key.keyType === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256'} for this selector or point it at ${wanted === 'rsa' ? 'an RSA' : 'an Ed25519'} key`,
          ),
        );
      }
    } catch (error) {
      if (!firstUse) continue; // reported once per file
      problems.push(at(entry.origin, `${what}: ${keyProblemText(error, entry)}`));
    }
  }

  // read and paired as the daemon does at start: a readable file that is no certificate must not pass
  const certificates = await readListenerCertificates(config.listen);
  const certificateFindings = certificates.kind === 'error' ? problems : warnings;
  for (const finding of certificates.kind === 'error' ? certificates.problems : certificates.warnings) {
    certificateFindings.push(at(finding.keyPath, finding.message));
  }
  if (config.nextHop.caFile !== null) {
    const read = await readCaFile(config.nextHop.caFile);
    if (read.kind === 'error') problems.push(at('next_hop.ca_file', read.problem));
  }
  if (config.usersFile !== null && (await checkReadable(config.usersFile, 'users_file', 'users file'))) {
    // parsed as the daemon parses it: a plain-text password or a stray line must not pass here and stop the start
    try {
      const users = await loadUsersFile(config.usersFile);
      for (const warning of [...users.warnings, ...usersWithoutSigningDomain(users, config)]) warnings.push(at('users_file', warning));
    } catch (error) {
      if (!(error instanceof UsersFileError)) throw error;
      for (const problem of error.problems) problems.push(at('users_file', problem));
    }
  }
  {
    // as the user running the check: the daemon's user may still differ. Unset, it is the system temporary
    // directory ($TMPDIR), which the daemon checks at start too.
    const spoolProblem = await spoolDirProblem(config.limits.spoolDir ?? tmpdir());
    if (spoolProblem) problems.push(at('limits.spool_dir', spoolProblem));
  }

  for (const [index, zonePath] of config.dns.zoneFiles.entries()) {
    const keyPath = `dns.zone_files[${index}]`;
    let zoneText: string;
    try {
      zoneText = await readFile(zonePath, 'utf8');
    } catch (error) {
      problems.push(at(keyPath, `zone file ${zonePath}: ${describeReadError(error)}`));
      continue;
    }
    const zone = parseZoneFile(zoneText, { fileName: zonePath });
    if (zone.kind === 'error') problems.push(at(keyPath, `zone file ${zonePath}:${zone.line}: ${zone.message}`));
  }
  return { problems, warnings };

  /** Whether `path` is a readable regular file; a problem is recorded when not. */
  async function checkReadable(path: string, keyPath: string, what: string): Promise<boolean> {
    try {
      const info = await stat(path);
      if (!info.isFile()) {
        problems.push(at(keyPath, `${what} ${path} is not a regular file`));
        return false;
      }
      await access(path, constants.R_OK);
      return true;
    } catch (error) {
      problems.push(at(keyPath, `${what} ${path}: ${describeReadError(error)}`));
      return false;
    }
  }
}

/** The key problem, with the exact keygen command when the file is simply missing. */
export function keyProblemText(error: unknown, entry: SigningSelector): string {
  if (!(error instanceof KeyLoadError)) return error instanceof Error ? error.message : String(error);
  if (error.code !== 'missing') return error.message;
  const tail = join(entry.signingDomain, `${entry.selector}.pem`);
  if (!entry.keyPath.endsWith(tail)) return error.message;
  const keysDir = dirname(dirname(entry.keyPath));
  const command = [
    'dkimgate keygen',
    `--domain ${entry.signingDomain}`,
    `--selector ${entry.selector}`,
    ...(entry.algorithm === 'ed25519-sha256' ? ['--type ed25519'] : []),
    ...(keysDir === 'keys' ? [] : [`--keys-dir ${keysDir}`]),
  ].join(' ');
  return `private key ${entry.keyPath} does not exist; create it with: ${command}`;
}

function report(io: Parameters<CommandRunner>[1], problems: ConfigProblem[], warnings: ConfigProblem[]): number {
  for (const problem of problems) io.stderr.write(formatConfigProblem(problem) + '\n');
  for (const warning of warnings) io.stderr.write(formatConfigWarning(warning) + '\n');
  return EXIT_USAGE;
}
