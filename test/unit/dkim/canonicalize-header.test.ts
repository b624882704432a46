import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  canonicalizeHeader,
  canonicalizeHeaderRelaxed,
  canonicalizeHeaderSimple,
} from '../../../src/dkim/canonicalize-header.js';
import { frameMessage } from '../../../src/mail/header-fields.js';
import { referenceRelaxedHeader } from '../../helpers/reference-canon.js';

/** Fields are written as latin1 text so that every byte 0x00-0xFF is one character. */
const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');
/** UTF-8 bytes of `text`, as latin1 characters. */
const utf8 = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');
const relaxed = (field: string): string => {
  const buf = bytes(field);
  return canonicalizeHeaderRelaxed(buf, 0, buf.length).toString('latin1');
};
const simple = (field: string): string => {
  const buf = bytes(field);
  return canonicalizeHeaderSimple(buf, 0, buf.length).toString('latin1');
};

describe('relaxed header canonicalization (RFC 6376 §3.4.2)', () => {
  it.each([
    ['lower-cases an upper-case name', 'SUBJECT: Hi\r\n', 'subject:Hi\r\n'],
    ['lower-cases a mixed-case name', 'sUbJeCt: Hi\r\n', 'subject:Hi\r\n'],
    ['keeps the case of the value', 'Subject: HeLLo WoRLD\r\n', 'subject:HeLLo WoRLD\r\n'],
    ['drops a space before the colon', 'Subject : Hi\r\n', 'subject:Hi\r\n'],
    ['drops a run of WSP before the colon', 'Subject \t \t: Hi\r\n', 'subject:Hi\r\n'],
    ['drops a tab after the colon', 'Subject:\tHi\r\n', 'subject:Hi\r\n'],
    ['drops a run of WSP after the colon', 'Subject: \t  Hi\r\n', 'subject:Hi\r\n'],
    ['keeps a value with no WSP after the colon', 'Subject:Hi\r\n', 'subject:Hi\r\n'],
    ['unfolds CRLF + SP', 'Subject: a\r\n b\r\n', 'subject:a b\r\n'],
    ['unfolds CRLF + TAB', 'Subject: a\r\n\tb\r\n', 'subject:a b\r\n'],
    ['unfolds several folds', 'Subject: a\r\n b\r\n\tc\r\n  d\r\n', 'subject:a b c d\r\n'],
    ['unfolds a fold surrounded by WSP into one SP', 'Subject: a \t\r\n \t b\r\n', 'subject:a b\r\n'],
    ['unfolds a fold right after the colon', 'Subject:\r\n a\r\n', 'subject:a\r\n'],
    ['reduces a run of spaces to one SP', 'Subject: a     b\r\n', 'subject:a b\r\n'],
    ['reduces a run of tabs and spaces to one SP', 'Subject: a \t\t b\r\n', 'subject:a b\r\n'],
    ['turns a single tab into one SP', 'Subject: a\tb\r\n', 'subject:a b\r\n'],
    ['drops trailing WSP', 'Subject: a \t \r\n', 'subject:a\r\n'],
    ['drops a trailing fold that holds only WSP', 'Subject: a\r\n \t\r\n', 'subject:a\r\n'],
    ['canonicalizes an empty value', 'Subject:\r\n', 'subject:\r\n'],
    ['canonicalizes a value of WSP only to empty', 'Subject: \t \r\n', 'subject:\r\n'],
    ['canonicalizes a value of folds only to empty', 'Subject:\r\n \r\n\t\r\n', 'subject:\r\n'],
    ['keeps colons inside the value', 'Subject: re: a:b\r\n', 'subject:re: a:b\r\n'],
    // 0xA0 (NBSP in latin1, the second byte of many UTF-8 sequences) is not WSP: mailauth 4.13 got this wrong.
    ['keeps 0xA0 bytes: they are not whitespace', 'Subject: a\xa0\xa0b\xa0\r\n', 'subject:a\xa0\xa0b\xa0\r\n'],
    ['keeps 0xA0 next to WSP', 'Subject: \xa0 a  \xa0 \r\n', 'subject:\xa0 a \xa0\r\n'],
    ['keeps a value that is only 0xA0', 'Subject:\xa0\r\n', 'subject:\xa0\r\n'],
    ['keeps vertical tab and form feed: WSP is only SP and HTAB', 'Subject: a\x0b\x0cb\x0c\r\n', 'subject:a\x0b\x0cb\x0c\r\n'],
    ['keeps 8-bit bytes exactly', 'Subject: \x80\x85\xff\xfe \xc3\xa9\r\n', 'subject:\x80\x85\xff\xfe \xc3\xa9\r\n'],
    ['keeps UTF-8 bytes exactly', `Subject: ${utf8('Grüße  aus Köln \u{1F600}')}\r\n`, `subject:${utf8('Grüße aus Köln \u{1F600}')}\r\n`],
    ['lower-cases only ASCII letters of a name', 'X-\xc0\xc9: v\r\n', 'x-\xc0\xc9:v\r\n'],
    ['adds the CRLF to a field that lacks it (end of a header-only message)', 'Subject: a ', 'subject:a\r\n'],
  ])('%s', (_name, input, expected) => {
    expect(relaxed(input)).toBe(expected);
  });
});

describe('simple header canonicalization (RFC 6376 §3.4.1)', () => {
  it.each([
    ['keeps the case of the name', 'sUbJeCt: Hi\r\n'],
    ['keeps WSP before and after the colon', 'Subject \t:  \tHi\r\n'],
    ['keeps folds', 'Subject: a\r\n b\r\n\tc\r\n'],
    ['keeps runs of WSP and trailing WSP', 'Subject: a  \t b \t\r\n'],
    ['keeps an empty value', 'Subject:\r\n'],
    ['keeps 0xA0 and other 8-bit bytes', 'Subject: \xa0a\xa0 \x80\xff\r\n'],
    ['keeps UTF-8 bytes', `Subject: ${utf8('Grüße \u{1F600}')}\r\n`],
  ])('%s', (_name, input) => {
    expect(simple(input)).toBe(input);
  });

  it('adds the CRLF to a field that lacks it and changes nothing else', () => {
    expect(simple('Subject: a \t')).toBe('Subject: a \t\r\n');
  });

  it('returns the bytes of the field itself, not a copy, when nothing changes', () => {
    const buf = bytes('Subject: x\r\n');
    expect(canonicalizeHeaderSimple(buf, 0, buf.length).buffer).toBe(buf.buffer);
  });
});

describe('canonicalization of a field inside a larger buffer', () => {
  const buf = bytes('From: a@example.com\r\nSUBJECT :  a \r\n  b \r\nTo: c@example.com\r\n');
  const start = buf.indexOf('SUBJECT');
  const end = buf.indexOf('To:');

  it.each([
    ['relaxed', 'subject:a b\r\n'],
    ['simple', 'SUBJECT :  a \r\n  b \r\n'],
  ] as const)('%s reads only the range it is given', (canon, expected) => {
    expect(canonicalizeHeader(canon, buf, start, end).toString('latin1')).toBe(expected);
  });
});

// ftext (RFC 5322 §3.6.8): printable US-ASCII except ":".
const nameArb = fc
  .array(fc.integer({ min: 0x21, max: 0x7e }).filter((c) => c !== 0x3a), { minLength: 1, maxLength: 12 })
  .map((codes) => String.fromCharCode(...codes));
// Values from the bytes that matter: WSP, folds, 0xA0, 8-bit and UTF-8 bytes, colons, letters.
const valuePieceArb = fc.oneof(
  fc.constantFrom(' ', '\t', '  ', ' \t ', 'a', 'Bc', ':', '\xa0', '\r\n ', '\r\n\t', '\r\n \t'),
  fc.integer({ min: 0x80, max: 0xff }).map((b) => String.fromCharCode(b)),
  fc.integer({ min: 0x00, max: 0x7f }).filter((b) => b !== 0x0d && b !== 0x0a).map((b) => String.fromCharCode(b)),
  fc.string({ unit: 'binary', maxLength: 4 }).map((s) => Buffer.from(s.replace(/[\r\n]/g, ''), 'utf8').toString('latin1')),
);
const fieldArb = fc
  .tuple(nameArb, fc.constantFrom('', ' ', '\t', ' \t '), fc.array(valuePieceArb, { maxLength: 20 }))
  .map(([name, beforeColon, pieces]) => `${name}${beforeColon}:${pieces.join('')}\r\n`);

describe('relaxed header canonicalization against the reference', () => {
  it('equals referenceRelaxedHeader for any field', () => {
    fc.assert(
      fc.property(fieldArb, (field) => {
        expect(relaxed(field)).toBe(referenceRelaxedHeader(field));
      }),
      { numRuns: 2000 },
    );
  });

  it('equals the reference and simple keeps the bytes for every field framed from a header section', () => {
    fc.assert(
      fc.property(fc.array(fieldArb, { minLength: 1, maxLength: 8 }), (fields) => {
        const message = bytes(`${fields.join('')}\r\nbody\r\n`);
        const framed = frameMessage(message);
        expect(framed.fields).toHaveLength(fields.length);
        framed.fields.forEach((f, i) => {
          expect(canonicalizeHeader('relaxed', message, f.start, f.end).toString('latin1')).toBe(referenceRelaxedHeader(fields[i]!));
          expect(canonicalizeHeader('simple', message, f.start, f.end).toString('latin1')).toBe(fields[i]);
        });
      }),
      { numRuns: 500 },
    );
  });
});
