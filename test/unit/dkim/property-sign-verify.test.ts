import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { SignerConfig } from '../../../src/dkim/sign.js';
import { parseSignature } from '../../../src/dkim/signature.js';
import { selectSignedFields } from '../../../src/dkim/header-selection.js';
import { verifyMessage, type SignatureVerdict } from '../../../src/dkim/verify.js';
import { fieldValue, frameMessage } from '../../../src/mail/header-fields.js';
import { crlf, ed25519Key, NOW, rsaKey, sign, tableLookup, type TestKey } from '../../helpers/dkim-test-kit.js';
import { referenceRelaxedBody, referenceRelaxedHeader, referenceSimpleBody } from '../../helpers/reference-canon.js';
import type { TxtLookup } from '../../../src/dkim/txt-lookup.js';

let rsa: TestKey;
let ed: TestKey;
let lookupTxt: TxtLookup;

beforeAll(() => {
  rsa = rsaKey(1024);
  ed = ed25519Key();
  lookupTxt = tableLookup({ 'rsa._domainkey.example.com': rsa.record, 'ed._domainkey.example.com': ed.record });
});

const latin1 = (s: string) => Buffer.from(s, 'latin1');

// ---- Messages ----

/** A name in random letter case (field names are case-insensitive, RFC 5322 §1.2.2). */
const oddCase = (name: string) =>
  fc.array(fc.boolean(), { minLength: name.length, maxLength: name.length }).map((up) => [...name].map((c, i) => (up[i] ? c.toUpperCase() : c.toLowerCase())).join(''));

const OTHER_NAMES = ['To', 'Cc', 'Subject', 'Date', 'Message-ID', 'Reply-To', 'Received', 'X-Mailer', 'X-A'];

/** Value pieces as latin1 text (one char per byte); folds are whole, so every CRLF is followed by WSP. */
const valuePiece = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(' ', '\t', '  ', ' \t ', 'a', 'Hello', '<x@example.com>', 'b:c', ';', '=?', '\xa0', '"q"') },
  { weight: 2, arbitrary: fc.constantFrom('\r\n ', '\r\n\t', '\r\n  \t') },
  { weight: 2, arbitrary: fc.integer({ min: 0x80, max: 0xff }).map((b) => String.fromCharCode(b)) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 6 }).map((s) => Buffer.from(s.replace(/[\r\n]/g, ''), 'utf8').toString('latin1')) },
);
const valueArb = fc.array(valuePiece, { maxLength: 12 }).map((p) => p.join(''));
const colonArb = fc.constantFrom(':', ': ', ' :', '\t: ', ':\t', ' : ');

const fieldArb = (name: string) => fc.tuple(oddCase(name), colonArb, valueArb).map(([n, colon, value]) => `${n}${colon}${value}\r\n`);
// From always has an address, so a signed header value is never empty.
const fromArb = fc.tuple(oddCase('From'), colonArb, valueArb).map(([n, colon, value]) => `${n}${colon}${value}<a@example.com>${value}\r\n`);

const bodyPiece = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('a', 'xyz', ' ', '\t', '  ', ' \t', '\r\n', '\r\n', '\r\n', '.', '\xa0') },
  { weight: 1, arbitrary: fc.constantFrom('\r', '\n') },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 1500 }).map((n) => 'L'.repeat(n)) },
  { weight: 2, arbitrary: fc.integer({ min: 0x80, max: 0xff }).map((b) => String.fromCharCode(b)) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 6 }).map((s) => Buffer.from(s, 'utf8').toString('latin1')) },
);
const bodyArb = fc.oneof(
  fc.constantFrom('', '\r\n', '\r\n\r\n\r\n', ' \t \r\n', 'no final CRLF', 'trailing \t \r\n\r\n \r\n'),
  fc.array(bodyPiece, { maxLength: 40 }).map((p) => p.join('')),
);

interface Message {
  bytes: Buffer;
  /** Offset of the body, or null when the message is only a header section. */
  bodyStart: number | null;
}

const messageArb: fc.Arbitrary<Message> = fc
  .tuple(
    fc.array(fc.constantFrom(...OTHER_NAMES).chain(fieldArb), { maxLength: 8 }),
    fromArb,
    fc.nat(),
    fc.option(bodyArb, { freq: 8, nil: null }),
  )
  .map(([others, from, at, body]) => {
    const fields = [...others];
    fields.splice(at % (others.length + 1), 0, from);
    const header = fields.join('');
    return body === null
      ? { bytes: latin1(header), bodyStart: null }
      : { bytes: latin1(`${header}\r\n${body}`), bodyStart: header.length + 2 };
  });

// ---- Signer options ----

const headerListArb = fc
  .tuple(
    fc.array(
      fc.tuple(fc.constantFrom(...OTHER_NAMES, 'From', 'In-Reply-To', 'List-Id').chain(oddCase), fc.constantFrom('', '', '?', '+', '*')),
      { maxLength: 8 },
    ),
    fc.tuple(oddCase('From'), fc.constantFrom('', '', '?', '+', '*')),
    fc.nat(),
  )
  .map(([entries, from, at]) => {
    const all = [...entries];
    all.splice(at % (entries.length + 1), 0, from);
    return all.map(([name, mod]) => name + mod).join(':');
  });

const agentIdArb = fc
  .tuple(fc.stringMatching(/^[a-z0-9.+=_/-]{0,10}$/), fc.constantFrom('example.com', 'mail.example.com', 'EXAMPLE.com', 'a.b.example.com'))
  .map(([local, domain]) => `${local}@${domain}`);

type Options = Omit<SignerConfig, 'privateKey' | 'signingDomain'>;
const optionsArb: fc.Arbitrary<Options> = fc.record({
  algorithm: fc.constantFrom('rsa-sha256' as const, 'ed25519-sha256' as const),
  selector: fc.constant(''),
  headerCanon: fc.constantFrom('simple' as const, 'relaxed' as const),
  bodyCanon: fc.constantFrom('simple' as const, 'relaxed' as const),
  headerList: headerListArb,
  agentId: fc.option(agentIdArb, { nil: null }),
  lifetimeHours: fc.constantFrom(0, 0, 1, 24, 1000, 0.5),
  bodyLengthLimit: fc.boolean(),
  copyHeaders: fc.boolean(),
});

/** Signs; returns the DKIM-Signature field and the signed message. */
async function signWith(message: Buffer, o: Options): Promise<{ field: Buffer; signed: Buffer }> {
  const ed25519 = o.algorithm === 'ed25519-sha256';
  const signed = await sign(message, ed25519 ? ed : rsa, { ...o, selector: ed25519 ? 'ed' : 'rsa' });
  return { field: signed.subarray(0, signed.length - message.length), signed };
}

async function verifyOne(message: Buffer): Promise<SignatureVerdict> {
  const report = await verifyMessage(message, { lookupTxt, nowSec: NOW + 60 });
  expect(report.signatures).toHaveLength(1);
  return report.signatures[0]!;
}

/** The parsed signature of a DKIM-Signature field produced by the signer. */
function parsedField(field: Buffer) {
  const framed = frameMessage(field);
  const parsed = parseSignature(fieldValue(field, framed.fields[0]!));
  if (parsed.kind !== 'ok') throw new Error(`the signer wrote an unparseable field: ${parsed.reason} ${parsed.detail}`);
  return parsed.signature;
}

const PROPERTY_RUNS = { numRuns: 200 };
/** A replacement byte; SP and HTAB often, so that changes relaxed canonicalization hides are tried too. */
const byteArb = fc.oneof(fc.constantFrom(0x20, 0x09), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }));

describe('sign then verify (fast-check)', () => {
  it('passes for any message and any signer options', async () => {
    await fc.assert(
      fc.asyncProperty(messageArb, optionsArb, async (message, o) => {
        const { field, signed } = await signWith(message.bytes, o);
        const v = await verifyOne(signed);
        expect([v.result, v.reason, v.detail]).toEqual(['pass', null, null]);
        expect(v).toMatchObject({
          domain: 'example.com',
          algorithm: o.algorithm,
          canonicalization: `${o.headerCanon}/${o.bodyCanon}`,
          identity: o.agentId ?? '@example.com',
          headerB: parsedField(field).headerB,
        });
      }),
      PROPERTY_RUNS,
    );
  });

  it('fails after any single-byte change to a signed header value, unless canonicalization hides it', async () => {
    await fc.assert(
      fc.asyncProperty(messageArb, optionsArb, fc.nat(), byteArb, async (message, o, pick, byte) => {
        const { field, signed } = await signWith(message.bytes, o);
        const framed = frameMessage(message.bytes);
        const sig = parsedField(field);
        const buf = message.bytes;
        // Value bytes of the signed fields that keep the framing: not CR or LF, not the WSP that makes a fold.
        const candidates: { at: number; start: number; end: number }[] = [];
        for (const f of selectSignedFields(framed.fields, sig.signedHeaders)) {
          if (!f) continue;
          for (let at = f.colon + 1; at < f.end - 2; at++) {
            if (buf[at] === 0x0d || buf[at] === 0x0a || buf[at - 1] === 0x0a) continue;
            candidates.push({ at, start: f.start, end: f.end });
          }
        }
        fc.pre(candidates.length > 0);
        const { at, start, end } = candidates[pick % candidates.length]!;
        fc.pre(buf[at] !== byte);
        const changed = Buffer.from(buf);
        changed[at] = byte;
        const before = buf.toString('latin1', start, end);
        const after = changed.toString('latin1', start, end);
        const hidden = o.headerCanon === 'relaxed' && referenceRelaxedHeader(before) === referenceRelaxedHeader(after);
        const v = await verifyOne(Buffer.concat([field, changed]));
        if (hidden) expect(v.result).toBe('pass');
        else expect([v.result, v.reason]).toEqual(['fail', 'signature_mismatch']);
        expect(signed.equals(Buffer.concat([field, buf]))).toBe(true);
      }),
      PROPERTY_RUNS,
    );
  });

  it('does not pass after any single-byte change to the body, unless canonicalization hides it', async () => {
    await fc.assert(
      fc.asyncProperty(messageArb, optionsArb, fc.nat(), byteArb, async (message, o, pick, byte) => {
        fc.pre(message.bodyStart !== null && message.bodyStart < message.bytes.length);
        const { field } = await signWith(message.bytes, o);
        const at = message.bodyStart! + (pick % (message.bytes.length - message.bodyStart!));
        fc.pre(message.bytes[at] !== byte);
        const changed = Buffer.from(message.bytes);
        changed[at] = byte;
        const canon = o.bodyCanon === 'relaxed' ? referenceRelaxedBody : referenceSimpleBody;
        const hidden = canon(message.bytes.toString('latin1', message.bodyStart!)) === canon(changed.toString('latin1', message.bodyStart!));
        const v = await verifyOne(Buffer.concat([field, changed]));
        if (hidden) expect(v.result).toBe('pass');
        else expect(v.result).not.toBe('pass');
      }),
      PROPERTY_RUNS,
    );
  });

  it('fails when a field is added whose name the signature oversigned', async () => {
    await fc.assert(
      fc.asyncProperty(messageArb, optionsArb, fc.nat(), fc.nat(), async (message, o, pickName, pickPlace) => {
        const { field } = await signWith(message.bytes, o);
        const framed = frameMessage(message.bytes);
        const sig = parsedField(field);
        const instances = (name: string) => framed.fields.filter((f) => f.lowerName === name).length;
        const listed = (name: string) => sig.signedHeaders.filter((n) => n === name).length;
        const oversigned = [...new Set(sig.signedHeaders)].filter((name) => listed(name) > instances(name));
        fc.pre(oversigned.length > 0);
        const name = oversigned[pickName % oversigned.length]!;
        // Anywhere in the header section: selection is bottom-up, so the extra instance is always reached.
        const places = [0, ...framed.fields.map((f) => f.end)];
        const place = places[pickPlace % places.length]!;
        const added = Buffer.concat([message.bytes.subarray(0, place), latin1(`${name}: added\r\n`), message.bytes.subarray(place)]);
        const v = await verifyOne(Buffer.concat([field, added]));
        expect(v.result).not.toBe('pass');
        if (name !== 'from') expect([v.result, v.reason]).toEqual(['fail', 'signature_mismatch']);
      }),
      PROPERTY_RUNS,
    );
  });
});

describe('sign then verify: chosen cases', () => {
  it.each([
    ['an empty body', ''],
    ['a CRLF-only body', '\r\n\r\n\r\n'],
    ['a body without a final CRLF', 'last line'],
    ['trailing whitespace and tabs', 'a \t\r\n\tb\t \r\n \r\n'],
    ['a 100,000-byte line', 'x'.repeat(100_000)],
  ])('passes with %s under every canonicalization pair and both algorithms', async (_name, body) => {
    const message = Buffer.concat([crlf('fRoM : Ålice <a@example.com>\nSUBJECT:\tGrüße\n \tfolded\n'), Buffer.from('\r\n'), latin1(body)]);
    for (const algorithm of ['rsa-sha256', 'ed25519-sha256'] as const) {
      for (const headerCanon of ['simple', 'relaxed'] as const) {
        for (const bodyCanon of ['simple', 'relaxed'] as const) {
          const { signed } = await signWith(message, {
            algorithm,
            selector: '',
            headerCanon,
            bodyCanon,
            headerList: 'From:From:Subject*:To',
            bodyLengthLimit: true,
            copyHeaders: true,
            lifetimeHours: 1,
            agentId: 'a@example.com',
          });
          expect(await verifyOne(signed)).toMatchObject({ result: 'pass', canonicalization: `${headerCanon}/${bodyCanon}` });
        }
      }
    }
  });

  // DKIM-Quoted-Printable triples every 8-bit byte, so a 400-character UTF-8 Subject copied into z=
  // is 2,400 characters: it must be folded inside the copy (FWS is allowed anywhere but inside
  // =XX), since RFC 5322 §2.1.1 says a line MUST NOT exceed 998 characters.
  it('keeps every line of a z= signature within 998 characters', async () => {
    const message = crlf(`From: a@example.com\nSubject: ${'é'.repeat(400)}\n\nhi\n`);
    const { field } = await signWith(message, {
      algorithm: 'rsa-sha256',
      selector: '',
      headerCanon: 'relaxed',
      bodyCanon: 'relaxed',
      headerList: 'From:Subject',
      copyHeaders: true,
    });
    for (const line of field.toString('latin1').split('\r\n')) expect(line.length).toBeLessThanOrEqual(998);
  });
});
