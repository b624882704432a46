// MAIL and the first RCPT to the next hop in one round trip (RFC 2920) on a pooled connection: what the client hears
// when the next hop refuses MAIL, finds the pooled connection dead, or does not pipeline; nothing sent for a MAIL the
// client abandons. Touches: loopback sockets (the daemon in-process, an smtp-server next hop), a temp dir of keys.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freeClosedPort, Harness, waitFor, type Gate } from '../../helpers/daemon-harness.js';
import { RawClient } from '../../helpers/raw-smtp-client.js';

const harness = new Harness();
beforeAll(() => harness.setup());
afterEach(() => harness.cleanup());
afterAll(() => harness.dispose());

const MESSAGE = 'From: <a@example.com>\r\nSubject: pooled\r\n\r\nbody\r\n.\r\n';

async function session(gate: Gate): Promise<RawClient> {
  const client = await RawClient.open(gate.port);
  expect((await client.command('EHLO client.test')).code).toBe(250);
  return client;
}

/** One whole transaction that the next hop accepts: afterwards the daemon holds an idle pooled connection. */
async function deliver(client: RawClient, gate: Gate, count: number): Promise<void> {
  expect((await client.command('MAIL FROM:<a@example.com>')).code).toBe(250);
  expect((await client.command('RCPT TO:<b@example.org>')).code).toBe(250);
  expect((await client.command('DATA')).code).toBe(354);
  client.write(MESSAGE);
  expect((await client.read()).text).toMatch(/^250 2\.0\.0 Ok: queued as /);
  await waitFor(() => gate.nextHop.messages.length === count);
}

const mailLines = (gate: Gate) => gate.nextHop.commands.filter((c) => /^MAIL FROM:/i.test(c.line)).map((c) => c.line);

describe('MAIL with the first RCPT on a pooled connection', () => {
  it('a next hop refusing MAIL is heard at RCPT, with its code, for every recipient; nothing is relayed', async () => {
    const gate = await harness.startGate(harness.config(), {
      onMailFrom: (address) => (address === 'refused@example.com' ? { code: 553, message: 'sender refused here' } : null),
    });
    const client = await session(gate);
    await deliver(client, gate, 1);
    expect((await client.command('MAIL FROM:<refused@example.com>')).code).toBe(250);
    const first = await client.command('RCPT TO:<b@example.org>');
    expect(first.code).toBe(553);
    expect(first.text).toContain('sender refused here');
    expect((await client.command('RCPT TO:<c@example.org>')).code).toBe(553);
    expect((await client.command('DATA')).code).toBe(503);
    // the RCPT went out with MAIL, in one write: a next hop that saw them apart would never have got it
    expect(gate.nextHop.commands.some((c) => c.line === 'RCPT TO:<b@example.org>' && c.sessionId === gate.nextHop.messages[0]!.sessionId)).toBe(true);
    expect(gate.nextHop.connectionCount()).toBe(1);
    // the transaction is over for the next hop too: the next one on the same session is delivered
    expect((await client.command('RSET')).code).toBe(250);
    await deliver(client, gate, 2);
    expect(gate.nextHop.messages.map((m) => m.envelope.mailFrom)).toEqual(['a@example.com', 'a@example.com']);
    client.close();
  });

  it('a pooled connection the next hop ends at MAIL (421): MAIL and RCPT go on a new connection and the message is delivered', async () => {
    let mails = 0;
    const gate = await harness.startGate(harness.config(), {
      onMailFrom: () => (++mails === 2 ? { code: 421, message: 'closing idle channel' } : null),
    });
    const client = await session(gate);
    await deliver(client, gate, 1);
    await deliver(client, gate, 2);
    expect(mails).toBe(3);
    expect(gate.nextHop.connectionCount()).toBe(2);
    client.close();
  });

  it('a next hop without PIPELINING gets MAIL at once, and its refusal is heard at MAIL', async () => {
    const gate = await harness.startGate(harness.config(), {
      hide: { pipelining: true },
      onMailFrom: (address) => (address === 'refused@example.com' ? { code: 553, message: 'sender refused here' } : null),
    });
    const client = await session(gate);
    await deliver(client, gate, 1);
    const refused = await client.command('MAIL FROM:<refused@example.com>');
    expect(refused.code).toBe(553);
    expect(gate.nextHop.commands.some((c) => /^RCPT TO:/i.test(c.line) && c.line !== 'RCPT TO:<b@example.org>')).toBe(false);
    await deliver(client, gate, 2);
    client.close();
  });

  it('a MAIL the client abandons (RSET, QUIT) costs the next hop nothing: no MAIL, no RSET', async () => {
    const gate = await harness.startGate(harness.config());
    const client = await session(gate);
    await deliver(client, gate, 1);
    expect((await client.command('MAIL FROM:<abandoned@example.com>')).code).toBe(250);
    expect((await client.command('RSET')).code).toBe(250);
    await deliver(client, gate, 2);
    expect(mailLines(gate).some((l) => l.includes('abandoned@'))).toBe(false);
    expect(gate.nextHop.commands.some((c) => /^RSET/i.test(c.line))).toBe(false);
    expect(gate.nextHop.connectionCount()).toBe(1);
    client.close();
  });

  it('the first transaction, with no pooled connection, still proxies MAIL at once: an unreachable next hop is heard at MAIL', async () => {
    const gate = await harness.startGate(harness.config(), {}, { host: '127.0.0.1', port: await freeClosedPort() });
    const client = await session(gate);
    const reply = await client.command('MAIL FROM:<a@example.com>');
    expect(reply.code).toBe(451);
    expect(reply.text).toMatch(/^451 4\.4\.1 /);
    client.close();
  });
});

describe('addresses the relay client does not send', () => {
  // "x<y" is a valid quoted local part (RFC 5321 §4.1.2) that smtp-server accepts; our client never puts < or > inside
  // a path on a command line, so it is refused to the client at once, permanently, and nothing goes to the next hop.
  it.each([
    ['pooled, pipelined (MAIL deferred to the first RCPT)', {}],
    ['not pipelined (MAIL proxied at once)', { hide: { pipelining: true } }],
  ])('%s: a sender with < in its quoted local part gets 553 5.1.7 at MAIL; no RCPT or DATA goes out without MAIL', async (_name, hop) => {
    const gate = await harness.startGate(harness.config(), hop);
    const client = await session(gate);
    await deliver(client, gate, 1);
    const mail = await client.command('MAIL FROM:<"x<y"@example.org>');
    expect(mail.text).toMatch(/^553 5\.1\.7 sender address not relayed/);
    expect((await client.command('RCPT TO:<ok1@example.org>')).code).toBe(503);
    expect((await client.command('RCPT TO:<ok2@example.org>')).code).toBe(503);
    expect((await client.command('DATA')).code).toBe(503);
    // the session goes on: the next transaction is delivered with its own envelope
    await deliver(client, gate, 2);
    expect(gate.nextHop.messages.map((m) => m.envelope.rcptTo)).toEqual([['b@example.org'], ['b@example.org']]);
    expect(gate.nextHop.commands.some((c) => /ok[12]@/.test(c.line) || c.line.includes('x<y'))).toBe(false);
    client.close();
  });

  it('a recipient with > in its quoted local part gets 553 5.1.3; MAIL still goes with the next RCPT, which is delivered', async () => {
    const gate = await harness.startGate(harness.config());
    const client = await session(gate);
    await deliver(client, gate, 1);
    expect((await client.command('MAIL FROM:<a@example.com>')).code).toBe(250);
    expect((await client.command('RCPT TO:<"a>b"@example.org>')).text).toMatch(/^553 5\.1\.3 recipient address not relayed/);
    expect((await client.command('RCPT TO:<c@example.org>')).code).toBe(250);
    expect((await client.command('DATA')).code).toBe(354);
    client.write(MESSAGE);
    expect((await client.read()).text).toMatch(/^250 2\.0\.0 /);
    await waitFor(() => gate.nextHop.messages.length === 2);
    expect(gate.nextHop.messages[1]!.envelope).toMatchObject({ mailFrom: 'a@example.com', rcptTo: ['c@example.org'] });
    client.close();
  });

  it('a sender over 512 characters gets 553 5.1.7, not a temporary internal error', async () => {
    const gate = await harness.startGate(harness.config());
    const client = await session(gate);
    const long = `"${'x'.repeat(520)}"@example.org`;
    const mail = await client.command(`MAIL FROM:<${long}>`);
    expect(mail.text).toMatch(/^553 5\.1\.7 /);
    expect(gate.nextHop.commands.some((c) => /^MAIL/i.test(c.line))).toBe(false);
    client.close();
  });
});
