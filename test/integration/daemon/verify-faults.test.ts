// The verify path at the daemon under DNS faults and hostile headers: a DNS server that never answers, a message
// with more signatures than max_signatures, and our Authentication-Results field read by python3-authres.
// Touches: loopback sockets, dnsmasq and a silent UDP socket on loopback ports, /usr/bin/python3.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/config.js';
import { defaultConfig } from '../../../src/config/defaults.js';
import { authresParse } from '../../helpers/authres.js';
import { BASIC_MESSAGE, fromDomain, rsaKey, sign } from '../../helpers/dkim-test-kit.js';
import { AUTHSERV, firstField, Harness, messageLine } from '../../helpers/daemon-harness.js';
import { useDnsServers } from '../../helpers/dns-server.js';
import { sendMail } from '../../helpers/raw-smtp-client.js';

const harness = new Harness();
const key = rsaKey(2048);
const servers = useDnsServers({ 'sel._domainkey.signed.test': key.record });

beforeAll(() => harness.setup());
afterEach(() => harness.cleanup());
afterAll(() => harness.dispose());

/** A verifying daemon (no relay hosts) asking `server` for keys, with a short lookup timeout. */
function verifyingGate(server: string, over: Partial<Config> = {}) {
  return harness.startVerifyingGate(server, over, { timeout: 400 });
}

describe('DNS that never answers', () => {
  it('relays with dkim=temperror after the lookup timeout, and the A-R parses', async () => {
    const gate = await verifyingGate(servers.silent.server);
    const signed = await sign(fromDomain(BASIC_MESSAGE, 'signed.test'), key, { signingDomain: 'signed.test', selector: 'sel' });
    const started = Date.now();
    const r = await sendMail(gate.port, { from: 'someone@signed.test', data: signed });
    expect(r.final[0]?.code).toBe(250);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(servers.silent.received()).toBeGreaterThan(0);
    const [parsed] = authresParse([firstField(gate.nextHop.messages[0]!.data)]);
    expect(parsed!.authservId).toBe(AUTHSERV);
    expect(parsed!.results!.map((x) => [x.method, x.result])).toEqual([['dkim', 'temperror']]);
    const line = await messageLine(gate);
    expect((line.dkim as Array<{ result: string; reason: string }>)[0]).toMatchObject({ result: 'temperror', reason: 'dns_timeout' });
  });

  it('answers 451 4.7.5 and relays nothing when on_temperror is tempfail', async () => {
    const base = defaultConfig();
    const gate = await verifyingGate(servers.silent.server, { policy: { ...base.policy, onTemperror: 'tempfail' } });
    const signed = await sign(fromDomain(BASIC_MESSAGE, 'signed.test'), key, { signingDomain: 'signed.test', selector: 'sel' });
    const r = await sendMail(gate.port, { from: 'someone@signed.test', data: signed });
    expect(r.final[0]?.text).toMatch(/^451 4\.7\.5 /);
    expect(gate.nextHop.received).toHaveLength(0);
  });
});

describe('a silent resolver listed before a good one', () => {
  it('relays with dkim=pass, not deferred, when on_temperror is tempfail', async () => {
    const base = defaultConfig();
    const gate = await harness.startVerifyingGate(
      servers.silent.server,
      { policy: { ...base.policy, onTemperror: 'tempfail' } },
      { servers: [servers.silent.server, servers.dns.server], timeout: 2000 },
    );
    const signed = await sign(fromDomain(BASIC_MESSAGE, 'signed.test'), key, { signingDomain: 'signed.test', selector: 'sel' });
    const before = servers.silent.received();
    const r = await sendMail(gate.port, { from: 'someone@signed.test', data: signed });
    expect(r.final[0]?.code).toBe(250);
    expect(servers.silent.received()).toBeGreaterThan(before); // the silent one was asked first
    const [parsed] = authresParse([firstField(gate.nextHop.messages[0]!.data)]);
    expect(parsed!.results!.map((x) => [x.method, x.result])).toEqual([['dkim', 'pass']]);
  });
});

describe('more signatures than max_signatures', () => {
  it('evaluates only the first max_signatures (no DNS for the rest) and lists the rest as one neutral result', async () => {
    const base = defaultConfig();
    const gate = await verifyingGate(servers.dns.server, { verify: { ...base.verify, maxSignatures: 3 } });
    let message = fromDomain(BASIC_MESSAGE, 'signed.test');
    // 40 signatures, each with its own selector: only sel0..sel2 (the top three) may be looked up.
    for (let i = 39; i >= 0; i--) {
      const signed = await sign(message, key, { signingDomain: 'signed.test', selector: `sel${i}` });
      message = signed;
    }
    const before = servers.dns.queries().length;
    const r = await sendMail(gate.port, { from: 'someone@signed.test', data: message });
    expect(r.final[0]?.code).toBe(250);
    const asked = servers.dns.queries().slice(before).filter((q) => q.includes('_domainkey'));
    expect(new Set(asked.map((q) => /sel\d+/.exec(q)?.[0]))).toEqual(new Set(['sel0', 'sel1', 'sel2']));
    const relayed = gate.nextHop.messages[0]!.data;
    const [parsed] = authresParse([firstField(relayed)]);
    expect(parsed!.results!.map((x) => x.result)).toEqual(['permerror', 'permerror', 'permerror', 'neutral']);
    expect(firstField(relayed)).toContain('37 signatures beyond max_signatures, not evaluated');
    // the message is otherwise relayed whole
    expect(relayed.length).toBeGreaterThan(message.length);
  });
});

describe('our Authentication-Results as an RFC 8601 parser reads it', () => {
  it('reads dkim=pass with header.d, header.s and header.b of a message signed with a key in DNS', async () => {
    const gate = await verifyingGate(servers.dns.server);
    const signed = await sign(fromDomain(BASIC_MESSAGE, 'signed.test'), key, { signingDomain: 'signed.test', selector: 'sel' });
    const r = await sendMail(gate.port, { from: 'someone@signed.test', data: signed });
    expect(r.final[0]?.code).toBe(250);
    const [parsed] = authresParse([firstField(gate.nextHop.messages[0]!.data)]);
    expect(parsed!.error).toBeUndefined();
    expect(parsed!.authservId).toBe(AUTHSERV);
    expect(parsed!.results).toHaveLength(1);
    const [result] = parsed!.results!;
    expect(result!.result).toBe('pass');
    expect(Object.fromEntries(result!.props)).toMatchObject({ 'header.d': 'signed.test', 'header.s': 'sel', 'header.a': 'rsa-sha256' });
    const b = /\bb=([^;\s]+)/.exec(signed.toString('latin1'))![1]!.slice(0, 8);
    expect(Object.fromEntries(result!.props)['header.b']).toBe(b);
  });
});
