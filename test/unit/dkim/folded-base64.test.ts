import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeFoldedBase64, isFoldedBase64, unfoldedPrefix } from '../../../src/dkim/folded-base64.js';

// The plain rule: remove FWS, then check and decode the compact text.
function reference(s: string): { base64: boolean; bytes: Buffer | null; head: string } {
  const compact = s.replace(/[ \t\r\n]+/g, '');
  const base64 = /^[A-Za-z0-9+/]*={0,2}$/.test(compact);
  const bytes = base64 && compact.length > 0 && compact.length % 4 !== 1 ? Buffer.from(compact, 'base64') : null;
  return { base64, bytes, head: compact.slice(0, 8) };
}

const unitArb = fc.constantFrom('A', 'b', '9', '+', '/', 'Q', '=', ' ', '\t', '\r\n ', '\r', '\n', '-', '_', '\x0b', '.', '\xe9');

describe('base64 values with folding whitespace', () => {
  it('checks, decodes and labels exactly like removing the FWS first, for any text', () => {
    fc.assert(
      fc.property(fc.string({ unit: unitArb, maxLength: 60 }), (s) => {
        const ref = reference(s);
        expect(isFoldedBase64(s)).toBe(ref.base64);
        const bytes = decodeFoldedBase64(s);
        expect(bytes === null ? null : bytes.toString('hex')).toBe(ref.bytes === null ? null : ref.bytes.toString('hex'));
        if (ref.base64) expect(unfoldedPrefix(s, 8)).toBe(ref.head);
      }),
      { numRuns: 5000 },
    );
  });

  it('accepts folded encodings of every length and refuses a 4n+1 length, however folded', () => {
    for (let len = 0; len <= 400; len++) {
      const data = Buffer.alloc(len, 0xa5);
      const encoded = data.toString('base64');
      const folded = encoded.replace(/(.{7})/g, '$1\r\n\t').replace(/=/g, ' =');
      expect(decodeFoldedBase64(folded)?.toString('hex') ?? null).toBe(len > 0 ? data.toString('hex') : null);
      const unpadded = encoded.replace(/=+$/, '');
      for (const longer of [`${unpadded}A`, `${unpadded} \r\n A`, `${unpadded}A=`]) {
        const compactLength = longer.replace(/[ \r\n]/g, '').length;
        if (compactLength % 4 === 1) expect(decodeFoldedBase64(longer)).toBeNull();
        else expect(decodeFoldedBase64(longer)?.toString('hex')).toBe(reference(longer).bytes?.toString('hex'));
      }
    }
  });
});
