// `dkimgate serve`: runs the daemon until SIGTERM/SIGINT; SIGHUP reloads the configuration.
// Touches: the config file (read at start and at each SIGHUP), process signals, stdout (JSON logs).

import { parseArgs } from 'node:util';
import { startDaemon, StartupError, type DaemonOptions } from '../app.js';
import { DEMO } from '../config/built-in-config.js';
import { NEXT_HOP_VARIABLE } from '../config/environment-overrides.js';
import type { Config } from '../config/config.js';
import { ensureDemoKey } from '../keys/ensure-demo-key.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { CliError, UsageError, type CommandRunner } from './cli-error.js';
import { CONFIG_OPTION, describeConfigSource, loadCliConfig, type CliConfig } from './config-option.js';

export const SERVE_USAGE = `usage: dkimgate serve [--config FILE]

Runs the filter daemon. The configuration is FILE, else $DKIMGATE_CONFIG, else config/dkimgate.yaml
when it exists, else the built-in configuration: listen on 127.0.0.1:10027, relay to 127.0.0.1:10026, and sign mail From
the demo domain ${DEMO.domain} sent from 127.0.0.1. With the built-in configuration, the first start
creates the demo key (${DEMO.keyPath}) and its TXT record (${DEMO.zoneFile}), and when nothing
listens on 127.0.0.1:10026 an embedded next hop starts there and stores each message it receives in
${DEMO.outboxDir}/<id>.eml. A config file never starts it: its next_hop is always a real relay.

Logs are JSON lines on stdout. SIGHUP reloads the configuration and keys (a broken one is refused
and the running one stays; switching between the built-in configuration and a file needs a
restart); SIGTERM stops accepting, finishes transactions in flight (limits.drain_timeout), then exits.
`;

/**
 * The configuration to run and, for the built-in one, the demo key and zone file made ready first
 * (created on the first start) and the embedded next hop.
 */
async function prepare(loaded: CliConfig, logger: Logger): Promise<{ config: Config; options: DaemonOptions }> {
  if (loaded.file !== null) return { config: loaded.config, options: {} };
  const paths = { domain: DEMO.domain, selector: DEMO.selector, keyPath: DEMO.keyPath, zonePath: DEMO.zoneFile };
  let setup;
  try {
    setup = await ensureDemoKey(paths);
  } catch (err) {
    throw new CliError(`demo key: ${(err as Error).message}`);
  }
  const about = { key: DEMO.keyPath, zone: DEMO.zoneFile };
  if (setup.created) {
    logger.info(
      about,
      `created the demo key for ${DEMO.domain} (RSA 2048, mode 0600) and its TXT record in ${DEMO.zoneFile}; it is for trying dkimgate only: mail From ${DEMO.domain} sent from 127.0.0.1 is signed with it`,
    );
  } else {
    logger.info(about, `using the demo key for ${DEMO.domain}${setup.zoneWritten ? ` (its TXT record in ${DEMO.zoneFile} was rewritten to match it)` : ''}`);
  }
  // The zone file exists now (a first start creates it): list it as the built-in configuration does.
  const config = loaded.config;
  if (!config.dns.zoneFiles.includes(DEMO.zoneFile)) config.dns.zoneFiles = [...config.dns.zoneFiles, DEMO.zoneFile];
  // An explicit next hop, even from DKIMGATE_NEXT_HOP, is always a real relay: no embedded outbox then.
  const explicitNextHop = loaded.environment.includes(NEXT_HOP_VARIABLE);
  return { config, options: explicitNextHop ? {} : { outboxDir: DEMO.outboxDir } };
}

export const runServe: CommandRunner = async (argv, io) => {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { ...CONFIG_OPTION, help: { type: 'boolean', default: false } } });
  if (values.help) {
    io.stdout.write(SERVE_USAGE);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`serve takes no arguments (got ${positionals[0]})`);
  const loaded = await loadCliConfig(values.config);
  const logger = createLogger({ destination: io.stdout as NodeJS.WritableStream });
  // Which file and which DKIMGATE_* variables made this configuration: the first thing to check in a container.
  logger.info({ file: loaded.file ?? describeConfigSource(null), environment: loaded.environment }, 'configuration');
  for (const w of loaded.warnings) logger.warn(w);
  const { config, options } = await prepare(loaded, logger);
  // SIGHUP's default action ends the process: the handler goes in before the listeners open, so that a
  // reload sent as soon as we listen (systemd ExecReload, a HUP storm) is queued instead of killing us.
  let hupBeforeStart = false;
  let onHup: () => void = () => {
    hupBeforeStart = true;
  };
  const hupHandler = () => onHup();
  process.on('SIGHUP', hupHandler);
  // SIGTERM/SIGINT likewise (a quick `systemctl restart`): one that arrives while we start is acted on once we run.
  let stopBeforeStart: string | null = null;
  let onStop: (signal: string) => void = (signal) => {
    stopBeforeStart ??= signal;
  };
  // Kept (not `once`) until we have stopped: a second SIGTERM or a Ctrl-C twice must not end the drain
  // with the default action, cutting transactions whose message the next hop may already hold.
  const termHandler = () => onStop('SIGTERM');
  const intHandler = () => onStop('SIGINT');
  process.on('SIGTERM', termHandler);
  process.on('SIGINT', intHandler);
  const removeSignalHandlers = () => {
    process.removeListener('SIGHUP', hupHandler);
    process.removeListener('SIGTERM', termHandler);
    process.removeListener('SIGINT', intHandler);
  };
  let daemon;
  try {
    daemon = await startDaemon(config, logger, options);
  } catch (err) {
    removeSignalHandlers();
    if (err instanceof StartupError) throw new CliError(`cannot start: ${err.problems.map(loaded.locate).join('; ')}`);
    const e = err as NodeJS.ErrnoException & { address?: string; port?: number; configKey?: string };
    if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL') {
      throw new CliError(`cannot listen on ${e.address ?? '?'}:${e.port ?? '?'}: ${e.code === 'EADDRINUSE' ? 'address already in use' : e.code === 'EACCES' ? 'permission denied' : 'address not available'}; change ${e.configKey ?? 'listen'} in the config`);
    }
    throw err;
  }
  const running = daemon;
  let reloading = Promise.resolve();
  onHup = () => {
    // SIGHUP storms: reloads run one after another, never interleaved.
    reloading = reloading.then(async () => {
      try {
        const next = await loadCliConfig(values.config);
        for (const w of next.warnings) logger.warn(w);
        if ((next.file === null) !== (loaded.file === null)) {
          const problem = `the configuration source changed from ${describeConfigSource(loaded.file)} to ${describeConfigSource(next.file)}: restart dkimgate to switch`;
          logger.error({ problems: [problem] }, 'reload refused: keeping the running configuration');
          return;
        }
        const outcome = await running.reload((await prepare(next, logger)).config);
        if (outcome.kind === 'error') logger.error({ problems: outcome.problems.map(next.locate) }, 'reload refused: keeping the running configuration');
        else {
          for (const w of outcome.warnings) logger.warn(w);
          logger.info('configuration reloaded');
        }
      } catch (err) {
        // `problems`, one per line, as every other refusal logs them: a broken file lists each of its problems
        logger.error({ problems: (err as Error).message.split('\n') }, 'reload refused: keeping the running configuration');
      }
    });
  };
  if (hupBeforeStart) onHup();
  await new Promise<void>((resolve) => {
    onStop = (signal: string) => {
      // Signals while draining are noted, not obeyed: the drain already ends by limits.drain_timeout.
      onStop = (again) => logger.warn({ signal: again }, 'already stopping: transactions in flight get up to limits.drain_timeout');
      onHup = () => logger.warn({ signal: 'SIGHUP' }, 'reload ignored: stopping');
      logger.info({ signal }, 'stopping: finishing transactions in flight');
      void running.stop().then(() => {
        removeSignalHandlers();
        logger.info('stopped');
        resolve();
      });
    };
    if (stopBeforeStart !== null) onStop(stopBeforeStart);
  });
  return 0;
};
