// The --config option shared by commands that read the configuration file.
// Touches: the config file (read once); a missing default file means built-in defaults.

import { access } from 'node:fs/promises';
import type { Config } from '../config/config.js';
import { defaultConfig } from '../config/defaults.js';
import { loadConfig } from '../config/load-config.js';
import { CliError } from './cli-error.js';

export const DEFAULT_CONFIG_PATH = 'config/dkimgate.yaml';

export const CONFIG_OPTION = { config: { type: 'string' } } as const;

/** Loads --config FILE, else config/dkimgate.yaml when present, else the built-in defaults. Errors exit 2. */
export async function loadCliConfig(path: string | undefined): Promise<Config> {
  let file = path;
  if (file === undefined) {
    const exists = await access(DEFAULT_CONFIG_PATH).then(
      () => true,
      () => false,
    );
    if (!exists) return defaultConfig();
    file = DEFAULT_CONFIG_PATH;
  }
  try {
    return await loadConfig(file);
  } catch (err) {
    throw new CliError((err as Error).message, 2);
  }
}
