import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectNextHop, type ConnectOutcome, type NextHopConnection, type NextHopOptions } from '../../../src/relay/next-hop-connection.js';
import {
  createSelfSignedCertificate,
  SMTP_SINK_PATH,
  startNextHopServer,
  startSmtpSink,
  type NextHopServerOptions,
  type RunningNextHop,
} from '../../helpers/next-hop-server.js';
import { existsSync } from 'node:fs';

const TIMEOUT_MS = 2000;
const running: Array<{ close(): Promise<void> }> = [];
const connections: NextHopConnection[] = [];

afterEach(async () => {
  for (const c of connections.splice(0)) c.close();
  await Promise.all(running.splice(0).map((r) => r.close()));
});

async function nextHop(options: NextHopServerOptions = {}): Promise<RunningNextHop> {
  const server = await startNextHopServer(options);
  running.push(server);
  return server;
}

function optionsFor(server: { host: string; port: number }, extra: Partial<NextHopOptions> = {}): NextHopOptions {
  return { host: server.host, port: server.port, tls: 'none', auth: null, lmtp: false, heloName: 'dkimgate.test', timeoutMs: TIMEOUT_MS, ...extra };
}

async function connected(server: { host: string; port: number }, extra: Partial<NextHopOptions> = {}): Promise<NextHopConnection> {
  const outcome = await connectNextHop(optionsFor(server, extra));
  if (outcome.kind !== 'ok') throw new Error(`expected a connection, got ${JSON.stringify(outcome)}`);
  connections.push(outcome.connection);
  return outcome.connection;
}

function track(outcome: ConnectOutcome): ConnectOutcome {
  if (outcome.kind === 'ok') connections.push(outcome.connection);
  return outcome;
}

/** A raw TCP peer on loopback that runs `onSocket` for each client (for stalls and garbage no SMTP server sends). */
async function rawPeer(onSocket: (socket: Socket) => void): Promise<{ host: string; port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => sockets.delete(socket));
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const peer = {
    host: '127.0.0.1',
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  running.push(peer);
  return peer;
}

/** Retries `check` until it passes or a second has gone by (for what the peer does after we moved on). */
async function eventually(check: () => void): Promise<void> {
  const deadline = Date.now() + 1000;
  for (;;) {
    try {
      check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function sendOne(connection: NextHopConnection, parts: Buffer[], rcpt = 'rcpt@example.net') {
  expect(await connection.mailFrom('sender@example.org', {})).toMatchObject({ kind: 'reply', reply: { code: 250 } });
  expect(await connection.rcptTo(rcpt, {})).toMatchObject({ kind: 'reply', reply: { code: 250 } });
  return connection.data(parts, 1);
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const MESSAGE = b('From: a@example.org\r\nTo: b@example.net\r\nSubject: test\r\n\r\nHello.\r\n');

describe('connectNextHop', () => {
  it('reads the greeting host and the announced extensions', async () => {
    const server = await nextHop({ size: 1_000_000 });
    const connection = await connected(server);
    expect(connection.remoteGreetingHost).toBe('next-hop.internal.test');
    expect(connection.capabilities).toMatchObject({ size: true, maxSizeBytes: 1_000_000, pipelining: true, eightBitMime: true, smtpUtf8: true, dsn: true, enhancedStatusCodes: true, startTls: false });
    expect(connection.reusable).toBe(true);
    expect(server.commands.map((c) => c.line)).toEqual(['EHLO dkimgate.test']);
  });

  it('reports a closed loopback port as unreachable', async () => {
    const port = await closedPort();
    const outcome = await connectNextHop(optionsFor({ host: '127.0.0.1', port }));
    expect(outcome).toMatchObject({ kind: 'unreachable' });
    expect(outcome.kind === 'unreachable' && outcome.detail).toMatch(/ECONNREFUSED/);
  });

  it('reports a host name that does not resolve as unreachable', async () => {
    const outcome = await connectNextHop(optionsFor({ host: 'no-such-host.invalid', port: 25 }));
    expect(outcome).toMatchObject({ kind: 'unreachable' });
  });

  it('times out on a peer that never greets, within the per-command timeout', async () => {
    const peer = await rawPeer(() => {});
    const started = performance.now();
    const outcome = await connectNextHop(optionsFor(peer, { timeoutMs: 300 }));
    const elapsed = performance.now() - started;
    expect(outcome).toEqual({ kind: 'timeout', during: 'greeting' });
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(1300);
  });

  it.each([
    ['a 554 greeting', '554 5.3.2 go away\r\n', { kind: 'refused', reply: { code: 554, enhanced: '5.3.2', text: 'go away' } }],
    ['a 421 greeting', '421 busy, try later\r\n', { kind: 'refused', reply: { code: 421, enhanced: null, text: 'busy, try later' } }],
    ['a garbage greeting', 'SSH-2.0-OpenSSH_9.6\r\n', { kind: 'lost', during: 'greeting', detail: 'garbled reply: reply line without a reply code' }],
    ['an overlong greeting line', '220 ' + 'x'.repeat(5000), { kind: 'lost', during: 'greeting', detail: 'garbled reply: reply line longer than 4096 bytes' }],
    ['a 250 greeting', '250 hello\r\n', { kind: 'lost', during: 'greeting', detail: 'unexpected reply 250' }],
  ])('answers %s with an outcome, not an exception', async (_name, greeting, expected) => {
    const peer = await rawPeer((socket) => socket.write(greeting));
    expect(track(await connectNextHop(optionsFor(peer)))).toMatchObject(expected);
  });

  it('reports a peer that hangs up after its greeting as lost', async () => {
    const peer = await rawPeer((socket) => socket.end('220 bye\r\n'));
    expect(await connectNextHop(optionsFor(peer))).toMatchObject({ kind: 'lost', during: 'ehlo' });
  });

  it('falls back to HELO when the next hop does not know EHLO', async () => {
    const lines: string[] = [];
    const peer = await rawPeer((socket) => {
      socket.write('220 old.example SMTP\r\n');
      socket.on('data', (chunk: Buffer) => {
        const line = chunk.toString('latin1').trim();
        lines.push(line);
        socket.write(line.startsWith('EHLO') ? '502 unknown command\r\n' : '250 old.example\r\n');
      });
    });
    const connection = await connected(peer);
    expect(lines).toEqual(['EHLO dkimgate.test', 'HELO dkimgate.test']);
    expect(connection.capabilities.keywords).toEqual([]);
  });

  it('refuses a helo name that would break the command line (a configuration error)', async () => {
    await expect(connectNextHop(optionsFor({ host: '127.0.0.1', port: 1 }, { heloName: 'a b\r\nRSET' }))).rejects.toThrow(/helo name/);
  });
});

describe('envelope passthrough', () => {
  it('passes SIZE, BODY, SMTPUTF8, RET, ENVID, NOTIFY and ORCPT as the next hop received them', async () => {
    const server = await nextHop({ size: 10_000_000 });
    const connection = await connected(server);
    expect(await connection.mailFrom('sender@example.org', { SIZE: '2048', BODY: '8BITMIME', SMTPUTF8: true, RET: 'HDRS', ENVID: 'env+id=1' })).toMatchObject({
      kind: 'reply',
      reply: { code: 250, enhanced: '2.1.0' },
    });
    expect(await connection.rcptTo('rcpt@example.net', { NOTIFY: 'SUCCESS,FAILURE', ORCPT: 'rfc822;rcpt+tag@example.net' })).toMatchObject({
      kind: 'reply',
      reply: { code: 250, enhanced: '2.1.5' },
    });
    expect(await connection.rcptTo('other@example.net', { NOTIFY: 'NEVER' })).toMatchObject({ kind: 'reply', reply: { code: 250 } });
    expect(await connection.data([MESSAGE], 1)).toMatchObject({ kind: 'replies', replies: [{ code: 250, enhanced: '2.6.0' }] });

    expect(server.messages).toHaveLength(1);
    expect(server.messages[0]!.envelope).toEqual({
      mailFrom: 'sender@example.org',
      rcptTo: ['rcpt@example.net', 'other@example.net'],
      mailParams: { SIZE: '2048', BODY: '8BITMIME', SMTPUTF8: true, RET: 'HDRS', ENVID: 'env+id=1' },
      rcptParams: [{ NOTIFY: 'SUCCESS,FAILURE', ORCPT: 'rfc822;rcpt+tag@example.net' }, { NOTIFY: 'NEVER' }],
    });
    const lines = server.commands.map((c) => c.line);
    expect(lines).toContain('MAIL FROM:<sender@example.org> SIZE=2048 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=env+2Bid+3D1');
    expect(lines).toContain('RCPT TO:<rcpt@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;rcpt+2Btag@example.net');
  });

  it('passes an internationalized address with SMTPUTF8', async () => {
    const server = await nextHop();
    const connection = await connected(server);
    expect(await connection.mailFrom('jörg@exämple.org', { SMTPUTF8: true })).toMatchObject({ kind: 'reply', reply: { code: 250 } });
    expect(await connection.rcptTo('δοκιμή@παράδειγμα.δοκιμή', {})).toMatchObject({ kind: 'reply', reply: { code: 250 } });
    expect(await connection.data([MESSAGE], 1)).toMatchObject({ kind: 'replies', replies: [{ code: 250 }] });
    expect(server.messages[0]!.envelope).toMatchObject({ mailFrom: 'jörg@exämple.org', rcptTo: ['δοκιμή@παράδειγμα.δοκιμή'], mailParams: { SMTPUTF8: true } });
  });

  it('sends no non-ASCII address to a next hop without SMTPUTF8: 553 5.6.7 instead, for MAIL, RCPT and both pipelined', async () => {
    const server = await nextHop({ hide: { smtpUtf8: true } });
    const connection = await connected(server);
    const refused = { kind: 'reply', reply: { code: 553, enhanced: '5.6.7', text: expect.stringContaining('SMTPUTF8 is required') } };
    expect(await connection.mailFrom('jörg@exämple.org', { SMTPUTF8: true })).toMatchObject(refused);
    expect(await connection.mailAndRcpt('jörg@exämple.org', {}, 'rcpt@example.net', {})).toMatchObject({ mail: refused, rcpt: refused });
    expect(server.commands.filter((c) => /^(MAIL|RCPT)/.test(c.line))).toEqual([]);
    // an ASCII sender goes; the non-ASCII recipient does not, alone or pipelined after MAIL
    expect(await connection.mailAndRcpt('sender@example.org', {}, 'δοκιμή@παράδειγμα.δοκιμή', {})).toMatchObject({ mail: { kind: 'reply', reply: { code: 250 } }, rcpt: refused });
    expect(await connection.rcptTo('δοκιμή@example.net', {})).toMatchObject(refused);
    expect(await connection.rcptTo('rcpt@example.net', {})).toMatchObject({ kind: 'reply', reply: { code: 250 } });
    expect(server.commands.map((c) => c.line).filter((l) => /^(MAIL|RCPT)/.test(l))).toEqual(['MAIL FROM:<sender@example.org>', 'RCPT TO:<rcpt@example.net>']);
  });

  it('leaves out the parameters of extensions the next hop does not announce', async () => {
    const server = await nextHop({ hide: { dsn: true, smtpUtf8: true, eightBitMime: true } });
    const connection = await connected(server);
    expect(connection.capabilities).toMatchObject({ size: false, dsn: false, smtpUtf8: false, eightBitMime: false });
    await connection.mailFrom('sender@example.org', { SIZE: '2048', BODY: '8BITMIME', SMTPUTF8: true, RET: 'FULL', ENVID: 'x' });
    await connection.rcptTo('rcpt@example.net', { NOTIFY: 'NEVER', ORCPT: 'rfc822;rcpt@example.net' });
    await connection.data([MESSAGE], 1);
    expect(server.messages[0]!.envelope).toMatchObject({ mailParams: {}, rcptParams: [{}] });
    expect(server.commands.map((c) => c.line)).toContain('MAIL FROM:<sender@example.org>');
  });

  it('sends the null sender', async () => {
    const server = await nextHop();
    const connection = await connected(server);
    expect(await connection.mailFrom('', {})).toMatchObject({ kind: 'reply', reply: { code: 250 } });
    expect(server.commands.map((c) => c.line)).toContain('MAIL FROM:<>');
  });

  it.each([['a\r\nRSET'], ['<x@y.example>'], ['x\x00@y.example']])('refuses to put %j on the command line', async (address) => {
    const server = await nextHop();
    const connection = await connected(server);
    await expect(connection.mailFrom(address, {})).rejects.toThrow(TypeError);
    await expect(connection.rcptTo(address, {})).rejects.toThrow(TypeError);
    expect(server.commands.map((c) => c.line)).toEqual(['EHLO dkimgate.test']);
  });
});

describe('message bytes', () => {
  // smtp-server removes a line-start dot only when another follows, so each case has ".." or "." alone on a line:
  // a missing stuffing shows as a lost dot or a message cut short
  it.each<[string, string[]]>([
    ['a dot line at the message start', ['.\r\nSubject: x\r\n\r\nbody\r\n']],
    ['two dots at the message start', ['..From the start\r\n\r\nbody\r\n']],
    ['a lone dot line', ['Subject: x\r\n\r\nbefore\r\n.\r\nafter\r\n']],
    ['a CRLF and a dot line split over two parts', ['Subject: x\r\n\r\nline\r\n', '.\r\nafter\r\n']],
    ['a CR and an LF-dot-dot split over two parts', ['Subject: x\r\n\r\nline\r', '\n..dot line\r\n']],
    ['a CR and an LF-dot line split over two parts', ['Subject: x\r\n\r\nline\r', '\n.\r\nafter\r\n']],
    ['a split CRLF, then dots in a third part', ['Subject: x\r\n\r\nline\r', '\n', '..two dots\r\n']],
    ['the end-of-data sequence inside the body', ['Subject: x\r\n\r\na\r\n.\r\nMAIL FROM:<evil@example.org>\r\n']],
    ['parts that are just dots', ['Subject: x\r\n\r\n', '.', '\r\n', '.', '.', '\r\n']],
    ['empty parts', ['', 'Subject: x\r\n\r\n', '', '.\r\n', '', '..\r\n']],
    ['bare CR, bare LF, NUL and 8-bit bytes, none next to a line-start dot', ['Subject: x\r\n\r\na\rb\nc\x00d\xff\xfe\x80\r\n\n\r\r\n']],
    // one dot only: smtp-server itself takes "\n.." for a stuffed line start and drops a dot (see the unit tests for "..")
    ['a bare LF before a dot (not a line start in SMTP)', ['Subject: x\r\n\r\nx\n.y\r\n']],
  ])('delivers exactly the input bytes for %s', async (_name, parts) => {
    const server = await nextHop();
    const connection = await connected(server);
    const outcome = await sendOne(connection, parts.map(b));
    expect(outcome).toMatchObject({ kind: 'replies', replies: [{ code: 250 }] });
    expect(server.messages[0]!.data.equals(Buffer.concat(parts.map(b)))).toBe(true);
  });

  it('adds the missing final CRLF to a message that has none', async () => {
    const server = await nextHop();
    const connection = await connected(server);
    await sendOne(connection, [b('Subject: x\r\n\r\nno final newline')]);
    expect(server.messages[0]!.data.toString('latin1')).toBe('Subject: x\r\n\r\nno final newline\r\n');
  });

  it('delivers an empty message', async () => {
    const server = await nextHop();
    const connection = await connected(server);
    expect(await sendOne(connection, [])).toMatchObject({ kind: 'replies', replies: [{ code: 250 }] });
    expect(server.messages[0]!.data.length).toBe(0);
  });

  it('delivers a 3 MB message from an async source in many parts, dots at every boundary, byte for byte', async () => {
    const server = await nextHop();
    const connection = await connected(server);
    const line = b('.leading dot and some text to fill the line up a bit more\r\n');
    const parts: Buffer[] = [];
    for (let i = 0; i < 75_000; i++) parts.push(i % 3 === 0 ? line.subarray(0, 10) : i % 3 === 1 ? line.subarray(10) : line);
    async function* source() {
      for (const part of parts) yield part;
    }
    expect(await connection.mailFrom('sender@example.org', {})).toMatchObject({ kind: 'reply', reply: { code: 250 } });
    expect(await connection.rcptTo('rcpt@example.net', {})).toMatchObject({ kind: 'reply', reply: { code: 250 } });
    expect(await connection.data(source(), 1)).toMatchObject({ kind: 'replies', replies: [{ code: 250 }] });
    const expected = Buffer.concat(parts);
    expect(expected.length).toBeGreaterThan(2_900_000);
    expect(server.messages[0]!.data.equals(expected)).toBe(true);
    expect(connection.reusable).toBe(true);
  });

  it('fails without sending a final dot when the message source throws', async () => {
    const server = await nextHop();
    const connection = await connected(server);
    async function* broken() {
      yield b('Subject: x\r\n\r\npart one\r\n');
      throw new Error('spool file vanished');
    }
    await connection.mailFrom('sender@example.org', {});
    await connection.rcptTo('rcpt@example.net', {});
    const outcome = await connection.data(broken(), 1);
    expect(outcome).toMatchObject({ kind: 'lost', during: 'data', afterEndOfData: false });
    expect(outcome.kind === 'lost' && outcome.detail).toMatch(/spool file vanished/);
    await new Promise((r) => setTimeout(r, 50));
    expect(server.received).toHaveLength(0);
  });
});

describe('replies as values', () => {
  it('passes a 4xx to MAIL FROM through, and keeps the connection', async () => {
    const server = await nextHop({ onMailFrom: () => ({ code: 451, message: 'greylisted, come back later' }) });
    const connection = await connected(server);
    expect(await connection.mailFrom('sender@example.org', {})).toEqual({
      kind: 'reply',
      reply: { code: 451, enhanced: '4.3.0', text: 'greylisted, come back later', lines: ['greylisted, come back later'] },
    });
    expect(connection.reusable).toBe(true);
  });

  it('refuses one recipient with 550 5.1.1 and delivers to the other', async () => {
    const server = await nextHop({ onRcptTo: (address) => (address === 'gone@example.net' ? { code: 550, message: 'no such user' } : null) });
    const connection = await connected(server);
    await connection.mailFrom('sender@example.org', {});
    expect(await connection.rcptTo('gone@example.net', {})).toMatchObject({ kind: 'reply', reply: { code: 550, enhanced: '5.1.1', text: 'no such user' } });
    expect(await connection.rcptTo('here@example.net', {})).toMatchObject({ kind: 'reply', reply: { code: 250 } });
    expect(await connection.data([MESSAGE], 1)).toMatchObject({ kind: 'replies', replies: [{ code: 250 }] });
    expect(server.messages[0]!.envelope.rcptTo).toEqual(['here@example.net']);
  });

  it.each([
    ['refuse', { kind: 'refuse', code: 554, message: 'content rejected' } as const, { code: 554, enhanced: '5.6.0', text: 'content rejected' }],
    ['defer', { kind: 'defer', message: 'queue full' } as const, { code: 451, enhanced: '4.3.0', text: 'queue full' }],
  ])('passes the end-of-data reply of a next hop that chose to %s', async (_name, onData, reply) => {
    const server = await nextHop({ onData });
    const connection = await connected(server);
    expect(await sendOne(connection, [MESSAGE])).toMatchObject({ kind: 'replies', replies: [reply] });
    expect(server.messages).toHaveLength(0);
    expect(connection.reusable).toBe(true);
  });

  it('reports DATA refused before 354 as refused', async () => {
    const server = await nextHop();
    const connection = await connected(server);
    await connection.mailFrom('sender@example.org', {});
    expect(await connection.data([MESSAGE], 1)).toMatchObject({ kind: 'refused', reply: { code: 503 } });
  });

  it('marks the connection unusable after a 421', async () => {
    const server = await nextHop({ onMailFrom: () => ({ code: 421, message: 'shutting down' }) });
    const connection = await connected(server);
    expect(await connection.mailFrom('sender@example.org', {})).toMatchObject({ kind: 'reply', reply: { code: 421 } });
    expect(connection.reusable).toBe(false);
  });

  it('answers a command after the next hop went away with lost, at once', async () => {
    const server = await nextHop();
    const connection = await connected(server);
    server.dropConnections();
    await new Promise<void>((resolve) => connection.onClosed(resolve));
    expect(connection.closed).toBe(true);
    expect(await connection.rset()).toMatchObject({ kind: 'lost', during: 'rset' });
  });

  it('says QUIT and closes', async () => {
    const server = await nextHop();
    const connection = await connected(server);
    expect(await connection.quit()).toMatchObject({ kind: 'reply', reply: { code: 221 } });
    expect(connection.reusable).toBe(false);
    expect(server.commands.map((c) => c.line)).toEqual(['EHLO dkimgate.test', 'QUIT']);
  });

  it('allows one command at a time', async () => {
    const server = await nextHop();
    const connection = await connected(server);
    const first = connection.rset();
    await expect(connection.rset()).rejects.toThrow(/one command at a time/);
    expect(await first).toMatchObject({ kind: 'reply', reply: { code: 250 } });
  });
});

describe('faults during DATA', () => {
  it('times out within timeoutMs when the next hop never answers end-of-data', async () => {
    const server = await nextHop({ onData: { kind: 'stall' } });
    const connection = await connected(server, { timeoutMs: 400 });
    await connection.mailFrom('sender@example.org', {});
    await connection.rcptTo('rcpt@example.net', {});
    const started = performance.now();
    const outcome = await connection.data([MESSAGE], 1);
    const elapsed = performance.now() - started;
    expect(outcome).toEqual({ kind: 'timeout', during: 'end-of-data', afterEndOfData: true, received: [] });
    expect(elapsed).toBeGreaterThanOrEqual(390);
    expect(elapsed).toBeLessThan(1400);
    expect(connection.reusable).toBe(false);
    expect(server.received).toHaveLength(1);
  });

  it('times out when the next hop stops reading a large message', async () => {
    // a peer that answers up to 354 and then never reads again: our writes back up
    const peer = await rawPeer((socket) => {
      socket.write('220 slow.example ESMTP\r\n');
      let buffered = '';
      const onData = (chunk: Buffer) => {
        buffered += chunk.toString('latin1');
        const lines = buffered.split('\r\n');
        buffered = lines.pop()!;
        for (const line of lines) {
          socket.write(line === 'DATA' ? '354 go ahead\r\n' : line.startsWith('EHLO') ? '250-slow.example\r\n250 8BITMIME\r\n' : '250 ok\r\n');
          if (line === 'DATA') {
            socket.off('data', onData);
            socket.pause();
            return;
          }
        }
      };
      socket.on('data', onData);
    });
    const connection = await connected(peer, { timeoutMs: 400 });
    await connection.mailFrom('sender@example.org', {});
    await connection.rcptTo('rcpt@example.net', {});
    const chunk = Buffer.alloc(1024 * 1024, 'a');
    function* big() {
      for (let i = 0; i < 256; i++) yield chunk;
    }
    const started = performance.now();
    const outcome = await connection.data(big(), 1);
    expect(outcome).toMatchObject({ kind: 'timeout', during: 'data', afterEndOfData: false });
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it('reports a connection dropped mid-DATA as lost before the end of data', async () => {
    const server = await nextHop({ onData: { kind: 'drop', when: 'mid-data', afterBytes: 64 * 1024 } });
    const connection = await connected(server);
    await connection.mailFrom('sender@example.org', {});
    await connection.rcptTo('rcpt@example.net', {});
    const chunk = Buffer.alloc(64 * 1024, 'x');
    function* big() {
      for (let i = 0; i < 1024; i++) yield chunk; // 64 MB: far more than the socket buffers hold
    }
    const outcome = await connection.data(big(), 1);
    expect(outcome).toMatchObject({ kind: 'lost', during: 'data', afterEndOfData: false });
    expect(server.received).toHaveLength(0);
    expect(connection.reusable).toBe(false);
  });

  it('flags a connection dropped right after the final dot as ambiguous', async () => {
    const server = await nextHop({ onData: { kind: 'drop', when: 'after-dot' } });
    const connection = await connected(server);
    const outcome = await sendOne(connection, [MESSAGE]);
    expect(outcome).toMatchObject({ kind: 'lost', during: 'end-of-data', afterEndOfData: true, received: [] });
    // the ambiguity is real: the next hop holds the whole message
    expect(server.received).toHaveLength(1);
    expect(server.received[0]!.data.equals(MESSAGE)).toBe(true);
  });
});

/**
 * A raw peer that speaks SMTP up to DATA, then hands the socket to `inData` (called once, after its 354 unless it
 * answers DATA itself); `dotReply` answers a final dot it reads, if it reads one. Lines are kept in `lines`.
 */
async function peerAtData(opts: { dataReply?: string; inData?: (socket: Socket) => void; dotReply?: string }) {
  const lines: string[] = [];
  let dots = 0;
  const peer = await rawPeer((socket) => {
    socket.write('220 peer.example ESMTP\r\n');
    let buffered = '';
    let inData = false;
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      const parts = buffered.split('\r\n');
      buffered = parts.pop()!;
      for (const line of parts) {
        if (inData) {
          if (line !== '.') continue;
          inData = false;
          dots += 1;
          if (opts.dotReply !== undefined) socket.write(`${opts.dotReply}\r\n`);
          continue;
        }
        lines.push(line);
        if (line === 'DATA') {
          socket.write(`${opts.dataReply ?? '354 go ahead'}\r\n`);
          inData = opts.dataReply === undefined;
          opts.inData?.(socket);
        } else {
          socket.write(line.startsWith('EHLO') ? '250-peer.example\r\n250 8BITMIME\r\n' : '250 ok\r\n');
        }
      }
    });
  });
  return { ...peer, lines, dots: () => dots };
}

/** `mb` megabytes of message, far more than loopback socket buffers hold while the peer does not read. */
function* bigMessage(mb: number): Generator<Buffer> {
  const chunk = Buffer.alloc(1024 * 1024, 'a');
  for (let i = 0; i < mb; i++) yield chunk;
}

describe('replies out of step around DATA', () => {
  it('a 250 sent before our final dot is no delivery: the message is cut short and the outcome is garbled (lost)', async () => {
    // the peer stops reading after 354, sends an unprompted 250, then reads on and would answer the dot 451
    const peer = await peerAtData({
      inData: (socket) => {
        socket.pause();
        setTimeout(() => {
          socket.write('250 2.0.0 queued as FAKE\r\n');
          socket.resume();
        }, 100);
      },
      dotReply: '451 4.3.0 not queued',
    });
    const connection = await connected(peer);
    await connection.mailFrom('sender@example.org', {});
    await connection.rcptTo('rcpt@example.net', {});
    const outcome = await connection.data(bigMessage(16), 1);
    expect(outcome).toMatchObject({ kind: 'lost', during: 'data', afterEndOfData: false, detail: expect.stringMatching(/garbled reply: 250 before the end/) });
    expect(connection.reusable).toBe(false);
    // the dot never went out: the peer has no whole message to hold
    await new Promise((r) => setTimeout(r, 100));
    expect(peer.dots()).toBe(0);
  });

  it('a 552 before our final dot, the peer no longer reading: that refusal is the answer, at once', async () => {
    const peer = await peerAtData({
      inData: (socket) => {
        socket.pause();
        setTimeout(() => socket.write('552 5.3.4 message too big for us\r\n'), 100);
      },
    });
    const connection = await connected(peer, { timeoutMs: 5000 });
    await connection.mailFrom('sender@example.org', {});
    await connection.rcptTo('rcpt@example.net', {});
    const started = performance.now();
    const outcome = await connection.data(bigMessage(16), 1);
    expect(outcome).toMatchObject({ kind: 'refused', reply: { code: 552, enhanced: '5.3.4' } });
    // not the 5 s a wait for the peer to read would take
    expect(performance.now() - started).toBeLessThan(4000);
    expect(connection.reusable).toBe(false);
  });

  it('a 552 before our final dot, then the peer closes: that refusal is the answer, not a lost connection', async () => {
    const peer = await peerAtData({
      inData: (socket) => {
        let seen = 0;
        socket.on('data', (chunk: Buffer) => {
          seen += chunk.length;
          if (seen >= 5000 && socket.writable) {
            socket.end('552 5.3.4 message too big for us\r\n');
            socket.pause();
          }
        });
      },
    });
    const connection = await connected(peer);
    await connection.mailFrom('sender@example.org', {});
    await connection.rcptTo('rcpt@example.net', {});
    const outcome = await connection.data(bigMessage(16), 1);
    expect(outcome).toMatchObject({ kind: 'refused', reply: { code: 552, enhanced: '5.3.4' } });
  });

  it('DATA answered 250 instead of 354: garbled (lost), nothing sent', async () => {
    const peer = await peerAtData({ dataReply: '250 2.0.0 ok whatever' });
    const connection = await connected(peer);
    const outcome = await sendOne(connection, [MESSAGE]);
    expect(outcome).toMatchObject({ kind: 'lost', during: 'data', afterEndOfData: false, detail: 'garbled reply: 250 to DATA' });
    expect(connection.reusable).toBe(false);
  });

  it('the final dot answered 354: garbled (lost) after the end of data, so ambiguous', async () => {
    const peer = await peerAtData({ dotReply: '354 again' });
    const connection = await connected(peer);
    const outcome = await sendOne(connection, [MESSAGE]);
    expect(outcome).toMatchObject({ kind: 'lost', during: 'end-of-data', afterEndOfData: true, detail: 'garbled reply: 354 to the end of data' });
    expect(connection.reusable).toBe(false);
  });
});

describe('LMTP', () => {
  it('returns one end-of-data reply per accepted recipient, in order', async () => {
    const server = await nextHop({
      lmtp: true,
      onRcptTo: (address) => (address === 'unknown@example.net' ? { code: 550, message: 'unknown mailbox' } : null),
      onData: { kind: 'lmtp', results: ['accept', { code: 452, message: 'mailbox full' }, { code: 550, message: 'mailbox disabled' }] },
    });
    const connection = await connected(server, { lmtp: true });
    expect(server.commands[0]!.line).toBe('LHLO dkimgate.test');
    await connection.mailFrom('sender@example.org', {});
    expect(await connection.rcptTo('unknown@example.net', {})).toMatchObject({ kind: 'reply', reply: { code: 550 } });
    for (const rcpt of ['a@example.net', 'b@example.net', 'c@example.net']) {
      expect(await connection.rcptTo(rcpt, {})).toMatchObject({ kind: 'reply', reply: { code: 250 } });
    }
    const outcome = await connection.data([MESSAGE], 3);
    expect(outcome).toMatchObject({
      kind: 'replies',
      replies: [
        { code: 250, text: 'OK: delivered' },
        { code: 452, enhanced: '4.2.2', text: 'mailbox full' },
        { code: 550, enhanced: '5.1.1', text: 'mailbox disabled' },
      ],
    });
    expect(server.messages[0]!.envelope.rcptTo).toEqual(['a@example.net']);
    expect(connection.reusable).toBe(true);
  });

  it('keeps the replies that came before an LMTP next hop stalled', async () => {
    const peer = await rawPeer((socket) => {
      socket.write('220 lmtp.example LMTP\r\n');
      let inData = false;
      socket.on('data', (chunk: Buffer) => {
        const text = chunk.toString('latin1');
        if (inData) {
          if (text.endsWith('\r\n.\r\n')) socket.write('250 2.0.0 first ok\r\n'); // and nothing for the second
          return;
        }
        for (const line of text.split('\r\n').filter((l) => l !== '')) {
          if (line === 'DATA') {
            inData = true;
            socket.write('354 go\r\n');
          } else socket.write(line.startsWith('LHLO') ? '250-lmtp.example\r\n250 PIPELINING\r\n' : '250 ok\r\n');
        }
      });
    });
    const connection = await connected(peer, { lmtp: true, timeoutMs: 300 });
    await connection.mailFrom('sender@example.org', {});
    await connection.rcptTo('a@example.net', {});
    await connection.rcptTo('b@example.net', {});
    expect(await connection.data([MESSAGE], 2)).toMatchObject({ kind: 'timeout', during: 'end-of-data', afterEndOfData: true, received: [{ code: 250, text: 'first ok' }] });
  });

  it('needs the number of accepted recipients', async () => {
    const server = await nextHop({ lmtp: true });
    const connection = await connected(server, { lmtp: true });
    await expect(connection.data([MESSAGE], 0)).rejects.toThrow(RangeError);
  });
});

describe('TLS and AUTH', () => {
  let cert: { key: Buffer; cert: Buffer };
  beforeAll(async () => {
    cert = await createSelfSignedCertificate();
  });

  it('upgrades with STARTTLS, verifies the certificate, and says EHLO again', async () => {
    const server = await nextHop({ tls: cert });
    const connection = await connected(server, { tls: 'starttls', tlsOptions: { ca: cert.cert } });
    expect(connection.secure).toBe(true);
    expect(connection.capabilities.startTls).toBe(false); // the EHLO over TLS no longer offers it
    expect(server.commands.map((c) => c.line)).toEqual(['EHLO dkimgate.test', 'STARTTLS', 'EHLO dkimgate.test']);
    expect(await sendOne(connection, [MESSAGE])).toMatchObject({ kind: 'replies', replies: [{ code: 250 }] });
    expect(server.messages[0]!.data.equals(MESSAGE)).toBe(true);
  });

  it('reports a certificate it cannot verify as lost during the handshake', async () => {
    const server = await nextHop({ tls: cert });
    const outcome = await connectNextHop(optionsFor(server, { tls: 'starttls' }));
    expect(outcome).toMatchObject({ kind: 'lost', during: 'tls-handshake' });
    expect(outcome.kind === 'lost' && outcome.detail).toMatch(/certificate/i);
  });

  it('checks the certificate of a next hop given by IP address against that address (no SNI: RFC 6066 §3)', async () => {
    const ipOnly = await createSelfSignedCertificate('127.0.0.1', 'IP:127.0.0.1');
    const server = await nextHop({ tls: ipOnly });
    const connection = await connected(server, { host: '127.0.0.1', tls: 'starttls', tlsOptions: { ca: ipOnly.cert } });
    expect(connection.secure).toBe(true);
    expect(await sendOne(connection, [MESSAGE])).toMatchObject({ kind: 'replies', replies: [{ code: 250 }] });
  });

  it('refuses a certificate for a name, not the address, of a next hop given by IP address', async () => {
    // it would pass a check against "localhost", Node's default name when none is given
    const nameOnly = await createSelfSignedCertificate('localhost', 'DNS:localhost');
    const server = await nextHop({ tls: nameOnly });
    const outcome = await connectNextHop(optionsFor(server, { host: '127.0.0.1', tls: 'starttls', tlsOptions: { ca: nameOnly.cert } }));
    expect(outcome).toMatchObject({ kind: 'lost', during: 'tls-handshake' });
    expect(outcome.kind === 'lost' && outcome.detail).toMatch(/127\.0\.0\.1/);
  });

  it('refuses to go on in plaintext when the next hop does not do STARTTLS', async () => {
    const server = await nextHop();
    const outcome = await connectNextHop(optionsFor(server, { tls: 'starttls' }));
    expect(outcome).toMatchObject({ kind: 'refused', reply: { code: 500 } });
    await eventually(() => expect(server.commands.map((c) => c.line)).toEqual(['EHLO dkimgate.test', 'STARTTLS', 'QUIT']));
  });

  it('speaks implicit TLS', async () => {
    const server = await nextHop({ tls: cert, implicitTls: true });
    const connection = await connected(server, { tls: 'implicit', tlsOptions: { ca: cert.cert } });
    expect(connection.secure).toBe(true);
    expect(await sendOne(connection, [MESSAGE])).toMatchObject({ kind: 'replies', replies: [{ code: 250 }] });
  });

  it('authenticates with AUTH PLAIN after STARTTLS', async () => {
    const server = await nextHop({ tls: cert, auth: { user: 'relay', pass: 's3cret pass' } });
    const connection = await connected(server, { tls: 'starttls', tlsOptions: { ca: cert.cert }, auth: { user: 'relay', pass: 's3cret pass' } });
    expect(server.auths).toEqual([{ sessionId: expect.any(String), method: 'PLAIN', username: 'relay', success: true }]);
    expect(await sendOne(connection, [MESSAGE])).toMatchObject({ kind: 'replies', replies: [{ code: 250 }] });
  });

  it('reports wrong credentials as refused with the next hop reply, which holds no secret', async () => {
    const server = await nextHop({ tls: cert, auth: { user: 'relay', pass: 'right' } });
    const outcome = await connectNextHop(optionsFor(server, { tls: 'starttls', tlsOptions: { ca: cert.cert }, auth: { user: 'relay', pass: 'wrong-password' } }));
    expect(outcome).toMatchObject({ kind: 'refused', reply: { code: 535, enhanced: '5.7.8' } });
    expect(JSON.stringify(outcome)).not.toContain('wrong-password');
    expect(JSON.stringify(server.commands)).not.toContain(Buffer.from('\0relay\0wrong-password').toString('base64'));
  });

  it('uses AUTH LOGIN when the next hop offers only that', async () => {
    const server = await nextHop({ tls: cert, auth: { user: 'relay', pass: 'pw' }, authMethods: ['LOGIN'] });
    await connected(server, { tls: 'starttls', tlsOptions: { ca: cert.cert }, auth: { user: 'relay', pass: 'pw' } });
    expect(server.auths).toMatchObject([{ method: 'LOGIN', username: 'relay', success: true }]);
  });

  it('reports AUTH refused over plaintext by a next hop that wants TLS first', async () => {
    const server = await nextHop({ tls: cert, auth: { user: 'relay', pass: 'pw' } });
    const outcome = await connectNextHop(optionsFor(server, { auth: { user: 'relay', pass: 'pw' } }));
    expect(outcome).toMatchObject({ kind: 'refused', reply: { code: 538 } });
  });
});

describe('Postfix smtp-sink', () => {
  it('names the Debian package when smtp-sink is missing', async () => {
    await expect(startSmtpSink({ path: '/nonexistent/smtp-sink' })).rejects.toThrow(/package "postfix"/);
  });

  it('delivers a message to smtp-sink', async () => {
    if (!existsSync(SMTP_SINK_PATH)) throw new Error(`${SMTP_SINK_PATH} is missing: apt-get install postfix (a test peer; .ci/run installs it without starting it)`);
    const sink = await startSmtpSink();
    running.push({ close: () => sink.stop() });
    const connection = await connected(sink);
    expect(await sendOne(connection, [MESSAGE])).toMatchObject({ kind: 'replies', replies: [{ code: 250 }] });
  });
});
