import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LineEndingGuard, type LineEndingPolicy } from '../../../src/mail/line-ending-guard.js';

function run(policy: LineEndingPolicy, input: string, cuts: number[] = []): string {
  const guard = new LineEndingGuard(policy);
  const buf = Buffer.from(input, 'latin1');
  const out: Buffer[] = [];
  let prev = 0;
  for (const cut of [...cuts, buf.length].map((c) => Math.min(c, buf.length)).sort((a, b) => a - b)) {
    const r = guard.write(buf.subarray(prev, cut));
    if (r.kind === 'refused') return `refused:${r.reason}`;
    out.push(Buffer.from(r.chunk));
    prev = cut;
  }
  const end = guard.end();
  if (end.kind === 'refused') return `refused:${end.reason}`;
  return Buffer.concat(out).toString('latin1');
}

describe('line endings at the receiver', () => {
  it.each([
    ['CRLF text passes unchanged', 'normalize', 'a\r\nb\r\n', 'a\r\nb\r\n'],
    ['a bare LF becomes CRLF', 'normalize', 'a\nb\r\n', 'a\r\nb\r\n'],
    ['LF-only text becomes CRLF', 'normalize', 'a\nb\n\nc\n', 'a\r\nb\r\n\r\nc\r\n'],
    ['a bare LF is refused when the listener rejects', 'reject', 'a\nb\r\n', 'refused:bare_lf'],
    ['a bare CR is refused', 'normalize', 'Subject: a\rX-Evil: b\r\n', 'refused:bare_cr'],
    ['a bare CR at the very end is refused', 'normalize', 'a\r\nb\r', 'refused:bare_cr'],
    ['CR CR LF is refused', 'normalize', 'a\r\r\n', 'refused:bare_cr'],
    ['a NUL is refused', 'normalize', 'a\0b\r\n', 'refused:nul'],
    ['a NUL after a bare LF is refused', 'normalize', 'a\nb\0\r\n', 'refused:nul'],
    ['smuggling: LF.LF stays content, normalized', 'normalize', 'a\r\n.\nMAIL FROM:<x>\r\n', 'a\r\n.\r\nMAIL FROM:<x>\r\n'],
  ] as const)('%s', (_name, policy, input, expected) => {
    expect(run(policy, input)).toBe(expected);
  });

  it('gives the same answer however the bytes are cut into chunks', () => {
    const text = fc.array(fc.constantFrom('ab', 'line', '\r\n', '\r\n', '\n', '\r', '\0', ' '), { maxLength: 30 }).map((p) => p.join(''));
    fc.assert(
      fc.property(text, fc.constantFrom<LineEndingPolicy>('normalize', 'reject'), fc.array(fc.nat({ max: 70 }), { maxLength: 5 }), (input, policy, cuts) => {
        expect(run(policy, input, cuts)).toBe(run(policy, input));
      }),
      { numRuns: 3000 },
    );
  });
});
