import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createDotStuffer } from '../../../src/relay/dot-stuffer.js';

/** The reference: the whole message as one string, every line start checked (slow, obviously right). */
function referenceStuff(message: Buffer): Buffer {
  const text = message.toString('latin1');
  let out = text.replace(/\r\n\./g, '\r\n..');
  if (out.startsWith('.')) out = '.' + out;
  if (out.length > 0 && !out.endsWith('\r\n')) out += '\r\n';
  return Buffer.from(out + '.\r\n', 'latin1');
}

function stuff(parts: Buffer[]): Buffer {
  const stuffer = createDotStuffer();
  const out = parts.flatMap((p) => stuffer.push(p));
  out.push(...stuffer.finish());
  return Buffer.concat(out);
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('createDotStuffer', () => {
  it.each([
    ['an empty message', [''], '.\r\n'],
    ['a dot at the message start', ['.hidden\r\n'], '..hidden\r\n.\r\n'],
    ['a lone dot line', ['a\r\n.\r\nb\r\n'], 'a\r\n..\r\nb\r\n.\r\n'],
    ['dots in the middle of lines', ['a.b\r\n c.\r\n'], 'a.b\r\n c.\r\n.\r\n'],
    ['a message without a final CRLF', ['no newline'], 'no newline\r\n.\r\n'],
    ['a message ending in a dot line without CRLF', ['a\r\n.'], 'a\r\n..\r\n.\r\n'],
    ['a boundary between CRLF and a dot', ['a\r\n', '.b\r\n'], 'a\r\n..b\r\n.\r\n'],
    ['a boundary between CR and LF before a dot', ['a\r', '\n.b\r\n'], 'a\r\n..b\r\n.\r\n'],
    ['a boundary after the LF of a split CRLF', ['a\r', '\n', '.b\r\n'], 'a\r\n..b\r\n.\r\n'],
    ['empty parts between', ['a\r\n', '', '', '.b'], 'a\r\n..b\r\n.\r\n'],
    ['a first part that is one dot', ['.', '\r\n'], '..\r\n.\r\n'],
    ['a bare LF before a dot, left alone', ['a\n.b\r\n'], 'a\n.b\r\n.\r\n'],
    ['a bare CR before a dot, left alone', ['a\r.b\r\n'], 'a\r.b\r\n.\r\n'],
    ['the smuggling sequence as plain bytes', ['x\n.\ny\r\n'], 'x\n.\ny\r\n.\r\n'],
  ])('handles %s', (_name, parts, expected) => {
    expect(stuff(parts.map(b)).toString('latin1')).toBe(expected);
  });

  it('does not copy a part without line-start dots', () => {
    const part = b('From: a@b.example\r\n\r\nbody\r\n');
    expect(createDotStuffer().push(part)[0]).toBe(part);
  });

  it('matches the reference for any message cut into any parts', () => {
    const alphabet = fc.constantFrom(...['.', '\r\n', 'a', '\xff', '\x00', ' ', '..', '\r\n.\r\n']);
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 40 }), fc.array(fc.nat(), { maxLength: 6 }), (tokens, cuts) => {
        const message = b(tokens.join(''));
        const points = [...new Set(cuts.map((c) => (message.length === 0 ? 0 : c % message.length)))].sort((x, y) => x - y);
        const parts: Buffer[] = [];
        let from = 0;
        for (const at of [...points, message.length]) {
          parts.push(message.subarray(from, at));
          from = at;
        }
        expect(stuff(parts)).toEqual(referenceStuff(message));
      }),
      { numRuns: 500 },
    );
  });
});
