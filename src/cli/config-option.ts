// The --config option shared by commands that read the configuration file, and the DKIMGATE_* overrides.
// Touches: the config file (read once) and the process environment; a missing default file means built-in defaults.

import { access } from 'node:fs/promises';
import type { Config } from '../config/config.js';
import { defaultConfig } from '../config/defaults.js';
import { applyEnvironment, CONFIG_PATH_VARIABLE } from '../config/environment-overrides.js';
import { ConfigError, formatConfigWarning, loadConfig } from '../config/load-config.js';
import { CliError } from './cli-error.js';

export const DEFAULT_CONFIG_PATH = 'config/dkimgate.yaml';

export const CONFIG_OPTION = { config: { type: 'string' } } as const;

export interface EffectiveConfig {
  config: Config;
  /** The file read, or null for the built-in defaults. */
  file: string | null;
  /** The DKIMGATE_* variables that overrode a setting. */
  environment: string[];
  /** e.g. an unknown DKIMGATE_* variable, as "environment: NAME: message". */
  warnings: string[];
}

/** The file --config names, else $DKIMGATE_CONFIG, else config/dkimgate.yaml when present; null: the built-in defaults. */
export async function configPath(path: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<string | null> {
  if (path !== undefined) return path;
  const fromEnvironment = env[CONFIG_PATH_VARIABLE];
  if (fromEnvironment !== undefined && fromEnvironment !== '') return fromEnvironment;
  return access(DEFAULT_CONFIG_PATH).then(
    () => DEFAULT_CONFIG_PATH,
    () => null,
  );
}

/** Loads the configuration (see configPath) and applies the DKIMGATE_* overrides. Errors exit 2. */
export async function loadEffectiveConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<EffectiveConfig> {
  const file = await configPath(path, env);
  let config: Config;
  try {
    config = file === null ? defaultConfig() : await loadConfig(file);
  } catch (err) {
    throw new CliError((err as Error).message, 2);
  }
  const overridden = applyEnvironment(config, env);
  if (overridden.kind === 'error') throw new CliError(new ConfigError(overridden.problems).message, 2);
  return { config: overridden.config, file, environment: overridden.applied, warnings: overridden.warnings.map(formatConfigWarning) };
}

/** Loads --config FILE, else $DKIMGATE_CONFIG, else config/dkimgate.yaml when present, else the built-in defaults; then the overrides. */
export async function loadCliConfig(path: string | undefined): Promise<Config> {
  return (await loadEffectiveConfig(path)).config;
}
