// Turns config file text into a validated Config or the full list of problems (file, line, key path).
// Pure; input: the operator's YAML text. Checks that need the file system live in the CLI's config check.

import { isScalar, LineCounter, parseDocument, visit, type Document, type ErrorCode } from 'yaml';
import type { Config, ConfigProblem, DomainSignConfig, SelectorConfig, SignCondition, SignOptions } from './config.js';
import { decodeYaml } from './decode-yaml.js';
import { checkIdentityInDomain } from './dkim-syntax.js';
import { resolveSigningSelectors } from './resolve-signing-selectors.js';
import { CONFIG_SCHEMA } from './schema.js';
import { bindConflicts, nextHopLoop } from './bind-conflicts.js';
import { authUserWithoutUsersWarning, clearTextAuthWarning } from './config-warnings.js';

export type ConfigParse =
  | {
      kind: 'ok';
      config: Config;
      /** Things that work but are probably not what the operator wants. */
      warnings: ConfigProblem[];
      /** The line of a key path (or of its nearest written ancestor); 1 when nothing is written. */
      lineOf: (keyPath: string) => number;
    }
  | { kind: 'error'; problems: ConfigProblem[] };

const SIGN_OPTION_KEYS = [
  'digest',
  'headerCanon',
  'bodyCanon',
  'headerlist',
  'key',
  'identity',
  'lifetime',
  'bodyLengthLimit',
  'copyHeaders',
] as const satisfies readonly (keyof SignOptions)[];

/** Clearer words for the YAML errors operators meet most. */
const YAML_MESSAGES: Partial<Record<ErrorCode, string>> = {
  DUPLICATE_KEY: 'this key is already set earlier in the same mapping',
  MULTIPLE_DOCS: 'the file holds several YAML documents (---); put the whole configuration in one',
  TAB_AS_INDENT: 'tabs are not allowed as indentation; indent with spaces',
};

/** Parses and validates `text` (the contents of `fileName`, used in problems). Never throws. */
export function parseConfigText(text: string, fileName: string): ConfigParse {
  const lineCounter = new LineCounter();
  // uniqueKeys off: the yaml package compares each key with every earlier one (10,000 domains: seconds,
  // on every reload); duplicateKeyOffsets finds the same keys with one Set per mapping.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: false });
  const yamlErrors = [
    ...[...doc.errors, ...doc.warnings].map((error) => ({ offset: error.pos[0], code: error.code, message: error.message })),
    ...duplicateKeyOffsets(doc).map((offset) => ({ offset, code: 'DUPLICATE_KEY' as ErrorCode, message: '' })),
  ].sort((a, b) => a.offset - b.offset);
  const yamlProblems = yamlErrors.map(
    (error): ConfigProblem => ({
      file: fileName,
      line: lineCounter.linePos(error.offset).line || 1,
      keyPath: '',
      message: `YAML: ${YAML_MESSAGES[error.code] ?? error.message.split('\n')[0] ?? error.code}`,
    }),
  );
  if (yamlProblems.length > 0) return { kind: 'error', problems: yamlProblems };
  const aliasProblem = checkAliasExpansion(doc);
  if (aliasProblem !== null) return { kind: 'error', problems: [{ file: fileName, line: 1, keyPath: '', message: aliasProblem }] };

  const decoded = decodeYaml(doc, lineCounter, fileName, CONFIG_SCHEMA);
  const lineOf = (keyPath: string): number => {
    let path = keyPath;
    for (;;) {
      const line = decoded.lines.get(path);
      if (line !== undefined) return line;
      if (path === '') return 1;
      const cut = Math.max(path.lastIndexOf('.'), path.lastIndexOf('['));
      path = cut <= 0 ? '' : path.slice(0, cut);
    }
  };
  if (decoded.problems.length > 0) return { kind: 'error', problems: decoded.problems };

  const config = reshape(decoded.value as DecodedConfig);
  const problems: ConfigProblem[] = [];
  const warnings: ConfigProblem[] = [];
  const problem = (keyPath: string, message: string): void => {
    problems.push({ file: fileName, line: lineOf(keyPath), keyPath, message });
  };
  const warning = (keyPath: string, message: string): void => {
    warnings.push({ file: fileName, line: lineOf(keyPath), keyPath, message });
  };

  // checked here, not only by bind() at start: `config check` must not pass what start cannot bind
  for (const conflict of bindConflicts(config)) problem(conflict.keyPath, conflict.message);
  const loop = nextHopLoop(config);
  if (loop !== null) problem(loop.keyPath, loop.message);

  if (config.limits.maxHeaderSize > config.limits.maxMessageSize) {
    problem('limits.max_header_size', `must not exceed limits.max_message_size (${config.limits.maxMessageSize})`);
  }

  const requiredAt = new Map<string, number>();
  config.policy.require.forEach((rule, index) => {
    const earlier = requiredAt.get(rule.domain);
    if (earlier !== undefined) problem(`policy.require[${index}].domain`, `${rule.domain} is already required by policy.require[${earlier}]`);
    else requiredAt.set(rule.domain, index);
  });
  // Unverified mail is relayed as it is: a require rule would silently stop protecting its domain.
  if (!config.verify.enabled && config.policy.require.length > 0) {
    problem('policy.require', 'has no effect while verify.enabled is false (mail from these domains would be relayed unchecked): set verify.enabled: true or remove the rules');
  }

  const selectorsSeen = new Set<string>();
  for (const entry of resolveSigningSelectors(config)) {
    const domain = config.sign.domains[entry.fromDomain];
    const selectorIndex = domain?.selectors.findIndex((s) => s.selector === entry.selector) ?? -1;
    const selectorEntry = domain?.selectors[selectorIndex];
    // The most specific place that sets an option: the selector entry, the domain, or sign itself.
    const optionPath = (key: keyof SignOptions, yamlKey: string): string =>
      selectorEntry?.overrides[key] !== undefined
        ? `sign.domains.${entry.fromDomain}.selectors[${selectorIndex}].${yamlKey}`
        : domain?.overrides[key] !== undefined
          ? `sign.domains.${entry.fromDomain}.${yamlKey}`
          : `sign.${yamlKey}`;

    const pairKey = `${entry.fromDomain} ${entry.selector}`;
    if (selectorsSeen.has(pairKey)) {
      problem(entry.origin, `selector ${entry.selector} is listed twice for ${entry.fromDomain}`);
    }
    selectorsSeen.add(pairKey);
    const recordName = `${entry.selector}._domainkey.${entry.signingDomain}`;
    if (recordName.length > 253) problem(entry.origin, `the key record name ${recordName} is longer than 253 characters`);
    if (entry.agentId !== null) {
      const outside = checkIdentityInDomain(entry.agentId, entry.signingDomain);
      if (outside !== null) problem(optionPath('identity', 'identity'), outside);
    }
    if (entry.algorithm === 'rsa-sha1') {
      warning(
        optionPath('digest', 'digest'),
        `rsa-sha1 for ${entry.fromDomain} selector ${entry.selector}: RFC 8301 forbids signing with it and verifiers treat it as dkim=policy; use rsa-sha256`,
      );
    }
  }
  const noUsers = authUserWithoutUsersWarning(config);
  if (noUsers !== null) warning('sign.sign_condition', noUsers);

  const clearText = clearTextAuthWarning(config.nextHop);
  if (clearText !== null) warning('next_hop.auth', clearText);

  if (problems.length > 0) return { kind: 'error', problems };
  return { kind: 'ok', config, warnings, lineOf };
}

/** Where a mapping repeats a key (the offset of each repeat): scalar keys equal in value, as YAML 1.2 forbids. */
function duplicateKeyOffsets(doc: Document): number[] {
  const offsets: number[] = [];
  visit(doc, {
    Map(_key, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        if (!isScalar(pair.key)) continue;
        if (seen.has(pair.key.value)) offsets.push(pair.key.range?.[0] ?? 0);
        else seen.add(pair.key.value);
      }
    },
  });
  return offsets;
}

/**
 * The decoder follows aliases, so nested aliases (`[*a, *a, …]` where a holds `[*b, *b, …]`) would
 * make a few lines decode into millions of nodes. yaml's own count, the one `toJS` applies: each
 * alias weighs the aliases inside what it points at, and the total may not pass this.
 */
const MAX_ALIAS_COUNT = 100;

function checkAliasExpansion(doc: Document.Parsed): string | null {
  try {
    doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    return null;
  } catch (error) {
    if (error instanceof ReferenceError) {
      return `YAML: aliases (*name) expand to more than ${MAX_ALIAS_COUNT} copies; write the values out instead`;
    }
    return `YAML: ${(error as Error).message.split('\n')[0]}`;
  }
}

type DecodedOptions = Partial<SignOptions>;
interface DecodedSelectorEntry extends DecodedOptions {
  selector: string;
}
interface DecodedDomain extends DecodedOptions {
  selector?: string;
  selectors?: (string | DecodedSelectorEntry)[];
  baseDomain?: string;
  signCondition?: SignCondition;
}
type DecodedConfig = Omit<Config, 'sign'> & { sign: Omit<Config['sign'], 'domains'> & { domains: Record<string, DecodedDomain> } };

/** Decoded YAML shape -> Config: domain entries become { baseDomain, signCondition, overrides, selectors[] }. */
function reshape(decoded: DecodedConfig): Config {
  const domains: Record<string, DomainSignConfig> = {};
  for (const [name, entry] of Object.entries(decoded.sign.domains)) {
    const listed: (string | DecodedSelectorEntry)[] = entry.selectors ?? (entry.selector === undefined ? [] : [entry.selector]);
    const selectors: SelectorConfig[] = listed.map((item) =>
      typeof item === 'string' ? { selector: item, overrides: {} } : { selector: item.selector, overrides: pickSignOptions(item) },
    );
    domains[name] = {
      baseDomain: entry.baseDomain ?? null,
      signCondition: entry.signCondition ?? null,
      overrides: pickSignOptions(entry),
      selectors,
    };
  }
  return { ...decoded, sign: { ...decoded.sign, domains } };
}

function pickSignOptions(source: DecodedOptions): Partial<SignOptions> {
  const out: Partial<Record<keyof SignOptions, unknown>> = {};
  for (const key of SIGN_OPTION_KEYS) {
    if (source[key] !== undefined) out[key] = source[key];
  }
  return out as Partial<SignOptions>;
}
