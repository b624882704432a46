// The LMTP listener against RFC 2033 and interface.md §4 ("LMTP listeners answer per recipient"): the running
// daemon on loopback, driven byte by byte, in front of a scriptable SMTP next hop. Every test counts the replies
// after the final dot: a client that gets one reply too few waits forever, one too many is out of step.
// Touches: loopback sockets, a temp dir of signing keys.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/config.js';
import { defaultConfig } from '../../../src/config/defaults.js';
import { BASIC_MESSAGE, fromDomain } from '../../helpers/dkim-test-kit.js';
import { Harness, listener, waitFor, type Gate } from '../../helpers/daemon-harness.js';
import type { NextHopServerOptions } from '../../helpers/next-hop-server.js';
import { dotStuff, RawClient, sendMail, transaction, type Reply } from '../../helpers/raw-smtp-client.js';

const harness = new Harness();
beforeAll(() => harness.setup());
afterEach(() => harness.cleanup());
afterAll(() => harness.dispose());

/** A daemon whose only listener speaks LMTP; 127.0.0.1 is a relay host, so mail from example.com is signed. */
function lmtpGate(over: Partial<Config> = {}, hop: NextHopServerOptions = {}): Promise<Gate> {
  return harness.startGate(harness.config({ listen: [listener({ protocol: 'lmtp' })], ...over }), hop);
}

async function lhlo(port: number): Promise<{ client: RawClient; lhlo: Reply }> {
  const client = await RawClient.open(port);
  harness.onCleanup(async () => client.close());
  const reply = await client.command('LHLO client.test');
  expect(reply.code).toBe(250);
  return { client, lhlo: reply };
}

const codes = (replies: Reply[]) => replies.map((r) => r.code);
const firstLines = (replies: Reply[]) => replies.map((r) => r.text.trimEnd());

describe('LMTP session (RFC 2033 §4.1)', () => {
  it('answers HELO and EHLO with 500, wants LHLO before MAIL, and offers no CHUNKING (BDAT is unknown)', async () => {
    const gate = await lmtpGate();
    const client = await RawClient.open(gate.port);
    harness.onCleanup(async () => client.close());
    expect((await client.command('HELO client.test')).code).toBe(500);
    expect((await client.command('EHLO client.test')).code).toBe(500);
    expect((await client.command('MAIL FROM:<alice@example.com>')).text).toMatch(/^503 5\.5\.1 .*LHLO/);
    const hello = await client.command('LHLO client.test');
    expect(hello.code).toBe(250);
    expect(hello.text).toMatch(/^250[- ]PIPELINING\r$/m);
    expect(hello.text).not.toMatch(/CHUNKING/);
    expect((await client.command('BDAT 10 LAST')).code).toBe(500);
    expect(gate.nextHop.messages).toHaveLength(0);
  });
});

describe('one reply per accepted RCPT after the final dot, in RCPT order', () => {
  it('answers a pipelined LHLO, MAIL, three RCPTs (one refused by the next hop) and DATA in order, then two 250s', async () => {
    const gate = await lmtpGate({}, { onRcptTo: (a) => (a.startsWith('nobody@') ? { code: 550, message: 'no such user' } : null) });
    const client = await RawClient.open(gate.port);
    harness.onCleanup(async () => client.close());
    client.write('LHLO client.test\r\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<a@example.org>\r\nRCPT TO:<nobody@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n');
    const before = [];
    for (let i = 0; i < 6; i++) before.push(await client.read());
    expect(codes(before)).toEqual([250, 250, 250, 550, 250, 354]);
    client.write(Buffer.concat([dotStuff(BASIC_MESSAGE), Buffer.from('.\r\nQUIT\r\n')]));
    const after = [await client.read(), await client.read(), await client.read()];
    expect(codes(after)).toEqual([250, 250, 221]);
    expect(gate.nextHop.messages.map((m) => m.envelope.rcptTo)).toEqual([['a@example.org', 'c@example.org']]);
  });

  it('owes a repeated recipient its own reply: three RCPTs acknowledged (one address twice), three 550 5.7.20 for a policy rejection', async () => {
    const base = defaultConfig();
    const gate = await lmtpGate({ relayHosts: [], policy: { ...base.policy, require: [{ domain: 'bank.test', aligned: true }], dryRun: false } });
    const { client, lhlo: hello } = await lhlo(gate.port);
    // smtp-server keeps one envelope entry for the address (compared case-insensitively); the client counts RCPTs
    const r = await transaction(client, hello, {
      lmtp: true,
      from: 'ceo@bank.test',
      to: ['a@example.org', 'b@example.org', 'A@example.org'],
      data: fromDomain(BASIC_MESSAGE, 'bank.test'),
      timeoutMs: 5000,
    });
    expect(codes(r.rcpts)).toEqual([250, 250, 250]);
    expect(firstLines(r.final)).toEqual(Array(3).fill('550 5.7.20 no passing DKIM signature found'));
    // still in step: the next command's reply is its own
    expect((await client.command('NOOP')).code).toBe(250);
    expect(gate.nextHop.messages).toHaveLength(0);
    const line = await waitFor(() => gate.messageLines()[0]);
    expect([line.outcome, line.rcptCount]).toEqual(['rejected: no_passing', 3]);
  });

  it.each([
    ['refuses the message at the end of data', { kind: 'refuse', code: 554, message: 'content rejected' }, 554],
    ['drops the connection after our final dot', { kind: 'drop', when: 'after-dot' }, 451],
  ] as const)('owes a repeated recipient its own reply when the next hop %s', async (_name, onData, code) => {
    const gate = await lmtpGate({}, { onData });
    const { client, lhlo: hello } = await lhlo(gate.port);
    const r = await transaction(client, hello, { lmtp: true, to: ['a@example.org', 'a@example.org'], data: BASIC_MESSAGE, timeoutMs: 5000 });
    expect(codes(r.final)).toEqual([code, code]);
    expect((await client.command('NOOP')).code).toBe(250);
  });

  it('answers each recipient of a refused or deferred message, and logs it as refused or deferred by the next hop, not "partly delivered"', async () => {
    for (const [mode, code, outcome, relay] of [
      [{ kind: 'refuse', code: 554, message: 'content rejected' }, 554, 'refused by next hop', 'refused'],
      [{ kind: 'defer', message: 'mailbox busy' }, 451, 'deferred by next hop', 'deferred'],
    ] as const) {
      const gate = await lmtpGate({}, { onData: mode });
      const r = await sendMail(gate.port, { lmtp: true, to: ['a@example.org', 'b@example.org', 'c@example.org'], data: BASIC_MESSAGE });
      expect(codes(r.final)).toEqual([code, code, code]);
      const line = await waitFor(() => gate.messageLines()[0]);
      expect([line.outcome, line.relay, line.relayCode]).toEqual([outcome, relay, code]);
      await harness.cleanup();
    }
  });

  it('logs a message the next hop took for every recipient as delivered, with every recipient', async () => {
    const gate = await lmtpGate();
    const r = await sendMail(gate.port, { lmtp: true, to: ['a@example.org', 'b@example.org'], data: BASIC_MESSAGE });
    expect(codes(r.final)).toEqual([250, 250]);
    const line = await waitFor(() => gate.messageLines()[0]);
    expect([line.outcome, line.relay, line.rcptTo]).toEqual(['delivered', 'delivered', ['a@example.org', 'b@example.org']]);
  });
});

describe('next-hop failures while per-recipient replies are owed', () => {
  it('answers every recipient 451 4.4.2, never 250, when the next hop drops the connection after our final dot, and logs ambiguous', async () => {
    const gate = await lmtpGate({}, { onData: { kind: 'drop', when: 'after-dot' } });
    const r = await sendMail(gate.port, { lmtp: true, to: ['a@example.org', 'b@example.org', 'c@example.org'], data: BASIC_MESSAGE });
    expect(firstLines(r.final).map((l) => l.slice(0, 9))).toEqual(Array(3).fill('451 4.4.2'));
    const line = await waitFor(() => gate.messageLines()[0]);
    expect([line.relay, line.outcome]).toEqual(['ambiguous', 'ambiguous']);
  });

  it('after losing the next hop at a RCPT, answers that RCPT 451 and each recipient acknowledged before it 451 after the dot', async () => {
    const gate = await lmtpGate();
    const { client } = await lhlo(gate.port);
    expect((await client.command('MAIL FROM:<alice@example.com>')).code).toBe(250);
    expect((await client.command('RCPT TO:<a@example.org>')).code).toBe(250);
    expect((await client.command('RCPT TO:<b@example.org>')).code).toBe(250);
    gate.nextHop.dropConnections();
    await waitFor(() => gate.nextHop.openConnections() === 0);
    expect((await client.command('RCPT TO:<c@example.org>')).text).toMatch(/^451 4\.4\.2 /);
    expect((await client.command('DATA')).code).toBe(354);
    client.write(Buffer.concat([dotStuff(BASIC_MESSAGE), Buffer.from('.\r\n')]));
    expect(firstLines([await client.read(), await client.read()]).map((l) => l.slice(0, 9))).toEqual(['451 4.4.2', '451 4.4.2']);
    expect((await client.command('NOOP')).code).toBe(250);
    expect(gate.nextHop.received).toHaveLength(0);
  });
});

describe('limits over LMTP', () => {
  it.each([
    ['a message over max_message_size', { maxMessageSize: 2000 }, Buffer.concat([BASIC_MESSAGE, Buffer.from(`${'x'.repeat(70)}\r\n`.repeat(40))]), '552 5.3.4 message too big'],
    ['more header fields than max_header_fields', { maxHeaderFields: 3 }, BASIC_MESSAGE, '552 5.3.4 too many header fields'],
  ])('refuses %s once per recipient, then takes the next message on the same session', async (_name, limits, data, reply) => {
    const base = defaultConfig();
    const gate = await lmtpGate({ limits: { ...base.limits, ...limits } });
    const { client, lhlo: hello } = await lhlo(gate.port);
    const refused = await transaction(client, hello, { lmtp: true, to: ['a@example.org', 'b@example.org'], data });
    expect(firstLines(refused.final)).toEqual([reply, reply]);
    const small = await transaction(client, hello, { lmtp: true, to: ['a@example.org', 'b@example.org'], data: Buffer.from('From: a@example.com\r\n\r\nhi\r\n') });
    expect(codes(small.final)).toEqual([250, 250]);
    expect(gate.nextHop.messages).toHaveLength(1);
  });
});

describe('transactions ended by the client, and the drain', () => {
  it.each([
    ['lmtp', 'RSET'],
    ['lmtp', 'LHLO client.test'],
    // the same code serves SMTP listeners
    ['smtp', 'RSET'],
  ] as const)(
    'on an %s listener, ends the transaction at %s: the next-hop connection is reset at once, and a SIGTERM drain does not wait for it',
    async (protocol, command) => {
      const base = defaultConfig();
      const gate = await lmtpGate({ listen: [listener({ protocol })], limits: { ...base.limits, drainTimeout: 20 } });
      const client = await RawClient.open(gate.port);
      harness.onCleanup(async () => client.close());
      expect((await client.command(`${protocol === 'lmtp' ? 'LHLO' : 'EHLO'} client.test`)).code).toBe(250);
      expect((await client.command('MAIL FROM:<alice@example.com>')).code).toBe(250);
      expect((await client.command('RCPT TO:<a@example.org>')).code).toBe(250);
      expect((await client.command(command)).code).toBe(250);
      // the transaction the next hop holds open for it is ended (RSET) while the client stays connected
      await waitFor(() => gate.nextHop.commands.some((c) => c.line.toUpperCase() === 'RSET'), 5000);
      const started = Date.now();
      await gate.daemon.stop();
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(gate.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('drain_timeout passed'))).toBe(false);
      expect((await client.read()).text).toMatch(/^421 4\.3\.2 /);
    },
  );

  it('answers every recipient of a transaction in flight at SIGTERM with the next hop 250, then 421 4.3.2', async () => {
    const gate = await lmtpGate({}, { onData: { kind: 'delay', ms: 500 } });
    const { client } = await lhlo(gate.port);
    expect((await client.command('MAIL FROM:<alice@example.com>')).code).toBe(250);
    expect((await client.command('RCPT TO:<a@example.org>')).code).toBe(250);
    expect((await client.command('RCPT TO:<b@example.org>')).code).toBe(250);
    expect((await client.command('DATA')).code).toBe(354);
    client.write(Buffer.concat([dotStuff(BASIC_MESSAGE), Buffer.from('.\r\n')]));
    await waitFor(() => gate.nextHop.received.length > 0);
    const stopped = gate.daemon.stop();
    const replies = [await client.read(), await client.read(), await client.read()];
    await stopped;
    expect(firstLines(replies).map((l) => l.slice(0, 9))).toEqual(['250 2.0.0', '250 2.0.0', '421 4.3.2']);
    expect(gate.nextHop.messages[0]!.envelope.rcptTo).toEqual(['a@example.org', 'b@example.org']);
  });
});
