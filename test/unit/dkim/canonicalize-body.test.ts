import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createBodyCanonicalizer, WASM_MIN_BYTES } from '../../../src/dkim/canonicalize-body.js';
import { canonicalizeRelaxedLines, findFirstBadByte, relaxedFields } from '../../../src/dkim/wasm/body-scan.js';
import { WASM_BASE64 } from '../../../src/dkim/wasm/body-scan-wasm.js';
// @ts-expect-error: a plain .mjs build script without types
import { compileWat } from '../../../scripts/build-wasm.mjs';
import { referenceRelaxedBody, referenceSimpleBody } from '../../helpers/reference-canon.js';

function canon(kind: 'simple' | 'relaxed', body: string, cuts: number[] = []): string {
  const parts: Buffer[] = [];
  const c = createBodyCanonicalizer(kind, (b) => parts.push(Buffer.from(b)));
  const buf = Buffer.from(body, 'latin1');
  let prev = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    const at = Math.min(cut, buf.length);
    c.write(buf.subarray(prev, at));
    prev = at;
  }
  c.write(buf.subarray(prev));
  c.end();
  return Buffer.concat(parts).toString('latin1');
}

describe('relaxed body canonicalization', () => {
  it.each([
    ['an empty body', '', ''],
    ['a CRLF-only body', '\r\n', ''],
    ['several empty lines', '\r\n\r\n\r\n', ''],
    ['trailing whitespace on lines', 'a \r\nb\t\r\n', 'a\r\nb\r\n'],
    ['whitespace runs inside a line', 'a  b\t\tc \t d\r\n', 'a b c d\r\n'],
    ['leading whitespace', '  a\r\n\tb\r\n', ' a\r\n b\r\n'],
    ['empty lines at the end', 'a\r\n\r\n \r\n\t\r\n', 'a\r\n'],
    ['empty lines in the middle', 'a\r\n\r\n\r\nb\r\n', 'a\r\n\r\n\r\nb\r\n'],
    ['whitespace-only lines in the middle', 'a\r\n \r\n\t\r\nb\r\n', 'a\r\n\r\n\r\nb\r\n'],
    ['a last line without CRLF', 'a\r\nb', 'a\r\nb\r\n'],
    ['a body of whitespace only', ' \t \t ', ''],
    ['a bare CR inside a line', 'a\rb \r\n', 'a\rb\r\n'],
    ['a bare LF inside a line', 'a\nb\r\n', 'a\nb\r\n'],
    ['a trailing bare CR', 'a\r', 'a\r\r\n'],
  ])('handles %s', (_name, input, expected) => {
    expect(canon('relaxed', input)).toBe(expected);
  });
});

describe('simple body canonicalization', () => {
  it.each([
    ['an empty body', '', '\r\n'],
    ['a CRLF-only body', '\r\n', '\r\n'],
    ['several empty lines', '\r\n\r\n\r\n', '\r\n'],
    ['trailing whitespace kept', 'a \r\n', 'a \r\n'],
    ['empty lines at the end', 'a\r\n\r\n\r\n', 'a\r\n'],
    ['whitespace lines at the end kept', 'a\r\n \r\n\r\n', 'a\r\n \r\n'],
    ['a last line without CRLF', 'a\r\nb', 'a\r\nb\r\n'],
    ['a trailing bare CR', 'a\r', 'a\r\r\n'],
  ])('handles %s', (_name, input, expected) => {
    expect(canon('simple', input)).toBe(expected);
  });
});

// Bodies built from the characters that matter, so that every edge is hit often.
const bodyArb = fc
  .array(fc.constantFrom('a', 'b', ' ', '\t', '\r\n', '\r\n', '\r\n', '\r', '\n', 'xyz ', '  '), { maxLength: 60 })
  .map((parts) => parts.join(''));
const cutsArb = fc.array(fc.nat({ max: 200 }), { maxLength: 6 });

describe('streaming canonicalization', () => {
  it('relaxed equals the reference for any body cut into any chunks', () => {
    fc.assert(
      fc.property(bodyArb, cutsArb, (body, cuts) => {
        expect(canon('relaxed', body, cuts)).toBe(referenceRelaxedBody(body));
      }),
      { numRuns: 3000 },
    );
  });

  it('simple equals the reference for any body cut into any chunks', () => {
    fc.assert(
      fc.property(bodyArb, cutsArb, (body, cuts) => {
        expect(canon('simple', body, cuts)).toBe(referenceSimpleBody(body));
      }),
      { numRuns: 3000 },
    );
  });

  // Bodies long enough for the WebAssembly path: whole runs of lines of at least WASM_MIN_BYTES.
  const longBodyArb = fc
    .array(fc.constantFrom('word ', 'a', ' ', '  ', '\t', '\r\n', '\r\n', ' \r\n', '\t\r\n', '\r', '\n', 'x'.repeat(40), '0123456789abcdef'), {
      minLength: 200,
      maxLength: 900,
    })
    .map((parts) => parts.join(''));

  it('relaxed equals the reference on long bodies that take the WebAssembly path', () => {
    fc.assert(
      fc.property(longBodyArb, fc.array(fc.nat({ max: 8000 }), { maxLength: 3 }), (body, cuts) => {
        expect(canon('relaxed', body, cuts)).toBe(referenceRelaxedBody(body));
      }),
      { numRuns: 1000 },
    );
  });

  // Long runs of WSP-free lines (base64 attachments) around short runs with WSP, bare CR and LF: the
  // slices with SP whose clean edges are trimmed off before the scan, and the HT that must stop that.
  const cleanRunArb = fc.nat({ max: 12000 }).map((n) => 'QUJDREVGR0hJSktMTU5PUFFS\r\n'.repeat(Math.ceil(n / 26)));
  const dirtyRunArb = fc
    .array(fc.constantFrom('a b', '  ', '\t', ' \r\n', '\r\n', ' lead\r\n', 'x\ty', '\r', '\n', 'line  two \r\n', 'QQ\tQQ\r\n'), { maxLength: 12 })
    .map((parts) => parts.join(''));
  // Dirty first: a body (or a chunk) may begin with a line that begins with SP.
  const mimeLikeBodyArb = fc.array(fc.tuple(dirtyRunArb, cleanRunArb), { minLength: 1, maxLength: 6 }).map((runs) => runs.flat().join(''));

  it('relaxed equals the reference on long clean runs around short runs with whitespace', () => {
    fc.assert(
      fc.property(mimeLikeBodyArb, fc.array(fc.nat({ max: 80000 }), { maxLength: 3 }), (body, cuts) => {
        expect(canon('relaxed', body, cuts)).toBe(referenceRelaxedBody(body));
      }),
      { numRuns: 300 },
    );
  });

  it('the WebAssembly scan canonicalizes whole lines exactly like the reference, at every alignment', () => {
    // The last four put a control byte right before SP (the scan takes such a pair as a candidate and must copy it unchanged).
    const lines = ['a  b \r\n', '\t\tx\r\n', ' \r\n', '\r\n', 'plain line without anything\r\n', 'x \ty\r\n', 'bare\rcr \r\n',
      ' indented line\r\n', 'bare\r x\r\n', 'ctl\x01 y\x1f  z\r\n', '\x00 \x08 \x0b\t\r\n'];
    for (let offset = 0; offset < 32; offset++) {
      const body = 'p'.repeat(offset) + '\r\n' + lines.join('').repeat(50);
      const out = canonicalizeRelaxedLines(Buffer.from(body, 'latin1'), 0, body.length).toString('latin1');
      const expected = body.split('\r\n').slice(0, -1).map((l) => l.replace(/[ \t]+/g, ' ').replace(/ $/, '') + '\r\n').join('');
      expect(out).toBe(expected);
    }
    expect(WASM_MIN_BYTES).toBeGreaterThan(0);
  });

  it('finds the first NUL, bare CR or bare LF exactly like a byte loop, at every alignment and edge', () => {
    const reference = (s: string, before: number, after: number) => {
      for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        const prev = i === 0 ? before : s.charCodeAt(i - 1);
        const next = i === s.length - 1 ? after : s.charCodeAt(i + 1);
        if (c === 0 || (c === 10 && prev !== 13) || (c === 13 && next !== 10)) return i;
      }
      return -1;
    };
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('ab', 'line of text', '\r\n', '\r\n', '\r', '\n', '\0', 'x'.repeat(30)), { maxLength: 40 }).map((p) => p.join('')),
        fc.constantFrom(0, 13),
        fc.constantFrom(0, 10),
        (s, before, after) => {
          const buf = Buffer.from(`zz${s}zz`, 'latin1');
          expect(findFirstBadByte(buf, 2, 2 + s.length, before, after)).toBe(reference(s, before, after));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('scans the same bytes wherever the source lies within a memory page (the copy follows its page offset)', () => {
    // Whole lines with every kind of edit, then a bare LF and a NUL for the line-ending scan.
    const lines = Buffer.from('a  b \r\n\t\tx\r\n \r\n\r\nplain\r\nx \ty\r\n'.repeat(40), 'latin1');
    const dirty = Buffer.concat([lines, Buffer.from('ok\nno\0', 'latin1')]);
    const fieldsText = Buffer.from('From:  Alice \r\nSubject: a\r\n \tb  \r\n', 'latin1');
    const fields = [{ start: 0, end: 15 }, { start: 15, end: fieldsText.length }];
    const sigField = Buffer.from('DKIM-Signature: v=1;  b=abc \r\n', 'latin1');
    const last = { buf: sigField, start: 0, end: sigField.length, skipFrom: 24, skipTo: 27 };
    const at = (src: Buffer, offset: number) => {
      const holder = Buffer.alloc(offset + src.length + 16, 0x7a);
      src.copy(holder, offset);
      return holder;
    };
    const expectedLines = canonicalizeRelaxedLines(lines, 0, lines.length).toString('latin1');
    const expectedBad = findFirstBadByte(dirty, 0, dirty.length, 10, 10);
    const expectedFields = relaxedFields(fieldsText, 0, fieldsText.length, fields, last).toString('latin1');
    expect(expectedBad).toBe(lines.length + 2);
    expect(expectedFields).toBe('from:Alice\r\nsubject:a b\r\ndkim-signature:v=1; b=\r\n');
    // Every page offset, and the last ones again where the copy wraps into the next page.
    for (let offset = 0; offset < 4096 + 64; offset += offset < 4000 ? 7 : 1) {
      const src = at(lines, offset);
      expect(canonicalizeRelaxedLines(src, offset, offset + lines.length).toString('latin1')).toBe(expectedLines);
      expect(findFirstBadByte(at(dirty, offset), offset, offset + dirty.length, 10, 10)).toBe(expectedBad);
      const shifted = fields.map((f) => ({ start: f.start + offset, end: f.end + offset }));
      expect(relaxedFields(at(fieldsText, offset), offset, offset + fieldsText.length, shifted, last).toString('latin1')).toBe(expectedFields);
    }
  });

  it('ships WebAssembly bytes that match src/dkim/wasm/body-scan.wat (run scripts/build-wasm.mjs after editing it)', async () => {
    const bytes: Buffer = await compileWat('src/dkim/wasm/body-scan.wat');
    expect(bytes.toString('base64')).toBe(WASM_BASE64);
  });

  it('canonicalizes a hostile body of 5 MB of whitespace in linear time', () => {
    const body = Buffer.alloc(5 * 1024 * 1024, ' \t');
    const started = process.hrtime.bigint();
    let out = 0;
    const c = createBodyCanonicalizer('relaxed', (b) => (out += b.length));
    for (let i = 0; i < body.length; i += 65536) c.write(body.subarray(i, i + 65536));
    c.end();
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    expect(out).toBe(0);
    // Generous bound: a quadratic algorithm would take minutes here.
    expect(ms).toBeLessThan(5000);
  });
});
