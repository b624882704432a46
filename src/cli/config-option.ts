// The --config option shared by commands that read the configuration, and the DKIMGATE_* overrides.
// Touches: the config file (read once) and the process environment; without a file, the built-in
// configuration (and whether the demo zone exists).

import { access } from 'node:fs/promises';
import { builtInConfig, DEMO } from '../config/built-in-config.js';
import type { Config, ConfigProblem } from '../config/config.js';
import { applyEnvironment, CONFIG_PATH_VARIABLE, fileWarningsUnderEnvironment } from '../config/environment-overrides.js';
import { ConfigError, formatConfigWarning, loadConfigFile, locateProblem } from '../config/load-config.js';
import { CliError } from './cli-error.js';

export const DEFAULT_CONFIG_PATH = 'config/dkimgate.yaml';

export const CONFIG_OPTION = { config: { type: 'string' } } as const;

export interface CliConfig {
  config: Config;
  /** The file it was read from; null for the built-in configuration (no --config, no $DKIMGATE_CONFIG, no config/dkimgate.yaml). */
  file: string | null;
  /** The DKIMGATE_* variables that overrode a setting. */
  environment: string[];
  /** The file's warnings ("FILE:LINE: key: warning: …") and the environment's (an unknown DKIMGATE_* variable). */
  warnings: string[];
  /** A start or reload problem ("key: …") with the file and line of its key in front, as config check prints it. */
  locate(problem: string): string;
}

/** The file --config names, else $DKIMGATE_CONFIG, else config/dkimgate.yaml when present; null: the built-in configuration. */
export async function configPath(path: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<string | null> {
  if (path !== undefined) return path;
  const fromEnvironment = env[CONFIG_PATH_VARIABLE];
  if (fromEnvironment !== undefined && fromEnvironment !== '') return fromEnvironment;
  return (await exists(DEFAULT_CONFIG_PATH)) ? DEFAULT_CONFIG_PATH : null;
}

/**
 * Loads the configuration file (see configPath), else the built-in configuration (defaults plus the
 * demo domain), then applies the DKIMGATE_* overrides. serve, verify, keycheck and doctor all read it
 * this way, so that they agree on DNS servers and zone files. Errors exit 2.
 */
export async function loadCliConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<CliConfig> {
  const file = await configPath(path, env);
  let loaded: { config: Config; warnings: ConfigProblem[]; lineOf?: (keyPath: string) => number };
  try {
    loaded = file === null ? { config: builtInConfig({ demoZonePresent: await exists(DEMO.zoneFile) }), warnings: [] } : await loadConfigFile(file);
  } catch (err) {
    throw new CliError((err as Error).message, 2);
  }
  const overridden = applyEnvironment(loaded.config, env);
  if (overridden.kind === 'error') throw new CliError(new ConfigError(overridden.problems).message, 2);
  return {
    config: overridden.config,
    file,
    environment: overridden.applied,
    warnings: [...fileWarningsUnderEnvironment(loaded.warnings, env), ...overridden.warnings].map(formatConfigWarning),
    locate: (problem) => (file === null || loaded.lineOf === undefined ? problem : locateProblem(problem, file, loaded.lineOf)),
  };
}

/** "config/dkimgate.yaml", or what the built-in configuration is, for log and report lines. */
export function describeConfigSource(file: string | null): string {
  return file ?? `built-in configuration (no ${DEFAULT_CONFIG_PATH}; demo domain ${DEMO.domain})`;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
