// Relaxed body canonicalization at the edges of the 64 KB slices of the WebAssembly path and of the
// chunks a body arrives in: every case is compared with the naive reference, whole and cut into chunks.
import { describe, expect, it } from 'vitest';
import { createBodyCanonicalizer, WASM_SLICE_BYTES } from '../../../src/dkim/canonicalize-body.js';
import { referenceRelaxedBody } from '../../helpers/reference-canon.js';

const S = WASM_SLICE_BYTES;

function canon(body: string, cuts: number[] = []): string {
  const parts: Buffer[] = [];
  const c = createBodyCanonicalizer('relaxed', (b) => parts.push(Buffer.from(b)));
  const buf = Buffer.from(body, 'latin1');
  let prev = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    const at = Math.min(Math.max(cut, prev), buf.length);
    c.write(buf.subarray(prev, at));
    prev = at;
  }
  c.write(buf.subarray(prev));
  c.end();
  return Buffer.concat(parts).toString('latin1');
}

/** Exactly `n` bytes (n >= 3) of canonical text lines: words with single spaces, CRLF-terminated. */
function textLines(n: number): string {
  let out = '';
  while (n - out.length > 80) out += 'the quick brown fox jumps over the lazy dog and runs on to the next field\r\n';
  const rest = n - out.length;
  return out + 'w'.repeat(rest - 2) + '\r\n';
}

/** Exactly `n` bytes (n >= 3) of lines without SP or HT (like base64). */
function base64Lines(n: number): string {
  let out = '';
  while (n - out.length > 80) out += 'QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n';
  const rest = n - out.length;
  return out + 'Q'.repeat(rest - 2) + '\r\n';
}

// Bodies where something that changes under relaxed canonicalization sits right at a slice cut
// (the first cut is at the last CRLF ending at or before byte S).
const cases: [string, string][] = [
  ['trailing SP just before the cut, a leading SP right after it', textLines(S - 6) + 'abc \r\n' + ' lead  x\r\n' + textLines(500)],
  ['trailing WSP run ending on the cut, a WSP-only line after it', textLines(S - 8) + 'ab \t \r\n' + ' \t\r\n' + 'z\r\n'],
  ['the cut one byte before the line end', textLines(S - 7) + 'abc  \r\n' + textLines(300)],
  ['the cut one byte after the line end', textLines(S - 5) + 'ab \r\n' + 'x' + textLines(300)],
  ['empty lines on both sides of the cut', textLines(S - 6) + '\r\n\r\n\r\n' + '\r\n\r\nnext\r\n'],
  ['empty and WSP-only lines across the cut, then content', textLines(S - 10) + '\r\n \r\n\t\r\n' + '  \r\n\r\n\t x \r\n'],
  ['WSP-only lines from before the cut to the end of the body', textLines(S - 100) + ' \t \r\n\r\n'.repeat(Math.ceil((2 * S) / 7))],
  ['empty lines from before the cut to the end of the body', textLines(S - 50) + '\r\n'.repeat(S)],
  ['WSP-only lines to the end without a final CRLF', textLines(S - 30) + ' \r\n'.repeat(S / 3) + ' \t '],
  ['a last line without CRLF right after the cut', textLines(S - 4) + 'a \r\n' + 'tail  end '],
  ['a line longer than a slice with WSP runs around S', 'x'.repeat(S - 3) + '  \t y ' + 'z '.repeat(S / 2) + ' \r\n' + textLines(200)],
  ['a slice without WSP, then a slice with an HT only', base64Lines(S + 10) + base64Lines(S / 2) + 'QQ\tQQ\r\n' + base64Lines(1000)],
  ['a slice without WSP followed by one with SP runs', base64Lines(S - 4) + 'a  b\r\n' + base64Lines(S) + 'c \r\n'],
  ['bare LFs between the last CRLF and the cut', textLines(S - 6) + 'x\n y \nz\r\n' + ' w  \r\n' + textLines(300)],
  ['a bare LF as the last LF before the cut, then only WSP lines', textLines(S - 3) + 'x\n' + '\r\n' + ' \t\r\n'],
  ['only bare LFs in the first slice, a CRLF after it', 'a \n'.repeat(S / 2) + ' \r\n' + textLines(S)],
  ['a bare CR before the cut and a bare LF after it', textLines(S - 9) + 'a \r b \r\n' + '\n c  \r\n' + textLines(400)],
  ['a MIME part header amid base64 lines in one slice', base64Lines(20000) + 'Content-Type: a;  name="x" \r\n\r\n' + base64Lines(30000) + base64Lines(S)],
  ['an HT in the base64 lines before the first SP', base64Lines(10000) + 'QQ\tQQ\r\n' + base64Lines(10000) + 'a  b \r\n' + base64Lines(20000)],
  ['an HT in the base64 lines after the last SP', base64Lines(10000) + 'a  b \r\n' + base64Lines(10000) + 'QQ\tQQ\r\n' + base64Lines(20000)],
  ['WSP-only and empty lines amid base64 lines', base64Lines(8000) + ' \r\n\t\r\n\r\n' + base64Lines(8000) + '\r\n \r\n' + base64Lines(S - 16000)],
  ['an SP on the first line of a slice, base64 lines after it', textLines(S - 4) + ' x\r\n' + base64Lines(S)],
  ['three slices of text with double spaces everywhere', 'one  two   three \t four\r\n'.repeat(Math.ceil((3 * S) / 25))],
];

describe('relaxed canonicalization at slice and chunk edges', () => {
  it.each(cases)('%s', (_name, body) => {
    const expected = referenceRelaxedBody(body);
    expect(canon(body)).toBe(expected);
    // Chunk edges at the slice cut, around it, and in the middle of the WSP runs and CRLFs near it.
    const near = [S - 9, S - 8, S - 7, S - 6, S - 5, S - 4, S - 3, S - 2, S - 1, S, S + 1, S + 2, S + 3];
    for (const cut of near) expect(canon(body, [cut])).toBe(expected);
    expect(canon(body, [1, S - 1, S + 1, 2 * S - 1, 2 * S + 2])).toBe(expected);
    expect(canon(body, [S / 2, S - 2, S + 700, 2 * S])).toBe(expected);
  });

  it('an edit split across two chunks: SP at the end of one, SP and CRLF at the start of the next', () => {
    const body = textLines(S - 20) + 'last word \t' + ' \r\n' + 'next  line\r\n' + textLines(S);
    const at = body.indexOf('word \t') + 5;
    const expected = referenceRelaxedBody(body);
    for (const cut of [at - 1, at, at + 1, at + 2, at + 3]) expect(canon(body, [cut])).toBe(expected);
  });

  it('a CR at the end of a chunk with LF, SP or content at the start of the next', () => {
    for (const next of ['\n', ' \n', 'x\r\n', '\r\n']) {
      const body = textLines(S + 100) + 'end \r' + next + ' more \r\n' + textLines(2 * S);
      const at = body.indexOf('end \r') + 5;
      expect(canon(body, [at])).toBe(referenceRelaxedBody(body));
    }
  });
});
