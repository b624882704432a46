// DKIM attacks against the engine: each gets the result interface.md §2 pins, in bounded time.
// Replays, additions that signatures must (or, without oversigning, cannot) catch, hostile keys and
// DNS answers, huge and garbled signatures. test/integration/daemon/dkim-attacks.test.ts runs the
// ones that matter through the daemon.

import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_KEY_RECORD_BYTES, MAX_RSA_EXPONENT_BITS, MAX_RSA_KEY_BITS } from '../../../src/dkim/key-record.js';
import { MAX_SIGNED_HEADERS } from '../../../src/dkim/signature.js';
import { MAX_TXT_ANSWER_BYTES, type TxtLookup } from '../../../src/dkim/txt-lookup.js';
import { verifyMessage, type SignatureVerdict } from '../../../src/dkim/verify.js';
import { BASIC_MESSAGE, crlf, ed25519Key, edit, NOW, rsaKey, sign, tableLookup, type TestKey } from '../../helpers/dkim-test-kit.js';
import { rsa8192Fixture, rsaRecordKey } from '../../helpers/hostile-keys.js';

let rsa: TestKey;
let ed: TestKey;
let lookupTxt: TxtLookup;

beforeAll(() => {
  rsa = rsaKey(2048);
  ed = ed25519Key();
  lookupTxt = tableLookup({ 's1._domainkey.example.com': rsa.record, 'ed._domainkey.example.com': ed.record });
});

/** Verifies and returns the verdicts with the time it took; every attack must be answered quickly. */
async function verify(message: Buffer, opts: { lookup?: TxtLookup; now?: number; maxSignatures?: number } = {}): Promise<SignatureVerdict[]> {
  const started = performance.now();
  const report = await verifyMessage(message, { lookupTxt: opts.lookup ?? lookupTxt, nowSec: opts.now ?? NOW, maxSignatures: opts.maxSignatures });
  expect(performance.now() - started, 'verification time (ms)').toBeLessThan(5000);
  return report.signatures;
}

const verdict = (v: SignatureVerdict | undefined) => `${v?.result}/${v?.reason}`;

describe('changes after signing', () => {
  it('gives policy when content is appended past l= (and pass before)', async () => {
    const signed = await sign(BASIC_MESSAGE, rsa, { bodyLengthLimit: true });
    expect((await verify(signed)).map(verdict)).toEqual(['pass/null']);
    const appended = Buffer.concat([signed, crlf('\n-- \nClick https://phish.example/ now\n')]);
    expect((await verify(appended)).map(verdict)).toEqual(['policy/body_length_short']);
  });

  it('gives fail when content is changed within l=', async () => {
    const signed = await sign(BASIC_MESSAGE, rsa, { bodyLengthLimit: true });
    expect((await verify(edit(signed, 'Thursday?  The', 'Friday? The')))[0]?.result).toBe('fail');
  });

  it('gives every signature policy when a second From is put above the signed one', async () => {
    const signed = await sign(BASIC_MESSAGE, rsa);
    const forged = Buffer.concat([crlf('From: CEO <ceo@example.com>\n'), signed]);
    expect((await verify(forged)).map(verdict)).toEqual(['policy/multiple_from']);
  });

  it.each([
    ['a From above the signed one (From:From, the default)', 'From:From:Subject', 'From: CEO <ceo@example.com>\n', 'policy/multiple_from'],
    ['a Subject above the signed one, Subject oversigned', 'From:From:Subject:Subject', 'Subject: Urgent: wire transfer\n', 'fail/signature_mismatch'],
    ['a Reply-To where none was (asserted absent)', 'From:From:Reply-To:Subject', 'Reply-To: <thief@evil.example>\n', 'fail/signature_mismatch'],
    ['a Reply-To where none was, listed with ? (never asserted)', 'From:From:Reply-To?:Subject', 'Reply-To: <thief@evil.example>\n', 'pass/null'],
    ['a Subject above the signed one, listed once (bottom-up selection keeps the signed one)', 'From:From:Subject', 'Subject: Urgent\n', 'pass/null'],
  ])('adding %s (headerlist %s)', async (_name, headerList, added, expected) => {
    const signed = await sign(BASIC_MESSAGE, rsa, { headerList });
    expect((await verify(signed)).map(verdict)).toEqual(['pass/null']);
    expect((await verify(Buffer.concat([crlf(added), signed]))).map(verdict)).toEqual([expected]);
  });

  it('gives policy to a message replayed after its x=', async () => {
    const signed = await sign(BASIC_MESSAGE, rsa, { lifetimeHours: 1 });
    expect((await verify(signed, { now: NOW + 3599 })).map(verdict)).toEqual(['pass/null']);
    expect((await verify(signed, { now: NOW + 3601 })).map(verdict)).toEqual(['policy/signature_expired']);
  });
});

describe('hostile key records and DNS answers', () => {
  it(`gives permerror to a key record over ${MAX_KEY_RECORD_BYTES} bytes, and to TXT answers over ${MAX_TXT_ANSWER_BYTES} bytes`, async () => {
    const signed = await sign(BASIC_MESSAGE, rsa);
    const huge = `${rsa.record}; n=${'x'.repeat(100 * 1024)}`;
    expect((await verify(signed, { lookup: tableLookup({ 's1._domainkey.example.com': huge }) })).map(verdict)).toEqual(['permerror/key_record_too_large']);
    // 120 records of 850 bytes: each small, together 100 KB; the valid key among them is not looked for.
    const many = [...Array.from({ length: 120 }, (_, i) => `n${i}=${'A'.repeat(850)}`), rsa.record];
    expect((await verify(signed, { lookup: tableLookup({ 's1._domainkey.example.com': many }) })).map(verdict)).toEqual(['permerror/key_record_too_large']);
    expect((await verify(signed, { lookup: async () => ({ kind: 'too_large', bytes: 65_000 }) })).map(verdict)).toEqual(['permerror/key_record_too_large']);
  });

  it(`verifies an 8192-bit RSA key (the largest), and gives policy to larger ones without any RSA work`, async () => {
    const fixture = rsa8192Fixture();
    const started = performance.now();
    const passed = await verify(fixture.message, { lookup: tableLookup({ [fixture.name]: fixture.record }) });
    expect(passed.map((v) => [v.result, v.keyBits])).toEqual([['pass', MAX_RSA_KEY_BITS]]);
    expect(performance.now() - started).toBeLessThan(1000);
    for (const bits of [8200, 16384, 32768]) {
      const record = `v=DKIM1; k=rsa; p=${rsaRecordKey(bits)}`;
      const forged = edit(fixture.message, 's=rsa8192', 's=big');
      const [v] = await verify(forged, { lookup: tableLookup({ 'big._domainkey.example.com': record }) });
      expect([v?.result, v?.reason, v?.keyBits]).toEqual(['policy', 'key_too_large', bits]);
    }
  });

  it(`gives permerror to RSA public exponents over ${MAX_RSA_EXPONENT_BITS} bits (each bit costs a multiplication)`, async () => {
    const signed = await sign(BASIC_MESSAGE, rsa);
    for (const [modulus, exponent] of [
      [2048, 2048],
      [3072, 3072], // the largest modulus OpenSSL would still use with such an exponent
      [2048, 65],
    ] as const) {
      const record = `v=DKIM1; p=${rsaRecordKey(modulus, exponent)}`;
      const [v] = await verify(signed, { lookup: tableLookup({ 's1._domainkey.example.com': record }) });
      expect(verdict(v)).toBe('permerror/key_syntax');
      expect(v?.keyBits).toBeNull();
    }
  });

  it('gives neutral to garbage base64 in b= and bh=, and permerror to garbage in p=', async () => {
    const signed = await sign(BASIC_MESSAGE, rsa);
    for (const garbage of ['!!!!', 'A', 'AAAAA', 'QUJD=ZGVm', '====', '\u00ff\u00fe==', 'AA AA\r\n\t=A']) {
      expect((await verify(edit(signed, /(\sb=)[^;]*?(\r\n(?![ \t]))/, `$1${garbage}$2`))).map(verdict), `b=${garbage}`).toEqual(['neutral/bad_base64']);
      expect((await verify(edit(signed, /bh=[^;]+/, `bh=${garbage}`))).map(verdict), `bh=${garbage}`).toEqual(['neutral/bad_base64']);
      const record = `v=DKIM1; k=rsa; p=${garbage}`;
      expect((await verify(signed, { lookup: tableLookup({ 's1._domainkey.example.com': record }) }))[0]?.result, `p=${garbage}`).toBe('permerror');
    }
  });
});

describe('huge and numerous signatures', () => {
  it(`gives neutral to a DKIM-Signature with 10,000 h= entries (the limit is ${MAX_SIGNED_HEADERS})`, async () => {
    const signed = await sign(BASIC_MESSAGE, rsa);
    const huge = edit(signed, /h=[^;]+/, `h=${Array<string>(10_000).fill('From').join(':')}`);
    expect((await verify(huge)).map(verdict)).toEqual(['neutral/header_too_large']);
  });

  it('evaluates the first max_signatures of 1,000 signatures; the rest are neutral', async () => {
    const one = (await sign(BASIC_MESSAGE, ed, { selector: 'ed' })).subarray(0, -BASIC_MESSAGE.length);
    const message = Buffer.concat([...Array<Buffer>(1000).fill(one), BASIC_MESSAGE]);
    const capped = await verify(message);
    expect(capped.slice(0, 5).map(verdict)).toEqual(Array(5).fill('pass/null'));
    expect(new Set(capped.slice(5).map(verdict))).toEqual(new Set(['neutral/not_evaluated']));
    // The highest max_signatures the configuration allows evaluates all of them, still in bounded time.
    const all = await verify(message, { maxSignatures: 1000 });
    expect(new Set(all.map(verdict))).toEqual(new Set(['pass/null']));
  });
});
