// Key records an attacker could publish: RSA moduli of any size with any public exponent (a random
// odd modulus: only the record parser and the verifier's checks see it), and the 8192-bit fixture.
// Touches: test/fixtures/large-keys/ (read only).

import { createPublicKey, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseZoneFile } from '../../src/dns/zone-file.js';

/** An odd number of exactly `bits` bits. */
function oddNumberOfBits(bits: number): Buffer {
  const n = randomBytes(Math.ceil(bits / 8));
  n[0]! |= 0x80;
  n[n.length - 1]! |= 1;
  return n;
}

/** The p= of an RSA public key with a `modulusBits` modulus and an `exponentBits` public exponent (65537 by default). */
export function rsaRecordKey(modulusBits: number, exponentBits?: number): string {
  const e = exponentBits === undefined ? Buffer.from([1, 0, 1]) : oddNumberOfBits(exponentBits);
  const key = createPublicKey({ key: { kty: 'RSA', n: oddNumberOfBits(modulusBits).toString('base64url'), e: e.toString('base64url') }, format: 'jwk' });
  return (key.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64');
}

const LARGE_KEYS = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'large-keys');

/**
 * A message signed (relaxed/relaxed, t=1700000000, d=example.com, s=rsa8192) with a throwaway
 * 8192-bit RSA key, and that key's record (generating one takes too long for a test run).
 */
export function rsa8192Fixture(): { message: Buffer; name: string; record: string } {
  const zone = parseZoneFile(readFileSync(join(LARGE_KEYS, 'rsa-8192.zone'), 'utf8'));
  if (zone.kind !== 'ok' || zone.records.length !== 1) throw new Error('test/fixtures/large-keys/rsa-8192.zone does not hold one record');
  const [record] = zone.records;
  return { message: readFileSync(join(LARGE_KEYS, 'rsa-8192-signed.eml')), name: record!.name, record: record!.strings.join('') };
}
