import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { canonicalizeHeader, relaxedInto, simpleInto } from '../../../src/dkim/canonicalize-header.js';
import { chooseSignedHeaders, parseHeaderList, selectSignedFields } from '../../../src/dkim/header-selection.js';
import { parseSignature, type ParsedSignature } from '../../../src/dkim/signature.js';
import { canonicalizeSignatureField, findBValue, headerHashInput } from '../../../src/dkim/signature-field.js';
import { frameMessage, type HeaderField } from '../../../src/mail/header-fields.js';
import { parseTagList } from '../../../src/dkim/tag-list.js';
import { referenceRelaxedHeader } from '../../helpers/reference-canon.js';

// The verify and sign hot paths compare name bytes in place, scan small inputs instead of indexing
// them, and canonicalize into one buffer. These tests hold them to the plain definitions.

const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');

/** The name as RFC 5322 frames it: the first line up to its first colon, trailing WSP dropped; '' without a colon. */
function referenceName(buf: Buffer, f: HeaderField): string {
  const text = buf.toString('latin1', f.start, f.end);
  const lineEnd = text.indexOf('\r\n') === -1 ? text.length : text.indexOf('\r\n');
  const colon = text.indexOf(':');
  return colon === -1 || colon > lineEnd ? '' : text.slice(0, colon).replace(/[ \t]+$/, '');
}

/** h= selection by lower-cased names, written the obvious way (RFC 6376 §5.4.2). */
function referenceSelect(fields: readonly HeaderField[], names: readonly string[]): (HeaderField | null)[] {
  const used = new Map<string, number>();
  return names.map((name) => {
    const n = used.get(name) ?? 0;
    used.set(name, n + 1);
    const matching = fields.filter((f) => f.lowerName !== '' && f.lowerName === name);
    return matching[matching.length - 1 - n] ?? null;
  });
}

const NAMES = ['From', 'from', 'FROM', 'To', 'x-a', 'X-A', 'Received', 'Subject', 'Fr\xd3m', 'DKIM-Signature'];
const lineArb = fc.oneof(
  fc.tuple(fc.constantFrom(...NAMES), fc.constantFrom(':', ' :', '\t:', ': '), fc.constantFrom('v', ' a\r\n b', '')).map(([n, c, v]) => `${n}${c}${v}\r\n`),
  fc.constantFrom('no colon here\r\n', ': empty name\r\n', ' continued\r\n'),
);
// h= names are ASCII (RFC 6376 ftext; parseSignature and parseHeaderList refuse others).
const namesArb = fc.array(fc.constantFrom('from', 'to', 'x-a', 'received', 'subject', 'cc', 'dkim-signature'), { maxLength: 12 });

/** A deterministic header of `n` fields (big enough to take the indexing paths). */
function bigHeader(n: number): Buffer {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(`${NAMES[(i * 7) % NAMES.length]}: ${i}\r\n`);
  return bytes(`${lines.join('')}\r\nbody\r\n`);
}

describe('header fields framed with names on demand', () => {
  it('gives every field its name, and hasName agrees with comparing lower-cased names', () => {
    fc.assert(
      fc.property(fc.array(lineArb, { maxLength: 12 }), fc.uint8Array({ maxLength: 40 }), (lines, junk) => {
        const buf = Buffer.concat([bytes(lines.join('')), Buffer.from(junk)]);
        const framed = frameMessage(buf);
        for (const f of framed.fields) {
          expect(f.name).toBe(referenceName(buf, f));
          expect(f.lowerName).toBe(f.name.toLowerCase());
          expect(buf.toString('latin1', f.start, f.nameEnd)).toBe(f.name);
          for (const name of ['from', 'x-a', 'dkim-signature', 'received', '']) {
            expect(f.hasName(name)).toBe(name !== '' && f.lowerName === name);
          }
        }
      }),
      { numRuns: 1000 },
    );
  });

  it.each([
    ['From: a\r\n', 'from', true],
    ['fROM \t: a\r\n', 'from', true],
    ['From: a\r\n', 'fro', false],
    ['Fromx: a\r\n', 'from', false],
    ['From a\r\n', 'from', false],
    [': a\r\n', '', false],
    ['Fr\xd3m: a\r\n', 'fr\xf3m', false], // only ASCII letters fold, as h= names are ASCII
  ])('hasName on %j for %j is %s', (line, name, expected) => {
    expect(frameMessage(bytes(`${line}\r\n`)).fields[0]!.hasName(name)).toBe(expected);
  });
});

describe('field selection, scanned or indexed', () => {
  it('selects what the reference selects, for small headers', () => {
    fc.assert(
      fc.property(fc.array(lineArb, { maxLength: 20 }), namesArb, (lines, names) => {
        const framed = frameMessage(bytes(`${lines.join('')}\r\nbody\r\n`));
        expect(selectSignedFields(framed.fields, names)).toEqual(referenceSelect(framed.fields, names));
      }),
      { numRuns: 1000 },
    );
  });

  it.each([[10], [400]])('selects what the reference selects in a header of %i fields', (n) => {
    const framed = frameMessage(bigHeader(n));
    const names = ['from', 'x-a', 'x-a', 'received', 'subject', 'to', 'cc', 'dkim-signature', 'from', 'from'];
    for (const list of [names, Array<string>(60).fill('x-a')]) {
      expect(selectSignedFields(framed.fields, list)).toEqual(referenceSelect(framed.fields, list));
    }
  });

  it.each([[10], [400]])('chooses the same h= from a headerlist in a header of %i fields', (n) => {
    const framed = frameMessage(bigHeader(n));
    const parsed = parseHeaderList('From:From:X-A+:Received*:Cc:Cc?:Subject:Subject:To+:Bcc*');
    if (parsed.kind !== 'ok') throw new Error(parsed.reason);
    const count = (name: string) => framed.fields.filter((f) => f.lowerName === name).length;
    const names = chooseSignedHeaders(framed.fields, parsed.entries);
    // Every instance of X-A, To and Received is signed; From and Subject once more than they appear (or twice).
    const times = (name: string) => names.filter((x) => x.toLowerCase() === name).length;
    expect(times('x-a')).toBe(count('x-a'));
    expect(times('to')).toBe(count('to'));
    expect(times('received')).toBe(Math.max(1, count('received')));
    expect(times('from')).toBe(2);
    expect(times('cc')).toBe(1);
    expect(times('bcc')).toBe(1);
  });
});

// DKIM-Signature-like fields: tag segments with FWS, b= anywhere (or missing, or twice), with or without the final CRLF.
const segmentArb = fc.oneof(
  fc.constantFrom('v=1', ' a=rsa-sha256', '\r\n\tbh=AbC=', ' d=example.com ', 'b=QUJD\r\n\tREVG', ' b =  xy z ', '\tb\r\n =Q', 'bb=1', ' x=b=1', '', ' '),
  fc.string({ unit: fc.constantFrom('a', 'b', '=', ' ', '\t', '\r\n ', 'Q'), maxLength: 10 }),
);
const signatureFieldArb = fc
  .tuple(fc.constantFrom('DKIM-Signature:', 'dkim-signature :'), fc.array(segmentArb, { maxLength: 8 }), fc.boolean())
  .map(([name, segments, crlf]) => `${name}${segments.join(';')}${crlf ? '\r\n' : ''}`);

/** RFC 6376 §3.7 written the obvious way: the value of the first b= tag removed, whitespace and all. */
function referenceEmptyB(field: string): string {
  const colon = field.indexOf(':');
  const crlf = field.endsWith('\r\n') ? '\r\n' : '';
  const segments = field.slice(colon + 1, field.length - crlf.length).split(';');
  const i = segments.findIndex((s) => s.includes('=') && s.slice(0, s.indexOf('=')).replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '') === 'b');
  if (i !== -1) segments[i] = segments[i]!.slice(0, segments[i]!.indexOf('=') + 1);
  return field.slice(0, colon + 1) + segments.join(';') + crlf;
}

function referenceSignatureField(canon: 'simple' | 'relaxed', field: string): string {
  const emptied = referenceEmptyB(field);
  const canonical = canon === 'relaxed' ? referenceRelaxedHeader(emptied) : emptied.endsWith('\r\n') ? emptied : `${emptied}\r\n`;
  return canonical.slice(0, -2);
}

describe('the header hash input in one buffer', () => {
  it.each(['simple', 'relaxed'] as const)('canonicalizes the signature field (%s) as emptying b= and then canonicalizing does', (canon) => {
    fc.assert(
      fc.property(signatureFieldArb, (field) => {
        const buf = bytes(field);
        expect(canonicalizeSignatureField(canon, buf, buf.indexOf(0x3a)).toString('latin1')).toBe(referenceSignatureField(canon, field));
      }),
      { numRuns: 2000 },
    );
  });

  it.each(['simple', 'relaxed'] as const)('joins the selected fields and the signature field (%s)', (canon) => {
    fc.assert(
      fc.property(fc.array(lineArb, { maxLength: 10 }), namesArb, signatureFieldArb, (lines, names, field) => {
        const message = bytes(`${lines.join('')}\r\nbody\r\n`);
        const selected = selectSignedFields(frameMessage(message).fields, names);
        const sig = bytes(field);
        const expected =
          selected.map((f) => (f ? canonicalizeHeader(canon, message, f.start, f.end).toString('latin1') : '')).join('') +
          referenceSignatureField(canon, field);
        expect(headerHashInput(canon, message, selected, sig, sig.indexOf(0x3a)).toString('latin1')).toBe(expected);
      }),
      { numRuns: 500 },
    );
  });

  it('canonicalizes a field with a range left out as it canonicalizes the field without those bytes', () => {
    const fieldArb = fc
      .tuple(fc.constantFrom('Subject', 'X-A '), fc.string({ unit: fc.constantFrom('a', ' ', '\t', '\r\n ', ':', '\x0b'), maxLength: 30 }), fc.nat(), fc.nat())
      .map(([name, value, p, q]) => {
        const field = `${name}:${value}\r\n`;
        const colon = field.indexOf(':');
        const from = colon + 1 + (p % (field.length - colon));
        return { field, from, to: from + (q % (field.length - from + 1)) };
      });
    fc.assert(
      fc.property(fieldArb, ({ field, from, to }) => {
        const buf = bytes(field);
        const without = field.slice(0, from) + field.slice(to);
        const out = Buffer.alloc(field.length + 2);
        expect(out.toString('latin1', 0, relaxedInto(buf, 0, buf.length, from, to, out, 0))).toBe(referenceRelaxedHeader(without));
        const simple = without.endsWith('\r\n') ? without : `${without}\r\n`;
        expect(out.toString('latin1', 0, simpleInto(buf, 0, buf.length, from, to, out, 0))).toBe(simple);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('signature algorithms', () => {
  // A lookup in a plain object would find these on Object.prototype and accept them with no key type.
  it.each(['constructor', 'toString', '__proto__', 'hasOwnProperty'])('refuses a=%s as an unknown algorithm', (a) => {
    const parsed = parseSignature(` v=1; a=${a}; d=example.com; s=s1; h=From; bh=${'A'.repeat(44)}; b=${'A'.repeat(172)}`);
    expect(parsed).toMatchObject({ kind: 'error', reason: 'unknown_algorithm', labels: { algorithm: null } });
  });
});

describe('the relaxed header hash input in WebAssembly', () => {
  // Long runs of visible bytes take the 16-byte block path; the other units break blocks at every offset.
  const valueArb = fc.string({
    unit: fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom('abcdefghijklmnopq', 'XYZ=;b', 'Q', '\xa0\xff', ':') },
      { weight: 3, arbitrary: fc.constantFrom(' ', '  ', '\t', '\r\n ', '\r\n\t', '\x0b', '\x00', '\r', '\n', ' \r\n') },
    ),
    maxLength: 40,
  });
  const longLineArb = fc
    .tuple(fc.constantFrom('Subject', 'X-Long ', 'FROM', 'To\t'), valueArb)
    .map(([name, value]) => `${name}:${value}\r\n`);
  const longSignatureArb = fc
    .tuple(valueArb, valueArb, valueArb)
    .map(([a, b, c]) => `DKIM-Signature: v=1; a=${a}; b=${b}; h=${c}\r\n`);

  it('matches the byte-loop canonicalization field by field, for long and irregular values', () => {
    fc.assert(
      fc.property(fc.array(longLineArb, { maxLength: 8 }), longSignatureArb, fc.boolean(), (lines, field, withB) => {
        const message = bytes(`${lines.join('')}\r\nbody\r\n`);
        const fields = frameMessage(message).fields;
        const names = [...new Set(fields.map((f) => f.lowerName).filter((n) => n !== ''))];
        const selected = selectSignedFields(fields, names);
        const sigText = withB ? field : field.replace('b=', 'x=');
        const sig = bytes(sigText);
        const expected =
          selected.map((f) => (f ? canonicalizeHeader('relaxed', message, f.start, f.end).toString('latin1') : '')).join('') +
          canonicalizeSignatureField('relaxed', sig, sig.indexOf(0x3a)).toString('latin1');
        expect(headerHashInput('relaxed', message, selected, sig, sig.indexOf(0x3a)).toString('latin1')).toBe(expected);
        // and the byte loop is RFC 6376 §3.4.2 where the fields are well formed (CR and LF only in folds)
        if (lines.every((l) => !/\r(?!\n[ \t])|(?<!\r)\n|\r\n(?![ \t])/.test(l.slice(0, -2)))) {
          const reference =
            selected.map((f) => (f ? referenceRelaxedHeader(message.toString('latin1', f.start, f.end)) : '')).join('') +
            referenceSignatureField('relaxed', sigText);
          expect(expected).toBe(reference);
        }
      }),
      { numRuns: 3000 },
    );
  });
});

// parseSignature reads the tags it uses into slots (no Map of names). The plain reading: parseTagList's
// Map, then the tag values by name.
describe('DKIM-Signature tags read into slots', () => {
  const BH = Buffer.alloc(32, 7).toString('base64');
  const B = Buffer.alloc(64, 9).toString('base64');
  // Valid tags, their neighbours in name (case, length, prefixes), unknown tags, and broken segments.
  const REQUIRED_TAGS = ['v=1', 'a=rsa-sha256', 'd=example.com', 's=s1', 'h=From:To', `bh=${BH}`, `b=${B}`];
  const tagArb = fc.oneof(
    fc.constantFrom(...REQUIRED_TAGS, 'c=relaxed/simple', 't=1700000000', 'x=1800000000', 'l=10', 'i=@example.com', 'q=dns/txt'),
    fc.constantFrom('z=From:a', 'V=2', 'B=x', 'BH=x', 'bhx=1', 'b_=1', 'hh=1', 'v=2', 'a=rsa-sha1', `b=${B.slice(1)}`, 'h=To', 'zz=1', 'z=2'),
    fc.constantFrom(' ', '', '9=1', 'junk', 'b'),
  );
  // Most of the required tags (so that most lists get past the missing-tag check), extras, in any order.
  const listArb = fc
    .tuple(fc.subarray(REQUIRED_TAGS, { minLength: 6 }), fc.array(tagArb, { maxLength: 6 }))
    .chain(([required, extras]) => fc.shuffledSubarray([...required, ...extras], { minLength: required.length + extras.length }))
    .chain((tags) => fc.array(fc.constantFrom('', ' ', '\r\n\t'), { minLength: tags.length, maxLength: tags.length }).map((fws) => tags.map((t, i) => `${fws[i]}${t}`).join(';')));

  /** What parseSignature must say about a value, from parseTagList: its tag error, or the values it reads. */
  function expected(value: string): { reason: string; detail: string } | { tags: Map<string, string> } {
    const parsed = parseTagList(value);
    return parsed.kind === 'error' ? { reason: parsed.reason, detail: parsed.detail } : { tags: parsed.tags };
  }

  it('reports tag-list errors as parseTagList does, and reads the values parseTagList finds', () => {
    fc.assert(
      fc.property(listArb, (value) => {
        const want = expected(value);
        const got = parseSignature(value);
        if ('reason' in want) {
          expect(got).toMatchObject({ kind: 'error', reason: want.reason, detail: want.detail });
          return;
        }
        const tags = want.tags;
        const required = ['v', 'a', 'b', 'bh', 'd', 'h', 's'].find((t) => !tags.has(t));
        if (required !== undefined) {
          expect(got).toMatchObject({ kind: 'error', reason: 'missing_tag', detail: `signature has no ${required}= tag` });
          return;
        }
        // Every value the generator writes is valid but v=2.
        if (tags.get('v') !== '1') {
          expect(got).toMatchObject({ kind: 'error', reason: 'bad_version' });
          return;
        }
        if (got.kind === 'error') throw new Error(`expected ok, got ${got.reason}: ${got.detail}`);
        const sig: ParsedSignature = got.signature;
        expect(sig.signingDomain).toBe(tags.get('d'));
        expect(sig.selector).toBe(tags.get('s'));
        expect(sig.signedHeaders).toEqual(tags.get('h')!.toLowerCase().split(':'));
        const decoded = (tag: string) => Buffer.from(tags.get(tag)!.replace(/[ \t\r\n]/g, ''), 'base64').toString('hex');
        expect(sig.signature.toString('hex')).toBe(decoded('b'));
        expect(sig.bodyHash.toString('hex')).toBe(decoded('bh'));
        expect(sig.algorithm).toBe(tags.get('a'));
        expect(`${sig.headerCanon}/${sig.bodyCanon}`).toBe(tags.get('c') ?? 'simple/simple');
        expect(sig.timestamp).toBe(tags.has('t') ? Number(tags.get('t')) : null);
        expect(sig.expiration).toBe(tags.has('x') ? Number(tags.get('x')) : null);
        expect(sig.bodyLength).toBe(tags.has('l') ? Number(tags.get('l')) : null);
        expect(sig.agentId).toBe(tags.get('i') ?? '@example.com');
      }),
      { numRuns: 3000 },
    );
  });

  it.each([
    ['bh= twice', `v=1; a=rsa-sha256; d=example.com; s=s1; h=From; bh=${BH}; b=${B}; bh=${BH}`, 'duplicated tag bh='],
    ['an unknown tag twice', `v=1; a=rsa-sha256; d=example.com; s=s1; h=From; bh=${BH}; b=${B}; zz=1; zz=2`, 'duplicated tag zz='],
  ])('refuses %s as a duplicate', (_name, value, detail) => {
    expect(parseSignature(value)).toMatchObject({ kind: 'error', reason: 'duplicate_tag', detail });
  });

  it('gives the b= value where findBValue finds it in the field, FWS included', () => {
    const fwsArb = fc.constantFrom('', ' ', '\t', '\r\n\t', ' \r\n ');
    const fieldArb = fc
      .tuple(listArb, fwsArb, fwsArb, fwsArb, fwsArb, fc.constantFrom(B, `${B.slice(0, 20)}\r\n\t${B.slice(20)}`), fc.nat(), fc.boolean())
      .map(([list, f1, f2, f3, f4, value, at, crlf]) => {
        // The list with its b= tag written with FWS around name and value, or added where there is none.
        const segments = list.split(';').filter((seg) => seg.trim().split('=')[0] !== 'b');
        segments.splice(at % (segments.length + 1), 0, `${f1}b${f2}=${f3}${value}${f4}`);
        return `DKIM-Signature:${segments.join(';')}${crlf ? '\r\n' : ''}`;
      });
    let checked = 0;
    fc.assert(
      fc.property(fieldArb, (field) => {
        const buf = bytes(field);
        const colon = buf.indexOf(0x3a);
        const valueEnd = field.endsWith('\r\n') ? buf.length - 2 : buf.length;
        const parsed = parseSignature(field.slice(colon + 1, valueEnd));
        if (parsed.kind !== 'ok') return;
        checked++;
        const [from, to] = parsed.signature.bValue;
        expect([colon + 1 + from, colon + 1 + to]).toEqual(findBValue(buf, colon));
      }),
      { numRuns: 2000 },
    );
    expect(checked).toBeGreaterThan(200);
  });

  it('takes tag names case-sensitively: V= and BH= are other tags, not duplicates', () => {
    const parsed = parseSignature(`v=1; V=2; a=rsa-sha256; d=example.com; s=s1; h=From; bh=${BH}; BH=x; b=${B}; B=y`);
    expect(parsed).toMatchObject({ kind: 'ok' });
  });
});
