// The composition root: config -> logger -> DNS, keys, users -> listeners, next-hop pool, metrics;
// SIGHUP reloads (a broken config keeps the old one serving), SIGTERM drains and stops.
// Touches: the config file, key and users files, listening sockets, the next hop, DNS.

import { hostname, tmpdir } from 'node:os';
import type { SMTPServer } from 'smtp-server';
import type { Config, ListenerConfig } from './config/config.js';
import { resolveSigningSelectors } from './config/resolve-signing-selectors.js';
import { createDnsResolver, loadZoneFiles, type DnsResolver } from './dns/create-dns-resolver.js';
import { loadKeyStore, type KeyStore } from './keys/key-store.js';
import type { Logger } from './observability/logger.js';
import { createMetrics, type Metrics } from './observability/metrics.js';
import { startMetricsServer, type MetricsServer } from './observability/metrics-server.js';
import { maxAddedHeaderBytes } from './pipeline/added-header-bytes.js';
import { spoolDirProblem } from './pipeline/body-spool.js';
import { compileCidrs } from './policy/client-identity.js';
import { createNextHopPool, type NextHopPool } from './relay/next-hop-pool.js';
import { applyReloadedOptions, createListener } from './smtp/create-listener.js';
import { readCaFile, readListenerCertificates, type CertificateFinding } from './keys/tls-files.js';
import { startOutboxServer, type OutboxServer } from './smtp/outbox-server.js';
import { REPLIES } from './smtp/reply-codes.js';
import { RuntimeHolder, type Runtime } from './smtp/runtime.js';
import { loadUsersFile, UsersFileError } from './smtp/users-file.js';
import { usersWithoutSigningDomain } from './smtp/users-without-signing-domain.js';
import { formatHostPort } from './config/address-syntax.js';

export type RuntimeBuild = { kind: 'ok'; runtime: Runtime; resolver: DnsResolver; warnings: string[] } | { kind: 'error'; problems: string[] };

/**
 * Loads everything a configuration refers to; nothing is swapped in unless all of it loaded. `previous`
 * (the running runtime, on reload) lends the keys it parsed, so unchanged keys are not parsed again.
 * `bound`: the listeners as they were bound at start (on reload), which the runtime's per-listener
 * entries must follow index for index.
 */
export async function buildRuntime(config: Config, previous?: Runtime, bound: readonly ListenerConfig[] = config.listen): Promise<RuntimeBuild> {
  const problems: string[] = [];
  const warnings: string[] = [];
  let zoneRecords;
  try {
    zoneRecords = await loadZoneFiles(config.dns.zoneFiles);
  } catch (err) {
    problems.push(`dns.zone_files: ${(err as Error).message}`);
  }
  const keys = await loadKeyStore(resolveSigningSelectors(config), previous?.keys);
  if (keys.kind === 'error') problems.push(...keys.problems);
  else warnings.push(...keys.warnings);
  let nextHopCa: Buffer | null = null;
  if (config.nextHop.caFile) {
    const read = await readCaFile(config.nextHop.caFile);
    if (read.kind === 'error') problems.push(`next_hop.ca_file: ${read.problem}`);
    else nextHopCa = read.ca;
  }
  const spoolProblem = await spoolDirProblem(config.limits.spoolDir ?? tmpdir());
  if (spoolProblem) problems.push(`limits.spool_dir: ${spoolProblem}`);
  let users = null;
  if (config.usersFile) {
    try {
      users = await loadUsersFile(config.usersFile);
      warnings.push(...users.warnings, ...usersWithoutSigningDomain(users, config));
    } catch (err) {
      // "users_file: …" as the other problems name their key (the file and line go in front of it)
      const lines = err instanceof UsersFileError ? err.problems : [(err as Error).message];
      problems.push(...lines.map((line) => `users_file: ${line}`));
    }
  }
  if (problems.length > 0 || keys.kind === 'error') return { kind: 'error', problems };
  const resolver = createDnsResolver({
    servers: config.dns.servers,
    zoneRecords,
    timeoutMs: config.dns.timeout,
    cacheSize: config.dns.cacheSize,
    cacheTtlSec: config.dns.cacheTtl,
    negativeTtlSec: config.dns.negativeTtl,
  });
  const relayHosts = compileCidrs(config.relayHosts);
  const xforwardHosts = compileCidrs(config.xforwardHosts);
  const runtime: Runtime = {
    config,
    keys: keys.store,
    users,
    lookupTxt: resolver.lookupTxt,
    relayHosts,
    xforwardHosts,
    listeners: bound.map((boundListener, index) => {
      const l = sameAddress(boundListener, index, config.listen);
      return {
        config: l,
        relayHosts: l.relayHosts ? compileCidrs(l.relayHosts) : relayHosts,
        xforwardHosts: l.xforwardHosts ? compileCidrs(l.xforwardHosts) : xforwardHosts,
      };
    }),
    addedHeaderBytes: maxAddedHeaderBytes(keys.store, config.authservId, config.verify),
    nextHopCa,
  };
  return { kind: 'ok', runtime, resolver, warnings };
}

/**
 * The entry of `listen` at the bound listener's address and protocol, whose relay_hosts and
 * xforward_hosts a reload applies; the bound entry itself when the new configuration dropped or moved it
 * (that listener keeps serving as it was until a restart). Never another listener's entry: after a reload
 * that removed or reordered listeners, a listener must not take a neighbour's relay_hosts.
 */
function sameAddress(bound: ListenerConfig, index: number, listen: readonly ListenerConfig[]): ListenerConfig {
  const same = (l: ListenerConfig | undefined): l is ListenerConfig =>
    l !== undefined && l.host === bound.host && l.port === bound.port && l.protocol === bound.protocol;
  // the same index first: several listeners on port 0 share an address in the file
  const atIndex = listen[index];
  return same(atIndex) ? atIndex : (listen.find(same) ?? bound);
}

/** Domains with their own metrics label: each From domain with a selector and each d= it signs as (a base_domain). */
function metricDomains(keys: KeyStore): Set<string> {
  const domains = new Set<string>();
  for (const [fromDomain, entries] of keys.byFromDomain) {
    domains.add(fromDomain);
    for (const entry of entries) domains.add(entry.signingDomain);
  }
  return domains;
}

function createPool(config: Config, address: { host: string; port: number }, ca: Buffer | null, logger: Logger): NextHopPool {
  const hop = config.nextHop;
  return createNextHopPool(
    {
      host: address.host,
      port: address.port,
      tls: hop.tls,
      ...(ca ? { tlsOptions: { ca } } : {}),
      auth: hop.auth,
      lmtp: false,
      heloName: /^[A-Za-z0-9.-]+$/.test(hostname()) ? hostname() : 'localhost',
      timeoutMs: config.limits.nextHopTimeout * 1000,
    },
    { maxIdle: 32, idleTimeoutMs: 30_000 },
    {
      unsolicitedWhileIdle: (reply) =>
        logger.warn(
          { nextHopReply: { code: reply.code, enhanced: reply.enhanced, text: reply.text } },
          'next hop sent a reply nobody asked for on an idle connection: a next hop out of step may not hold a message it answered 250 for; check its log',
        ),
    },
  );
}

/**
 * The kernel's queue of connections not yet accepted. Node's default, 511, overflows in a burst of a
 * thousand connects, and the overflow waits seconds for SYN retransmits; with room for them, the excess
 * over max_clients gets its 421 at once. Linux caps it at net.core.somaxconn (4096 by default).
 */
const LISTEN_BACKLOG = 4096;

/** After the drain timeout: how long transactions whose next-hop connection was just ended get to answer and log. */
const ABORTED_SETTLE_MS = 2000;

export interface Daemon {
  /** Where each listener listens (port 0 in the config becomes the real port here). */
  readonly addresses: { host: string; port: number; protocol: string }[];
  readonly metricsAddress: { host: string; port: number } | null;
  /** Loads a new configuration; on any problem the running one stays. */
  reload(next: Config): Promise<{ kind: 'ok'; warnings: string[] } | { kind: 'error'; problems: string[] }>;
  /** Stops accepting, answers 421 4.3.2, waits for transactions in flight (up to drain_timeout), closes. */
  stop(): Promise<void>;
}

export interface DaemonOptions {
  /**
   * The built-in configuration's embedded next hop: a server where next_hop points that stores what it
   * receives in this directory. Started before the listeners, so it is ready for the first relay; when
   * that address is taken, whatever listens there is the next hop (interface.md §1 defaults).
   */
  outboxDir?: string;
}

export async function startDaemon(config: Config, logger: Logger, options: DaemonOptions = {}): Promise<Daemon> {
  const built = await buildRuntime(config);
  const certificates = await readListenerCertificates(config.listen);
  const startProblems = [...(built.kind === 'error' ? built.problems : []), ...(certificates.kind === 'error' ? certificates.problems.map(describeFinding) : [])];
  if (built.kind === 'error' || certificates.kind === 'error') throw new StartupError(startProblems);
  for (const w of [...built.warnings, ...certificates.warnings.map(describeFinding)]) logger.warn(w);
  const outbox = options.outboxDir === undefined ? null : await startOutbox(config, options.outboxDir, logger);
  // Only the embedded next hop's address can differ from next_hop: it may have been asked for port 0.
  const nextHopAddress = (next: Config) => outbox?.address ?? { host: next.nextHop.host, port: next.nextHop.port };
  const holder = new RuntimeHolder(built.runtime);
  const metrics: Metrics = createMetrics({ signingDomains: metricDomains(built.runtime.keys) });
  metrics.setDnsCacheStats(() => built.resolver.stats());
  // The listeners as bound: a reload re-reads their certificates, but moves no listener.
  const boundListen = config.listen;
  let pool = createPool(config, nextHopAddress(config), built.runtime.nextHopCa, logger);
  /** Pools replaced by a reload while their connections still carried transactions: a stop ends those too. */
  const retiredPools = new Set<NextHopPool>();
  let draining = false;
  let inFlight = 0;
  let drained: (() => void) | null = null;
  /** Resolves when no transaction is in flight, or after `ms`. */
  const untilDrained = (ms: number) =>
    new Promise<void>((resolve) => {
      drained = resolve;
      setTimeout(resolve, ms).unref();
    });
  const deps = {
    runtime: holder,
    pool: () => pool,
    logger,
    metrics,
    draining: () => draining,
    inFlight: {
      start: () => void inFlight++,
      finish: () => {
        inFlight--;
        if (inFlight === 0 && drained) drained();
      },
    },
    clients: { count: 0 },
  };
  const servers: SMTPServer[] = [];
  const addresses: Daemon['addresses'] = [];
  try {
    for (const [i, l] of config.listen.entries()) {
      const server = createListener(i, l, deps, certificates.pairs[i] ?? null);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(l.port, l.host, LISTEN_BACKLOG, () => {
          server.removeListener('error', reject);
          resolve();
        });
      });
      const address = (server as unknown as { server: import('node:net').Server }).server.address();
      addresses.push({ host: l.host, port: typeof address === 'object' && address ? address.port : l.port, protocol: l.protocol });
      servers.push(server);
    }
  } catch (err) {
    for (const s of servers) s.close();
    await outbox?.close();
    throw err;
  }
  let metricsServer: MetricsServer | null = null;
  if (config.metrics) {
    try {
      metricsServer = await startMetricsServer({
        host: config.metrics.host,
        port: config.metrics.port,
        metrics,
        health: () => ({ ok: !draining, detail: { draining, inFlight, listeners: addresses.length } }),
      });
    } catch (err) {
      // A start that fails must not leave the listeners open: the process would go on serving mail
      // half-started, with no signal handlers (SIGHUP would kill it), after saying it cannot start.
      for (const s of servers) s.close();
      await outbox?.close();
      throw Object.assign(err as Error, { configKey: 'metrics' });
    }
  }
  for (const a of addresses) logger.info({ listener: `${a.protocol}://${formatHostPort(a.host, a.port)}` }, 'listening');
  if (metricsServer) logger.info({ metrics: `http://${formatHostPort(metricsServer.address.host, metricsServer.address.port)}/metrics` }, 'metrics listening');

  return {
    addresses,
    metricsAddress: metricsServer ? metricsServer.address : null,
    async reload(next) {
      const rebuilt = await buildRuntime(next, holder.get(), boundListen);
      if (rebuilt.kind === 'error') return rebuilt;
      const certificates = await readListenerCertificates(boundListen);
      if (certificates.kind === 'error') return { kind: 'error', problems: certificates.problems.map(describeFinding) };
      rebuilt.warnings.push(...certificates.warnings.map(describeFinding));
      const current = holder.get().config;
      if (JSON.stringify(current.listen) !== JSON.stringify(next.listen)) {
        // New TLS files serve only after a restart, but a file that restart would refuse is refused now,
        // not found out at the next restart (or reboot).
        const upcoming = await readListenerCertificates(next.listen);
        if (upcoming.kind === 'error') return { kind: 'error', problems: upcoming.problems.map(describeFinding) };
        rebuilt.warnings.push('listen changed: listeners are only re-bound at restart; the old ones keep serving');
      }
      if (JSON.stringify(current.metrics) !== JSON.stringify(next.metrics)) {
        rebuilt.warnings.push('metrics changed: the metrics listener is only re-bound at restart; the old one keeps serving');
      }
      const caChanged = !equalBytes(holder.get().nextHopCa, rebuilt.runtime.nextHopCa);
      if (caChanged || JSON.stringify(current.nextHop) !== JSON.stringify(next.nextHop) || current.limits.nextHopTimeout !== next.limits.nextHopTimeout) {
        const old = pool;
        pool = createPool(next, nextHopAddress(next), rebuilt.runtime.nextHopCa, logger);
        void old.closeAll();
        for (const p of retiredPools) if (p.stats().inUse === 0) retiredPools.delete(p);
        retiredPools.add(old);
      }
      holder.replace(rebuilt.runtime);
      for (const [i, server] of servers.entries()) {
        applyReloadedOptions(server, boundListen[i]!, rebuilt.runtime);
        // renewed certificates (the same files): new STARTTLS handshakes use them, sessions in TLS keep theirs
        const pair = certificates.pairs[i];
        if (pair) server.updateSecureContext(pair);
      }
      metrics.setDnsCacheStats(() => rebuilt.resolver.stats());
      metrics.setSigningDomains(metricDomains(rebuilt.runtime.keys));
      return { kind: 'ok', warnings: rebuilt.warnings };
    },
    async stop() {
      draining = true;
      const drainMs = holder.get().config.limits.drainTimeout * 1000;
      // Only the listening sockets close: smtp-server's own close() would answer every further command 421,
      // cutting a transaction between MAIL and DATA that the drain is meant to finish. New transactions get
      // 421 4.3.2 from onMailFrom; the sessions left are closed below.
      for (const s of servers) (s as unknown as { server: import('node:net').Server }).server.close();
      if (inFlight > 0) await untilDrained(drainMs);
      if (inFlight > 0) {
        // A next hop that never answers would hold the process past drain_timeout (and past systemd's stop
        // timeout, then SIGKILL): its connections end now, and each transaction answers its client and logs itself.
        let ended = pool.abortInUse();
        for (const p of retiredPools) ended += p.abortInUse();
        logger.warn({ inFlight, nextHopConnectionsEnded: ended, drainTimeout: drainMs / 1000 }, 'drain_timeout passed: ending the transactions still in flight');
        await untilDrained(ABORTED_SETTLE_MS);
      }
      // Sessions between transactions are told we are going.
      for (const s of servers) {
        for (const c of (s as unknown as { connections: Set<{ send(code: number, text: string): void; close(): void }> }).connections) {
          c.send(REPLIES.shuttingDown.code, `${REPLIES.shuttingDown.enhanced} ${REPLIES.shuttingDown.text}`);
          c.close();
        }
      }
      await pool.closeAll();
      await outbox?.close();
      await metricsServer?.close();
    },
  };
}

/** "listen[0].tls.key: TLS key …": how start and reload report a certificate finding. */
function describeFinding(finding: CertificateFinding): string {
  return `${finding.keyPath}: ${finding.message}`;
}

function equalBytes(a: Buffer | null, b: Buffer | null): boolean {
  return a === null || b === null ? a === b : a.equals(b);
}

/** Starts the embedded next hop; null (and a warning) when its address is taken by something else. */
async function startOutbox(config: Config, dir: string, logger: Logger): Promise<OutboxServer | null> {
  const where = formatHostPort(config.nextHop.host, config.nextHop.port);
  try {
    const outbox = await startOutboxServer({
      host: config.nextHop.host,
      port: config.nextHop.port,
      dir,
      // Room for the fields we prepend to the largest message a client may send.
      maxMessageBytes: config.limits.maxMessageSize + config.limits.maxHeaderSize,
      logger,
    });
    logger.info({ nextHop: `smtp://${formatHostPort(outbox.address.host, outbox.address.port)}`, outbox: dir }, `demo next hop listening: relayed mail is stored in ${dir}/`);
    return outbox;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      logger.warn(
        { nextHop: `smtp://${where}` },
        `${where} is already in use: relaying to whatever listens there (the built-in next hop), not to the demo outbox ${dir}/; stop it, or write config/dkimgate.yaml`,
      );
      return null;
    }
    if (code === 'EACCES' || code === 'EADDRNOTAVAIL') throw err; // reported like a listener that cannot bind
    throw new StartupError([`demo next hop: cannot store mail in ${dir}/ (${code ?? String(err)}); make the directory writable or write config/dkimgate.yaml`]);
  }
}

/** The configuration refers to something that cannot be loaded (keys, users, zone files). */
export class StartupError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'StartupError';
  }
}
