// Test helper: the daemon started in-process on port 0 in front of a scriptable next hop, with its log lines captured,
// signing keys written to a temp dir, and a cleanup list. Reused by the daemon, fault, ledger and attack tests.
// Touches: loopback sockets, a temp dir of keys (mode 0600); everything it starts is stopped by Harness.cleanup().

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { startDaemon, type Daemon } from '../../src/app.js';
import type { Config, DomainSignConfig } from '../../src/config/config.js';
import { DEFAULTS, defaultConfig } from '../../src/config/defaults.js';
import { createLogger } from '../../src/observability/logger.js';
import { ed25519Key, rsaKey, type TestKey } from './dkim-test-kit.js';
import { startNextHopServer, type NextHopServerOptions, type RunningNextHop } from './next-hop-server.js';

export const AUTHSERV = 'gate.test.example';
/** The From domain the harness's keys sign for (selectors rsa1 and ed1). */
export const SIGN_DOMAIN = 'example.com';

export type LogLine = Record<string, unknown> & { msg?: string };

export type Gate = {
  daemon: Daemon;
  /** The first listener's port. */
  port: number;
  nextHop: RunningNextHop;
  /** Every JSON log line the daemon wrote, parsed, in order. */
  logs: LogLine[];
  config: Config;
  /** The per-message log lines so far. */
  messageLines(): LogLine[];
};

export type SigningKeys = { dir: string; rsa: TestKey; ed: TestKey };

/** A pino logger writing into an array of parsed lines. */
export function captureLogs(): { logger: ReturnType<typeof createLogger>; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line) as LogLine);
      cb();
    },
  });
  return { logger: createLogger({ destination }), lines };
}

export function signDomain(selectors: Array<{ selector: string; digest?: 'ed25519-sha256' }>): DomainSignConfig {
  return {
    baseDomain: null,
    signCondition: null,
    overrides: {},
    selectors: selectors.map((s) => ({ selector: s.selector, overrides: s.digest ? { digest: s.digest } : {} })),
  };
}

/** A listener entry on port 0 with the given overrides. */
export function listener(over: Partial<Config['listen'][number]> = {}): Config['listen'][number] {
  return { ...DEFAULTS.items.listener, port: 0, ...over };
}

/** Waits until probe returns something truthy; bounded. */
export async function waitFor<T>(probe: () => T | undefined | null | false, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A loopback port nothing listens on (bound and released). */
export async function freeClosedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * One test file's daemons, next hops and keys. Create it at module level, call `setup()` in beforeAll,
 * `cleanup()` in afterEach (stops what the test started) and `dispose()` in afterAll (removes the keys).
 */
export class Harness {
  private readonly cleanups: Array<() => Promise<void>> = [];
  keys: SigningKeys | null = null;

  /** Writes an RSA-2048 (rsa1) and an Ed25519 (ed1) key for SIGN_DOMAIN. */
  async setup(): Promise<SigningKeys> {
    const dir = await mkdtemp(join(tmpdir(), 'dkimgate-harness-keys-'));
    this.keys = { dir, rsa: rsaKey(2048), ed: ed25519Key() };
    await this.writeKey(SIGN_DOMAIN, 'rsa1', this.keys.rsa);
    await this.writeKey(SIGN_DOMAIN, 'ed1', this.keys.ed);
    return this.keys;
  }

  async writeKey(domain: string, selector: string, key: TestKey): Promise<void> {
    const dir = this.keyDir();
    await mkdir(join(dir, domain), { recursive: true });
    await writeFile(join(dir, domain, `${selector}.pem`), key.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  }

  keyDir(): string {
    if (!this.keys) throw new Error('Harness.setup() was not called');
    return this.keys.dir;
  }

  /** Runs `close` at the next cleanup(), in reverse order of registration. */
  onCleanup(close: () => Promise<void>): void {
    this.cleanups.push(close);
  }

  /**
   * A config for tests: our authserv-id, one listener on port 0, 127.0.0.1 a relay host, signing SIGN_DOMAIN with
   * rsa1 and ed1, DNS from `dnsServer` ("127.0.0.1:PORT") when given.
   */
  config(over: Partial<Config> = {}, dnsServer?: string): Config {
    const base = defaultConfig();
    return {
      ...base,
      authservId: AUTHSERV,
      listen: [listener()],
      relayHosts: ['127.0.0.1/32'],
      dns: { ...base.dns, servers: dnsServer ? [dnsServer] : [], timeout: 2000 },
      sign: {
        ...base.sign,
        key: `${this.keyDir()}/%{d}/%{s}.pem`,
        domains: { [SIGN_DOMAIN]: signDomain([{ selector: 'rsa1' }, { selector: 'ed1', digest: 'ed25519-sha256' }]) },
      },
      ...over,
    };
  }

  /** A verifying daemon (no relay hosts) asking `dnsServer` ("127.0.0.1:PORT") for keys; `over` and `dns` change its config. */
  startVerifyingGate(dnsServer: string, over: Partial<Config> = {}, dns: Partial<Config['dns']> = {}): Promise<Gate> {
    const base = defaultConfig();
    return this.startGate(this.config({ relayHosts: [], ...over, dns: { ...base.dns, servers: [dnsServer], ...dns } }));
  }

  /** Starts a next hop (unless `nextHop` gives an address) and the daemon relaying to it. */
  async startGate(config: Config, hop: NextHopServerOptions = {}, nextHop?: { host: string; port: number }): Promise<Gate> {
    const server = await startNextHopServer(hop);
    this.onCleanup(() => server.close());
    const { logger, lines } = captureLogs();
    const cfg: Config = { ...config, nextHop: { ...config.nextHop, host: nextHop?.host ?? server.host, port: nextHop?.port ?? server.port } };
    const daemon = await startDaemon(cfg, logger);
    this.onCleanup(() => daemon.stop());
    return {
      daemon,
      port: daemon.addresses[0]!.port,
      nextHop: server,
      logs: lines,
      config: cfg,
      messageLines: () => lines.filter((l) => l.msg === 'message'),
    };
  }

  async cleanup(): Promise<void> {
    for (const close of this.cleanups.splice(0).reverse()) await close();
  }

  async dispose(): Promise<void> {
    await this.cleanup();
    if (this.keys) await rm(this.keys.dir, { recursive: true, force: true });
  }
}

/** The first log line with msg "message" (waits for it). */
export function messageLine(gate: Gate, timeoutMs = 3000): Promise<LogLine> {
  return waitFor(() => gate.logs.find((l) => l.msg === 'message'), timeoutMs);
}

/** The header section of a message (up to and including the CRLF before the empty line). */
export function headerOf(data: Buffer): string {
  const text = data.toString('latin1');
  return text.slice(0, text.indexOf('\r\n\r\n') + 2);
}

/** The header's first field, unfolded lines kept. */
export function firstField(data: Buffer): string {
  return headerOf(data).split(/\r\n(?![ \t])/)[0]!;
}
