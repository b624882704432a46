// Reads and validates the configuration file at start-up and reload; formats config problems.
// Touches: the file system (one read of the config file).

import { readFile } from 'node:fs/promises';
import type { Config, ConfigProblem } from './config.js';
import { parseConfigText } from './parse-config-text.js';

/** A configuration that cannot be used; `message` lists every problem, one per line. Exit status 2. */
export class ConfigError extends Error {
  constructor(readonly problems: ConfigProblem[]) {
    super(problems.map(formatConfigProblem).join('\n'));
    this.name = 'ConfigError';
  }
}

/** "FILE:LINE: key.path: message" (line and key left out when unknown). */
export function formatConfigProblem(problem: ConfigProblem): string {
  const place = problem.line > 0 ? `${problem.file}:${problem.line}` : problem.file;
  return problem.keyPath === '' ? `${place}: ${problem.message}` : `${place}: ${problem.keyPath}: ${problem.message}`;
}

/** A warning in the same form, its message starting with "warning: ". */
export function formatConfigWarning(problem: ConfigProblem): string {
  return formatConfigProblem({ ...problem, message: `warning: ${problem.message}` });
}

/** Reads and validates the config file at `path`; throws ConfigError listing every problem. */
export async function loadConfig(path: string): Promise<Config> {
  return (await loadConfigFile(path)).config;
}

/**
 * As loadConfig, with the warnings `config check` prints (rsa-sha1, auth_user without users_file):
 * the daemon logs them at start and reload, so that they are not seen only by whoever ran the check.
 */
export async function loadConfigFile(path: string): Promise<{ config: Config; warnings: ConfigProblem[]; lineOf: (keyPath: string) => number }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError([{ file: path, line: 0, keyPath: '', message: describeReadError(error) }]);
  }
  const parsed = parseConfigText(text, path);
  if (parsed.kind === 'error') throw new ConfigError(parsed.problems);
  return { config: parsed.config, warnings: parsed.warnings, lineOf: parsed.lineOf };
}

/** A one-line reason why a config (or other referenced) file cannot be read, with the fix. */
export function describeReadError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return 'no such file; check the path (start from config/dkimgate.example.yaml)';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied; make it readable by the user dkimgate runs as';
    case 'EISDIR':
      return 'is a directory, not a file';
    default:
      return `cannot be read (${code ?? String(error)})`;
  }
}

/**
 * A problem found by loading what the configuration refers to (start, reload), which begins with the key
 * path at fault ("limits.spool_dir: …", "sign.domains.example.com.selector (…): …"), put at the file
 * and line of that key, as `config check` puts it: "FILE:LINE: key: …". Unchanged when it names no key.
 */
export function locateProblem(problem: string, file: string, lineOf: (keyPath: string) => number): string {
  const keyPath = /^([a-z_]+(?:\[\d+\]|\.[A-Za-z0-9_-]+)*)(?=: | \()/.exec(problem)?.[1];
  return keyPath === undefined ? problem : `${file}:${lineOf(keyPath)}: ${problem}`;
}
