// Test helper: a real DNS server (Debian's dnsmasq) on a free loopback port, and a UDP socket that never answers.
// Touches: spawns /usr/sbin/dnsmasq (ends only that process), a temporary directory, loopback sockets.

import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';

export const DNSMASQ_PATH = '/usr/sbin/dnsmasq';

/**
 * TXT data per name: a string is one record of one text (split into 255-octet character-strings when longer);
 * a string[] is one record of several character-strings; a string[][] is several records at that name.
 */
export type TxtData = string | string[] | string[][];

export type DnsServerOptions = {
  txt: Record<string, TxtData>;
  /** Names (and their subdomains) that answer REFUSED: dnsmasq has no upstream to forward them to. */
  servfail?: string[];
  /** Names with only an A record (name -> IPv4), so a TXT query there answers NOERROR with no data. */
  a?: Record<string, string>;
  /** Also listen on [::1] (same port). */
  ipv6?: boolean;
};

export type RunningDnsServer = {
  host: string;
  port: number;
  /** "127.0.0.1:PORT" */
  server: string;
  /** "[::1]:PORT" when started with ipv6, else null. */
  server6: string | null;
  /** "TYPE name" for each query dnsmasq received, in order (from its --log-queries output). */
  queries(): string[];
  stop(): Promise<void>;
};

export type SilentDnsServer = {
  host: string;
  port: number;
  server: string;
  /** UDP datagrams received so far. */
  received(): number;
  stop(): Promise<void>;
};

const PROBE_NAME = 'ready-probe.dnsmasq.invalid';
const START_ATTEMPTS = 5;
const READY_DEADLINE_MS = 5000;
const STOP_GRACE_MS = 2000;

/**
 * For a test file: dnsmasq answering `txt` and a silent DNS server, started before its tests and stopped after them.
 * Read the servers from the returned object once the tests run.
 */
export function useDnsServers(txt: Record<string, TxtData>): { readonly dns: RunningDnsServer; readonly silent: SilentDnsServer } {
  const servers = {} as { dns: RunningDnsServer; silent: SilentDnsServer };
  beforeAll(async () => {
    servers.dns = await startDnsServer({ txt });
    servers.silent = await startSilentDnsServer();
  });
  afterAll(async () => {
    await servers.dns?.stop();
    await servers.silent?.stop();
  });
  return servers;
}

/** Starts dnsmasq answering exactly the given records; every other name is NXDOMAIN. Throws loudly if dnsmasq is missing. */
export async function startDnsServer(opts: DnsServerOptions): Promise<RunningDnsServer> {
  try {
    await access(DNSMASQ_PATH, constants.X_OK);
  } catch {
    throw new Error(`${DNSMASQ_PATH} is missing: the DNS tests need a real DNS server. Install it with: apt-get install dnsmasq-base`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'dkimgate-dnsmasq-'));
  try {
    const confPath = join(dir, 'dnsmasq.conf');
    await writeFile(confPath, formatConfig(opts));
    let lastError: Error | null = null;
    for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
      const port = await findFreePort(opts.ipv6 === true);
      try {
        return await launch(dir, confPath, port, opts.ipv6 === true);
      } catch (err) {
        lastError = err as Error;
        if (!/in use/i.test(lastError.message)) break; // only a lost port race is worth another try
      }
    }
    throw lastError ?? new Error('dnsmasq did not start');
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** A UDP socket on loopback that reads queries and never answers, for timeout tests. */
export async function startSilentDnsServer(opts: { host?: '127.0.0.1' | '::1' } = {}): Promise<SilentDnsServer> {
  const host = opts.host ?? '127.0.0.1';
  const socket: Socket = createSocket(host === '::1' ? 'udp6' : 'udp4');
  let received = 0;
  socket.on('message', () => {
    received++;
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, host, () => resolve());
  });
  const { port } = socket.address();
  return {
    host,
    port,
    server: host === '::1' ? `[::1]:${port}` : `${host}:${port}`,
    received: () => received,
    stop: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

function formatConfig(opts: DnsServerOptions): string {
  const lines = ['local=/#/']; // every name not configured here is NXDOMAIN, never forwarded
  for (const name of opts.servfail ?? []) lines.push(`server=/${checkedName(name)}/#`); // "#": the (absent) default servers
  for (const [name, address] of Object.entries(opts.a ?? {})) {
    if (!/^[0-9]{1,3}(\.[0-9]{1,3}){3}$/.test(address)) throw new Error(`startDnsServer: "${address}" is not an IPv4 address`);
    lines.push(`host-record=${checkedName(name)},${address}`);
  }
  for (const [name, data] of Object.entries(opts.txt)) {
    for (const record of recordsOf(data)) {
      const strings = record.flatMap(splitString).map((s) => `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`);
      lines.push(`txt-record=${checkedName(name)},${strings.join(',')}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

function recordsOf(data: TxtData): string[][] {
  if (typeof data === 'string') return [[data]];
  if (data.length === 0) throw new Error('startDnsServer: a TXT record needs at least one string');
  if (data.every((item) => Array.isArray(item))) return data as string[][];
  if (data.every((item) => typeof item === 'string')) return [data as string[]];
  throw new Error('startDnsServer: mix of strings and arrays in one TXT entry');
}

/** RFC 1035 §3.3: a character-string holds at most 255 octets. */
function splitString(text: string): string[] {
  if (!/^[\x20-\x7e]*$/.test(text)) throw new Error('startDnsServer: TXT strings must be printable ASCII');
  if (text.length <= 255) return [text];
  const parts: string[] = [];
  for (let i = 0; i < text.length; i += 255) parts.push(text.slice(i, i + 255));
  return parts;
}

function checkedName(name: string): string {
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(name)) throw new Error(`startDnsServer: unsupported name "${name}"`);
  return name;
}

async function launch(dir: string, confPath: string, port: number, ipv6: boolean): Promise<RunningDnsServer> {
  const args = [
    '--keep-in-foreground',
    `--conf-file=${confPath}`,
    `--pid-file=${join(dir, 'dnsmasq.pid')}`,
    '--no-resolv',
    '--no-hosts',
    '--no-poll',
    '--listen-address=127.0.0.1',
    ...(ipv6 ? ['--listen-address=::1'] : []),
    '--bind-interfaces',
    `--port=${port}`,
    '--log-facility=-',
    '--log-queries',
  ];
  if (process.getuid?.() === 0) args.push('--user=root');
  const child = spawn(DNSMASQ_PATH, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const log: string[] = [];
  let partial = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    log.push(...lines);
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(null));
  });

  // If the test process ends without stop(), do not leave dnsmasq behind.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  void exited.then(() => process.removeListener('exit', killOnExit));

  const stop = async (): Promise<void> => {
    await stopChild(child, exited);
    await rm(dir, { recursive: true, force: true });
  };

  const ready = await waitUntilAnswering(port, exited);
  if (!ready) {
    await stopChild(child, exited);
    throw new Error(`dnsmasq did not answer on 127.0.0.1:${port}: ${[...log, partial].join('\n').trim() || 'no output'}`);
  }
  return {
    host: '127.0.0.1',
    port,
    server: `127.0.0.1:${port}`,
    server6: ipv6 ? `[::1]:${port}` : null,
    queries: () =>
      log.flatMap((line) => {
        const match = /: query\[([A-Z0-9]+)\] (\S+) from /.exec(line);
        return match === null || match[2] === PROBE_NAME ? [] : [`${match[1]} ${match[2]}`];
      }),
    stop,
  };
}

/** Polls with a real query until dnsmasq answers (NXDOMAIN for the probe); false if it exits or the deadline passes. */
async function waitUntilAnswering(port: number, exited: Promise<number | null>): Promise<boolean> {
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
  });
  const resolver = new Resolver({ timeout: 200, tries: 1 });
  resolver.setServers([`127.0.0.1:${port}`]);
  const deadline = Date.now() + READY_DEADLINE_MS;
  while (!hasExited && Date.now() < deadline) {
    try {
      await resolver.resolveTxt(PROBE_NAME);
      return true;
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOTFOUND') return true;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return false;
}

async function stopChild(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
}

/** A port free for TCP and UDP on 127.0.0.1 (and ::1 when asked); dnsmasq serves both transports on it. */
async function findFreePort(ipv6: boolean): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const tcp = createServer();
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = tcp.address() as AddressInfo;
    const held: Array<() => Promise<void>> = [() => new Promise<void>((resolve) => tcp.close(() => resolve()))];
    let free = true;
    const probes: Array<[('udp4' | 'udp6' | 'tcp'), string]> = [['udp4', '127.0.0.1']];
    if (ipv6) probes.push(['udp6', '::1'], ['tcp', '::1']);
    for (const [kind, host] of probes) {
      try {
        held.push(await holdPort(kind, host, port));
      } catch {
        free = false;
        break;
      }
    }
    for (const release of held) await release();
    if (free) return port;
  }
  throw new Error('no free loopback port for dnsmasq');
}

async function holdPort(kind: 'udp4' | 'udp6' | 'tcp', host: string, port: number): Promise<() => Promise<void>> {
  if (kind === 'tcp') {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return () => new Promise<void>((resolve) => server.close(() => resolve()));
  }
  const socket = createSocket(kind);
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => resolve());
  });
  return () => new Promise<void>((resolve) => socket.close(() => resolve()));
}
