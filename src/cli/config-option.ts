// The --config option shared by commands that read the configuration file.
// Touches: the config file (read once); without one, the built-in configuration (and whether the demo zone exists).

import { access } from 'node:fs/promises';
import { builtInConfig, DEMO } from '../config/built-in-config.js';
import type { Config } from '../config/config.js';
import { loadConfig } from '../config/load-config.js';
import { CliError } from './cli-error.js';

export const DEFAULT_CONFIG_PATH = 'config/dkimgate.yaml';

export const CONFIG_OPTION = { config: { type: 'string' } } as const;

export interface CliConfig {
  config: Config;
  /** The file it was read from; null for the built-in configuration (no --config, no config/dkimgate.yaml). */
  file: string | null;
}

/**
 * Loads --config FILE, else config/dkimgate.yaml when present, else the built-in configuration
 * (defaults plus the demo domain). serve, verify, keycheck and doctor all read it this way, so that they
 * agree on DNS servers and zone files. Errors exit 2.
 */
export async function loadCliConfig(path: string | undefined): Promise<CliConfig> {
  const file = path ?? ((await exists(DEFAULT_CONFIG_PATH)) ? DEFAULT_CONFIG_PATH : null);
  if (file === null) return { config: builtInConfig({ demoZonePresent: await exists(DEMO.zoneFile) }), file: null };
  try {
    return { config: await loadConfig(file), file };
  } catch (err) {
    throw new CliError((err as Error).message, 2);
  }
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
