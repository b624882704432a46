// DKIMGATE_* environment variables that override the common config keys (containers, systemd Environment=),
// validated by the same schema nodes as the file. Pure; input: the process environment (operator's text).

import { LineCounter, parseDocument, stringify } from 'yaml';
import type { Config, ConfigProblem } from './config.js';
import { decodeYaml } from './decode-yaml.js';
import { CONFIG_SCHEMA } from './schema.js';
import type { ObjectNode, SchemaNode } from './schema-node.js';
import { bindConflicts, nextHopLoop } from './bind-conflicts.js';
import { authUserWithoutUsersWarning, clearTextAuthWarning } from './config-warnings.js';

/** Where environment problems say they come from (formatConfigProblem prints "environment: VAR: message"). */
export const ENVIRONMENT_SOURCE = 'environment';

/** The file's path when --config is not given (read by the CLI, not here). */
export const CONFIG_PATH_VARIABLE = 'DKIMGATE_CONFIG';

/** Sets next_hop: with it, the built-in configuration relays for real (no embedded demo next hop). */
export const NEXT_HOP_VARIABLE = 'DKIMGATE_NEXT_HOP';

const USERS_FILE_VARIABLE = 'DKIMGATE_USERS_FILE';

/** The file's warnings that a variable set in `env` makes moot: applyEnvironment judges that setting again. */
export function fileWarningsUnderEnvironment(warnings: readonly ConfigProblem[], env: Readonly<Record<string, string | undefined>>): ConfigProblem[] {
  return warnings.filter(
    (w) => !((w.keyPath === 'next_hop.auth' && env[NEXT_HOP_VARIABLE] !== undefined) || (w.keyPath === 'sign.sign_condition' && env[USERS_FILE_VARIABLE] !== undefined)),
  );
}

type Override = {
  /** What the variable holds, for --help and the README. */
  syntax: string;
  /** The schema node the parsed value is checked against. */
  node: SchemaNode;
  /** Text -> the YAML-shaped value to decode (snake_case keys), or a SyntaxProblem. */
  parse: (text: string) => unknown;
  /** Puts the decoded (camelCase) value into the config. */
  apply: (config: Config, value: unknown) => void;
};

const fields = CONFIG_SCHEMA.fields;
const field = (parent: string, name: string): SchemaNode => {
  const node = (fields[parent] as ObjectNode).fields[name];
  if (node === undefined) throw new Error(`schema has no ${parent}.${name}`);
  return node;
};

/** Comma- or space-separated items; empty text is an empty list. */
const list = (text: string): string[] => text.split(/[\s,]+/).filter((item) => item !== '');

/** Text that does not have the variable's shape at all. */
class SyntaxProblem {
  constructor(readonly message: string) {}
}

/** "HOST:PORT" or "[IPv6]:PORT" -> { host, port }; the port stays text when it is not digits (the schema says why). */
function hostPort(text: string): { host: string; port: number | string } | SyntaxProblem {
  const match = /^\[([^\]]*)\]:([^:]*)$/.exec(text) ?? /^([^:]*):([^:]*)$/.exec(text);
  if (!match) return new SyntaxProblem('write HOST:PORT, e.g. 192.0.2.25:10026, postfix:10026 or [2001:db8::25]:10026');
  const port = match[2]!;
  return { host: match[1]!, port: /^\d{1,5}$/.test(port) ? Number(port) : port };
}

/** "[smtp://|lmtp://]HOST:PORT" -> a listener entry (other keys take the listener defaults). */
function listener(text: string): Record<string, unknown> | SyntaxProblem {
  const match = /^([a-z]+):\/\/(.*)$/.exec(text);
  const address = hostPort(match ? match[2]! : text);
  return address instanceof SyntaxProblem ? address : { ...(match ? { protocol: match[1] } : {}), ...address };
}

/** A list whose first malformed entry is the problem. */
function entries<T>(items: (T | SyntaxProblem)[]): T[] | SyntaxProblem {
  const index = items.findIndex((item) => item instanceof SyntaxProblem);
  return index === -1 ? (items as T[]) : new SyntaxProblem(`entry ${index + 1}: ${(items[index] as SyntaxProblem).message}`);
}

const off = (text: string): boolean => /^(|off|none|null)$/i.test(text.trim());

/** Every variable, in the order they are applied and documented. */
export const ENVIRONMENT_OVERRIDES: Readonly<Record<string, Override>> = {
  DKIMGATE_AUTHSERV_ID: {
    syntax: 'authserv_id, e.g. mx.example.net',
    node: fields.authserv_id!,
    parse: (text) => text.trim(),
    apply: (config, value) => (config.authservId = value as string),
  },
  DKIMGATE_LISTEN: {
    syntax: 'listen, replacing every listener: [smtp://|lmtp://]HOST:PORT, comma-separated, e.g. 0.0.0.0:10027,lmtp://0.0.0.0:10029',
    node: fields.listen!,
    parse: (text) => entries(list(text).map(listener)),
    apply: (config, value) => (config.listen = value as Config['listen']),
  },
  [NEXT_HOP_VARIABLE]: {
    syntax: 'next_hop host and port (tls and auth stay as configured): HOST:PORT, e.g. postfix:10026',
    node: { kind: 'object', fields: { host: field('next_hop', 'host'), port: field('next_hop', 'port') }, required: ['host', 'port'] },
    parse: (text) => hostPort(text.trim()),
    apply: (config, value) => Object.assign(config.nextHop, value),
  },
  DKIMGATE_RELAY_HOSTS: {
    syntax: 'relay_hosts: CIDR blocks, comma-separated (empty: none), e.g. 10.0.0.0/8,192.0.2.7',
    node: fields.relay_hosts!,
    parse: list,
    apply: (config, value) => (config.relayHosts = value as string[]),
  },
  DKIMGATE_XFORWARD_HOSTS: {
    syntax: 'xforward_hosts: CIDR blocks, comma-separated (empty: none), e.g. 172.16.0.0/12',
    node: fields.xforward_hosts!,
    parse: list,
    apply: (config, value) => (config.xforwardHosts = value as string[]),
  },
  DKIMGATE_SIGN_KEY: {
    syntax: 'sign.key, the key path template, e.g. /run/secrets/dkim/%{d}/%{s}.pem',
    node: field('sign', 'key'),
    parse: (text) => text.trim(),
    apply: (config, value) => (config.sign.key = value as string),
  },
  [USERS_FILE_VARIABLE]: {
    syntax: 'users_file (empty or "off": none)',
    node: fields.users_file!,
    parse: (text) => (off(text) ? null : text.trim()),
    apply: (config, value) => (config.usersFile = value as string | null),
  },
  DKIMGATE_DNS_SERVERS: {
    syntax: 'dns.servers, comma-separated (empty: the system resolvers), e.g. 127.0.0.11 or 10.0.0.2:53,[2001:db8::53]:53',
    node: field('dns', 'servers'),
    parse: list,
    apply: (config, value) => (config.dns.servers = value as string[]),
  },
  DKIMGATE_METRICS: {
    syntax: 'metrics (/metrics and /healthz): HOST:PORT, or "off", e.g. 0.0.0.0:9110',
    node: fields.metrics!,
    parse: (text) => (off(text) ? null : hostPort(text.trim())),
    apply: (config, value) => (config.metrics = value as Config['metrics']),
  },
};

export type EnvironmentApplied =
  | { kind: 'ok'; config: Config; applied: string[]; warnings: ConfigProblem[] }
  | { kind: 'error'; problems: ConfigProblem[] };

/**
 * Applies every DKIMGATE_* override set in `env` to a copy of `config`. A variable that is set (even
 * to the empty text) overrides. Another DKIMGATE_* name is a warning (a typo would otherwise go unseen).
 */
export function applyEnvironment(config: Config, env: Readonly<Record<string, string | undefined>>): EnvironmentApplied {
  const next = structuredClone(config);
  const problems: ConfigProblem[] = [];
  const warnings: ConfigProblem[] = [];
  const applied: string[] = [];
  const problem = (keyPath: string, message: string): void => void problems.push({ file: ENVIRONMENT_SOURCE, line: 0, keyPath, message });

  for (const name of Object.keys(env).sort()) {
    if (name.startsWith('DKIMGATE_') && env[name] !== undefined && !(name in ENVIRONMENT_OVERRIDES) && name !== CONFIG_PATH_VARIABLE) {
      const known = [...Object.keys(ENVIRONMENT_OVERRIDES), CONFIG_PATH_VARIABLE].join(', ');
      warnings.push({ file: ENVIRONMENT_SOURCE, line: 0, keyPath: name, message: `not a dkimgate setting, ignored; the settings are ${known}` });
    }
  }
  for (const [name, override] of Object.entries(ENVIRONMENT_OVERRIDES)) {
    const text = env[name];
    if (text === undefined) continue;
    const shaped = override.parse(text);
    if (shaped instanceof SyntaxProblem) {
      problem(name, `${quoted(text)}: ${shaped.message}`);
      continue;
    }
    const lineCounter = new LineCounter();
    const doc = parseDocument(stringify(shaped), { lineCounter });
    const decoded = decodeYaml(doc, lineCounter, ENVIRONMENT_SOURCE, override.node);
    if (decoded.problems.length > 0) {
      for (const p of decoded.problems) problem(name, `${quoted(text)}: ${describePart(p.keyPath, shaped)}${p.message}`);
      continue;
    }
    override.apply(next, decoded.value);
    applied.push(name);
  }
  // the listeners and the metrics listener together, as the file's are checked: each must be bindable
  if ((env.DKIMGATE_LISTEN !== undefined || env.DKIMGATE_METRICS !== undefined) && problems.length === 0) {
    for (const conflict of bindConflicts(next)) {
      const atMetrics = conflict.keyPath.startsWith('metrics');
      const name = (atMetrics && env.DKIMGATE_METRICS !== undefined) || env.DKIMGATE_LISTEN === undefined ? 'DKIMGATE_METRICS' : 'DKIMGATE_LISTEN';
      problem(name, `${conflict.keyPath}: ${conflict.message}`);
    }
  }
  if ((env.DKIMGATE_LISTEN !== undefined || env[NEXT_HOP_VARIABLE] !== undefined) && problems.length === 0) {
    const loop = nextHopLoop(next);
    if (loop !== null) problem(env[NEXT_HOP_VARIABLE] !== undefined ? NEXT_HOP_VARIABLE : 'DKIMGATE_LISTEN', loop.message);
  }
  // the file's warnings about these were about the file's values (see fileWarningsUnderEnvironment): judged again here
  const rejudged: [string, string | null][] = [
    [NEXT_HOP_VARIABLE, env[NEXT_HOP_VARIABLE] !== undefined ? clearTextAuthWarning(next.nextHop) : null],
    [USERS_FILE_VARIABLE, env[USERS_FILE_VARIABLE] !== undefined ? authUserWithoutUsersWarning(next) : null],
  ];
  for (const [name, message] of rejudged) if (message !== null) warnings.push({ file: ENVIRONMENT_SOURCE, line: 0, keyPath: name, message });
  return problems.length > 0 ? { kind: 'error', problems } : { kind: 'ok', config: next, applied, warnings };
}

/**
 * The variable's text for a problem, cut short: every problem of a list quotes it, so a long value
 * with many bad entries would otherwise make output quadratic in its length.
 */
function quoted(text: string): string {
  return JSON.stringify(text.length > QUOTED_CHARS ? `${text.slice(0, QUOTED_CHARS)}…` : text);
}
const QUOTED_CHARS = 80;

/** "the 2nd entry's port: " for a problem inside a list or an object; "" for the whole value. */
function describePart(keyPath: string, shaped: unknown): string {
  if (keyPath === '') return '';
  const match = /^(?:\[(\d+)\])?\.?(.*)$/.exec(keyPath);
  const index = match?.[1];
  const key = match?.[2] ?? '';
  const entry = index !== undefined && Array.isArray(shaped) ? `entry ${Number(index) + 1}${key ? ` ${key}` : ''}` : key;
  return entry === '' ? '' : `${entry}: `;
}

/** The DKIMGATE_* overrides set in `env` (names only, for the start-up log line). */
export function overriddenKeys(env: Readonly<Record<string, string | undefined>>): string[] {
  return Object.keys(ENVIRONMENT_OVERRIDES).filter((name) => env[name] !== undefined);
}
