// Attack: clients that push past the session limits of the running daemon over loopback — pipelined floods,
// huge command lines, too many recipients, slow drips, long sessions, connection floods, AUTH brute force,
// and XCLIENT/XFORWARD from peers not allowed. Small configured limits keep each test short.
// Touches: loopback sockets (up to ~1300 at once in the connection flood), a temp dir of keys and a users file.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/config.js';
import { defaultConfig } from '../../src/config/defaults.js';
import { HEADER_MEMORY_BUDGET_BYTES, headerMemoryInUse } from '../../src/pipeline/header-memory.js';
import { BASIC_MESSAGE } from '../helpers/dkim-test-kit.js';
import { Harness, headerOf, listener, waitFor, type Gate } from '../helpers/daemon-harness.js';
import { dotStuff, RawClient, sendMail, sendMailOn } from '../helpers/raw-smtp-client.js';

const harness = new Harness();
beforeAll(() => harness.setup());
afterEach(() => harness.cleanup());
afterAll(() => harness.dispose());

function startGate(limits: Partial<Config['limits']> = {}, over: Partial<Config> = {}): Promise<Gate> {
  return harness.startGate(harness.config({ limits: { ...defaultConfig().limits, ...limits }, ...over }));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A client on another connection still gets a message through: the daemon kept serving. */
async function stillServes(gate: Gate): Promise<void> {
  const before = gate.nextHop.messages.length;
  const r = await sendMail(gate.port, { data: BASIC_MESSAGE });
  expect(r.final[0]?.code).toBe(250);
  expect(gate.nextHop.messages.length).toBe(before + 1);
}

describe('pipelined commands past the limits', () => {
  it('answers 452 4.5.3 to each RCPT past max_recipients, relays none of them, and delivers to the first ones', async () => {
    const gate = await startGate({ maxRecipients: 5 });
    const client = await RawClient.open(gate.port);
    try {
      await client.command('EHLO client.test');
      let burst = 'MAIL FROM:<alice@example.com>\r\n';
      for (let i = 0; i < 40; i++) burst += `RCPT TO:<r${i}@example.org>\r\n`;
      client.write(burst);
      const replies = [];
      for (let i = 0; i < 41; i++) replies.push(await client.read(10_000));
      expect(replies[0]!.code).toBe(250);
      expect(replies.slice(1, 6).every((r) => r.code === 250)).toBe(true);
      expect(replies.slice(6).every((r) => /^452 4\.5\.3 /.test(r.text))).toBe(true);
      expect((await client.command('DATA')).code).toBe(354);
      client.write(dotStuff(BASIC_MESSAGE));
      expect((await client.command('.')).code).toBe(250);
    } finally {
      client.close();
    }
    expect(gate.nextHop.commands.filter((c) => /^RCPT TO/i.test(c.line))).toHaveLength(5);
    expect(gate.nextHop.messages[0]!.envelope.rcptTo).toEqual(['r0@example.org', 'r1@example.org', 'r2@example.org', 'r3@example.org', 'r4@example.org']);
  });

  it('counts recipients per transaction: after RSET the next one may have max_recipients again', async () => {
    const gate = await startGate({ maxRecipients: 2 });
    const client = await RawClient.open(gate.port);
    try {
      await client.command('EHLO client.test');
      await client.command('MAIL FROM:<alice@example.com>');
      for (const r of ['a', 'b']) expect((await client.command(`RCPT TO:<${r}@example.org>`)).code).toBe(250);
      expect((await client.command('RCPT TO:<c@example.org>')).code).toBe(452);
      expect((await client.command('RSET')).code).toBe(250);
      await client.command('MAIL FROM:<alice@example.com>');
      for (const r of ['c', 'd']) expect((await client.command(`RCPT TO:<${r}@example.org>`)).code).toBe(250);
    } finally {
      client.close();
    }
  });

  it('answers a 20 KB command line 500 5.5.2 and closes that session only', async () => {
    const gate = await startGate();
    const client = await RawClient.open(gate.port);
    await client.command('EHLO client.test');
    const reply = await client.command(`MAIL FROM:<${'a'.repeat(20 * 1024)}@example.com>`);
    expect(reply.text).toMatch(/^500 5\.5\.2 /);
    await waitFor(() => client.isClosed);
    expect(gate.nextHop.commands.some((c) => /^MAIL/i.test(c.line))).toBe(false);
    await stillServes(gate);
  });

  it('answers a command line that never ends (1 MB without a newline) 500 5.5.2 without buffering it all', async () => {
    const gate = await startGate();
    const client = await RawClient.open(gate.port);
    await client.command('EHLO client.test');
    const chunk = 'x'.repeat(64 * 1024);
    for (let i = 0; i < 16 && !client.isClosed; i++) client.write(chunk);
    expect((await client.read(5000)).text).toMatch(/^500 5\.5\.2 /);
    await waitFor(() => client.isClosed);
    await stillServes(gate);
  });

  it('answers 5000 pipelined commands in one packet in order, and serves another client meanwhile', async () => {
    const gate = await startGate();
    const flood = await RawClient.open(gate.port);
    try {
      await flood.command('EHLO client.test');
      flood.write('NOOP\r\n'.repeat(5000));
      const started = Date.now();
      await stillServes(gate);
      const otherMs = Date.now() - started;
      let answered = 0;
      for (; answered < 5000; answered++) expect((await flood.read(20_000)).code).toBe(250);
      expect(answered).toBe(5000);
      console.log(`5000 pipelined NOOPs answered; another client's message took ${otherMs} ms meanwhile`);
    } finally {
      flood.close();
    }
  });
});

describe('slow clients', () => {
  // Floor: 200 bytes/s over 1 s windows. A byte a second is far below it.
  const SLOW = { minDataRate: 200, dataRateWindow: 1 };

  it('ends a client dripping its message a few bytes a second with 421 4.4.2 within a few windows, and relays nothing', async () => {
    const gate = await startGate(SLOW);
    const client = await RawClient.open(gate.port);
    await client.command('EHLO client.test');
    await client.command('MAIL FROM:<alice@example.com>');
    await client.command('RCPT TO:<bob@example.org>');
    expect((await client.command('DATA')).code).toBe(354);
    const started = Date.now();
    const data = dotStuff(BASIC_MESSAGE);
    let sent = 0;
    while (!client.isClosed && sent < 20) {
      client.write(data.subarray(sent, sent + 1));
      sent++;
      await sleep(1000 / 4); // 4 bytes a second
    }
    const shedMs = Date.now() - started;
    const reply = await client.read(1000);
    expect(reply.text).toMatch(/^421 4\.4\.2 /);
    expect(shedMs).toBeLessThan(4000);
    await waitFor(() => client.isClosed);
    expect(gate.nextHop.received).toHaveLength(0);
    const logged = await waitFor(() => gate.logs.find((l) => l.msg === 'client too slow: closing the session'));
    expect(logged).toMatchObject({ reason: 'too_slow', client: '127.0.0.1' });
    console.log(`drip in DATA shed after ${shedMs} ms (${sent} bytes sent)`);
    await stillServes(gate);
  });

  it('ends a client dripping a command line a byte at a time', async () => {
    const gate = await startGate(SLOW);
    const client = await RawClient.open(gate.port);
    await client.command('EHLO client.test');
    const line = 'MAIL FROM:<alice@example.com>\r\n';
    const started = Date.now();
    for (let i = 0; i < line.length && !client.isClosed; i++) {
      client.write(line[i]!);
      await sleep(250);
    }
    expect((await client.read(1000)).text).toMatch(/^421 4\.4\.2 /);
    expect(Date.now() - started).toBeLessThan(4000);
    expect(gate.nextHop.commands.some((c) => /^MAIL/i.test(c.line))).toBe(false);
  });

  it('leaves alone a client that sends above the floor in bursts, and one that idles between commands', async () => {
    const gate = await startGate(SLOW);
    const client = await RawClient.open(gate.port);
    try {
      await client.command('EHLO client.test');
      await sleep(2500); // idle between commands: only socket_timeout applies
      await client.command('MAIL FROM:<alice@example.com>');
      await client.command('RCPT TO:<bob@example.org>');
      expect((await client.command('DATA')).code).toBe(354);
      const body = Buffer.from(`${'x'.repeat(76)}\r\n`.repeat(24), 'latin1'); // 1872 bytes in 300-byte bursts twice a second
      client.write(dotStuff(BASIC_MESSAGE).subarray(0, 200));
      for (let at = 0; at < body.length; at += 300) {
        client.write(body.subarray(at, at + 300));
        await sleep(500);
      }
      client.write('.\r\n');
      expect((await client.read(5000)).code).toBe(250);
    } finally {
      client.close();
    }
    expect(gate.nextHop.messages).toHaveLength(1);
  });

  it('ends a session that outlives session_timeout even while it keeps talking, with 421 4.4.2', async () => {
    const gate = await startGate({ sessionTimeout: 2 });
    const client = await RawClient.open(gate.port);
    await client.command('EHLO client.test');
    const started = Date.now();
    let noops = 0;
    for (; noops < 40; noops++) {
      const r = await client.command('NOOP').catch(() => null);
      if (!r || r.code !== 250) {
        expect(r?.text).toMatch(/^421 4\.4\.2 /);
        break;
      }
      await sleep(200);
    }
    const endedMs = Date.now() - started;
    expect(endedMs).toBeGreaterThanOrEqual(1500);
    expect(endedMs).toBeLessThan(5000);
    await waitFor(() => client.isClosed);
    expect(gate.logs.some((l) => l.msg === 'session time limit reached: closing the session')).toBe(true);
    console.log(`chatty session ended after ${endedMs} ms (${noops} NOOPs)`);
  });
});

/** Connects and reads the greeting: a RawClient when it is 220, else the text and how the connection ended. */
async function greeting(port: number): Promise<{ code: number; text: string; client?: RawClient }> {
  const { connect } = await import('node:net');
  const socket = connect({ host: '127.0.0.1', port });
  return new Promise((resolve) => {
    let got = '';
    const done = (code: number, text: string, client?: RawClient) => resolve({ code, text, client });
    const timer = setTimeout(() => done(0, `no greeting in 20 s: ${JSON.stringify(got)}`), 20_000);
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (!got.includes('\r\n')) return;
      clearTimeout(timer);
      const code = Number(got.slice(0, 3));
      if (code !== 220) return done(code, got);
      // Hand the socket to a RawClient (its greeting already read).
      socket.removeAllListeners('data');
      done(220, got, new RawClient(socket));
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      done(0, `${err.message}; got ${JSON.stringify(got)}`);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      if (!got.includes('\r\n')) done(0, `closed; got ${JSON.stringify(got)}`);
    });
  });
}

describe('huge headers from many clients at once', () => {
  it('holds at most 64 MB of headers: past it 452 4.3.1 (try later), the others relayed, memory given back', { timeout: 60_000 }, async () => {
    const gate = await startGate();
    const CLIENTS = 72; // x ~1 MB of header each (under max_header_size): past the budget
    // one field folded over 1,000 lines (max_header_fields counts fields)
    const padding = Buffer.from(`X-Pad: p\r\n${` ${'p'.repeat(1021)}\r\n`.repeat(1000)}`, 'latin1');
    const before = headerMemoryInUse();
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => RawClient.open(gate.port)));
    try {
      // every client sends its ~1 MB of header fields and waits: all those headers are in the daemon at once
      for (const c of clients) {
        expect((await c.command('EHLO client.test')).code).toBe(250);
        expect((await c.command('MAIL FROM:<alice@example.com>')).code).toBe(250);
        expect((await c.command('RCPT TO:<bob@example.org>')).code).toBe(250);
        expect((await c.command('DATA')).code).toBe(354);
        c.socket.write(padding);
      }
      await waitFor(() => headerMemoryInUse() - before >= HEADER_MEMORY_BUDGET_BYTES - padding.length, 20_000);
      expect(headerMemoryInUse() - before).toBeLessThanOrEqual(HEADER_MEMORY_BUDGET_BYTES);
      for (const c of clients) {
        c.socket.write(dotStuff(BASIC_MESSAGE));
        c.socket.write('.\r\n');
      }
      const replies = await Promise.all(clients.map((c) => c.read(20_000)));
      const delivered = replies.filter((r) => r.code === 250).length;
      expect(replies.filter((r) => r.code !== 250).map((r) => r.text.split(':')[0])).toEqual(
        Array<string>(CLIENTS - delivered).fill('452 4.3.1 insufficient system resources'),
      );
      expect(delivered).toBeGreaterThanOrEqual(60);
      expect(delivered).toBeLessThan(CLIENTS);
      await waitFor(() => gate.nextHop.messages.length === delivered);
    } finally {
      for (const c of clients) c.close();
    }
    await waitFor(() => headerMemoryInUse() === before);
    await stillServes(gate);
  });
});

describe('connection floods', () => {
  it('answers the connections past max_clients 421 4.7.0 and keeps serving the others', { timeout: 60_000 }, async () => {
    const MAX = 200;
    const FLOOD = 2000;
    const gate = await startGate({ maxClients: MAX });
    const started = Date.now();
    // All at once: the listen backlog has room for the burst, so none waits for SYN retransmits.
    const outcomes = await Promise.all(Array.from({ length: FLOOD }, () => greeting(gate.port)));
    const held = outcomes.filter((o) => o.code === 220).map((o) => o.client!);
    const refused = outcomes.filter((o) => o.code !== 220);
    const floodMs = Date.now() - started;
    try {
      expect(held.length).toBeLessThanOrEqual(MAX);
      expect(held.length).toBeGreaterThan(MAX / 2);
      // Every other one was told why, with our code (none reset, none left hanging).
      expect(refused.filter((o) => !/^421 4\.7\.0 /.test(o.text))).toEqual([]);
      expect((await greeting(gate.port)).code).toBe(421);
      // Those it holds are served: one of them sends a message through.
      const r = await sendMailOn(held[0]!, { data: BASIC_MESSAGE });
      expect(r.final[0]?.code).toBe(250);
      expect(gate.nextHop.messages).toHaveLength(1);
      console.log(`${FLOOD} connections in ${floodMs} ms: ${held.length} served, ${refused.length} got 421`);
    } finally {
      for (const c of held) c.close();
    }
    // Once they go, new clients get in again.
    await sleep(300);
    await stillServes(gate);
  });

  it('counts the connections of all listeners together: max_clients 1 with an SMTP and an LMTP listener admits one', async () => {
    const gate = await startGate({ maxClients: 1 }, { listen: [listener(), listener({ protocol: 'lmtp' })] });
    const [smtpPort, lmtpPort] = gate.daemon.addresses.map((a) => a.port);
    const first = await RawClient.open(smtpPort!);
    try {
      expect((await greeting(lmtpPort!)).text).toMatch(/^421 4\.7\.0 too many connections/);
      expect((await greeting(smtpPort!)).code).toBe(421);
    } finally {
      first.close();
    }
    // the one that left makes room on either listener (once its close has reached the daemon)
    let after = await greeting(lmtpPort!);
    for (let i = 0; i < 50 && after.code !== 220; i++) {
      await sleep(100);
      after = await greeting(lmtpPort!);
    }
    after.client?.close();
    expect(after.text).toMatch(/^220 .*LMTP/);
  });

  it('tells the excess connection 421 4.7.0 in words', async () => {
    const gate = await startGate({ maxClients: 1 });
    const first = await RawClient.open(gate.port);
    try {
      expect((await greeting(gate.port)).text).toMatch(/^421 4\.7\.0 .*too many/i);
    } finally {
      first.close();
    }
  });
});

describe('AUTH brute force', () => {
  function plain(user: string, pass: string): string {
    return Buffer.from(`\0${user}\0${pass}`).toString('base64');
  }

  async function authGate(): Promise<Gate> {
    const { default: bcrypt } = await import('bcryptjs');
    const path = join(harness.keyDir(), 'users.htpasswd');
    await writeFile(path, `alice:${bcrypt.hashSync('right horse', 5)}\n`, { mode: 0o600 });
    return startGate(
      { maxAuthFailures: 3, authFailureWindow: 60 },
      { usersFile: path, relayHosts: [], listen: [listener({ allowInsecureAuth: true })] },
    );
  }

  it('after max_auth_failures from one address answers 421 4.7.0, even to the right password on a new connection; other addresses may still log in', async () => {
    const gate = await authGate();
    const replies: string[] = [];
    const started = Date.now();
    // A guesser reconnecting for every attempt, as brute forcers do.
    for (let i = 0; i < 5; i++) {
      const c = await RawClient.open(gate.port);
      await c.command('EHLO guesser.test');
      replies.push((await c.command(`AUTH PLAIN ${plain('alice', `guess ${i}`)}`)).text);
      c.close();
    }
    const guessMs = Date.now() - started;
    expect(replies.slice(0, 2).every((r) => /^535 5\.7\.8 /.test(r))).toBe(true);
    expect(replies.slice(2).every((r) => /^421 4\.7\.0 /.test(r))).toBe(true);
    // The blocked ones are answered at once: no bcrypt work, no delay.
    expect(guessMs).toBeLessThan(3 * 1000 + 2000);

    const blocked = await RawClient.open(gate.port);
    await blocked.command('EHLO guesser.test');
    expect((await blocked.command(`AUTH PLAIN ${plain('alice', 'right horse')}`)).text).toMatch(/^421 4\.7\.0 /);
    await waitFor(() => blocked.isClosed);

    const other = await RawClient.open(gate.port, '127.0.0.2');
    await other.command('EHLO friend.test');
    expect((await other.command(`AUTH PLAIN ${plain('alice', 'right horse')}`)).code).toBe(235);
    other.close();
    expect(gate.logs.filter((l) => l.msg === 'AUTH failure limit reached: refusing AUTH from this address')).toHaveLength(1);
    expect(JSON.stringify(gate.logs)).not.toContain('guess ');
    console.log(`AUTH brute force: 5 guesses in ${guessMs} ms, ${replies.filter((r) => r.startsWith('421')).length} refused 421`);
  });
});

describe('XCLIENT and XFORWARD from peers not allowed', () => {
  it('refuses both with 550 5.7.1, advertises neither, and a forged relay-host address grants no signature', async () => {
    // 192.0.2.7 may relay (and so get signatures); the connecting peer 127.0.0.1 may not, and is no trusted proxy.
    const gate = await startGate({}, { relayHosts: ['192.0.2.0/24'], xforwardHosts: [] });
    const client = await RawClient.open(gate.port);
    try {
      const ehlo = await client.command('EHLO proxy.test');
      expect(ehlo.text).not.toMatch(/XCLIENT|XFORWARD/);
      expect((await client.command('XCLIENT ADDR=192.0.2.7 NAME=relay.test')).text).toMatch(/^550 5\.7\.1 /);
      expect((await client.command('XFORWARD ADDR=192.0.2.7')).text).toMatch(/^550 5\.7\.1 /);
      await client.command('MAIL FROM:<alice@example.com>');
      await client.command('RCPT TO:<bob@example.org>');
      await client.command('DATA');
      client.write(dotStuff(BASIC_MESSAGE));
      expect((await client.command('.')).code).toBe(250);
    } finally {
      client.close();
    }
    expect(headerOf(gate.nextHop.messages[0]!.data)).not.toMatch(/^DKIM-Signature:/im);
    expect((await waitFor(() => gate.messageLines()[0])).decision).toBe('verify');
  });

  it('refuses XCLIENT even from a trusted XFORWARD peer (only XFORWARD is offered to proxies)', async () => {
    const gate = await startGate({}, { relayHosts: ['192.0.2.0/24'], xforwardHosts: ['127.0.0.1/32'] });
    const client = await RawClient.open(gate.port);
    try {
      const ehlo = await client.command('EHLO proxy.test');
      expect(ehlo.text).toMatch(/XFORWARD/);
      expect(ehlo.text).not.toMatch(/XCLIENT/);
      expect((await client.command('XCLIENT ADDR=192.0.2.7')).text).toMatch(/^550 5\.7\.1 /);
    } finally {
      client.close();
    }
  });
});
