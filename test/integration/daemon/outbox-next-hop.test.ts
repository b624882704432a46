// The built-in configuration's embedded next hop (src/smtp/outbox-server.ts) with the daemon in-process: the
// .eml it stores is byte for byte what came over the wire (seen by a TCP tap between daemon and outbox), and
// when its address is taken the daemon relays to whatever listens there.
// Touches: loopback sockets on port 0, temp dirs.

import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type Daemon } from '../../../src/app.js';
import type { Config } from '../../../src/config/config.js';
import { DEFAULTS, defaultConfig } from '../../../src/config/defaults.js';
import { createLogger } from '../../../src/observability/logger.js';
import { connectNextHop } from '../../../src/relay/next-hop-connection.js';
import { startOutboxServer, type OutboxServer } from '../../../src/smtp/outbox-server.js';
import { crlf, rsaKey } from '../../helpers/dkim-test-kit.js';
import { startNextHopServer } from '../../helpers/next-hop-server.js';
import { RawClient, type Reply } from '../../helpers/raw-smtp-client.js';

type LogLine = Record<string, unknown>;

const cleanups: Array<() => Promise<void>> = [];
let dir = '';
const key = rsaKey(2048);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dkimgate-outbox-'));
  await mkdir(join(dir, 'keys', 'example.test'), { recursive: true });
  await writeFile(join(dir, 'keys', 'example.test', 'demo.pem'), key.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function capturingLogger(lines: LogLine[]) {
  return createLogger({
    destination: new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line) as LogLine);
        cb();
      },
    }),
  });
}

function gateConfig(nextHopPort: number): Config {
  const base = defaultConfig();
  return {
    ...base,
    listen: [{ ...DEFAULTS.items.listener, port: 0 }],
    nextHop: { ...base.nextHop, port: nextHopPort },
    sign: {
      ...base.sign,
      key: `${dir}/keys/%{d}/%{s}.pem`,
      domains: { 'example.test': { baseDomain: null, signCondition: null, overrides: {}, selectors: [{ selector: 'demo', overrides: {} }] } },
    },
  };
}

async function startGate(config: Config, options: { outboxDir?: string } = {}): Promise<{ daemon: Daemon; port: number; logs: LogLine[] }> {
  const logs: LogLine[] = [];
  const daemon = await startDaemon(config, capturingLogger(logs), options);
  cleanups.push(() => daemon.stop());
  return { daemon, port: daemon.addresses[0]!.port, logs };
}

async function startOutbox(outboxDir: string, maxMessageBytes = 1 << 20): Promise<{ outbox: OutboxServer; logs: LogLine[] }> {
  const logs: LogLine[] = [];
  const outbox = await startOutboxServer({ host: '127.0.0.1', port: 0, dir: outboxDir, maxMessageBytes, logger: capturingLogger(logs) });
  cleanups.push(() => outbox.close());
  return { outbox, logs };
}

/** A TCP relay in front of `port` that records every byte the client side sends. */
async function startTap(port: number): Promise<{ port: number; sent: () => Buffer }> {
  const chunks: Buffer[] = [];
  const server: Server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port });
    client.on('data', (c: Buffer) => chunks.push(c));
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(() => resolve())));
  return { port: (server.address() as AddressInfo).port, sent: () => Buffer.concat(chunks) };
}

/** One transaction from 127.0.0.1 (a relay host under the defaults); DATA dot-stuffed here, the final reply returned. */
async function send(port: number, data: Buffer): Promise<Reply> {
  const client = await RawClient.open(port);
  try {
    expect((await client.command('EHLO client.test')).code).toBe(250);
    expect((await client.command('MAIL FROM:<demo@example.test>')).code).toBe(250);
    expect((await client.command('RCPT TO:<someone@example.net>')).code).toBe(250);
    expect((await client.command('DATA')).code).toBe(354);
    client.write(Buffer.from(data.toString('latin1').replace(/(^|\r\n)\./g, '$1..'), 'latin1'));
    client.write('.\r\n');
    return await client.read(10_000);
  } finally {
    client.close();
  }
}

/** The message in the DATA phase of a recorded client stream, dot-unstuffed (RFC 5321 §4.5.2). */
function dataOf(stream: Buffer): Buffer {
  const text = stream.toString('latin1');
  const start = text.indexOf('DATA\r\n') + 'DATA\r\n'.length;
  const end = text.indexOf('\r\n.\r\n', start - 2);
  expect(start).toBeGreaterThan(5);
  expect(end).toBeGreaterThan(start);
  return Buffer.from(text.slice(start, end + 2).replace(/(^|\r\n)\./g, '$1'), 'latin1');
}

async function storedFiles(outboxDir: string): Promise<string[]> {
  return (await readdir(outboxDir)).sort();
}

const TRICKY = Buffer.concat([
  crlf(
    [
      'From: Demo Sender <demo@example.test>',
      'To: someone@example.net',
      'Subject: dots, 8-bit bytes and a long line',
      '  folded onto a second line',
      'Message-ID: <tricky@example.test>',
      '',
      '.a line that starts with a dot',
      '..two dots',
      '.',
      'trailing spaces   ',
      `${'x'.repeat(990)}`,
      '',
    ].join('\n'),
  ),
  Buffer.from('caf\xe9 \xff\x80 8-bit bytes\r\n\r\n\r\n', 'latin1'),
]);

describe('the embedded next hop (demo outbox)', () => {
  it('stores exactly the bytes the daemon relayed to it over SMTP', async () => {
    const outboxDir = join(dir, 'outbox-tap');
    const { outbox, logs } = await startOutbox(outboxDir);
    const tap = await startTap(outbox.address.port);
    const gate = await startGate(gateConfig(tap.port));
    const reply = await send(gate.port, TRICKY);
    expect(reply.code).toBe(250);

    const files = await storedFiles(outboxDir);
    expect(files).toHaveLength(1);
    const stored = await readFile(join(outboxDir, files[0]!));
    const onTheWire = dataOf(tap.sent());
    expect(stored.equals(onTheWire)).toBe(true);
    // It is the signed message: our DKIM-Signature on top, the client's bytes after it.
    expect(stored.toString('latin1')).toMatch(/^DKIM-Signature: v=1; a=rsa-sha256; [^]*d=example\.test; s=demo;/);
    expect(stored.subarray(stored.length - TRICKY.length).equals(TRICKY)).toBe(true);

    const line = logs.find((l) => l.msg === 'demo next hop stored a message');
    expect(line).toMatchObject({ outbox: join(outboxDir, files[0]!), mailFrom: 'demo@example.test', rcptTo: ['someone@example.net'] });
    const message = gate.logs.find((l) => l.msg === 'message');
    expect(`${String(message?.nextHopQueueId)}.eml`).toBe(files[0]);
  });

  it('stores what our relay client sends, and answers 250 with the file name as queue id', async () => {
    const outboxDir = join(dir, 'outbox-client');
    const { outbox } = await startOutbox(outboxDir);
    const connected = await connectNextHop({ host: '127.0.0.1', port: outbox.address.port, tls: 'none', auth: null, lmtp: false, heloName: 'gate.test', timeoutMs: 5000 });
    if (connected.kind !== 'ok') throw new Error(`connect: ${connected.kind}`);
    const c = connected.connection;
    try {
      expect((await c.mailFrom('demo@example.test', {})).kind).toBe('reply');
      expect((await c.rcptTo('someone@example.net', {})).kind).toBe('reply');
      const outcome = await c.data((async function* () { yield TRICKY; })(), 1);
      if (outcome.kind !== 'replies') throw new Error(`data: ${outcome.kind}`);
      const [files, reply] = [await storedFiles(outboxDir), outcome.replies[0]!];
      expect(reply.code).toBe(250);
      expect(files).toEqual([`${/queued as (\S+)/.exec(reply.text)?.[1]}.eml`]);
      expect((await readFile(join(outboxDir, files[0]!))).equals(TRICKY)).toBe(true);
    } finally {
      await c.quit();
    }
  });

  it('refuses a message over its size with 552 5.3.4 and leaves no file behind', async () => {
    const outboxDir = join(dir, 'outbox-big');
    const { outbox } = await startOutbox(outboxDir, 1000);
    const client = await RawClient.open(outbox.address.port);
    try {
      expect((await client.command('EHLO gate.test')).code).toBe(250);
      expect((await client.command('MAIL FROM:<demo@example.test>')).code).toBe(250);
      expect((await client.command('RCPT TO:<someone@example.net>')).code).toBe(250);
      expect((await client.command('DATA')).code).toBe(354);
      client.write(crlf(`Subject: big\n\n${'y'.repeat(2000)}\n`));
      client.write('.\r\n');
      const reply = await client.read(5000);
      expect(reply.code).toBe(552);
      expect(reply.text).toMatch(/5\.3\.4/);
    } finally {
      client.close();
    }
    expect(await storedFiles(outboxDir)).toEqual([]);
  });
});

describe('the daemon with an embedded next hop', () => {
  it('starts it before the listeners and relays to it', async () => {
    const outboxDir = join(dir, 'outbox-daemon');
    const gate = await startGate(gateConfig(0), { outboxDir });
    const ready = gate.logs.findIndex((l) => typeof l.msg === 'string' && l.msg.startsWith('demo next hop listening'));
    const listening = gate.logs.findIndex((l) => l.msg === 'listening');
    expect(ready).toBeGreaterThanOrEqual(0);
    expect(ready).toBeLessThan(listening);
    expect((await send(gate.port, TRICKY)).code).toBe(250);
    expect(await storedFiles(outboxDir)).toHaveLength(1);
  });

  it('relays to whatever already listens at next_hop, with a warning, when that address is taken', async () => {
    const hop = await startNextHopServer();
    cleanups.push(() => hop.close());
    const outboxDir = join(dir, 'outbox-taken');
    const gate = await startGate(gateConfig(hop.port), { outboxDir });
    const warning = gate.logs.find((l) => l.level === 'warn' && typeof l.msg === 'string' && l.msg.includes('already in use'));
    expect(String(warning?.msg)).toMatch(new RegExp(`127\\.0\\.0\\.1:${hop.port} is already in use: relaying to whatever listens there`));
    expect((await send(gate.port, TRICKY)).code).toBe(250);
    expect(hop.messages).toHaveLength(1);
    expect(await storedFiles(outboxDir).catch(() => [])).toEqual([]);
  });
});
