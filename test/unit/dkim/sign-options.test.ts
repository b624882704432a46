// The sign options as receivers see them: each signature built here is checked by dkimpy (an independent verifier)
// as well as for the tag values RFC 6376 §3.5 requires.

import { describe, expect, it } from 'vitest';
import { createSigner } from '../../../src/dkim/sign.js';
import { BASIC_MESSAGE, NOW, rsaKey, sign } from '../../helpers/dkim-test-kit.js';
import { dkimpyVerify } from '../../helpers/dkimpy.js';

const key = rsaKey(2048);
const RECORDS = { 's1._domainkey.example.com': key.record };

/** The tags of the first DKIM-Signature field, unfolded. */
function tagsOf(signed: Buffer): Map<string, string> {
  const text = signed.toString('latin1');
  const field = text.slice(0, text.indexOf('\r\nReceived:')).replace(/\r\n[ \t]/g, ' ');
  const tags = new Map<string, string>();
  for (const part of field.slice(field.indexOf(':') + 1).split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1) tags.set(part.slice(0, eq).trim(), part.slice(eq + 1).replace(/\s/g, ''));
  }
  return tags;
}

describe('lifetime (x=)', () => {
  it('puts x= at t= plus the lifetime in hours', async () => {
    const tags = tagsOf(await sign(BASIC_MESSAGE, key, { lifetimeHours: 1.5 }));
    expect(Number(tags.get('x'))).toBe(NOW + 5400);
  });

  it('keeps x= later than t= for a lifetime under half a second (RFC 6376 §3.5: x= MUST be greater than t=)', async () => {
    // (dkimpy judges x= by the real clock, so only the tag values are checked here.)
    const tags = tagsOf(await sign(BASIC_MESSAGE, key, { lifetimeHours: 0.0001 }));
    expect(Number(tags.get('x'))).toBe(Number(tags.get('t')) + 1);
  });

  it('refuses a lifetime whose x= would not be a decimal integer of at most 12 digits', () => {
    for (const lifetimeHours of [87_601, 1e9, 1e20]) {
      expect(() => createSigner({
        signingDomain: 'example.com',
        selector: 's1',
        privateKey: key.privateKey,
        algorithm: 'rsa-sha256',
        headerCanon: 'relaxed',
        bodyCanon: 'relaxed',
        headerList: 'From',
        lifetimeHours,
      })).toThrow('lifetime must be a number of hours from 0 to 87600');
    }
  });

  it('signs the longest lifetime allowed with an x= every verifier reads', async () => {
    const signed = await sign(BASIC_MESSAGE, key, { lifetimeHours: 87_600 });
    expect(tagsOf(signed).get('x')).toMatch(/^\d{1,12}$/);
    expect(await dkimpyVerify(signed, RECORDS)).toEqual(['pass']);
  });
});
