// `dkimgate doctor`: for every configured domain and selector, one line per check — key file, key size, DNS
// record, record matches, Ed25519 record, selector in use; exit 1 on any FAIL.
// Touches: the config file, key files and the users file (read once each), DNS or zone files; writes stdout.

import { stat } from 'node:fs/promises';
import { DEMO } from '../config/built-in-config.js';
import type { Config, SigningSelector } from '../config/config.js';
import { resolveSigningSelectors } from '../config/resolve-signing-selectors.js';
import type { TxtLookup } from '../dkim/txt-lookup.js';
import { KeyLoadError, keySizeWarning, loadPrivateKey, type LoadedKey, type KeyLoadErrorCode } from '../keys/load-private-key.js';
import { checkEd25519Records, matchPublishedKey, publishedKeyName, unpublishedProblem } from '../keys/match-published-key.js';
import { isReachable, signingReach, type UsersSummary } from '../policy/signing-reach.js';
import { loadUsersFile } from '../smtp/users-file.js';
import type { CommandRunner } from './cli-error.js';
import { keyProblemText } from './config-check-command.js';
import { describeConfigSource, loadCliConfig } from './config-option.js';
import { createCliLookup, parseConfigAndDnsArgs } from './dns-options.js';

export const DOCTOR_USAGE = `usage: dkimgate doctor [--config FILE] [--dns-server HOST[:PORT]]... [--dns-zone FILE]...

Checks every domain and selector of the sign section, one line per check:
  key file    present, a regular file, readable, not writable by others (warn: readable by others)
  key size    RSA 2048 to 4096 bits or Ed25519, of the selector's digest (warn under 2048)
  DNS record  S._domainkey.D has a TXT record
  matches     a record parses, holds the private key's public half and applies to the digest
              (h=, s=), and no other valid key is published beside it; warn on t=y (testing)
  ed25519     for ed25519-sha256 selectors: a record is k=ed25519 with the raw 32-byte key (RFC 8463)
  in use      some client can get the signature: a relay_hosts block, or AUTH users allowed the domain
Each line starts with ok, warn, FAIL, or skip (not checked: it needs what failed above). The exit
status is 1 when any line says FAIL, else 0.

The configuration is FILE, else $DKIMGATE_CONFIG, else config/dkimgate.yaml when present, else the
built-in one, and DNS
is asked as the daemon asks it (dns.servers, dns.zone_files). --dns-server replaces dns.servers;
--dns-zone files answer after dns.zone_files: pass a zone fragment to check it before publishing.
`;

type Status = 'ok' | 'warn' | 'FAIL' | 'skip';
export interface DoctorLine {
  status: Status;
  text: string;
}

/** Key load failures that are about the file rather than what it holds. */
const FILE_PROBLEMS: ReadonlySet<KeyLoadErrorCode> = new Set(['missing', 'unreadable', 'not_a_file', 'insecure_permissions', 'too_large']);

export const runDoctor: CommandRunner = async (argv, io) => {
  const args = parseConfigAndDnsArgs('doctor', argv);
  if (args.help) {
    io.stdout.write(DOCTOR_USAGE);
    return 0;
  }
  const { config, file } = await loadCliConfig(args.config);
  const servers = args.dns.servers ?? config.dns.servers;
  const zones = [...config.dns.zoneFiles, ...(args.dns.zones ?? [])];
  io.stdout.write(
    `info config: ${describeConfigSource(file)}; DNS: ${servers.length > 0 ? servers.join(', ') : 'the system resolvers'}` +
      `${zones.length > 0 ? `, zone files ${zones.join(', ')} first` : ''}\n`,
  );
  const selectors = resolveSigningSelectors(config);
  if (selectors.length === 0) {
    io.stdout.write('info sign: no domain has a selector, nothing is signed (verify only)\n');
    return 0;
  }
  const lookupTxt = await createCliLookup(config.dns, args.dns);
  const users = await loadUsers(config);
  const reports = await Promise.all(selectors.map((sel) => diagnoseSelector(sel, { config, builtIn: file === null, lookupTxt, users })));
  const lines = reports.flat();
  for (const line of lines) io.stdout.write(`${line.status.padEnd(4)} ${line.text}\n`);
  return lines.some((l) => l.status === 'FAIL') ? 1 : 0;
};

interface DoctorContext {
  config: Config;
  builtIn: boolean;
  lookupTxt: TxtLookup;
  users: { kind: 'ok'; summary: UsersSummary | null } | { kind: 'error'; message: string };
}

/** Every check of one selector, in the order of DOCTOR_USAGE. */
async function diagnoseSelector(sel: SigningSelector, ctx: DoctorContext): Promise<DoctorLine[]> {
  const name = publishedKeyName(sel);
  const line = (status: Status, check: string, detail: string): DoctorLine => ({ status, text: `${name} ${check}: ${detail}` });
  const [key, lookup] = await Promise.all([loadKey(sel, ctx.builtIn), ctx.lookupTxt(name)]);
  const lines: DoctorLine[] = [];

  // key file, key size
  if (key.kind === 'error' && key.fileProblem) {
    lines.push(line('FAIL', 'key file', key.message), line('skip', 'key size', 'no key file'));
  } else {
    const fileWarnings = key.kind === 'ok' ? key.fileWarnings : [];
    lines.push(line(fileWarnings.length > 0 ? 'warn' : 'ok', 'key file', fileWarnings.join('; ') || `${sel.keyPath} (mode ${key.mode})`));
    lines.push(key.kind === 'error' ? line('FAIL', 'key size', key.message) : keySizeLine(sel, key.key, line));
  }

  // DNS record
  const records = lookup.kind === 'found' ? lookup.records : [];
  lines.push(records.length > 0 ? line('ok', 'DNS record', `published (${records.length} TXT record${records.length === 1 ? '' : 's'})`) : line('FAIL', 'DNS record', unpublishedProblem(lookup)));

  // matches
  if (key.kind === 'error' || records.length === 0) {
    lines.push(line('skip', 'matches', key.kind === 'error' ? 'no usable private key' : 'no record'));
  } else {
    const match = matchPublishedKey(records, key.key.keyObject, sel);
    if (match.kind === 'no_match') lines.push(line('FAIL', 'matches', `${match.problems.join('; ')} (private key ${sel.keyPath})`));
    else if (match.problems.length > 0) lines.push(line('FAIL', 'matches', match.problems.join('; ')));
    else if (match.record.testing) lines.push(line('warn', 'matches', `the record holds the private key's public half but has t=y: receivers treat failures as unsigned; remove t=y once signing works`));
    else lines.push(line('ok', 'matches', `the record holds the private key's public half (${match.record.keyType} ${match.record.keyBits} bits)`));
  }

  // ed25519
  if (sel.algorithm === 'ed25519-sha256') {
    if (records.length === 0) lines.push(line('skip', 'ed25519', 'no record'));
    else {
      const problem = checkEd25519Records(records);
      lines.push(problem === null ? line('ok', 'ed25519', 'k=ed25519 with a raw 32-byte key (RFC 8463)') : line('FAIL', 'ed25519', `${problem}; publish the record dkimgate keygen --type ed25519 printed`));
    }
  }

  // in use
  lines.push(inUseLine(sel, ctx, line));
  return lines;
}

type LineMaker = (status: Status, check: string, detail: string) => DoctorLine;

function keySizeLine(sel: SigningSelector, key: LoadedKey, line: LineMaker): DoctorLine {
  const described = key.keyType === 'rsa' ? `RSA ${key.keyBits} bits` : 'Ed25519';
  const wanted = sel.algorithm === 'ed25519-sha256' ? 'ed25519' : 'rsa';
  if (key.keyType !== wanted) return line('FAIL', 'key size', `${described}, but the digest is ${sel.algorithm}: set digest: ${key.keyType === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256'} or use another key`);
  const warning = keySizeWarning(sel.keyPath, key.keyType, key.keyBits);
  return warning === null ? line('ok', 'key size', `${described}, digest ${sel.algorithm}`) : line('warn', 'key size', warning);
}

function inUseLine(sel: SigningSelector, ctx: DoctorContext, line: LineMaker): DoctorLine {
  if (ctx.users.kind === 'error') return line('FAIL', 'in use', `${ctx.users.message}; the daemon will not start with it`);
  const reach = signingReach(ctx.config, sel.fromDomain, sel.signCondition, ctx.users.summary);
  const as = sel.signingDomain === sel.fromDomain ? '' : ` (and its subdomains) as d=${sel.signingDomain}`;
  if (!isReachable(reach)) {
    const why =
      sel.signCondition === 'auth_user' && ctx.config.usersFile === null
        ? `sign_condition is auth_user but there is no users_file`
        : reach.users.length === 0 && reach.authListeners.length === 0 && (ctx.users.summary?.users.length ?? 0) > 0
          ? `no listener offers AUTH (it needs tls, or allow_insecure_auth on loopback)${sel.signCondition === 'auth_user' ? '' : ', and no relay_hosts'}`
          : sel.signCondition === 'auth_user'
            ? `sign_condition is auth_user and no user may sign for ${sel.fromDomain}`
            : `no relay_hosts on any listener and no AUTH users allowed ${sel.fromDomain}`;
    return line('FAIL', 'in use', `never used: ${why}`);
  }
  const who = [
    ...(reach.relayHosts.length > 0 ? [`relay hosts ${reach.relayHosts.join(', ')}`] : []),
    ...(reach.users.length > 0 && reach.authListeners.length > 0 ? [`${reach.users.length} AUTH user${reach.users.length === 1 ? '' : 's'}`] : []),
  ];
  return line('ok', 'in use', `signs mail From ${sel.fromDomain}${as} sent by ${who.join(' or ')}`);
}

type KeyCheck =
  | { kind: 'ok'; key: LoadedKey; mode: string; fileWarnings: string[] }
  | { kind: 'error'; fileProblem: boolean; message: string; mode: string };

async function loadKey(sel: SigningSelector, builtIn: boolean): Promise<KeyCheck> {
  const mode = await stat(sel.keyPath).then(
    (s) => (s.mode & 0o777).toString(8).padStart(4, '0'),
    () => '?',
  );
  try {
    const key = await loadPrivateKey(sel.keyPath);
    const sizeWarning = keySizeWarning(sel.keyPath, key.keyType, key.keyBits);
    return { kind: 'ok', key, mode, fileWarnings: key.warnings.filter((w) => w !== sizeWarning) };
  } catch (err) {
    const fileProblem = err instanceof KeyLoadError && FILE_PROBLEMS.has(err.code);
    const demoMissing = builtIn && sel.fromDomain === DEMO.domain && err instanceof KeyLoadError && err.code === 'missing';
    const message = demoMissing ? `${sel.keyPath} does not exist yet; "npm start" (dkimgate serve) creates it on its first start` : keyProblemText(err, sel);
    return { kind: 'error', fileProblem, message, mode };
  }
}

async function loadUsers(config: Config): Promise<DoctorContext['users']> {
  if (config.usersFile === null) return { kind: 'ok', summary: null };
  try {
    const file = await loadUsersFile(config.usersFile);
    return { kind: 'ok', summary: { users: file.users, allowedDomainsByUser: file.allowedDomainsByUser } };
  } catch (err) {
    return { kind: 'error', message: (err as Error).message.split('\n')[0] ?? String(err) };
  }
}
