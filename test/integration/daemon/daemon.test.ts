// Integration tests of the daemon in-process: startDaemon on port 0, a real next hop (smtp-server), real DNS (dnsmasq),
// a raw-socket SMTP client, and dkimpy as an independent verifier. Touches: loopback sockets, temp dirs, /usr/bin/python3.

import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/config.js';
import { DEFAULTS, defaultConfig } from '../../../src/config/defaults.js';
import { verifyMessage } from '../../../src/dkim/verify.js';
import { BASIC_MESSAGE, crlf, fromDomain, rsaKey, sign, tableLookup, type TestKey } from '../../helpers/dkim-test-kit.js';
import { AUTHSERV, freeClosedPort, Harness, headerOf, messageLine, SIGN_DOMAIN, signDomain, waitFor, type Gate } from '../../helpers/daemon-harness.js';
import { dkimpyVerify } from '../../helpers/dkimpy.js';
import { startDnsServer, type RunningDnsServer } from '../../helpers/dns-server.js';
import type { NextHopServerOptions } from '../../helpers/next-hop-server.js';
import { dotStuff, RawClient, sendMail, type Reply } from '../../helpers/raw-smtp-client.js';

const harness = new Harness();
let dns: RunningDnsServer;
const outsideKey = rsaKey(2048);
let rsa: TestKey;
let ed: TestKey;
let keyDir = '';

function startGate(over: Partial<Config> = {}, hop: NextHopServerOptions = {}, hopPort?: number): Promise<Gate> {
  return harness.startGate(harness.config(over, dns.server), hop, hopPort === undefined ? undefined : { host: '127.0.0.1', port: hopPort });
}

beforeAll(async () => {
  const keys = await harness.setup();
  rsa = keys.rsa;
  ed = keys.ed;
  keyDir = keys.dir;
  dns = await startDnsServer({
    txt: { 'sel._domainkey.signed.test': outsideKey.record },
    servfail: ['broken.test'],
  });
});

afterEach(() => harness.cleanup());

afterAll(async () => {
  await dns?.stop();
  await harness.dispose();
});

const UNSIGNED_OUTSIDE = crlf(
  ['From: Carol <carol@outside.test>', 'To: Bob <bob@example.org>', 'Subject: hello', 'Date: Tue, 14 Nov 2023 22:13:20 +0000', '', 'Hi.', ''].join('\n'),
);

// ---- 1. verify path ----------------------------------------------------------------------------------------

describe('verify path', () => {
  it('adds our Authentication-Results with dkim=none at the top, drops forged ones carrying our authserv-id, keeps others, and logs verify/delivered', async () => {
    const gate = await startGate({ relayHosts: ['192.0.2.0/24'] });
    const message = Buffer.concat([
      Buffer.from(`Authentication-Results: ${AUTHSERV}; dkim=pass header.d=bank.test\r\n`, 'latin1'),
      Buffer.from('Authentication-Results: other.example.net; dkim=fail\r\n', 'latin1'),
      UNSIGNED_OUTSIDE,
    ]);
    const r = await sendMail(gate.port, { from: 'carol@outside.test', data: message });
    expect(r.final[0]?.code).toBe(250);
    expect(gate.nextHop.messages).toHaveLength(1);
    const header = headerOf(gate.nextHop.messages[0]!.data);
    expect(header.startsWith(`Authentication-Results: ${AUTHSERV};`)).toBe(true);
    const firstField = header.split(/\r\n(?![ \t])/)[0]!;
    expect(firstField).toMatch(/dkim=none/);
    expect(header.match(new RegExp(`Authentication-Results: ${AUTHSERV.replace(/\./g, '\\.')}`, 'g'))).toHaveLength(1);
    expect(header).not.toContain('header.d=bank.test');
    expect(header).toContain('Authentication-Results: other.example.net; dkim=fail');
    const line = await messageLine(gate);
    expect(line.decision).toBe('verify');
    expect(line.outcome).toBe('delivered');
    // the name the client gave in EHLO, not its address again
    expect(line.helo).toBe('client.outside.test');
  });
});

// ---- 2. sign path ------------------------------------------------------------------------------------------

describe('sign path', () => {
  it('signs mail from a relay host with RSA and Ed25519 selectors side by side, and dkimpy and verifyMessage both say pass', async () => {
    const gate = await startGate();
    const r = await sendMail(gate.port, { data: BASIC_MESSAGE });
    expect(r.final[0]?.code).toBe(250);
    expect(gate.nextHop.messages).toHaveLength(1);
    const relayed = gate.nextHop.messages[0]!.data;
    const header = headerOf(relayed);
    expect(header.match(/^DKIM-Signature:/gim)).toHaveLength(2);
    expect(header).toMatch(/a=rsa-sha256/);
    expect(header).toMatch(/a=ed25519-sha256/);

    const lookup = tableLookup({ [`rsa1._domainkey.${SIGN_DOMAIN}`]: rsa.record, [`ed1._domainkey.${SIGN_DOMAIN}`]: ed.record });
    const report = await verifyMessage(relayed, { lookupTxt: lookup, nowSec: Math.floor(Date.now() / 1000) });
    expect(report.signatures.map((s) => [s.result, s.selector]).sort()).toEqual([
      ['pass', 'ed1'],
      ['pass', 'rsa1'],
    ]);

    const dkimpy = await dkimpyVerify(relayed, { [`rsa1._domainkey.${SIGN_DOMAIN}`]: rsa.record, [`ed1._domainkey.${SIGN_DOMAIN}`]: ed.record });
    expect(dkimpy).toEqual(['pass', 'pass']);
    const line = await messageLine(gate);
    expect(line.decision).toBe('sign');
  });

  it('counts a base_domain signature in /metrics under the d= it signs as, not as "other"', async () => {
    await harness.writeKey('base.test', 'rsa1', rsa);
    const config = harness.config({}, dns.server);
    const gate = await startGate({
      metrics: { host: '127.0.0.1', port: 0 },
      sign: { ...config.sign, domains: { ...config.sign.domains, 'mail.base.test': { ...signDomain([{ selector: 'rsa1' }]), baseDomain: 'base.test' } } },
    });
    expect((await sendMail(gate.port, { data: fromDomain(BASIC_MESSAGE, 'mail.base.test') })).final[0]?.code).toBe(250);
    expect(headerOf(gate.nextHop.messages[0]!.data)).toMatch(/\bd=base\.test;/);
    const { host, port } = gate.daemon.metricsAddress!;
    const body = await (await fetch(`http://${host}:${port}/metrics`)).text();
    expect(body).toContain('dkimgate_sign_total{domain="base.test",selector="rsa1"} 1');
    expect(body).toContain('dkimgate_messages_total{outcome="delivered",domain="mail.base.test"} 1');
  });
});

// ---- 3. verifying real signatures through DNS ------------------------------------------------------------

describe('verifying signatures with keys in DNS', () => {
  it('says dkim=pass with header.d and header.s for a message signed with a key published in DNS', async () => {
    const gate = await startGate({ relayHosts: [] });
    const signed = await sign(fromDomain(BASIC_MESSAGE, 'signed.test'), outsideKey, { signingDomain: 'signed.test', selector: 'sel' });
    const r = await sendMail(gate.port, { from: 'someone@signed.test', data: signed });
    expect(r.final[0]?.code).toBe(250);
    const first = headerOf(gate.nextHop.messages[0]!.data).split(/\r\n(?![ \t])/)[0]!;
    expect(first).toMatch(new RegExp(`^Authentication-Results: ${AUTHSERV.replace(/\./g, '\\.')};`));
    expect(first).toMatch(/dkim=pass/);
    expect(first).toMatch(/header\.d=signed\.test/);
    expect(first).toMatch(/header\.s=sel/);
  });

  it('says dkim=temperror when the key lookup gets SERVFAIL', async () => {
    const gate = await startGate({ relayHosts: [] });
    const signed = await sign(fromDomain(BASIC_MESSAGE, 'broken.test'), outsideKey, { signingDomain: 'broken.test', selector: 'sel' });
    const r = await sendMail(gate.port, { from: 'someone@broken.test', data: signed });
    expect(r.final[0]?.code).toBe(250);
    const first = headerOf(gate.nextHop.messages[0]!.data).split(/\r\n(?![ \t])/)[0]!;
    expect(first).toMatch(/dkim=temperror/);
  });

  it('answers 451 4.7.5 and relays nothing on a SERVFAIL when on_temperror is tempfail', async () => {
    const base = defaultConfig();
    const gate = await startGate({ relayHosts: [], policy: { ...base.policy, onTemperror: 'tempfail' } });
    const signed = await sign(fromDomain(BASIC_MESSAGE, 'broken.test'), outsideKey, { signingDomain: 'broken.test', selector: 'sel' });
    const r = await sendMail(gate.port, { from: 'someone@broken.test', data: signed });
    expect(r.final[0]?.code).toBe(451);
    expect(r.final[0]?.text).toMatch(/^451 4\.7\.5 /);
    expect(gate.nextHop.messages).toHaveLength(0);
  });
});

// ---- 4. next-hop failures ----------------------------------------------------------------------------------

describe('next hop failures', () => {
  it('answers 451 4.4.1 at MAIL FROM when the next hop is unreachable', async () => {
    const closed = await freeClosedPort();
    const gate = await startGate({}, {}, closed);
    const r = await sendMail(gate.port, { data: BASIC_MESSAGE });
    expect(r.mail.text).toMatch(/^451 4\.4\.1 /);
  });

  it('passes a refused recipient its 5xx and delivers the message to the other recipient only', async () => {
    const gate = await startGate({}, { onRcptTo: (address) => (address.startsWith('nobody@') ? { code: 550, message: 'no such user' } : null) });
    const r = await sendMail(gate.port, { to: ['nobody@example.org', 'bob@example.org'], data: BASIC_MESSAGE });
    expect(r.rcpts[0]?.code).toBe(550);
    expect(r.rcpts[0]?.text).toMatch(/^550 5\./);
    expect(r.rcpts[1]?.code).toBe(250);
    expect(r.final[0]?.code).toBe(250);
    expect(gate.nextHop.messages).toHaveLength(1);
    expect(gate.nextHop.messages[0]!.envelope.rcptTo).toEqual(['bob@example.org']);
  });

  it('passes the next hop refusal of MAIL FROM back to the client and relays nothing', async () => {
    const gate = await startGate({}, { onMailFrom: () => ({ code: 553, message: 'sender rejected' }) });
    const r = await sendMail(gate.port, { data: BASIC_MESSAGE });
    expect(r.mail.text).toMatch(/^553 5\./);
    expect(gate.nextHop.received).toHaveLength(0);
  });

  it('passes a 451 the next hop gives at end of data back to the client', async () => {
    const gate = await startGate({}, { onData: { kind: 'defer' } });
    const r = await sendMail(gate.port, { data: BASIC_MESSAGE });
    expect(r.final[0]?.code).toBe(451);
    expect(gate.nextHop.messages).toHaveLength(0);
  });

  it('answers 451 4.4.2 within about two seconds when the next hop stalls after DATA and next_hop_timeout is 1 s', async () => {
    const base = defaultConfig();
    const gate = await startGate({ limits: { ...base.limits, nextHopTimeout: 1 } }, { onData: { kind: 'stall' } });
    const started = Date.now();
    const r = await sendMail(gate.port, { data: BASIC_MESSAGE, timeoutMs: 5000 });
    const elapsed = Date.now() - started;
    expect(r.final[0]?.text).toMatch(/^451 4\.4\.2 /);
    expect(elapsed).toBeLessThan(2500);
  });

  it('answers 451 4.4.2 when the next hop drops the connection mid-DATA', async () => {
    const gate = await startGate({}, { onData: { kind: 'drop', when: 'mid-data' } });
    const r = await sendMail(gate.port, { data: BASIC_MESSAGE });
    expect(r.final[0]?.text).toMatch(/^451 4\.4\.2 /);
    expect(gate.nextHop.messages).toHaveLength(0);
  });
});

// ---- 5. bytes ------------------------------------------------------------------------------------------------

async function rawTransaction(port: number, body: Buffer, from = 'carol@outside.test'): Promise<{ reply: Reply; client: RawClient }> {
  const client = await RawClient.open(port);
  expect((await client.command('EHLO client.outside.test')).code).toBe(250);
  expect((await client.command(`MAIL FROM:<${from}>`)).code).toBe(250);
  expect((await client.command('RCPT TO:<bob@example.org>')).code).toBe(250);
  expect((await client.command('DATA')).code).toBe(354);
  client.write(body);
  return { reply: await client.read(10_000), client };
}

describe('line endings and bytes', () => {
  it('turns bare LF into CRLF before relaying', async () => {
    const gate = await startGate({ relayHosts: [] });
    const { reply, client } = await rawTransaction(gate.port, Buffer.from('From: c@outside.test\nSubject: lf\n\nline one\nline two\r\n.\r\n', 'latin1'));
    client.close();
    expect(reply.code).toBe(250);
    const data = gate.nextHop.messages[0]!.data.toString('latin1');
    expect(data).toContain('Subject: lf\r\n\r\nline one\r\nline two\r\n');
    expect(/[^\r]\n/.test(data)).toBe(false);
  });

  it.each([
    ['a bare CR', 'From: c@outside.test\r\nSubject: cr\r\n\r\nline\rone\r\n.\r\n', /^550 5\.5\.2 /],
    ['a NUL byte', 'From: c@outside.test\r\nSubject: nul\r\n\r\nline\u0000one\r\n.\r\n', /^550 5\.6\.0 /],
  ])('refuses a message with %s', async (_name, body, expected) => {
    const gate = await startGate({ relayHosts: [] });
    const { reply, client } = await rawTransaction(gate.port, Buffer.from(body, 'latin1'));
    client.close();
    expect(reply.text).toMatch(expected);
    expect(gate.nextHop.messages).toHaveLength(0);
  });

  it('refuses bare LF with 550 5.5.2 on a listener with line_endings: reject', async () => {
    const gate = await startGate({ relayHosts: [], listen: [{ ...DEFAULTS.items.listener, port: 0, lineEndings: 'reject' }] });
    const { reply, client } = await rawTransaction(gate.port, Buffer.from('From: c@outside.test\nSubject: lf\n\nbody\r\n.\r\n', 'latin1'));
    client.close();
    expect(reply.text).toMatch(/^550 5\.5\.2 /);
    expect(gate.nextHop.messages).toHaveLength(0);
  });

  it.each([['\r\n.\n'], ['\n.\r\n'], ['\n.\n'], ['\r.\r\n']])(
    'never lets a client smuggle a second message with the pseudo-terminator %j',
    async (terminator) => {
      const gate = await startGate({ relayHosts: [] });
      const client = await RawClient.open(gate.port);
      try {
        expect((await client.command('EHLO client.outside.test')).code).toBe(250);
        expect((await client.command('MAIL FROM:<carol@outside.test>')).code).toBe(250);
        expect((await client.command('RCPT TO:<bob@example.org>')).code).toBe(250);
        expect((await client.command('DATA')).code).toBe(354);
        client.write(
          Buffer.from(
            `From: c@outside.test\r\nSubject: smuggle\r\n\r\nbody${terminator}MAIL FROM:<attacker@evil.test>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nFrom: ceo@example.com\r\n\r\nsmuggled\r\n.\r\n`,
            'latin1',
          ),
        );
        await client.read(10_000);
        await client.drain(300);
      } finally {
        client.close();
      }
      expect(gate.nextHop.received.length).toBeLessThanOrEqual(1);
      expect(gate.nextHop.received.every((m) => m.envelope.mailFrom === 'carol@outside.test')).toBe(true);
      expect(gate.nextHop.received.every((m) => m.envelope.rcptTo.join() === 'bob@example.org')).toBe(true);
      expect(gate.nextHop.commands.some((c) => /attacker@evil\.test/i.test(c.line))).toBe(false);
      // When it was accepted, the would-be commands arrived as body text after a dot-stuffed "." line.
      for (const m of gate.nextHop.received) expect(m.data.toString('latin1')).toContain('body\r\n.\r\nMAIL FROM:<attacker@evil.test>\r\n');
    },
  );
});

// ---- 6. limits and XFORWARD ------------------------------------------------------------------------------

describe('limits and XFORWARD', () => {
  it('answers 552 5.3.4 to a message over max_message_size', async () => {
    const base = defaultConfig();
    const gate = await startGate({ limits: { ...base.limits, maxMessageSize: 2000 } });
    const big = Buffer.concat([BASIC_MESSAGE, Buffer.from(`${'x'.repeat(70)}\r\n`.repeat(100), 'latin1')]);
    const r = await sendMail(gate.port, { data: big });
    expect(r.final[0]?.text).toMatch(/^552 5\.3\.4 /);
    expect(gate.nextHop.messages).toHaveLength(0);
  });

  it('refuses XFORWARD with 550 5.7.1 from a peer not in xforward_hosts and does not advertise it', async () => {
    const gate = await startGate();
    const client = await RawClient.open(gate.port);
    try {
      const ehlo = await client.command('EHLO proxy.test');
      expect(ehlo.code).toBe(250);
      expect(ehlo.text).not.toMatch(/XFORWARD/);
      const xf = await client.command('XFORWARD ADDR=192.0.2.7');
      expect(xf.text).toMatch(/^550 5\.7\.1 /);
    } finally {
      client.close();
    }
  });

  it.each([
    ['signs', '192.0.2.7', 1],
    ['does not sign', '198.51.100.9', 0],
  ])('%s when a trusted proxy forwards ADDR=%s', async (_verb, addr, signatures) => {
    const gate = await startGate({ xforwardHosts: ['127.0.0.1/32'], relayHosts: ['192.0.2.0/24'] });
    const r = await sendMail(gate.port, { data: BASIC_MESSAGE, xforward: `ADDR=${addr}` });
    expect(r.ehlo.text).toMatch(/XFORWARD/);
    expect(r.final[0]?.code).toBe(250);
    const header = headerOf(gate.nextHop.messages[0]!.data);
    expect((header.match(/^DKIM-Signature:/gim) ?? []).length).toBe(signatures * 2);
    expect((await messageLine(gate)).decision).toBe(signatures ? 'sign' : 'verify');
  });

  it("logs the original client's HELO name that a trusted proxy forwards, and its address", async () => {
    const gate = await startGate({ xforwardHosts: ['127.0.0.1/32'] });
    const r = await sendMail(gate.port, { data: BASIC_MESSAGE, xforward: 'NAME=mail.sender.test ADDR=192.0.2.7 HELO=mx.sender.test' });
    expect(r.final[0]?.code).toBe(250);
    expect(await messageLine(gate)).toMatchObject({ client: '192.0.2.7', clientVia: 'xforward', helo: 'mx.sender.test' });
  });
});

// ---- 7. policy.require -----------------------------------------------------------------------------------

describe('policy.require', () => {
  it.each([
    [false, 550],
    [true, 250],
  ])('with dry_run %s, unsigned mail from a required domain gets %i', async (dryRun, code) => {
    const base = defaultConfig();
    const gate = await startGate({ relayHosts: [], policy: { ...base.policy, require: [{ domain: 'bank.test', aligned: true }], dryRun } });
    const r = await sendMail(gate.port, { from: 'ceo@bank.test', data: fromDomain(UNSIGNED_OUTSIDE, 'bank.test') });
    expect(r.final[0]?.code).toBe(code);
    if (code === 550) {
      expect(r.final[0]?.text).toMatch(/^550 5\.7\.20 /);
      expect(gate.nextHop.messages).toHaveLength(0);
    } else {
      expect(gate.nextHop.messages).toHaveLength(1);
    }
  });
});

// ---- 8. LMTP listener ------------------------------------------------------------------------------------

describe('LMTP listener', () => {
  it('answers one 250 per recipient after DATA when relaying to an SMTP next hop', async () => {
    const gate = await startGate({ listen: [{ ...DEFAULTS.items.listener, port: 0, protocol: 'lmtp' }] });
    const r = await sendMail(gate.port, { lmtp: true, to: ['a@example.org', 'b@example.org', 'c@example.org'], data: BASIC_MESSAGE });
    expect(r.final.map((f) => f.code)).toEqual([250, 250, 250]);
    expect(gate.nextHop.messages).toHaveLength(1);
    expect(gate.nextHop.messages[0]!.envelope.rcptTo).toEqual(['a@example.org', 'b@example.org', 'c@example.org']);
  });
});

// ---- reliability extras ------------------------------------------------------------------------------------

describe('recipients and vanished clients', () => {
  it('on an LMTP listener, a recipient the next hop refuses at RCPT gets the 5xx and the others one 250 each after DATA', async () => {
    const gate = await startGate(
      { listen: [{ ...DEFAULTS.items.listener, port: 0, protocol: 'lmtp' }] },
      { onRcptTo: (address) => (address.startsWith('nobody@') ? { code: 550, message: 'no such user' } : null) },
    );
    const r = await sendMail(gate.port, { lmtp: true, to: ['a@example.org', 'nobody@example.org', 'c@example.org'], data: BASIC_MESSAGE });
    expect(r.rcpts.map((x) => x.code)).toEqual([250, 550, 250]);
    expect(r.final.map((f) => f.code)).toEqual([250, 250]);
    expect(gate.nextHop.messages[0]!.envelope.rcptTo).toEqual(['a@example.org', 'c@example.org']);
  });

  it('logs the message as ambiguous when the next hop accepted but the client vanished before our 250', async () => {
    const gate = await startGate({}, { onData: { kind: 'delay', ms: 500 } });
    const client = await RawClient.open(gate.port);
    expect((await client.command('EHLO client.test')).code).toBe(250);
    expect((await client.command('MAIL FROM:<alice@example.com>')).code).toBe(250);
    expect((await client.command('RCPT TO:<bob@example.org>')).code).toBe(250);
    expect((await client.command('DATA')).code).toBe(354);
    client.write(dotStuff(BASIC_MESSAGE));
    client.write('.\r\n');
    await waitFor(() => gate.nextHop.received.length > 0);
    client.close();
    const line = await waitFor(() => gate.logs.find((l) => l.msg === 'message'), 5000);
    expect(line.relay).toBe('ambiguous');
  });

  it('logs no sign or verify decision for a message whose client vanished mid-DATA, and relays nothing', async () => {
    const gate = await startGate();
    const client = await RawClient.open(gate.port);
    expect((await client.command('EHLO client.test')).code).toBe(250);
    expect((await client.command(`MAIL FROM:<alice@${SIGN_DOMAIN}>`)).code).toBe(250);
    expect((await client.command('RCPT TO:<bob@example.org>')).code).toBe(250);
    expect((await client.command('DATA')).code).toBe(354);
    client.write(dotStuff(BASIC_MESSAGE).subarray(0, 60));
    client.close();
    const line = await messageLine(gate, 5000);
    expect([line.decision, line.decisionReason, line.outcome]).toEqual(['none', 'not reached: the message did not arrive whole', 'refused: aborted']);
    expect(gate.nextHop.messages).toHaveLength(0);
  });
});

describe('proxies and header limits', () => {
  it.each([
    ['sends XFORWARD without ADDR', 'NAME=client.outside.test'],
    ['sends no XFORWARD at all', null],
  ])('does not sign when a trusted proxy that is also in relay_hosts %s', async (_name, xforward) => {
    const gate = await startGate({ xforwardHosts: ['127.0.0.1/32'], relayHosts: ['127.0.0.1/32'] });
    const r = await sendMail(gate.port, { data: BASIC_MESSAGE, ...(xforward ? { xforward } : {}) });
    expect(r.final[0]?.code).toBe(250);
    expect(headerOf(gate.nextHop.messages[0]!.data)).not.toMatch(/^DKIM-Signature:/im);
    expect((await messageLine(gate)).decision).toBe('verify');
  });

  it('answers 552 5.3.4 to a header section over max_header_size', async () => {
    const base = defaultConfig();
    const gate = await startGate({ limits: { ...base.limits, maxHeaderSize: 1024 } });
    const bigHeader = Buffer.concat([Buffer.from(`X-Filler: ${'y'.repeat(60)}\r\n`.repeat(40), 'latin1'), BASIC_MESSAGE]);
    const r = await sendMail(gate.port, { data: bigHeader });
    expect(r.final[0]?.text).toMatch(/^552 5\.3\.4 /);
    expect(gate.nextHop.messages).toHaveLength(0);
  });
});

describe('forged Authentication-Results', () => {
  it.each([
    ['in upper case', `Authentication-Results: ${AUTHSERV.toUpperCase()}; dkim=pass header.d=forged.test\r\n`],
    ['folded before the id', `Authentication-Results:\r\n\t${AUTHSERV}; dkim=pass header.d=forged.test\r\n`],
    ['with a version', `Authentication-Results: ${AUTHSERV} 1; dkim=pass header.d=forged.test\r\n`],
    ['after a comment', `Authentication-Results: (trust me) ${AUTHSERV}; dkim=pass header.d=forged.test\r\n`],
    ['with lower-case field name', `authentication-results: ${AUTHSERV}; dkim=pass header.d=forged.test\r\n`],
  ])('removes one that carries our authserv-id %s', async (_name, forged) => {
    const gate = await startGate({ relayHosts: [] });
    const r = await sendMail(gate.port, { from: 'carol@outside.test', data: Buffer.concat([Buffer.from(forged, 'latin1'), UNSIGNED_OUTSIDE]) });
    expect(r.final[0]?.code).toBe(250);
    expect(gate.nextHop.messages[0]!.data.toString('latin1')).not.toContain('forged.test');
  });
});

describe('a header that starts with a continuation line', () => {
  // Prepended to, its first line would continue our field: the sender would write into our A-R or DKIM-Signature.
  it.each([
    ['on the verify path (a line that would extend our A-R)', 'carol@outside.test', '\tdkim=pass header.d=paypal.example\r\n', false],
    ['on the sign path (a line that would extend our DKIM-Signature)', `alice@${SIGN_DOMAIN}`, ' x=1\r\n', true],
  ])('is refused %s with 550 5.6.0, and nothing is relayed', async (_name, from, first, signing) => {
    const gate = await startGate(signing ? {} : { relayHosts: [] });
    const message = fromDomain(BASIC_MESSAGE, from.split('@')[1]!);
    const data = Buffer.concat([Buffer.from(first, 'latin1'), message]);
    const r = await sendMail(gate.port, { from, data });
    expect(r.final[0]?.text).toMatch(/^550 5\.6\.0 malformed header: the first line starts with a space or tab/);
    expect(gate.nextHop.messages).toHaveLength(0);
    expect((await messageLine(gate)).outcome).toBe('refused: header_starts_folded');
    // the same message without that line goes through
    expect((await sendMail(gate.port, { from, data: message })).final[0]?.code).toBe(250);
    expect(headerOf(gate.nextHop.messages[0]!.data)).toMatch(signing ? /^DKIM-Signature: / : /^Authentication-Results: /);
  });
});

describe('stopping', () => {
  it('tells an idle session 421 4.3.2 and stop() resolves promptly', async () => {
    const gate = await startGate();
    const client = await RawClient.open(gate.port);
    try {
      expect((await client.command('EHLO client.test')).code).toBe(250);
      const started = Date.now();
      await gate.daemon.stop();
      expect(Date.now() - started).toBeLessThan(3000);
      expect((await client.read(3000)).text).toMatch(/^421 4\.3\.2 /);
    } finally {
      client.close();
    }
  });
});

// ---- SMTP AUTH -------------------------------------------------------------------------------------------

describe('SMTP AUTH', () => {
  async function usersFile(): Promise<string> {
    const { default: bcrypt } = await import('bcryptjs');
    const path = join(keyDir, 'users.htpasswd');
    await writeFile(path, `alice:${bcrypt.hashSync('right horse', 5)}\n`, { mode: 0o600 });
    return path;
  }

  function plain(user: string, pass: string): string {
    return Buffer.from(`\0${user}\0${pass}`).toString('base64');
  }

  it('neither offers nor accepts AUTH in clear text unless the listener allows insecure AUTH', async () => {
    const gate = await startGate({ usersFile: await usersFile(), relayHosts: ['192.0.2.0/24'] });
    const client = await RawClient.open(gate.port);
    expect((await client.command('EHLO client.test')).text).not.toMatch(/AUTH/);
    const reply = await client.command(`AUTH PLAIN ${plain('alice', 'right horse')}`);
    expect(reply.code).toBeGreaterThanOrEqual(500);
    client.close();
  });

  it('answers 535 5.7.8 to a wrong password (after a delay) and signs for a user with the right one', async () => {
    const gate = await startGate({
      usersFile: await usersFile(),
      relayHosts: ['192.0.2.0/24'],
      listen: [{ ...DEFAULTS.items.listener, port: 0, allowInsecureAuth: true }],
    });
    const wrong = await RawClient.open(gate.port);
    await wrong.command('EHLO client.test');
    const started = Date.now();
    expect((await wrong.command(`AUTH PLAIN ${plain('alice', 'wrong horse')}`)).text).toMatch(/^535 5\.7\.8 /);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    wrong.close();

    const client = await RawClient.open(gate.port);
    await client.command('EHLO client.test');
    expect((await client.command(`AUTH PLAIN ${plain('alice', 'right horse')}`)).code).toBe(235);
    expect((await client.command('MAIL FROM:<alice@example.com>')).code).toBe(250);
    expect((await client.command('RCPT TO:<bob@example.org>')).code).toBe(250);
    expect((await client.command('DATA')).code).toBe(354);
    client.write(dotStuff(fromDomain(UNSIGNED_OUTSIDE, SIGN_DOMAIN)));
    client.write('.\r\n');
    expect((await client.read()).code).toBe(250);
    client.close();
    const relayed = headerOf(gate.nextHop.messages[0]!.data);
    expect(relayed).toMatch(/^DKIM-Signature: v=1; a=rsa-sha256;/);
    const line = await messageLine(gate);
    expect(line.decisionReason).toBe('signing as example.com (user alice)');
  });

  it('refuses a user limited to one domain that names a configured domain it may not use in From, in any position', async () => {
    const { default: bcrypt } = await import('bcryptjs');
    const users = join(keyDir, 'limited.htpasswd');
    await writeFile(users, `alice:${bcrypt.hashSync('right horse', 5)}:example.com\n`, { mode: 0o600 });
    await harness.writeKey('bank.test', 'rsa1', rsa);
    const base = harness.config({}, dns.server);
    const gate = await harness.startGate({
      ...base,
      usersFile: users,
      relayHosts: ['192.0.2.0/24'],
      listen: [{ ...DEFAULTS.items.listener, port: 0, allowInsecureAuth: true }],
      sign: { ...base.sign, domains: { ...base.sign.domains, 'bank.test': signDomain([{ selector: 'rsa1' }]) } },
    });
    const send = async (from: string): Promise<Reply> => {
      const client = await RawClient.open(gate.port);
      await client.command('EHLO client.test');
      expect((await client.command(`AUTH PLAIN ${plain('alice', 'right horse')}`)).code).toBe(235);
      expect((await client.command('MAIL FROM:<alice@example.com>')).code).toBe(250);
      expect((await client.command('RCPT TO:<bob@example.org>')).code).toBe(250);
      expect((await client.command('DATA')).code).toBe(354);
      client.write(dotStuff(Buffer.from(UNSIGNED_OUTSIDE.toString('latin1').replace(/^From: .*$/m, `From: ${from}`), 'latin1')));
      client.write('.\r\n');
      const reply = await client.read();
      client.close();
      return reply;
    };
    expect((await send('CEO <ceo@bank.test>, Alice <alice@example.com>')).text).toMatch(/^550 5\.7\.1 /);
    expect((await send('Alice <alice@example.com>, CEO <ceo@bank.test>')).text).toMatch(/^550 5\.7\.1 /);
    expect(gate.nextHop.messages).toHaveLength(0);
    // a co-author in a domain without a key is not ours to judge: signed as example.com
    expect((await send('Alice <alice@example.com>, Carol <carol@outside.test>')).code).toBe(250);
    expect(headerOf(gate.nextHop.messages[0]!.data)).toMatch(/^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example\.com;/);
  });

  it('warns at start and reload about a user whose domain limit leaves no domain of sign.domains', async () => {
    const path = await usersFile();
    await writeFile(path, `${(await readFile(path, 'utf8')).trim()}:example.net\n`, { mode: 0o600 });
    const gate = await startGate({ usersFile: path });
    const warning = `users file ${path}: alice may sign only for example.net, and sign.domains has none of them: nothing alice sends is signed; add the domain to sign.domains or to alice's list`;
    expect(gate.logs.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([warning]);
    expect(await gate.daemon.reload(gate.config)).toEqual({ kind: 'ok', warnings: [warning] });
  });

  it('after a reload, new sessions see the new max_message_size (SIZE) and AUTH once a users_file is added', async () => {
    const base = defaultConfig();
    const gate = await startGate({ limits: { ...base.limits, maxMessageSize: 2000 }, listen: [{ ...DEFAULTS.items.listener, port: 0, allowInsecureAuth: true }] });
    const big = Buffer.concat([BASIC_MESSAGE, Buffer.from(`${'x'.repeat(70)}\r\n`.repeat(30), 'latin1')]);
    const before = await sendMail(gate.port, { data: big });
    expect(before.ehlo.text).toMatch(/^250[- ]SIZE 2000\r?$/m);
    expect(before.ehlo.text).not.toMatch(/AUTH/);
    expect(before.final[0]?.text).toMatch(/^552 5\.3\.4 /);
    expect(await gate.daemon.reload({ ...gate.config, usersFile: await usersFile(), limits: { ...gate.config.limits, maxMessageSize: 5000 } })).toMatchObject({ kind: 'ok' });
    const after = await sendMail(gate.port, { data: big });
    expect(after.ehlo.text).toMatch(/^250[- ]SIZE 5000\r?$/m);
    expect(after.ehlo.text).toMatch(/^250[- ]AUTH /m);
    expect(after.final[0]?.code).toBe(250);
  });

  it('says at a reload that new listen or metrics addresses wait for a restart, and keeps serving on the old ones', async () => {
    const gate = await startGate();
    const moved = { ...gate.config, listen: [{ ...DEFAULTS.items.listener, port: 0, host: '::1' }], metrics: { host: '127.0.0.1', port: 0 } };
    expect(await gate.daemon.reload(moved)).toEqual({
      kind: 'ok',
      warnings: [
        'listen changed: listeners are only re-bound at restart; the old ones keep serving',
        'metrics changed: the metrics listener is only re-bound at restart; the old one keeps serving',
      ],
    });
    expect((await sendMail(gate.port, { data: BASIC_MESSAGE })).final[0]?.code).toBe(250);
  });

  it('after a reload that reorders or drops listeners, each bound listener keeps its own relay_hosts and keeps serving', async () => {
    const [portA, portB] = [await freeClosedPort(), await freeClosedPort()];
    // A trusts nobody (its own empty relay_hosts); B inherits the global 127.0.0.1/32
    const a = { ...DEFAULTS.items.listener, host: '127.0.0.1', port: portA, relayHosts: [] };
    const b = { ...DEFAULTS.items.listener, host: '127.0.0.1', port: portB };
    const gate = await startGate({ listen: [a, b] });
    const decisionAt = async (port: number) => {
      const before = gate.messageLines().length;
      const r = await sendMail(port, { data: BASIC_MESSAGE });
      expect(r.ehlo.code).toBe(250);
      expect(r.final[0]?.code).toBe(250);
      return (await waitFor(() => gate.messageLines()[before])).decision;
    };
    expect([await decisionAt(portA), await decisionAt(portB)]).toEqual(['verify', 'sign']);

    expect(await gate.daemon.reload({ ...gate.config, listen: [b, a] })).toMatchObject({ kind: 'ok' });
    expect([await decisionAt(portA), await decisionAt(portB)]).toEqual(['verify', 'sign']);

    // B is gone from the file: it keeps serving as it was bound until a restart (it used to answer 451 4.3.0 to EHLO)
    expect(await gate.daemon.reload({ ...gate.config, listen: [a] })).toMatchObject({ kind: 'ok' });
    expect([await decisionAt(portA), await decisionAt(portB)]).toEqual(['verify', 'sign']);
  });
});
