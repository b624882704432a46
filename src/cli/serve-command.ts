// `dkimgate serve`: runs the daemon until SIGTERM/SIGINT; SIGHUP reloads the configuration.
// Touches: the config file (read at start and at each SIGHUP), process signals, stdout (JSON logs).

import { parseArgs } from 'node:util';
import { startDaemon, StartupError } from '../app.js';
import { createLogger } from '../observability/logger.js';
import { CliError, UsageError, type CommandRunner } from './cli-error.js';
import { CONFIG_OPTION, loadEffectiveConfig } from './config-option.js';

export const SERVE_USAGE = `usage: dkimgate serve [--config FILE]

Runs the filter daemon. The configuration is FILE, else $DKIMGATE_CONFIG, else config/dkimgate.yaml
when it exists, else the built-in defaults (listen on 127.0.0.1:10027, relay to 127.0.0.1:10026).
DKIMGATE_* environment variables override the common keys (see the README). Logs are JSON lines on
stdout. SIGHUP reloads the configuration and keys (a broken one is refused and the running one
stays); SIGTERM stops accepting, finishes transactions in flight (limits.drain_timeout), then exits.
`;

export const runServe: CommandRunner = async (argv, io) => {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { ...CONFIG_OPTION, help: { type: 'boolean', default: false } } });
  if (values.help) {
    io.stdout.write(SERVE_USAGE);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`serve takes no arguments (got ${positionals[0]})`);
  const { config, file, environment, warnings } = await loadEffectiveConfig(values.config);
  const logger = createLogger({ destination: io.stdout as NodeJS.WritableStream });
  // Which file and which DKIMGATE_* variables made this configuration: the first thing to check in a container.
  logger.info({ file: file ?? '(built-in defaults)', environment }, 'configuration');
  for (const w of warnings) logger.warn(w);
  let daemon;
  try {
    daemon = await startDaemon(config, logger);
  } catch (err) {
    if (err instanceof StartupError) throw new CliError(`cannot start: ${err.problems.join('; ')}`);
    const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
    if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL') {
      throw new CliError(`cannot listen on ${e.address ?? '?'}:${e.port ?? '?'}: ${e.code === 'EADDRINUSE' ? 'address already in use' : e.code === 'EACCES' ? 'permission denied' : 'address not available'}; change listen in the config`);
    }
    throw err;
  }
  const running = daemon;
  let reloading = Promise.resolve();
  const onHup = () => {
    // SIGHUP storms: reloads run one after another, never interleaved.
    reloading = reloading.then(async () => {
      try {
        const next = await loadEffectiveConfig(values.config);
        for (const w of next.warnings) logger.warn(w);
        const outcome = await running.reload(next.config);
        if (outcome.kind === 'error') logger.error({ problems: outcome.problems }, 'reload refused: keeping the running configuration');
        else {
          for (const w of outcome.warnings) logger.warn(w);
          logger.info('configuration reloaded');
        }
      } catch (err) {
        logger.error({ problem: (err as Error).message }, 'reload refused: keeping the running configuration');
      }
    });
  };
  process.on('SIGHUP', onHup);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'stopping: finishing transactions in flight');
      process.removeListener('SIGHUP', onHup);
      void running.stop().then(() => {
        logger.info('stopped');
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
};
