import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { verifyMessage, type VerifyOptions } from '../../../src/dkim/verify.js';
import { toCrlf } from '../../../src/mail/line-endings.js';
import { parseZoneFile } from '../../../src/dns/zone-file.js';
import { BASIC_MESSAGE, crlf, ed25519Key, edit, NOW, rsaKey, sign, tableLookup, type TestKey } from '../../helpers/dkim-test-kit.js';
import type { TxtLookupOutcome } from '../../../src/dkim/txt-lookup.js';

let rsa: TestKey;
let rsa2: TestKey;
let ed: TestKey;
let small: TestKey;
let signedRsa: Buffer;
let signedEd: Buffer;

beforeAll(async () => {
  rsa = rsaKey(2048);
  rsa2 = rsaKey(1024);
  ed = ed25519Key();
  small = rsaKey(768);
  signedRsa = await sign(BASIC_MESSAGE, rsa);
  signedEd = await sign(BASIC_MESSAGE, ed, { selector: 'ed' });
});

function dns(extra: Record<string, string | string[] | TxtLookupOutcome['kind']> = {}) {
  return tableLookup({ 's1._domainkey.example.com': rsa.record, 'ed._domainkey.example.com': ed.record, ...extra });
}

async function verifyOne(message: Buffer, opts: Partial<VerifyOptions> = {}) {
  const report = await verifyMessage(message, { lookupTxt: dns(), nowSec: NOW + 60, ...opts });
  expect(report.signatures).toHaveLength(1);
  return report.signatures[0]!;
}

describe('verification results (interface.md §2)', () => {
  it('reports no signatures for an unsigned message', async () => {
    const report = await verifyMessage(BASIC_MESSAGE, { lookupTxt: dns(), nowSec: NOW });
    expect(report.signatures).toEqual([]);
  });

  it('passes an RSA signature and reports its labels', async () => {
    const v = await verifyOne(signedRsa);
    expect(v).toMatchObject({
      result: 'pass',
      reason: null,
      domain: 'example.com',
      selector: 's1',
      identity: '@example.com',
      algorithm: 'rsa-sha256',
      canonicalization: 'relaxed/relaxed',
      keyBits: 2048,
      testing: false,
    });
    expect(v.headerB).toHaveLength(8);
  });

  it('passes an Ed25519 signature', async () => {
    expect(await verifyOne(signedEd)).toMatchObject({ result: 'pass', algorithm: 'ed25519-sha256', keyBits: 256 });
  });

  it.each([
    ['all four canonicalization pairs', 'simple', 'simple'],
    ['', 'simple', 'relaxed'],
    ['', 'relaxed', 'simple'],
    ['', 'relaxed', 'relaxed'],
  ] as const)('passes %s: %s/%s', async (_n, headerCanon, bodyCanon) => {
    const m = await sign(BASIC_MESSAGE, rsa, { headerCanon, bodyCanon });
    expect((await verifyOne(m)).result).toBe('pass');
  });

  // Signature syntax (check 2): each case edits a valid signature.
  it.each([
    ['missing_tag', 'neutral', /bh=[^;]+;/, ''],
    ['duplicate_tag', 'neutral', /s=s1;/, 's=s1; s=s1;'],
    ['bad_tag_syntax', 'neutral', /s=s1;/, 's=s1; 9x=1;'],
    ['bad_version', 'neutral', /v=1;/, 'v=2;'],
    ['unknown_algorithm', 'neutral', /a=rsa-sha256;/, 'a=rsa-md5;'],
    ['unknown_canonicalization', 'neutral', /c=relaxed\/relaxed;/, 'c=fancy/relaxed;'],
    ['bad_tag_value', 'neutral', /d=example\.com;/, 'd=exa_mple..com;'],
    ['identity_outside_domain', 'neutral', /s=s1;/, 's=s1; i=@example.net;'],
    ['bad_base64', 'neutral', /bh=[^;]+;/, 'bh=!!notbase64!!;'],
  ] as const)('reports %s as %s', async (reason, result, from, to) => {
    const v = await verifyOne(edit(signedRsa, from, to));
    expect([v.result, v.reason]).toEqual([result, reason]);
  });

  it('reports bad_tag_value when x= is not after t=', async () => {
    const v = await verifyOne(edit(signedRsa, /t=(\d+);/, 't=$1; x=$1;'));
    expect([v.result, v.reason]).toEqual(['neutral', 'bad_tag_value']);
  });

  it('keeps what a broken signature claims for the report', async () => {
    const v = await verifyOne(edit(signedRsa, /v=1;/, 'v=2;'));
    expect(v).toMatchObject({ domain: 'example.com', selector: 's1' });
  });

  it('reports policy for every signature when the message has two From fields', async () => {
    const twoFrom = Buffer.concat([Buffer.from('From: mallory@evil.example\r\n'), signedRsa]);
    expect(await verifyOne(twoFrom)).toMatchObject({ result: 'policy', reason: 'multiple_from' });
  });

  it('reports permerror when the message has no From field', async () => {
    const noFrom = edit(signedRsa, /From: Alice <alice@example.com>\r\n/, '');
    expect(await verifyOne(noFrom)).toMatchObject({ result: 'permerror', reason: 'no_from' });
  });

  it('reports permerror when From is not signed', async () => {
    const m = edit(await sign(BASIC_MESSAGE, rsa), /h=[^;]+;/, 'h=To:Subject;');
    expect(await verifyOne(m)).toMatchObject({ result: 'permerror', reason: 'from_not_signed' });
  });

  it('reports policy for rsa-sha1 unless allowed, and passes it when allowed', async () => {
    const m = await sign(BASIC_MESSAGE, rsa, { algorithm: 'rsa-sha1' });
    expect(await verifyOne(m)).toMatchObject({ result: 'policy', reason: 'sha1_not_allowed' });
    expect(await verifyOne(m, { allowSha1: true })).toMatchObject({ result: 'pass' });
  });

  it('reports policy for an expired signature', async () => {
    const m = await sign(BASIC_MESSAGE, rsa, { lifetimeHours: 1 });
    expect(await verifyOne(m, { nowSec: NOW + 3599 })).toMatchObject({ result: 'pass' });
    expect(await verifyOne(m, { nowSec: NOW + 3601 })).toMatchObject({ result: 'policy', reason: 'signature_expired' });
  });

  it('reports policy for t= beyond the clock skew, and passes within it', async () => {
    expect(await verifyOne(signedRsa, { nowSec: NOW - 300 })).toMatchObject({ result: 'pass' });
    expect(await verifyOne(signedRsa, { nowSec: NOW - 301 })).toMatchObject({ result: 'policy', reason: 'timestamp_in_future' });
    expect(await verifyOne(signedRsa, { nowSec: NOW - 400, clockSkewSec: 600 })).toMatchObject({ result: 'pass' });
  });

  it.each([
    ['timeout', 'temperror', 'dns_timeout'],
    ['servfail', 'temperror', 'dns_servfail'],
    ['nxdomain', 'permerror', 'no_key'],
    ['nodata', 'permerror', 'no_key'],
  ] as const)('reports a %s key lookup as %s', async (outcome, result, reason) => {
    const v = await verifyOne(signedRsa, { lookupTxt: dns({ 's1._domainkey.example.com': outcome }) });
    expect([v.result, v.reason]).toEqual([result, reason]);
  });

  it.each([
    ['key_syntax', 'a malformed record', 'v=DKIM1; k=rsa; p=not*base64'],
    ['key_syntax', 'a record without p=', 'v=DKIM1; k=rsa'],
    ['key_syntax', 'a record with v= not first', 'k=rsa; v=DKIM1; p=AAAA'],
    ['key_revoked', 'an empty p=', 'v=DKIM1; k=rsa; p='],
    ['key_type_mismatch', 'k=ed25519 for an RSA signature', 'ED'],
    ['key_type_mismatch', 'an unknown k=', 'v=DKIM1; k=dsa; p=AAAA'],
    ['key_hash_mismatch', 'h=sha1 for a sha256 signature', 'HASH'],
    ['key_service_mismatch', 's=other', 'SERVICE'],
  ])('reports %s (permerror) for %s', async (reason, _name, record) => {
    const txt =
      record === 'ED' ? ed.record : record === 'HASH' ? `v=DKIM1; h=sha1; k=rsa; p=${rsa.p}` : record === 'SERVICE' ? `v=DKIM1; s=other; p=${rsa.p}` : record;
    const v = await verifyOne(signedRsa, { lookupTxt: dns({ 's1._domainkey.example.com': txt }) });
    expect([v.result, v.reason]).toEqual(['permerror', reason]);
  });

  it('accepts s=email and s=* and h=sha256 in the key record', async () => {
    for (const txt of [`v=DKIM1; s=email; p=${rsa.p}`, `v=DKIM1; s=*; p=${rsa.p}`, `v=DKIM1; h=sha1:sha256; p=${rsa.p}`]) {
      expect((await verifyOne(signedRsa, { lookupTxt: dns({ 's1._domainkey.example.com': txt }) })).result).toBe('pass');
    }
  });

  it('reports permerror when t=s forbids an i= in a subdomain, and passes i= in d= itself', async () => {
    const strict = { 's1._domainkey.example.com': `v=DKIM1; t=s; p=${rsa.p}` };
    const sub = await sign(BASIC_MESSAGE, rsa, { agentId: 'alice@mail.example.com' });
    expect(await verifyOne(sub, { lookupTxt: dns(strict) })).toMatchObject({ result: 'permerror', reason: 'key_strict_subdomain' });
    const same = await sign(BASIC_MESSAGE, rsa, { agentId: 'alice@example.com' });
    expect(await verifyOne(same, { lookupTxt: dns(strict) })).toMatchObject({ result: 'pass', identity: 'alice@example.com' });
  });

  it('reports the t=y testing flag', async () => {
    const v = await verifyOne(signedRsa, { lookupTxt: dns({ 's1._domainkey.example.com': `v=DKIM1; t=y; p=${rsa.p}` }) });
    expect(v).toMatchObject({ result: 'pass', testing: true });
  });

  it('reports policy for an RSA key under min_key_bits', async () => {
    const m = await sign(BASIC_MESSAGE, small);
    const lookupTxt = dns({ 's1._domainkey.example.com': small.record });
    expect(await verifyOne(m, { lookupTxt })).toMatchObject({ result: 'policy', reason: 'key_too_small', keyBits: 768 });
    expect(await verifyOne(m, { lookupTxt, minKeyBits: 768 })).toMatchObject({ result: 'pass' });
  });

  it('reports fail when the body was changed', async () => {
    const v = await verifyOne(edit(signedRsa, 'The usual place.', 'The other place.'));
    expect([v.result, v.reason]).toEqual(['fail', 'body_hash_mismatch']);
  });

  it('reports fail when a signed header was changed', async () => {
    const v = await verifyOne(edit(signedRsa, 'Subject: Lunch', 'Subject: Dinner'));
    expect([v.result, v.reason]).toEqual(['fail', 'signature_mismatch']);
  });

  it('reports fail when the published key is another key', async () => {
    const v = await verifyOne(signedRsa, { lookupTxt: dns({ 's1._domainkey.example.com': rsa2.record }) });
    expect([v.result, v.reason]).toEqual(['fail', 'signature_mismatch']);
  });

  it('reports fail when a header is added that oversigning asserted absent', async () => {
    const m = await sign(BASIC_MESSAGE, rsa, { headerList: 'From:From:Subject:Subject' });
    const added = Buffer.concat([Buffer.from('Subject: Buy now\r\n'), m]);
    expect(await verifyOne(added)).toMatchObject({ result: 'fail', reason: 'signature_mismatch' });
  });

  it('reports policy when l= covers less than the body, and pass when it covers all of it', async () => {
    const m = await sign(BASIC_MESSAGE, rsa, { bodyLengthLimit: true });
    expect((await verifyOne(m)).result).toBe('pass');
    const appended = Buffer.concat([m, Buffer.from('P.S. click here\r\n')]);
    expect(await verifyOne(appended)).toMatchObject({ result: 'policy', reason: 'body_length_short' });
  });

  it('reports fail when l= is longer than the body, and says so', async () => {
    const m = await sign(BASIC_MESSAGE, rsa, { bodyLengthLimit: true });
    const l = Number(/\bl=(\d+)/.exec(m.toString('latin1'))![1]);
    const cut = Buffer.from(m.toString('latin1').replace(/[^\n]*\r\n$/, ''), 'latin1');
    expect(await verifyOne(cut)).toMatchObject({ result: 'fail', reason: 'body_hash_mismatch', detail: expect.stringMatching(new RegExp(`^l=${l} is longer than the \\d+-byte body$`)) });
  });

  it('marks signatures beyond max_signatures neutral without evaluating them', async () => {
    let m = BASIC_MESSAGE;
    for (let i = 0; i < 3; i++) m = await sign(m, rsa);
    const report = await verifyMessage(m, { lookupTxt: dns(), nowSec: NOW, maxSignatures: 2 });
    expect(report.signatures.map((s) => [s.result, s.reason])).toEqual([
      ['pass', null],
      ['pass', null],
      ['neutral', 'not_evaluated'],
    ]);
  });

  it('uses a valid record when the name holds several, and joins nothing itself', async () => {
    const v = await verifyOne(signedRsa, { lookupTxt: dns({ 's1._domainkey.example.com': ['v=spf1 -all', rsa.record] }) });
    expect(v.result).toBe('pass');
  });

  it('verifies several signatures of different algorithms independently', async () => {
    const both = await sign(signedEd, rsa);
    const tampered = edit(both, /(DKIM-Signature: v=1; a=ed25519-sha256[^]*?)bh=[^;]+;/, '$1bh=AAAA;');
    const report = await verifyMessage(tampered, { lookupTxt: dns(), nowSec: NOW });
    expect(report.signatures.map((s) => [s.algorithm, s.result])).toEqual([
      ['rsa-sha256', 'pass'],
      ['ed25519-sha256', 'fail'],
    ]);
  });
});

describe('the RFC 8463 Appendix A example', () => {
  it('verifies both its Ed25519 and its RSA signature', async () => {
    const message = toCrlf(readFileSync('test/fixtures/rfc8463/appendix-a-signed.eml'));
    const zone = parseZoneFile(readFileSync('test/fixtures/rfc8463/appendix-a.zone', 'utf8'));
    if (zone.kind !== 'ok') throw new Error(zone.message);
    const table = Object.fromEntries(zone.records.map((r) => [r.name, r.strings.join('')]));
    const report = await verifyMessage(message, { lookupTxt: tableLookup(table), nowSec: 1_527_915_362 });
    expect(report.signatures.map((s) => [s.algorithm, s.result, s.selector])).toEqual([
      ['ed25519-sha256', 'pass', 'brisbane'],
      ['rsa-sha256', 'pass', 'test'],
    ]);
  });
});

describe('hostile input costs linear time', () => {
  it('verifies a message with a header of 10,000 folded lines and a 5 MB header value', async () => {
    const folded = `X-Folded: a\r\n${' b\r\n'.repeat(10_000)}`;
    const huge = `X-Huge: ${'x '.repeat(2_500_000)}\r\n`;
    const m = await sign(crlf(`${folded}${huge}${BASIC_MESSAGE.toString()}`), rsa, { headerList: 'From:X-Folded:X-Huge' });
    const started = Date.now();
    expect((await verifyOne(m)).result).toBe('pass');
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
