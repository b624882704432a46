// policy.require, on_temperror and dry_run at the running daemon (interface.md §3, reliability.md reply codes,
// RFC 7372): which mail is rejected with which code, what a dry run relays, LMTP replies and a reload.
// Touches: loopback sockets, dnsmasq on a loopback port, /usr/bin/python3 (authres).

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/config.js';
import { defaultConfig } from '../../../src/config/defaults.js';
import { authresParse } from '../../helpers/authres.js';
import { BASIC_MESSAGE, rsaKey, sign } from '../../helpers/dkim-test-kit.js';
import { AUTHSERV, firstField, Harness, listener, messageLine } from '../../helpers/daemon-harness.js';
import { startDnsServer, type RunningDnsServer } from '../../helpers/dns-server.js';
import { sendMail } from '../../helpers/raw-smtp-client.js';

const harness = new Harness();
const key = rsaKey(2048);
let dns: RunningDnsServer;

beforeAll(async () => {
  await harness.setup();
  dns = await startDnsServer({
    txt: {
      'sel._domainkey.bank.test': key.record,
      'sel._domainkey.mail.bank.test': key.record,
      'sel._domainkey.other.test': key.record,
      'sel._domainkey.test': key.record,
      'tst._domainkey.bank.test': `${key.record}; t=y`,
      'sel._domainkey.xn--bnk-qla.test': key.record,
    },
    servfail: ['down._domainkey.bank.test'],
  });
});
afterEach(() => harness.cleanup());
afterAll(async () => {
  await harness.dispose();
  await dns.stop();
});

/** BASIC_MESSAGE with the From field's value replaced. */
function withFrom(from: string): Buffer {
  return Buffer.from(BASIC_MESSAGE.toString('latin1').replace(/^From: .*$/m, `From: ${from}`), 'latin1');
}

/** Signs with d=`domain`, s=`selector` (keys published in the DNS server above). */
function signedBy(message: Buffer, domain: string, selector = 'sel', algorithm?: 'rsa-sha1'): Promise<Buffer> {
  return sign(message, key, { signingDomain: domain, selector, ...(algorithm ? { algorithm } : {}) });
}

/** A verifying daemon requiring bank.test (aligned unless told), `policy` and `over` changing its config. */
function gate(policy: Partial<Config['policy']> = {}, over: Partial<Config> = {}) {
  const base = defaultConfig();
  return harness.startVerifyingGate(dns.server, { policy: { ...base.policy, require: [{ domain: 'bank.test', aligned: true }], ...policy }, ...over });
}

describe('policy.require holds every author of a From field (RFC 5322 §3.6.2)', () => {
  it.each([
    ['a list', 'a@other.test, b@bank.test'],
    ['a group', 'friends: a@other.test, "B" <b@bank.test>;'],
  ])('rejects unsigned mail naming the required domain second in %s', async (_shape, from) => {
    const g = await gate();
    const r = await sendMail(g.port, { from: 'x@other.test', data: withFrom(from) });
    expect(r.final[0]?.text).toMatch(/^550 5\.7\.20 /);
    expect(g.nextHop.received).toHaveLength(0);
  });

  it('rejects unsigned mail naming the required domain after 10 KB of other authors', async () => {
    const g = await gate();
    const others = Array.from({ length: 1000 }, (_, i) => `a${i}@other.test`).join(',\r\n ');
    const r = await sendMail(g.port, { from: 'x@other.test', data: withFrom(`${others},\r\n ceo@bank.test`) });
    expect(r.final[0]?.text).toMatch(/^550 5\.7\.20 /);
    expect(g.nextHop.received).toHaveLength(0);
  });

  it('rejects with 5.7.22 when only the first author signed', async () => {
    const g = await gate();
    const r = await sendMail(g.port, { from: 'x@other.test', data: await signedBy(withFrom('a@other.test, b@bank.test'), 'other.test') });
    expect(r.final[0]?.text).toMatch(/^550 5\.7\.22 /);
  });

  it('relays when the required author signed, though another author did not', async () => {
    const g = await gate();
    const r = await sendMail(g.port, { from: 'x@other.test', data: await signedBy(withFrom('a@other.test, b@bank.test'), 'bank.test') });
    expect(r.final[0]?.code).toBe(250);
  });
});

describe('an internationalized author domain (RFC 6532 From, rule and d= in A-labels)', () => {
  // bänk.test: the config turns a rule's U-labels into A-labels (xn--bnk-qla.test); the From field holds UTF-8.
  const IDN_RULE = [{ domain: 'xn--bnk-qla.test', aligned: true }];
  const fromUtf8 = (address: string) => Buffer.from(BASIC_MESSAGE.toString('utf8').replace(/^From: .*$/m, `From: ${address}`), 'utf8');

  it.each([['bänk.test'], ['BÄNK.test'], ['xn--bnk-qla.test']])('rejects unsigned mail from ceo@%s', async (domain) => {
    const g = await gate({ require: IDN_RULE });
    const r = await sendMail(g.port, { from: 'x@other.test', mailParams: 'SMTPUTF8', data: fromUtf8(`Ceo <ceo@${domain}>`) });
    expect(r.final[0]?.text).toMatch(/^550 5\.7\.20 /);
    expect(g.nextHop.received).toHaveLength(0);
  });

  it('relays mail from ceo@bänk.test signed with d=xn--bnk-qla.test (aligned)', async () => {
    const g = await gate({ require: IDN_RULE });
    const r = await sendMail(g.port, { from: 'x@other.test', mailParams: 'SMTPUTF8', data: await signedBy(fromUtf8('ceo@bänk.test'), 'xn--bnk-qla.test') });
    expect(r.final[0]?.code).toBe(250);
  });
});

describe('which RFC 7372 code', () => {
  it.each([
    ['an rsa-sha1 signature by the author domain', () => signedBy(withFrom('a@bank.test'), 'bank.test', 'sel', 'rsa-sha1'), /^550 5\.7\.21 /],
    ['a passing signature whose key is in testing mode (t=y)', () => signedBy(withFrom('a@bank.test'), 'bank.test', 'tst'), /^550 5\.7\.21 /],
    ['a passing signature by another domain only', () => signedBy(withFrom('a@bank.test'), 'other.test'), /^550 5\.7\.22 /],
    ['a passing signature by a bare TLD', () => signedBy(withFrom('a@bank.test'), 'test'), /^550 5\.7\.22 /],
    // aligned is d= = From domain or a parent of it (README, Security): a subdomain signer is not, unlike DMARC relaxed
    ['a passing signature by a subdomain of the author domain', () => signedBy(withFrom('a@bank.test'), 'mail.bank.test'), /^550 5\.7\.22 /],
    ['a broken signature by the author domain', async () => Buffer.from((await signedBy(withFrom('a@bank.test'), 'bank.test')).toString('latin1').replace('Lunch', 'Dinner'), 'latin1'), /^550 5\.7\.20 /],
    ['an unsigned message with the domain in upper case and a trailing dot', async () => withFrom('A <a@BANK.TEST.>'), /^550 5\.7\.20 /],
  ])('%s', async (_name, make, reply) => {
    const g = await gate();
    const r = await sendMail(g.port, { from: 'x@other.test', data: await make() });
    expect(r.final[0]?.text).toMatch(reply);
    expect(g.nextHop.received).toHaveLength(0);
  });

  it('relays a passing signature by a parent of the required author domain', async () => {
    const g = await gate({ require: [{ domain: 'news.bank.test', aligned: true }] });
    const r = await sendMail(g.port, { from: 'x@other.test', data: await signedBy(withFrom('a@news.bank.test'), 'bank.test') });
    expect(r.final[0]?.code).toBe(250);
  });

  it('relays a passing signature by another domain when the rule says aligned: false', async () => {
    const g = await gate({ require: [{ domain: 'bank.test', aligned: false }] });
    const r = await sendMail(g.port, { from: 'x@other.test', data: await signedBy(withFrom('a@bank.test'), 'other.test') });
    expect(r.final[0]?.code).toBe(250);
  });

  it('defers (451 4.7.5) rather than rejects when the author signature could not be looked up, even with on_temperror: accept', async () => {
    const g = await gate({ onTemperror: 'accept' });
    const r = await sendMail(g.port, { from: 'x@other.test', data: await signedBy(withFrom('a@bank.test'), 'bank.test', 'down') });
    expect(r.final[0]?.text).toMatch(/^451 4\.7\.5 /);
    expect((await messageLine(g)).outcome).toBe('deferred: dns');
  });

  it('leaves mail with no From domain, and mail of other domains (a subdomain too: a rule is for its domain only), alone', async () => {
    const g = await gate({});
    for (const from of ['undisclosed-recipients:;', 'a@other.test', 'a@alerts.bank.test', 'a@[192.0.2.1]']) {
      const r = await sendMail(g.port, { from: 'x@other.test', data: withFrom(from) });
      expect(r.final[0]?.code).toBe(250);
    }
  });
});

describe('on_temperror: tempfail', () => {
  it('with on_temperror: tempfail, defers a DNS failure only when no signature passed', async () => {
    const g = await gate({ onTemperror: 'tempfail', require: [] });
    const down = await signedBy(withFrom('a@bank.test'), 'bank.test', 'down');
    expect((await sendMail(g.port, { from: 'x@other.test', data: down })).final[0]?.text).toMatch(/^451 4\.7\.5 /);
    expect((await sendMail(g.port, { from: 'x@other.test', data: await signedBy(down, 'other.test') })).final[0]?.code).toBe(250);
    const [parsed] = authresParse([firstField(g.nextHop.messages[0]!.data)]);
    expect(parsed!.results!.map((x) => x.result)).toEqual(['pass', 'temperror']);
  });
});

describe('dry_run', () => {
  it('relays what it would reject, with our field, and logs the would-be status', async () => {
    const g = await gate({ dryRun: true });
    const r = await sendMail(g.port, { from: 'x@other.test', data: withFrom('a@bank.test') });
    expect(r.final[0]?.code).toBe(250);
    const [parsed] = authresParse([firstField(g.nextHop.messages[0]!.data)]);
    expect(parsed).toMatchObject({ authservId: AUTHSERV, results: [{ method: 'dkim', result: 'none' }] });
    expect(await messageLine(g)).toMatchObject({ policy: 'reject', policyStatus: '5.7.20', policyDryRun: true, outcome: 'delivered' });
  });

  it('relays what it would defer, with dkim=temperror', async () => {
    const g = await gate({ dryRun: true, onTemperror: 'tempfail', require: [] });
    const r = await sendMail(g.port, { from: 'x@other.test', data: await signedBy(withFrom('a@bank.test'), 'bank.test', 'down') });
    expect(r.final[0]?.code).toBe(250);
    const [parsed] = authresParse([firstField(g.nextHop.messages[0]!.data)]);
    expect(parsed!.results!.map((x) => x.result)).toEqual(['temperror']);
    expect(await messageLine(g)).toMatchObject({ policy: 'tempfail', policyDryRun: true });
  });
});

describe('LMTP and reload', () => {
  it('answers each LMTP recipient with the policy rejection', async () => {
    const g = await gate({}, { listen: [listener({ protocol: 'lmtp' })] });
    const r = await sendMail(g.port, { lmtp: true, to: ['a@x.test', 'b@x.test'], from: 'x@other.test', data: withFrom('a@bank.test') });
    expect(r.final.map((f) => f.text.slice(0, 12))).toEqual(['550 5.7.20 n', '550 5.7.20 n']);
    expect(g.nextHop.received).toHaveLength(0);
  });

  it('applies a reloaded require list to the next message', async () => {
    const g = await gate({ require: [] });
    expect((await sendMail(g.port, { from: 'x@other.test', data: withFrom('a@bank.test') })).final[0]?.code).toBe(250);
    const next = { ...g.config, policy: { ...g.config.policy, require: [{ domain: 'bank.test', aligned: true }] } };
    expect((await g.daemon.reload(next)).kind).toBe('ok');
    expect((await sendMail(g.port, { from: 'x@other.test', data: withFrom('a@bank.test') })).final[0]?.text).toMatch(/^550 5\.7\.20 /);
  });
});
