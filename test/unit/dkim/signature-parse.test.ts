import { describe, expect, it } from 'vitest';
import { MAX_SIGNATURE_FIELD_BYTES, MAX_SIGNED_HEADERS, parseSignature, type ParsedSignature } from '../../../src/dkim/signature.js';
import { parseTagList } from '../../../src/dkim/tag-list.js';
import { RESULT_BY_REASON } from '../../../src/dkim/results.js';

const BH = Buffer.alloc(32, 7).toString('base64');
const B = Buffer.alloc(128, 9).toString('base64');

/** A valid signature value with tags overridden (a value) or removed (null), in a fixed order. */
function sig(over: Record<string, string | null> = {}): string {
  const tags: Record<string, string | null> = { v: '1', a: 'rsa-sha256', d: 'example.com', s: 's1', h: 'From:To', bh: BH, b: B, ...over };
  return Object.entries(tags)
    .filter(([, v]) => v !== null)
    .map(([k, v]) => ` ${k}=${v}`)
    .join(';');
}

function ok(value: string): ParsedSignature {
  const parsed = parseSignature(value);
  if (parsed.kind !== 'ok') throw new Error(`expected ok, got ${parsed.reason}: ${parsed.detail}`);
  return parsed.signature;
}

describe('tag lists (RFC 6376 §3.2)', () => {
  it.each([
    ['plain tags', 'a=1; b=2', [['a', '1'], ['b', '2']]],
    ['a trailing semicolon', 'a=1;', [['a', '1']]],
    ['empty segments', ';;a=1;; ;\t;b=2;;', [['a', '1'], ['b', '2']]],
    ['FWS around names and values', ' \r\n a \t= \r\n\t1 \r\n ; b=2', [['a', '1'], ['b', '2']]],
    ['interior whitespace kept', 'a=x y\r\n z', [['a', 'x y\r\n z']]],
    ['an "=" inside a value', 'z=From:a=40b', [['z', 'From:a=40b']]],
    ['an empty value', 'p=', [['p', '']]],
    ['underscores and digits in names', 'a_1=x; B9=y', [['a_1', 'x'], ['B9', 'y']]],
    ['an empty list', '', []],
  ])('parses %s', (_name, text, expected) => {
    const parsed = parseTagList(text);
    expect(parsed.kind).toBe('ok');
    if (parsed.kind === 'ok') expect([...parsed.tags]).toEqual(expected);
  });

  it.each([
    ['a duplicate name', 'a=1; a=2', 'duplicate_tag'],
    ['names differing only in case are distinct', 'a=1; A=2', null],
    ['a segment without "="', 'a=1; junk', 'bad_tag_syntax'],
    ['a name starting with a digit', '1a=x', 'bad_tag_syntax'],
    ['a name with a hyphen', 'a-b=x', 'bad_tag_syntax'],
    ['an empty name', '=x', 'bad_tag_syntax'],
    ['a name with interior whitespace', 'a b=x', 'bad_tag_syntax'],
  ])('handles %s', (_name, text, reason) => {
    const parsed = parseTagList(text);
    expect(parsed.kind === 'error' ? parsed.reason : null).toBe(reason);
  });
});

describe('DKIM-Signature values and defaults (RFC 6376 §3.5)', () => {
  it('parses a minimal signature with its defaults', () => {
    const s = ok(sig());
    expect(s).toMatchObject({
      algorithm: 'rsa-sha256',
      keyType: 'rsa',
      hashAlgorithm: 'sha256',
      headerCanon: 'simple',
      bodyCanon: 'simple',
      signingDomain: 'example.com',
      selector: 's1',
      signedHeaders: ['from', 'to'],
      agentId: '@example.com',
      agentDomain: 'example.com',
      bodyLength: null,
      timestamp: null,
      expiration: null,
      headerB: B.slice(0, 8),
    });
    expect(s.bodyHash.equals(Buffer.alloc(32, 7))).toBe(true);
    expect(s.signature.equals(Buffer.alloc(128, 9))).toBe(true);
  });

  it.each([
    ['absent', null, 'simple', 'simple'],
    ['simple', 'simple', 'simple', 'simple'],
    ['relaxed', 'relaxed', 'relaxed', 'simple'],
    ['simple/simple', 'simple/simple', 'simple', 'simple'],
    ['simple/relaxed', 'simple/relaxed', 'simple', 'relaxed'],
    ['relaxed/simple', 'relaxed/simple', 'relaxed', 'simple'],
    ['relaxed/relaxed', 'relaxed/relaxed', 'relaxed', 'relaxed'],
    ['in upper case', 'Relaxed/SIMPLE', 'relaxed', 'simple'],
  ])('reads c= %s', (_name, c, headerCanon, bodyCanon) => {
    const parsed = parseSignature(sig({ c }));
    expect(parsed.kind).toBe('ok');
    if (parsed.kind !== 'ok') return;
    expect([parsed.signature.headerCanon, parsed.signature.bodyCanon]).toEqual([headerCanon, bodyCanon]);
    expect(parsed.labels.canonicalization).toBe(`${headerCanon}/${bodyCanon}`);
  });

  it.each([
    ['rsa-sha256', 'rsa', 'sha256'],
    ['rsa-sha1', 'rsa', 'sha1'],
    ['ed25519-sha256', 'ed25519', 'sha256'],
    ['RSA-SHA256', 'rsa', 'sha256'],
  ])('reads a=%s', (a, keyType, hashAlgorithm) => {
    expect(ok(sig({ a }))).toMatchObject({ keyType, hashAlgorithm });
  });

  it.each([
    ['the default', null, '@example.com', 'example.com'],
    ['an address in d=', 'alice@example.com', 'alice@example.com', 'example.com'],
    ['an empty local part', '@example.com', '@example.com', 'example.com'],
    ['a subdomain of d=', 'bob@mail.Example.COM', 'bob@mail.Example.COM', 'mail.example.com'],
    ['a local part holding "@" and "="', 'a@b=c@example.com', 'a@b=c@example.com', 'example.com'],
  ])('reads i= as %s', (_name, i, agentId, agentDomain) => {
    const parsed = parseSignature(sig({ i }));
    expect(parsed.kind).toBe('ok');
    if (parsed.kind !== 'ok') return;
    expect([parsed.signature.agentId, parsed.signature.agentDomain, parsed.labels.identity]).toEqual([agentId, agentDomain, agentId]);
  });

  it.each([
    ['d= in upper case', { d: 'EXAMPLE.Com' }, { signingDomain: 'example.com' }],
    ['h= names lower-cased', { h: 'FROM:Subject:to' }, { signedHeaders: ['from', 'subject', 'to'] }],
    ['FWS around h= colons', { h: 'From \r\n\t: To :\r\n Subject' }, { signedHeaders: ['from', 'to', 'subject'] }],
    ['repeated h= names kept', { h: 'From:From:To:From' }, { signedHeaders: ['from', 'from', 'to', 'from'] }],
    ['h= names with punctuation', { h: 'From:X-A_b.c!#' }, { signedHeaders: ['from', 'x-a_b.c!#'] }],
    ['q=dns/txt', { q: 'dns/txt' }, {}],
    ['q= in upper case', { q: 'DNS/TXT' }, {}],
    ['q= listing dns/txt among others', { q: 'other/x:dns/txt' }, {}],
    ['l=0', { l: '0' }, { bodyLength: 0 }],
    ['l= of 15 digits', { l: '999999999999999' }, { bodyLength: 999_999_999_999_999 }],
    ['l= of 16 to 76 digits: longer than any body', { l: '9'.repeat(76) }, { bodyLength: Infinity }],
    ['l= with leading zeros', { l: '0042' }, { bodyLength: 42 }],
    ['t= alone', { t: '1700000000' }, { timestamp: 1_700_000_000 }],
    ['x= alone', { x: '1700000000' }, { expiration: 1_700_000_000 }],
    ['x= after t=', { t: '1700000000', x: '1700000001' }, { timestamp: 1_700_000_000, expiration: 1_700_000_001 }],
    ['an unknown tag, ignored', { foo: 'bar' }, {}],
    ['z=, ignored', { z: 'From:a=40example.com|To:b' }, {}],
  ])('reads %s', (_name, over, expected) => {
    expect(ok(sig(over))).toMatchObject(expected);
  });

  it('removes FWS inside b= and bh=', () => {
    const fold = (s: string) => `${s.slice(0, 10)} \r\n\t${s.slice(10, 30)}\r\n ${s.slice(30, 31)} ${s.slice(31)}`;
    const s = ok(sig({ b: fold(B), bh: fold(BH) }));
    expect(s.signature.equals(Buffer.alloc(128, 9))).toBe(true);
    expect(s.bodyHash.equals(Buffer.alloc(32, 7))).toBe(true);
    expect(s.headerB).toBe(B.slice(0, 8));
  });

  it('takes header.b from b= after FWS is removed', () => {
    expect(ok(sig({ b: `ab/\r\n\t+C dEFgh${B.slice(11)}` })).headerB).toBe('ab/+CdEF');
  });

  it('accepts the tags in any order, with FWS everywhere FWS may go', () => {
    const text = `\r\n\tb = ${B} ;\r\n\th\r\n\t=\r\n\tFrom ; s = s1 ; d = example.com ; a = rsa-sha256 ; bh = ${BH} ; v = 1 ;`;
    expect(ok(text)).toMatchObject({ selector: 's1', signingDomain: 'example.com', signedHeaders: ['from'] });
  });

  it('reads an h= text it has met before alike, also after hundreds of other h= texts', () => {
    // Valid h= lists are kept by their text (a signer repeats its h=): the kept answer must be the answer.
    const first = ok(sig({ h: 'From:\r\n\tSUBJECT:To' })).signedHeaders;
    expect(first).toEqual(['from', 'subject', 'to']);
    for (let i = 0; i < 600; i++) expect(ok(sig({ h: `From:X-${i}` })).signedHeaders).toEqual(['from', `x-${i}`]);
    for (let i = 0; i < 600; i += 37) expect(ok(sig({ h: `From:X-${i}` })).signedHeaders).toEqual(['from', `x-${i}`]);
    expect(ok(sig({ h: 'From:\r\n\tSUBJECT:To' })).signedHeaders).toEqual(['from', 'subject', 'to']);
    for (let round = 0; round < 2; round++) {
      expect(parseSignature(sig({ h: 'From::To' }))).toMatchObject({ kind: 'error', reason: 'bad_tag_value', detail: 'bad field name in h=: ' });
      const long = Array(400).fill('Subject').join(':');
      expect(ok(sig({ h: long })).signedHeaders).toHaveLength(400);
    }
  });

  it(`accepts h= with exactly ${MAX_SIGNED_HEADERS} names`, () => {
    expect(ok(sig({ h: Array(MAX_SIGNED_HEADERS).fill('From').join(':') })).signedHeaders).toHaveLength(MAX_SIGNED_HEADERS);
  });
});

describe('DKIM-Signature reasons', () => {
  it.each([
    ...(['v', 'a', 'b', 'bh', 'd', 'h', 's'] as const).map((tag) => [`no ${tag}=`, { [tag]: null }, 'missing_tag'] as const),
    ['a duplicated tag', { s: 's1; s=s2' }, 'duplicate_tag'],
    ['a segment without "="', { s: 's1; junk' }, 'bad_tag_syntax'],
    ['a tag name starting with a digit', { s: 's1; 9x=1' }, 'bad_tag_syntax'],
    ['v=2', { v: '2' }, 'bad_version'],
    ['v=1.0', { v: '1.0' }, 'bad_version'],
    ['v= empty', { v: '' }, 'bad_version'],
    ['a=rsa-md5', { a: 'rsa-md5' }, 'unknown_algorithm'],
    ['a=ed25519', { a: 'ed25519' }, 'unknown_algorithm'],
    ['a= empty', { a: '' }, 'unknown_algorithm'],
    ['c=fancy', { c: 'fancy' }, 'unknown_canonicalization'],
    ['c=relaxed/', { c: 'relaxed/' }, 'unknown_canonicalization'],
    ['c=/relaxed', { c: '/relaxed' }, 'unknown_canonicalization'],
    ['c=relaxed/relaxed/relaxed', { c: 'relaxed/relaxed/relaxed' }, 'unknown_canonicalization'],
    ['c= with FWS around "/"', { c: 'relaxed / simple' }, 'unknown_canonicalization'],
    ['d= with an underscore', { d: 'exa_mple.com' }, 'bad_tag_value'],
    ['d= with an empty label', { d: 'example..com' }, 'bad_tag_value'],
    ['d= starting with a hyphen', { d: '-example.com' }, 'bad_tag_value'],
    ['d= empty', { d: '' }, 'bad_tag_value'],
    ['d= of 254 characters', { d: `${'a.'.repeat(125)}abcd` }, 'bad_tag_value'],
    ['s= empty', { s: '' }, 'bad_tag_value'],
    ['s= with a space', { s: 's 1' }, 'bad_tag_value'],
    ['s= ending in a dot', { s: 's1.' }, 'bad_tag_value'],
    ['q=dns', { q: 'dns' }, 'bad_tag_value'],
    ['h= empty', { h: '' }, 'bad_tag_value'],
    ['h= of FWS only', { h: ' \r\n\t ' }, 'bad_tag_value'],
    ['h= with an empty name', { h: 'From::To' }, 'bad_tag_value'],
    ['h= with a trailing colon', { h: 'From:' }, 'bad_tag_value'],
    ['h= with a non-ASCII name', { h: 'From:Sübject' }, 'bad_tag_value'],
    [`h= with ${MAX_SIGNED_HEADERS + 1} names`, { h: Array(MAX_SIGNED_HEADERS + 1).fill('From').join(':') }, 'header_too_large'],
    ['i= without "@"', { i: 'example.com' }, 'bad_tag_value'],
    ['i= with no domain', { i: 'alice@' }, 'bad_tag_value'],
    ['i= with a bad domain', { i: 'alice@exa mple.com' }, 'bad_tag_value'],
    ['i= in another domain', { i: '@example.net' }, 'identity_outside_domain'],
    ['i= in a domain that merely ends like d=', { i: '@notexample.com' }, 'identity_outside_domain'],
    ['i= in a parent of d=', { d: 'mail.example.com', i: '@example.com' }, 'identity_outside_domain'],
    ['l= empty', { l: '' }, 'bad_tag_value'],
    ['l= negative', { l: '-1' }, 'bad_tag_value'],
    ['l= with a fraction', { l: '1.5' }, 'bad_tag_value'],
    ['l= in hexadecimal', { l: '0x10' }, 'bad_tag_value'],
    ['l= with interior FWS', { l: '1 0' }, 'bad_tag_value'],
    ['l= of 77 digits (RFC 6376: at most 76)', { l: '1'.repeat(77) }, 'bad_tag_value'],
    ['t= of 16 digits', { t: '1000000000000000' }, 'bad_tag_value'],
    ['t= negative', { t: '-5' }, 'bad_tag_value'],
    ['x= of 16 digits', { x: '1000000000000000' }, 'bad_tag_value'],
    ['x= equal to t=', { t: '1700000000', x: '1700000000' }, 'bad_tag_value'],
    ['x= before t=', { t: '1700000000', x: '1699999999' }, 'bad_tag_value'],
    ['b= empty', { b: '' }, 'bad_base64'],
    ['b= with a bad character', { b: 'AAAA!AAA' }, 'bad_base64'],
    ['b= with padding in the middle', { b: 'AA==AAAA' }, 'bad_base64'],
    ['b= of a length that base64 cannot have', { b: 'AAAAA' }, 'bad_base64'],
    ['bh= with a bad character', { bh: 'AA*A' }, 'bad_base64'],
    ['bh= empty', { bh: '' }, 'bad_base64'],
  ] as const)('reports %s as %s', (_name, over, reason) => {
    const parsed = parseSignature(sig(over as Record<string, string | null>));
    expect(parsed.kind === 'error' ? parsed.reason : 'ok').toBe(reason);
    expect(RESULT_BY_REASON[reason]).toBe('neutral');
  });

  it(`refuses a field over ${MAX_SIGNATURE_FIELD_BYTES} bytes before parsing it`, () => {
    const parsed = parseSignature(sig({ n: 'x'.repeat(MAX_SIGNATURE_FIELD_BYTES) }));
    expect(parsed).toMatchObject({ kind: 'error', reason: 'header_too_large' });
  });

  it('checks required tags before the version, and the version before the algorithm', () => {
    expect(parseSignature(sig({ v: '2', s: null }))).toMatchObject({ reason: 'missing_tag' });
    expect(parseSignature(sig({ v: '2', a: 'md5' }))).toMatchObject({ reason: 'bad_version' });
  });

  it('keeps the labels a broken signature claims, and only valid ones', () => {
    const parsed = parseSignature(sig({ v: '2', d: 'Example.COM', s: 'sel', a: 'ED25519-SHA256' }));
    expect(parsed).toMatchObject({
      kind: 'error',
      reason: 'bad_version',
      labels: { domain: 'example.com', selector: 'sel', algorithm: 'ed25519-sha256', headerB: B.slice(0, 8) },
    });
    const bad = parseSignature(sig({ v: '2', d: 'bad_domain', s: 'bad sel', a: 'x' }));
    expect(bad).toMatchObject({ kind: 'error', labels: { domain: null, selector: null, algorithm: null } });
  });

  it('reports i= as the identity label even when it is outside d=', () => {
    expect(parseSignature(sig({ i: 'eve@example.net' }))).toMatchObject({
      reason: 'identity_outside_domain',
      labels: { identity: 'eve@example.net' },
    });
  });

  it('makes untrusted text printable in the detail', () => {
    const parsed = parseSignature(sig({ v: '2\x00\x1b[31m\xff' }));
    expect(parsed.kind === 'error' && parsed.detail).toMatch(/^[\x20-\x7e…]*$/);
  });
});
