// What the next hop receives of the client's envelope: MAIL FROM and RCPT TO parameters passed through
// (SIZE, BODY, SMTPUTF8, RET, ENVID, NOTIFY, ORCPT), SIZE grown by the fields dkimgate adds.
// Touches: loopback sockets (the daemon in-process, an smtp-server next hop), a temp dir of keys.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BASIC_MESSAGE, crlf } from '../../helpers/dkim-test-kit.js';
import { Harness, headerOf } from '../../helpers/daemon-harness.js';
import { dotStuff, sendMail } from '../../helpers/raw-smtp-client.js';

const harness = new Harness();
beforeAll(() => harness.setup());
afterEach(() => harness.cleanup());
afterAll(() => harness.dispose());

/** The bytes a next hop receives for BASIC_MESSAGE before our fields: what a client declares as SIZE. */
const CLIENT_SIZE = dotStuff(BASIC_MESSAGE).length;

describe('envelope passthrough', () => {
  it('relays SIZE, BODY, SMTPUTF8, RET and ENVID on MAIL FROM and NOTIFY and ORCPT on each RCPT TO', async () => {
    const gate = await harness.startGate(harness.config(), { size: 10_000_000 });
    const r = await sendMail(gate.port, {
      from: 'alice@example.com',
      to: ['bob@example.org', 'carol@example.org'],
      mailParams: `SIZE=${CLIENT_SIZE} BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ+2B314`,
      rcptParams: 'NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+2Bdsn@example.org',
      data: BASIC_MESSAGE,
    });
    expect(r.mail.code).toBe(250);
    expect(r.final[0]?.code).toBe(250);
    const [relayed] = gate.nextHop.messages;
    const env = relayed!.envelope;
    expect(env.mailFrom).toBe('alice@example.com');
    expect(env.rcptTo).toEqual(['bob@example.org', 'carol@example.org']);
    expect(Number(env.mailParams.SIZE)).toBeGreaterThan(CLIENT_SIZE);
    expect(env.mailParams).toMatchObject({ BODY: '8BITMIME', SMTPUTF8: true, RET: 'HDRS', ENVID: 'QQ+314' });
    for (const params of env.rcptParams) expect(params).toEqual({ NOTIFY: 'SUCCESS,FAILURE', ORCPT: 'rfc822;bob+dsn@example.org' });
    // The next hop's own log of the command line: xtext encoded again, never raw.
    expect(gate.nextHop.commands.some((c) => / ENVID=QQ\+2B314\b/.test(c.line))).toBe(true);
  });

  it('relays an internationalized sender and recipient with SMTPUTF8', async () => {
    const gate = await harness.startGate(harness.config({ relayHosts: [] }));
    const r = await sendMail(gate.port, {
      from: 'josé@exämple.test',
      to: ['zoë@exämple.test'],
      mailParams: 'SMTPUTF8',
      data: crlf('From: José <josé@exämple.test>\nSubject: utf8\n\nHola.\n'),
    });
    expect(r.final[0]?.code).toBe(250);
    const env = gate.nextHop.messages[0]!.envelope;
    expect(env.mailFrom).toBe('josé@exämple.test');
    expect(env.rcptTo).toEqual(['zoë@exämple.test']);
    expect(env.mailParams.SMTPUTF8).toBe(true);
  });
});

describe('addresses as the client wrote them', () => {
  it('passes on IDN A-labels, quoted local parts with spaces and dots Postfix accepts, never a UTF-8 rewrite or a 501', async () => {
    const gate = await harness.startGate(harness.config({ relayHosts: [] }));
    const from = 'user@xn--bcher-kva.example';
    const to = ['"john doe"@xn--mller-kva.example', 'user.@example.com', 'a..b@example.com', '"a@b"@example.org'];
    const r = await sendMail(gate.port, { from, to, mailParams: 'BODY=8BITMIME', data: BASIC_MESSAGE });
    // the dotted two are the next hop's to judge: this one (smtp-server, strict) refuses them, and its 501 is passed on
    expect([r.mail.code, ...r.rcpts.map((x) => x.code)]).toEqual([250, 250, 501, 501, 250]);
    expect(r.final[0]?.code).toBe(250);
    const lines = gate.nextHop.commands.map((c) => c.line).filter((l) => /^(MAIL|RCPT) /.test(l));
    expect(lines).toEqual([`MAIL FROM:<${from}> BODY=8BITMIME`, ...to.map((a) => `RCPT TO:<${a}>`)]);
    // (no SMTPUTF8 was declared, and nothing needed it)
    expect(gate.nextHop.messages[0]!.envelope.mailParams.SMTPUTF8).toBeUndefined();
  });

  it('still refuses a path that is not one (501), and relays nothing', async () => {
    const gate = await harness.startGate(harness.config({ relayHosts: [] }));
    // (an invisible character is refused inside quotes as smtp-server refuses it outside them)
    for (const bad of ['a b@example.com', 'no-at-sign', '@example.com', '"zero\u200bwidth"@example.com']) {
      const r = await sendMail(gate.port, { to: [bad], data: BASIC_MESSAGE });
      expect(r.rcpts[0]?.text).toMatch(/^501 5\.1\.3 /);
    }
    expect(gate.nextHop.received).toHaveLength(0);
  });
});

describe('SMTPUTF8 towards a next hop that does not offer it', () => {
  const utf8Message = crlf('From: José <jose@example.test>\nSubject: utf8\n\nHola.\n');

  it('answers 553 5.6.7 for a non-ASCII sender (first with a new connection, then with a pooled one), relays nothing', async () => {
    const gate = await harness.startGate(harness.config({ relayHosts: [] }), { hide: { smtpUtf8: true } });
    for (let i = 0; i < 2; i++) {
      const r = await sendMail(gate.port, { from: 'josé@exämple.test', mailParams: 'SMTPUTF8', data: utf8Message });
      // MAIL goes to the next hop at once, or with the first RCPT on a pooled connection: refused at one of the two
      const refusal = r.mail.code === 250 ? r.rcpts[0]! : r.mail;
      expect(refusal.text).toMatch(/^553 5\.6\.7 .*SMTPUTF8 is required/);
      expect(r.final).toEqual([]);
    }
    // an ASCII envelope still goes through the same next hop
    expect((await sendMail(gate.port, { from: 'jose@example.test', data: utf8Message })).final[0]?.code).toBe(250);
    expect(gate.nextHop.messages.map((m) => m.envelope.mailFrom)).toEqual(['jose@example.test']);
  });

  it('refuses only the non-ASCII recipient, and relays to the others', async () => {
    const gate = await harness.startGate(harness.config({ relayHosts: [] }), { hide: { smtpUtf8: true } });
    const r = await sendMail(gate.port, { from: 'jose@example.test', to: ['zoë@exämple.test', 'zoe@example.test'], data: utf8Message });
    expect(r.rcpts.map((x) => x.code)).toEqual([553, 250]);
    expect(r.final[0]?.code).toBe(250);
    expect(gate.nextHop.messages[0]!.envelope.rcptTo).toEqual(['zoe@example.test']);
  });
});

describe('SIZE towards the next hop', () => {
  it.each([
    ['signed (two signatures added)', {}],
    ['verified (our Authentication-Results added)', { relayHosts: [] }],
  ])('declares at least the size of the message the next hop receives when it is %s', async (_name, over) => {
    const gate = await harness.startGate(harness.config(over), { size: 10_000_000 });
    const r = await sendMail(gate.port, { mailParams: `SIZE=${CLIENT_SIZE}`, data: BASIC_MESSAGE });
    expect(r.final[0]?.code).toBe(250);
    const relayed = gate.nextHop.messages[0]!;
    // smtp-server's recorded data is unstuffed and without the final dot: add both back for the wire size.
    const wireBytes = dotStuff(relayed.data).length;
    expect(wireBytes).toBeGreaterThan(CLIENT_SIZE);
    expect(Number(relayed.envelope.mailParams.SIZE)).toBeGreaterThanOrEqual(wireBytes);
    // …and not absurdly more: a few kilobytes on top of what the client declared.
    expect(Number(relayed.envelope.mailParams.SIZE)).toBeLessThan(CLIENT_SIZE + 20_000);
    expect(headerOf(relayed.data).length).toBeGreaterThan(0);
  });

  it('lets a next hop with a tight SIZE limit refuse at MAIL FROM (552) instead of after the whole message', async () => {
    const gate = await harness.startGate(harness.config(), { size: CLIENT_SIZE + 100 });
    const r = await sendMail(gate.port, { mailParams: `SIZE=${CLIENT_SIZE}`, data: BASIC_MESSAGE });
    expect(r.mail.text).toMatch(/^552 5\.\d+\.\d+ /);
    expect(r.data).toBeNull();
    expect(gate.nextHop.received).toHaveLength(0);
  });

  it('sends no SIZE when the client declared none', async () => {
    const gate = await harness.startGate(harness.config(), { size: 10_000_000 });
    const r = await sendMail(gate.port, { data: BASIC_MESSAGE });
    expect(r.final[0]?.code).toBe(250);
    expect(gate.nextHop.messages[0]!.envelope.mailParams.SIZE).toBeUndefined();
  });
});
